//! Derive macros for [`state-core`](https://docs.rs/state-core): `#[derive(StateScope)]` and
//! `#[derive(StatePath)]`. Use them through `state-core`'s `derive` feature.
//!
//! Each derive parses its input into a model (`ast`, `attr`), checks it (`check`), and only
//! then expands (`scope`, `path`). Every error is reported at once with a span on the user's
//! token; beside the errors a fallback impl keeps follow-on errors away.

mod ast;
mod attr;
mod bound;
mod case;
mod check;
mod ctxt;
mod fallback;
mod path;
mod scope;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

use crate::ast::Container;
use crate::attr::Derive;
use crate::ctxt::Ctxt;

/// Derives typed state handles for a struct whose fields are state slots.
///
/// Beside the struct, with its visibility, it generates:
///
/// | type | what |
/// |---|---|
/// | `{Name}State<M = ReadWrite>` | one typed handle per field (`state.attempts()`), `load`, `batch`, `read_only` |
/// | `{Name}View` | `{Name}State<ReadOnly>`: no mutating method compiles |
/// | `{Name}Snapshot<M>` | every field loaded in one store call; eager handles; `to_value()` → `{Name}` |
/// | `{Name}Batch` | path-checked atomic batches: `state.batch(\|b\| b.profile().age().set(30))` |
///
/// Each field is a slot `(scope, namespace, key)`: the namespace is the struct's name, the key
/// the field's name. An `Option<U>` field's handle is typed over `U` (absence is a
/// tombstone, never JSON null).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use state_core::{Context, Engine, MemoryStore, StatePath, StateScope};
///
/// #[derive(StatePath, Serialize, Deserialize, Default)]
/// pub struct Profile {
///     pub age: u32,
///     pub nick: Option<String>,
/// }
///
/// #[derive(StateScope, Serialize, Deserialize)]
/// pub struct Research {
///     #[state(initial = 0)]
///     pub attempts: u32,
///     #[state(default)]
///     pub articles: Vec<String>,
///     #[state(default)]
///     pub profile: Profile,
///     #[state(user)]
///     pub theme: Option<String>,
///     #[state(temp)]
///     pub raw_response: Option<String>,
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
/// let ctx = Context::new(Engine::new(MemoryStore::new()), "run-1")?.with_user("app", "ada")?;
/// let state = ctx.state::<Research>()?;
/// state.attempts().increment(1).await?;
/// state.articles().append("https://example.com".into()).await?;
/// state.profile().set(Profile::default()).await?;
/// state.batch(|b| b.attempts().increment(1).profile().age().set(30)).await?;
/// let research: Research = state.load().await?.to_value()?;
/// assert_eq!((research.attempts, research.profile.age), (2, 30));
/// # Ok(()) }
/// ```
///
/// # Struct attributes
///
/// | attribute | effect |
/// |---|---|
/// | `#[state(namespace = "…")]` | the namespace of every slot (default: the struct's name) |
/// | `#[state(execution)]`, `workflow`, `object`, `user`, `app`, `session`, `temp` | the default scope of the fields (default `execution`) |
/// | `#[state(default)]` | `to_value` takes absent fields from `{Name}::default()` |
/// | `#[state(max_retries = N)]` | every field's `update` retries at most `N` times (a field's own overrides it) |
/// | `#[state(crate = "path")]` | where `state_core` is (for re-exports) |
/// | `#[state(bound = "T: …")]` | replaces the default bounds on type parameters (`T: Serialize + DeserializeOwned + Send + Sync + 'static`) |
///
/// # Field attributes
///
/// | attribute | effect |
/// |---|---|
/// | `#[state(initial = EXPR)]` | what the field holds until its first write (type-checked against the field) |
/// | `#[state(default)]` | `to_value` uses `Default::default()` when the field is absent (with `initial` too: `initial` until the first write, `Default` after a delete) |
/// | `#[state(ttl = "30s")]` | every write of the field expires after this long (`ms`, `s`, `m`, `h`, `d`); a read after it sees nothing |
/// | `#[state(max_retries = N)]` | this field's `update` retries at most `N` times after a conflict, with the engine's backoff (not on `session` fields: one writer, no conflicts) |
/// | `#[state(rename = "…")]` | the slot's key (default: the field name; two fields may not share a key) |
/// | `#[state(skip)]` | not a slot; `to_value` fills it with `Default::default()` |
/// | `#[state(leaf)]` | a value without `StatePath`: batches set or delete it only as a whole |
/// | `#[state(execution)]`, `workflow`, `object`, `user`, `app`, `session`, `temp` | the field's scope |
///
/// Every misuse — an unknown or duplicate attribute, two fields with one key, a tuple struct,
/// an enum — is a compile error on your token, all reported at once.
#[proc_macro_derive(StateScope, attributes(state))]
pub fn derive_state_scope(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input, Derive::StateScope).into()
}

/// Derives a path-checked batch cursor for a struct nested in state (`{Name}Path`), or makes
/// an enum (or tuple struct) a leaf value that batches set as a whole.
///
/// The cursor has one method per field, named as serde stores it (`rename`, `rename_all`
/// honoured), plus `set` for the whole value and `delete` where the value may be absent (an
/// `Option` field, a map entry, a whole slot). A required field has no `delete`: removing it
/// would leave a value that no longer deserializes. `#[serde(flatten)]` and
/// `#[serde(with = …)]` fields offer no nested ops; `#[serde(skip)]` fields no method at all.
/// A field whose type has no `StatePath` needs `#[state(leaf)]`.
///
/// It also generates `{Name}Patch`: the same fields (but flattened, `with` and skipped ones)
/// each as an `Option`, with `Default` (all `None`). The cursor's `merge(patch)` sets the
/// fields the patch has and leaves the others as stored — a typed shallow merge, one op per
/// field in one write; an `Option` field's `Some(None)` deletes it.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use state_core::{Context, Engine, MemoryStore, StatePath, StateScope};
///
/// #[derive(StatePath, Serialize, Deserialize, Default)]
/// #[serde(rename_all = "camelCase")]
/// pub struct Profile {
///     pub display_name: String,
///     pub visits: u64,
///     pub address: Option<Address>,
/// }
///
/// #[derive(StatePath, Serialize, Deserialize, Default)]
/// pub struct Address {
///     pub city: String,
/// }
///
/// #[derive(StateScope, Serialize, Deserialize)]
/// pub struct Account {
///     pub profile: Profile,
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
/// let ctx = Context::new(Engine::new(MemoryStore::new()), "run-1")?;
/// let state = ctx.state::<Account>()?;
/// state.profile().set(Profile::default()).await?;
/// state
///     .batch(|b| {
///         b.profile().visits().increment(1)
///             .profile().display_name().set("Ada".into())
///             .profile().address().delete() // an `Option` field may be deleted
///     })
///     .await?;
/// let raw = state.profile().get_raw().await?.value.unwrap();
/// assert_eq!(raw["displayName"], "Ada"); // the path followed serde's name
/// # Ok(()) }
/// ```
#[proc_macro_derive(StatePath, attributes(state))]
pub fn derive_state_path(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input, Derive::StatePath).into()
}

fn expand(input: &DeriveInput, derive: Derive) -> proc_macro2::TokenStream {
    let cx = Ctxt::default();
    let cont = Container::from_ast(&cx, derive, input);
    let krate = cont
        .attrs
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::state_core));
    check::check(&cx, derive, &cont);
    match cx.check() {
        Ok(recoverable) => {
            let expanded = match derive {
                Derive::StateScope => scope::expand(&cont, &krate),
                Derive::StatePath => path::expand(&cont, &krate),
            };
            let errors = recoverable.map(|e| e.to_compile_error());
            quote::quote!(#errors #expanded)
        }
        Err(errors) => {
            let fallback = match derive {
                Derive::StateScope => fallback::state_scope(input, &krate),
                Derive::StatePath => fallback::state_path(input, &krate),
            };
            let errors = errors.to_compile_error();
            quote::quote!(#errors #fallback)
        }
    }
}

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
/// Generates, beside the struct and with its visibility, `{Name}State<M>` (one typed handle
/// per field), `{Name}View` (read-only), `{Name}Snapshot` (eager load, convertible into the
/// struct) and `{Name}Batch` (path-checked atomic batches), and implements
/// `state_core::StateScope`. See `state-core`'s documentation for the attributes.
#[proc_macro_derive(StateScope, attributes(state))]
pub fn derive_state_scope(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand(&input, Derive::StateScope).into()
}

/// Derives a path-checked batch cursor for a struct nested in state (`{Name}Path`), or makes
/// an enum a leaf value that batches set as a whole.
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
        Ok(()) => match derive {
            Derive::StateScope => scope::expand(&cont, &krate),
            Derive::StatePath => path::expand(&cont, &krate),
        },
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

//! The execution context: which scope ids an invocation has, and the engines its state
//! lives in. `ctx.state::<T>()` binds every field of a `#[derive(StateScope)]` struct to its
//! slot.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::collection::Collection;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::handle::{Mode, ReadOnly, ReadWrite, SlotHandle};
use crate::memory::MemoryStore;
use crate::record::Record;
use crate::scope::{Scope, Slot, SlotKey};

/// Where one field of a state struct lives (`#[state(user)]`, …; default `execution`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldScope {
    /// Shared by an execution, its children and concurrent branches; purged with it.
    Execution,
    /// Shared by every run of one workflow type.
    Workflow,
    /// One virtual-object key of one service.
    Object,
    /// One user of one app.
    User,
    /// The whole app.
    App,
    /// Private to one execution, local to the invocation (checkpointed with the context).
    Session,
    /// Never persisted: gone when the invocation ends.
    Temp,
}

impl FieldScope {
    /// The attribute name (`"user"`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            FieldScope::Execution => "execution",
            FieldScope::Workflow => "workflow",
            FieldScope::Object => "object",
            FieldScope::User => "user",
            FieldScope::App => "app",
            FieldScope::Session => "session",
            FieldScope::Temp => "temp",
        }
    }

    /// What the context must have for this scope, and how to give it.
    const fn needs(self) -> &'static str {
        match self {
            FieldScope::Workflow => "no workflow type; build it with `.with_workflow(type)`",
            FieldScope::Object => "no object key; build it with `.with_object(service, key)`",
            FieldScope::User => "no user id; build it with `.with_user(app, user)`",
            FieldScope::App => "no app; build it with `.with_app(app)`",
            FieldScope::Execution | FieldScope::Session | FieldScope::Temp => "no execution id",
        }
    }
}

impl fmt::Display for FieldScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state of one invocation: where each scope of its state lives.
///
/// - `execution` fields live in the *root* execution's scope: an execution, its children
///   ([`child`](Self::child)) and concurrent branches share them;
/// - `workflow`, `object`, `user`, `app` fields need the ids given by the `with_*` methods;
/// - `session` fields are private to this execution, synchronous, and saved with
///   [`checkpoint`](Self::checkpoint);
/// - `temp` fields live in this invocation's memory and are gone with the context.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
/// use state_core::{Context, Engine, FieldScope, MemoryStore};
/// let engine = Engine::new(MemoryStore::new());
/// let ctx = Context::new(engine, "run-1")?.with_user("shop", "alice")?;
/// let theme = ctx.handle::<String>(FieldScope::User, "Prefs", "theme", "Prefs", "theme")?;
/// theme.set("dark".into()).await?;
/// assert!(ctx.handle::<u8>(FieldScope::Object, "Cart", "n", "Cart", "n").is_err());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Context {
    engine: Engine,
    local: Engine,
    session: Engine,
    session_store: Arc<MemoryStore>,
    execution_id: String,
    /// This execution's own scope (session and temp slots live under it).
    own: Scope,
    /// The root execution's scope (execution fields live here).
    root: Scope,
    workflow: Option<Scope>,
    object: Option<Scope>,
    user: Option<Scope>,
    app: Option<Scope>,
    /// An admin context ([`ScopeAdmin::state`](crate::ScopeAdmin::state)): the one scope
    /// its fields may live in.
    only: Option<Scope>,
}

/// Why a field does not bind in an admin context ([`Context::for_admin`]).
const ADMIN_NEEDS: &str = "no such scope: an admin handle (`engine.scope(…).state::<T>()`) binds only fields that live in the scope it opened, and none in session or temp memory; bind this struct through a `Context` with its ids";

/// A saved copy of an execution's session state, to restore after a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The execution the session state belongs to.
    pub execution_id: String,
    /// Every session slot: namespace and key, value, version.
    pub session: Vec<(SlotKey, Record)>,
}

impl Context {
    /// A context for the root execution `execution_id` on `engine`, with fresh invocation-local
    /// (`temp`) and `session` state.
    pub fn new(engine: Engine, execution_id: impl Into<String>) -> Result<Self> {
        let execution_id = execution_id.into();
        let own = Scope::execution(execution_id.clone())?;
        let local = engine.local();
        let (session, session_store) = engine.session();
        Ok(Context {
            root: own.clone(),
            own,
            execution_id,
            engine,
            local,
            session,
            session_store,
            workflow: None,
            object: None,
            user: None,
            app: None,
            only: None,
        })
    }

    /// The context of one session of one user of an app — Google ADK's session identity,
    /// `(app_name, user_id, session_id)`: its execution id joins the three (`app/user/session`,
    /// each part's `%` and `/` escaped as `%25` and `%2F`), so user `u2`'s session `s1` is not
    /// user `u1`'s, and `user` and `app` fields bind to that user and app.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
    /// use state_core::{Context, Engine, MemoryStore};
    /// let engine = Engine::new(MemoryStore::new());
    /// let u1 = Context::for_user_session(engine.clone(), "assistant", "u1", "s1")?;
    /// let u2 = Context::for_user_session(engine, "assistant", "u2", "s1")?;
    /// assert_eq!(u1.execution_id(), "assistant/u1/s1");
    /// assert_ne!(u1.execution(), u2.execution());
    /// # Ok(()) }
    /// ```
    pub fn for_user_session(
        engine: Engine,
        app: impl Into<String>,
        user: impl Into<String>,
        session_id: impl Into<String>,
    ) -> Result<Self> {
        let (app, user, session_id) = (app.into(), user.into(), session_id.into());
        // Each part is an id of its own: non-empty, not too long, no NUL.
        Scope::execution(session_id.as_str())?;
        let escape = |part: &str| part.replace('%', "%25").replace('/', "%2F");
        let id = format!("{}/{}/{}", escape(&app), escape(&user), escape(&session_id));
        Context::new(engine, id)?.with_user(app, user)
    }

    /// The context of a child execution (a spawned sub-task, a concurrent branch): it shares
    /// the root's `execution` state and every other scope, and has its own `session` and
    /// `temp` state.
    pub fn child(&self, child_execution_id: impl Into<String>) -> Result<Self> {
        let execution_id = child_execution_id.into();
        let own = Scope::execution(execution_id.clone())?;
        let (session, session_store) = self.engine.session();
        Ok(Context {
            engine: self.engine.clone(),
            local: self.engine.local(),
            session,
            session_store,
            execution_id,
            own,
            root: self.root.clone(),
            workflow: self.workflow.clone(),
            object: self.object.clone(),
            user: self.user.clone(),
            app: self.app.clone(),
            only: self.only.clone(),
        })
    }

    /// Adds the workflow type (for `#[state(workflow)]` fields).
    pub fn with_workflow(mut self, workflow_type: impl Into<String>) -> Result<Self> {
        self.workflow = Some(Scope::workflow(workflow_type)?);
        Ok(self)
    }

    /// Adds the virtual object (for `#[state(object)]` fields).
    pub fn with_object(
        mut self,
        service: impl Into<String>,
        key: impl Into<String>,
    ) -> Result<Self> {
        self.object = Some(Scope::object(service, key)?);
        Ok(self)
    }

    /// Adds the app and user (for `#[state(user)]` and `#[state(app)]` fields).
    pub fn with_user(mut self, app: impl Into<String>, user: impl Into<String>) -> Result<Self> {
        let app = app.into();
        self.user = Some(Scope::user(app.clone(), user)?);
        self.app = Some(Scope::app(app)?);
        Ok(self)
    }

    /// Adds the app (for `#[state(app)]` fields).
    pub fn with_app(mut self, app: impl Into<String>) -> Result<Self> {
        self.app = Some(Scope::app(app)?);
        Ok(self)
    }

    /// The durable engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The invocation-local engine (`temp` state).
    pub fn local_engine(&self) -> &Engine {
        &self.local
    }

    /// This execution's id.
    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    /// The root execution's id (equal to [`execution_id`](Self::execution_id) for a root).
    pub fn root_execution_id(&self) -> &str {
        self.root.parts().0
    }

    /// The scope `execution` fields live in: the root execution's.
    pub fn execution(&self) -> &Scope {
        &self.root
    }

    /// The workflow scope `workflow` fields live in, if the context has one.
    pub fn workflow(&self) -> Option<&Scope> {
        self.workflow.as_ref()
    }

    /// The virtual object this invocation is bound to (Restate's current object), if any.
    pub fn object(&self) -> Option<&Scope> {
        self.object.as_ref()
    }

    /// The user scope `user` fields live in, if the context has one.
    pub fn user(&self) -> Option<&Scope> {
        self.user.as_ref()
    }

    /// The app scope `app` fields live in, if the context has one.
    pub fn app(&self) -> Option<&Scope> {
        self.app.as_ref()
    }

    /// The keys of `T`'s fields that hold a live value, each in the scope this context
    /// binds it to (Restate's `ctx.stateKeys()` for one struct's state). Fails like
    /// [`state`](Self::state) when the context lacks a scope a field needs.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> state_core::Result<()> {
    /// use serde::{Deserialize, Serialize};
    /// use state_core::{Context, Engine, MemoryStore, StateScope};
    /// #[derive(StateScope, Serialize, Deserialize)]
    /// #[state(object)]
    /// struct Cart { items: Vec<String>, coupon: Option<String> }
    /// let ctx = Context::new(Engine::new(MemoryStore::new()), "inv-1")?.with_object("cart", "ada")?;
    /// ctx.state::<Cart>()?.items().append("apples".into()).await?;
    /// assert_eq!(ctx.state_keys::<Cart>().await?, vec!["items"]);
    /// assert_eq!(ctx.clear_object().await?, 1);
    /// assert!(ctx.state_keys::<Cart>().await?.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn state_keys<T: StateScope>(&self) -> Result<Vec<&'static str>> {
        let type_name = std::any::type_name::<T>();
        let mut live = Vec::new();
        for &(key, scope) in T::FIELDS {
            let (engine, s) = self.resolve(scope, type_name, key)?;
            let record = engine
                .load(&Slot::new(s.clone(), T::NAMESPACE, key)?)
                .await?;
            if record.value.is_some() {
                live.push(key);
            }
        }
        Ok(live)
    }

    /// Every slot of the current object holding a live value — each struct's namespace and
    /// key (Restate's `stateKeys` over the whole object) — read in pages of
    /// [`MAX_PAGE`](crate::MAX_PAGE).
    pub async fn object_keys(&self) -> Result<Vec<SlotKey>> {
        let scope = self.current_object("object_keys")?;
        let mut keys = Vec::new();
        loop {
            let page = self
                .engine
                .list_keys(scope, None, keys.last(), crate::MAX_PAGE)
                .await?;
            keys.extend(page.items);
            if page.next.is_none() {
                return Ok(keys);
            }
        }
    }

    /// Deletes every slot of the current object, whichever struct wrote it (Restate's
    /// `ctx.clearAll()`), and returns how many held a value. A field it deleted reads `None`
    /// afterwards — its `initial` does not come back — while a field never written still
    /// reads its `initial`, as before the clear (an `initial` is a never-written field's
    /// value; see the crate's rules on reads).
    pub async fn clear_object(&self) -> Result<u64> {
        let scope = self.current_object("clear_object")?;
        self.engine.clear(scope).await
    }

    /// The current object's scope, or the error saying `method` needs one.
    fn current_object(&self, method: &'static str) -> Result<&Scope> {
        self.object.as_ref().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "`Context::{method}` works on the current object, and this context has none: build it with `.with_object(service, key)`"
            ))
        })
    }

    /// A keyed collection in a named group (rate limits, sessions, feature flags).
    pub fn group<V>(
        &self,
        group: impl Into<String>,
        namespace: impl Into<String>,
    ) -> Result<Collection<V>>
    where
        V: Serialize + DeserializeOwned,
    {
        self.engine.collection(Scope::group(group)?, namespace)
    }

    /// Saves this execution's session state.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            execution_id: self.execution_id.clone(),
            session: self.session_store.export(&self.own),
        }
    }

    /// Restores this execution's session state from `checkpoint` (replacing what it holds).
    /// A checkpoint holding an invalid record (a bad namespace or key, a slot twice, version
    /// 0, JSON null at the root) is refused whole, with nothing changed.
    pub fn restore(&self, checkpoint: &Checkpoint) -> Result<()> {
        if checkpoint.execution_id != self.execution_id {
            return Err(Error::InvalidArgument(format!(
                "checkpoint of execution {:?} restored into execution {:?}",
                checkpoint.execution_id, self.execution_id
            )));
        }
        self.session_store
            .import(&self.own, checkpoint.session.clone())
    }

    /// The engine and scope a field of scope `scope` lives in, or an error naming the field
    /// and what the context lacks.
    pub fn resolve(
        &self,
        scope: FieldScope,
        type_name: &'static str,
        field: &'static str,
    ) -> Result<(&Engine, &Scope)> {
        let found = match scope {
            FieldScope::Execution => Some((&self.engine, &self.root)),
            FieldScope::Workflow => self.workflow.as_ref().map(|s| (&self.engine, s)),
            FieldScope::Object => self.object.as_ref().map(|s| (&self.engine, s)),
            FieldScope::User => self.user.as_ref().map(|s| (&self.engine, s)),
            FieldScope::App => self.app.as_ref().map(|s| (&self.engine, s)),
            FieldScope::Session => Some((&self.session, &self.own)),
            FieldScope::Temp => Some((&self.local, &self.own)),
        };
        let missing = |needs| Error::MissingScope {
            type_name,
            field,
            scope,
            needs,
        };
        match (&self.only, found) {
            (None, found) => found.ok_or_else(|| missing(scope.needs())),
            // An admin context: only durable fields of the one scope it opened.
            (Some(only), Some((engine, s)))
                if s == only && !matches!(scope, FieldScope::Session | FieldScope::Temp) =>
            {
                Ok((engine, s))
            }
            (Some(_), _) => Err(missing(ADMIN_NEEDS)),
        }
    }

    /// A context binding a struct's fields in `scope` alone, for admin handles: a field
    /// that lives elsewhere (or in session or temp memory) is [`Error::MissingScope`].
    pub(crate) fn for_admin(engine: Engine, scope: Scope) -> Result<Self> {
        let (id, sub) = scope.parts();
        let execution = match scope.kind() {
            crate::ScopeKind::Execution => id.to_owned(),
            _ => "_admin".to_owned(),
        };
        let base = Context::new(engine, execution)?;
        let mut ctx = match (scope.kind(), sub) {
            (crate::ScopeKind::Object, Some(key)) => base.with_object(id, key)?,
            (crate::ScopeKind::User, Some(user)) => base.with_user(id, user)?,
            (crate::ScopeKind::App, _) => base.with_app(id)?,
            (crate::ScopeKind::Workflow, _) => base.with_workflow(id)?,
            _ => base,
        };
        ctx.only = Some(scope);
        Ok(ctx)
    }

    /// The typed handle of one field: `namespace`/`key` in the scope `scope` resolves to.
    pub fn handle<T>(
        &self,
        scope: FieldScope,
        namespace: &str,
        key: &str,
        type_name: &'static str,
        field: &'static str,
    ) -> Result<SlotHandle<T>>
    where
        T: Serialize + DeserializeOwned,
    {
        let (engine, s) = self.resolve(scope, type_name, field)?;
        let slot = Slot::new(s.clone(), namespace, key)?;
        Ok(SlotHandle::new(engine.clone(), slot))
    }

    /// The writable state of `T`: one typed handle per field, each in its scope.
    ///
    /// Binding is all-or-nothing: if the context lacks an id one field needs (a
    /// `#[state(user)]` field without [`with_user`](Self::with_user)), this is
    /// [`Error::MissingScope`] naming that field, rather than a state whose other fields
    /// work until the missing one is reached. A struct is one unit of state; split it if
    /// some handlers have only some ids.
    pub fn state<T: StateScope>(&self) -> Result<T::State<ReadWrite>> {
        T::bind(self)
    }

    /// The read-only view of `T`, for shared handlers: no mutating method compiles.
    pub fn view<T: StateScope>(&self) -> Result<T::State<ReadOnly>> {
        T::bind(self)
    }
}

/// A struct whose fields are state slots. Implemented by `#[derive(StateScope)]`.
pub trait StateScope: Sized + 'static {
    /// The generated handle type (`ResearchState<M>`), writable or read-only by `M`.
    type State<M: Mode>: Clone + Send + Sync + 'static;

    /// The namespace of the struct's slots.
    const NAMESPACE: &'static str;

    /// Each stored field's key and scope, in declaration order (`skip` fields have none).
    const FIELDS: &'static [(&'static str, FieldScope)];

    /// Binds every field to its slot in `ctx`.
    fn bind<M: Mode>(ctx: &Context) -> Result<Self::State<M>>;
}

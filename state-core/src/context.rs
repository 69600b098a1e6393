//! The execution context: which scope ids an invocation has, and the engines its state
//! lives in. `ctx.state::<T>()` binds every field of a `#[derive(StateScope)]` struct to its
//! slot.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::handle::{Mode, ReadOnly, ReadWrite, SlotHandle};
use crate::scope::{Scope, Slot};

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

/// The state of one invocation: a durable engine, an invocation-local engine (for `temp`
/// and `session` fields), and the scope ids the invocation has.
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
    execution: Scope,
    workflow: Option<Scope>,
    object: Option<Scope>,
    user: Option<Scope>,
    app: Option<Scope>,
}

impl Context {
    /// A context for execution `execution_id` on `engine`, with a fresh local engine.
    pub fn new(engine: Engine, execution_id: impl Into<String>) -> Result<Self> {
        let local = engine.local();
        Ok(Context {
            execution: Scope::execution(execution_id)?,
            engine,
            local,
            workflow: None,
            object: None,
            user: None,
            app: None,
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

    /// The invocation-local engine (`temp` and `session` state).
    pub fn local_engine(&self) -> &Engine {
        &self.local
    }

    /// The execution scope.
    pub fn execution(&self) -> &Scope {
        &self.execution
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
            FieldScope::Execution => Some((&self.engine, &self.execution)),
            FieldScope::Workflow => self.workflow.as_ref().map(|s| (&self.engine, s)),
            FieldScope::Object => self.object.as_ref().map(|s| (&self.engine, s)),
            FieldScope::User => self.user.as_ref().map(|s| (&self.engine, s)),
            FieldScope::App => self.app.as_ref().map(|s| (&self.engine, s)),
            FieldScope::Session | FieldScope::Temp => Some((&self.local, &self.execution)),
        };
        found.ok_or(Error::MissingScope {
            type_name,
            field,
            scope,
            needs: scope.needs(),
        })
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

    /// Binds every field to its slot in `ctx`.
    fn bind<M: Mode>(ctx: &Context) -> Result<Self::State<M>>;
}

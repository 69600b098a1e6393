//! How to connect a [`PgStore`](crate::PgStore): the server's URL, the schema, waits and
//! limits.

use std::time::Duration;

use state_sql::CommitterConfig;

/// The schema the store's tables live in unless [`PgOptions::schema`] says otherwise.
pub const DEFAULT_SCHEMA: &str = "typed_state";

/// How to connect a [`PgStore`](crate::PgStore). A URL converts into the options of that
/// server (`PgStore::open("postgres://…")`).
#[derive(Clone, Debug)]
pub struct PgOptions {
    pub(crate) url: String,
    pub(crate) schema: String,
    pub(crate) readers: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) create_if_missing: bool,
    pub(crate) committer: CommitterConfig,
}

impl PgOptions {
    /// A server by URL: `postgres://user:password@host:port/database` (everything sqlx's
    /// `PgConnectOptions` accepts, e.g. `?sslmode=require`).
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            readers: 4,
            connect_timeout: Duration::from_secs(10),
            create_if_missing: true,
            committer: CommitterConfig::new(Duration::from_secs(30)),
        }
    }

    /// Whether opening creates the schema and its tables when the schema does not exist
    /// (default `true`). With `false`, a missing schema is [`PgError::SchemaMissing`](crate::PgError::SchemaMissing) and
    /// nothing is created: what a tool that only reads wants, so a mistyped name is an error
    /// rather than a new, empty store.
    #[must_use]
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// Sets the schema holding the store's tables (default [`DEFAULT_SCHEMA`]; created if
    /// missing): 1 to 63 lower-case ASCII letters, digits or `_`, not starting with a digit.
    /// Stores in different schemas of one database are independent.
    #[must_use]
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// Sets how long one connection attempt may take (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
}

state_sql::options_from!(PgOptions, PgOptions::new, &str, String, &String);

state_sql::shared_options!(PgOptions, retry_default = "30 s");

//! How to connect a [`PgStore`](crate::PgStore): the server's URL, the schema, waits and
//! limits.

use std::sync::Arc;
use std::time::Duration;

use state_core::{Clock, SystemClock};

/// The schema the store's tables live in unless [`PgOptions::schema`] says otherwise.
pub const DEFAULT_SCHEMA: &str = "typed_state";

/// How to connect a [`PgStore`](crate::PgStore). A URL converts into the options of that
/// server (`PgStore::open("postgres://…")`).
#[derive(Clone, Debug)]
pub struct PgOptions {
    pub(crate) url: String,
    pub(crate) schema: String,
    pub(crate) readers: u32,
    pub(crate) max_group: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) retry_for: Duration,
    pub(crate) change_retention: Option<Duration>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) create_if_missing: bool,
}

impl PgOptions {
    /// A server by URL: `postgres://user:password@host:port/database` (everything sqlx's
    /// `PgConnectOptions` accepts, e.g. `?sslmode=require`).
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            readers: 4,
            max_group: 1024,
            connect_timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(30),
            change_retention: Some(state_core::DEFAULT_CHANGE_RETENTION),
            clock: Arc::new(SystemClock),
            create_if_missing: true,
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

    /// Sets how long a transaction that failed safely (connection lost before `COMMIT`,
    /// deadlock, a lost race to create a slot) is run again before the error is reported
    /// (default 30 s).
    #[must_use]
    pub fn retry_for(mut self, d: Duration) -> Self {
        self.retry_for = d;
        self
    }
}

/// A URL converts into the options of that server.
macro_rules! from_url {
    ($($url:ty),*) => {$(
        impl From<$url> for PgOptions {
            fn from(url: $url) -> Self {
                PgOptions::new(url)
            }
        }
    )*};
}

from_url!(&str, String, &String);

state_sql::shared_options!(PgOptions);

//! What every backend's public types share, written once: the options' common setters and
//! the row-error conversions of its error type. (Macros, because the types are each
//! backend's own: `SqliteOptions`, `PgError`…)

/// The setters every SQL backend's options share, on an options struct with the fields
/// `change_retention: Option<Duration>`, `readers: u32`, `max_group: usize` and
/// `clock: Arc<dyn Clock>`.
#[macro_export]
macro_rules! shared_options {
    ($options:ty) => {
        impl $options {
            /// Sets how long the change log keeps changes (default
            /// [`DEFAULT_CHANGE_RETENTION`](state_core::DEFAULT_CHANGE_RETENTION); `None`:
            /// forever). Older changes are deleted every 1024 group commits.
            #[must_use]
            pub fn change_retention(mut self, keep: Option<::std::time::Duration>) -> Self {
                self.change_retention = keep;
                self
            }

            /// Sets the number of read connections (default 4, at least 1).
            #[must_use]
            pub fn readers(mut self, n: u32) -> Self {
                self.readers = n.max(1);
                self
            }

            /// Sets the most caller batches merged into one transaction (default 1024, at
            /// least 1).
            #[must_use]
            pub fn max_group(mut self, n: usize) -> Self {
                self.max_group = n.max(1);
                self
            }

            /// Sets the clock expiry is read from (a `ManualClock` in tests).
            #[must_use]
            pub fn clock(mut self, clock: ::std::sync::Arc<dyn ::state_core::Clock>) -> Self {
                self.clock = clock;
                self
            }
        }
    };
}

/// A backend error's conversions: into a `state_core::Error` (naming no slot), and from a row
/// that does not hold what the store writes, for an error enum with the variants
/// `MalformedRow { reason, version, expires_at, raw }` and `VersionRange { version }`.
#[macro_export]
macro_rules! error_conversions {
    ($error:ident) => {
        impl From<$error> for ::state_core::Error {
            fn from(e: $error) -> Self {
                $crate::BackendError::into_state(e, None)
            }
        }

        impl From<::state_core::rows::RowError> for $error {
            fn from(e: ::state_core::rows::RowError) -> Self {
                $error::MalformedRow {
                    reason: e.reason,
                    version: e.version,
                    expires_at: e.expires_at,
                    raw: e.raw,
                }
            }
        }

        impl ::state_core::rows::LoadError for $error {
            fn readable(&self) -> Option<(u64, Option<Option<::state_core::Timestamp>>)> {
                match self {
                    $error::MalformedRow {
                        version: Some(v),
                        expires_at,
                        ..
                    } => Some((*v, *expires_at)),
                    _ => None,
                }
            }

            fn version_range(version: u64) -> Self {
                $error::VersionRange { version }
            }
        }
    };
}

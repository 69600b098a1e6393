//! What every backend's public types share, written once: the options' common setters and
//! the row-error conversions of its error type. (Macros, because the types are each
//! backend's own: `SqliteOptions`, `PgError`…)

/// The setters every SQL backend's options share, on an options struct with the fields
/// `committer: CommitterConfig` and `readers: u32`; `$retry` names the default of
/// `retry_for` in its doc (`"30 s"`).
#[macro_export]
macro_rules! shared_options {
    ($options:ty, retry_default = $retry:literal) => {
        impl $options {
            /// Sets how long the change log keeps changes (default
            /// [`DEFAULT_CHANGE_RETENTION`](state_core::DEFAULT_CHANGE_RETENTION); `None`:
            /// forever). Older changes are deleted every 1024 group commits.
            #[must_use]
            pub fn change_retention(mut self, keep: Option<::std::time::Duration>) -> Self {
                self.committer.change_retention = keep;
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
                self.committer.max_group = n.max(1);
                self
            }

            /// Sets the clock expiry is read from (a `ManualClock` in tests).
            #[must_use]
            pub fn clock(mut self, clock: impl ::state_core::Clock) -> Self {
                self.committer.clock = ::std::sync::Arc::new(clock);
                self
            }

            #[doc = concat!(
                "Sets how long a transaction that failed safely — it wrote nothing: another ",
                "connection held a lock, a deadlock, the connection was lost before `COMMIT`, ",
                "another writer created a slot first — is run again before its error is ",
                "reported (default ", $retry, ")."
            )]
            #[must_use]
            pub fn retry_for(mut self, d: ::std::time::Duration) -> Self {
                self.committer.retry_for = d;
                self
            }
        }
    };
}

/// `From` impls of options for each listed type, through `$make` (`SqliteOptions::file`).
#[macro_export]
macro_rules! options_from {
    ($options:ty, $make:path, $($from:ty),*) => {$(
        impl From<$from> for $options {
            fn from(v: $from) -> Self {
                $make(v)
            }
        }
    )*};
}

/// A backend error's conversions: into a `state_core::Error` (naming no slot), and from a row
/// that does not hold what the store writes, for an error enum with the variants
/// `MalformedRow(RowError)` and `VersionRange { version }`.
#[macro_export]
macro_rules! error_conversions {
    ($error:ident) => {
        impl From<$error> for ::state_core::Error {
            fn from(e: $error) -> Self {
                $crate::BackendError::into_state(e, None)
            }
        }

        impl From<::state_core::backend::rows::RowError> for $error {
            fn from(e: ::state_core::backend::rows::RowError) -> Self {
                $error::MalformedRow(e)
            }
        }

        impl ::state_core::backend::rows::LoadError for $error {
            fn readable(&self) -> Option<(u64, Option<Option<::state_core::Timestamp>>)> {
                match self {
                    $error::MalformedRow(::state_core::backend::rows::RowError {
                        version: Some(v),
                        expires_at,
                        ..
                    }) => Some((*v, *expires_at)),
                    _ => None,
                }
            }

            fn version_range(version: u64) -> Self {
                $error::VersionRange { version }
            }
        }
    };
}

/// The [`Backend`](crate::Backend) methods that run the shared engine's statements on the
/// backend's sqlx database — [`fetch`](crate::Backend::fetch) and
/// [`execute`](crate::Backend::execute) — for a backend with `type Error: From<sqlx::Error>`.
/// Goes inside the `impl Backend` block (they are written for each database because sqlx's
/// executor traits cannot be named generically without bounds every caller would repeat).
#[macro_export]
macro_rules! sqlx_statements {
    () => {
        fn fetch<'a>(
            conn: &'a mut $crate::Conn<Self>,
            sql: &'a str,
            params: &'a [$crate::Param<'a>],
        ) -> $crate::Fut<'a, Result<Vec<$crate::Row<Self>>, Self::Error>> {
            $crate::boxed(async move {
                let mut args = <Self::Db as ::sqlx::Database>::Arguments::<'a>::default();
                for p in params {
                    match *p {
                        $crate::Param::Int(i) => ::sqlx::Arguments::add(&mut args, i),
                        $crate::Param::Text(t) => ::sqlx::Arguments::add(&mut args, t),
                        $crate::Param::Bytes(b) => ::sqlx::Arguments::add(&mut args, b),
                    }
                    .map_err(|e| {
                        let reason = format!("cannot bind a parameter: {e}");
                        Self::Error::from(::state_core::backend::rows::RowError::new(reason))
                    })?;
                }
                Ok(::sqlx::query_with(sql, args).fetch_all(conn).await?)
            })
        }

        fn execute<'a>(
            conn: &'a mut $crate::Conn<Self>,
            sql: &'a str,
        ) -> $crate::Fut<'a, Result<(), Self::Error>> {
            $crate::boxed(async move {
                ::sqlx::Executor::execute(conn, sql).await?;
                Ok(())
            })
        }
    };
}

//! Motia: a per-user rate limiter and login sessions, both with TTL, in group-scoped keyed
//! collections; time comes from an injected clock.

use std::time::Duration;

use state_core::{Collection, Engine, ManualClock, Result, Scope, Ttl};

/// Requests allowed per user per window.
pub const LIMIT: u32 = 5;
/// The rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// How long a login session lives after its last use.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 60);

/// A fixed-window rate limiter: one counter per user, expiring with its window.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    counters: Collection<u32>,
}

impl RateLimiter {
    /// The limiter of `engine`.
    pub fn new(engine: &Engine) -> Result<Self> {
        let counters = engine.collection::<u32>(Scope::group("rate-limits")?, "per-user")?;
        // The first hit of a window sets its expiry; later hits keep it.
        Ok(RateLimiter {
            counters: counters.with_ttl(Ttl::KeepOr(WINDOW)),
        })
    }

    /// Counts a request; `true` if it is within the limit. One Apply write: concurrent
    /// requests never conflict and never lose a count.
    pub async fn allow(&self, user: &str) -> Result<bool> {
        Ok(self.counters.entry(user)?.increment(1).await? <= LIMIT)
    }
}

/// Login sessions: token → user, expiring `SESSION_TTL` after their last use.
#[derive(Clone, Debug)]
pub struct Sessions {
    tokens: Collection<String>,
}

impl Sessions {
    /// The sessions of `engine`.
    pub fn new(engine: &Engine) -> Result<Self> {
        let tokens = engine.collection::<String>(Scope::group("auth")?, "sessions")?;
        Ok(Sessions {
            tokens: tokens.with_ttl(Ttl::For(SESSION_TTL)),
        })
    }

    /// Logs `user` in under `token`.
    pub async fn login(&self, token: &str, user: &str) -> Result<()> {
        self.tokens.entry(token)?.set(user.to_owned()).await?;
        Ok(())
    }

    /// The user of a live session, sliding its expiry forward.
    pub async fn touch(&self, token: &str) -> Result<Option<String>> {
        let entry = self.tokens.entry(token)?;
        match entry.get().await? {
            Some(user) => {
                entry.set(user.clone()).await?; // a write with the TTL: the window slides
                Ok(Some(user))
            }
            None => Ok(None),
        }
    }

    /// Live sessions.
    pub async fn live(&self) -> Result<usize> {
        Ok(self.tokens.keys(None, 1000).await?.items.len())
    }
}

/// What the scenario observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Ada's 7 requests in one window: allowed or not.
    pub first_window: Vec<bool>,
    /// Bob's first request in the same window.
    pub bob_first: bool,
    /// Ada's first request after the window passed.
    pub next_window: bool,
    /// Ada's session after 20 minutes idle (it slides).
    pub ada_after_20m: Option<String>,
    /// Bob's session after 40 minutes idle (expired).
    pub bob_after_40m: Option<String>,
    /// Rows purged once sessions and windows expired.
    pub purged: u64,
    /// Live sessions at the end.
    pub live_sessions: usize,
}

/// Drives both features through simulated time on `clock` (the store must read it).
pub async fn run(engine: Engine, clock: ManualClock) -> Result<Observed> {
    let limiter = RateLimiter::new(&engine)?;
    let mut first_window = Vec::new();
    for _ in 0..7 {
        first_window.push(limiter.allow("ada").await?);
        clock.advance(Duration::from_secs(1));
    }
    let bob_first = limiter.allow("bob").await?;
    clock.advance(WINDOW);
    let next_window = limiter.allow("ada").await?;

    let sessions = Sessions::new(&engine)?;
    sessions.login("tok-ada", "ada").await?;
    sessions.login("tok-bob", "bob").await?;
    clock.advance(Duration::from_secs(20 * 60));
    let ada_after_20m = sessions.touch("tok-ada").await?;
    clock.advance(Duration::from_secs(20 * 60));
    let bob_after_40m = sessions.touch("tok-bob").await?;
    let purged = engine.purge_expired().await?;
    Ok(Observed {
        first_window,
        bob_first,
        next_window,
        ada_after_20m,
        bob_after_40m,
        purged,
        live_sessions: sessions.live().await?,
    })
}

//! Time (an injectable clock), records (value or tombstone, version, expiry) and TTL changes.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A point in time: milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From milliseconds since the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This time plus `d`, saturating at the end of representable time. A part of a
    /// millisecond counts as a whole one, so an expiry this computes is never earlier than
    /// asked (a TTL of 500 µs does not expire at the commit itself).
    pub fn saturating_add(self, d: Duration) -> Self {
        let partial = u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
        let ms = i64::try_from(d.as_millis() + partial).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// This time minus `d`, saturating at the start of representable time.
    pub fn saturating_sub(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// A source of the current time. Stores read it for expiry; tests inject a [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// A shared clock is a clock: `Arc<ManualClock>`, or the `Arc<dyn Clock>` an engine returns,
/// can be handed on where a clock is asked for.
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Timestamp {
        (**self).now()
    }
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(ms)
    }
}

/// A clock that moves only when told to. Clones share one time: hand a clone to a store
/// (`MemoryStore::with_clock(clock.clone())`, `SqliteOptions::clock(clock.clone())`) and
/// move the original.
///
/// ```
/// use state_core::{Engine, ManualClock, MemoryStore, Timestamp};
/// use std::time::Duration;
/// let clock = ManualClock::new(Timestamp::from_millis(1_000));
/// let engine = Engine::new(MemoryStore::with_clock(clock.clone()));
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now(), Timestamp::from_millis(3_000));
/// assert_eq!(engine.clock().now(), clock.now());
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock stopped at `at`.
    pub fn new(at: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(at.0)))
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ms))
            })
            .ok();
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, Ordering::SeqCst);
    }

    /// The time it shows (also [`Clock::now`]; this one needs no trait import).
    pub fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        ManualClock::now(self)
    }
}

/// What a slot holds: a value or a tombstone (`value: None`), its version and its expiry.
///
/// Version 0 means never written. A record read from a store is already *visible*: an
/// expired slot reads as a tombstone that keeps its version (and shows when it expired).
///
/// Read from JSON strictly, as an import must: `value` is required (`null` for a tombstone)
/// and an unknown field is an error, so a misspelled `"valeu"` never reads as a tombstone.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Record {
    /// The JSON value; `None` for a tombstone, an expired slot, or a slot never written.
    #[serde(deserialize_with = "Option::deserialize")]
    pub value: Option<Value>,
    /// The slot's version: 0 if never written, raised by exactly 1 per committed write.
    pub version: u64,
    /// When the value expires, if it has a TTL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl Record {
    /// A record holding `value` (`None`: a tombstone) at `version`, expiring at `expires_at`.
    pub fn new(value: Option<Value>, version: u64, expires_at: Option<Timestamp>) -> Self {
        Record {
            value,
            version,
            expires_at,
        }
    }

    /// The record of a slot that holds nothing at version `version` (0: never written).
    pub fn absent(version: u64) -> Self {
        Record {
            value: None,
            version,
            expires_at: None,
        }
    }

    /// Whether the record holds a value that has not expired at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.value.is_some() && self.expires_at.is_none_or(|t| t > now)
    }

    /// The record as a reader sees it at `now`: an expired value reads as absent.
    pub fn visible(mut self, now: Timestamp) -> Self {
        if !self.is_live(now) {
            self.value = None;
        }
        self
    }
}

/// How a write changes a slot's expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Ttl {
    /// Keep the live value's expiry (a write to an absent or expired slot starts with none).
    #[default]
    Keep,
    /// Expire this long after the commit.
    #[serde(with = "millis")]
    For(Duration),
    /// Keep the live value's expiry; a write that starts a new value (absent, deleted or
    /// expired) expires this long after the commit. A fixed window that starts with its first
    /// write: rate limits, quotas.
    #[serde(with = "millis")]
    KeepOr(Duration),
    /// Never expire.
    Clear,
}

impl Ttl {
    /// The expiry a slot gets when a write with this TTL commits at `now`: `live` says whether
    /// the slot holds a live value, `live_expiry` that value's expiry (if any), and
    /// `new_value_present` whether the write leaves a value. A tombstone never carries an
    /// expiry.
    pub fn expiry_after(
        self,
        live: bool,
        live_expiry: Option<Timestamp>,
        now: Timestamp,
        new_value_present: bool,
    ) -> Option<Timestamp> {
        match self {
            _ if !new_value_present => None,
            Ttl::Keep if live => live_expiry,
            Ttl::Keep | Ttl::Clear => None,
            Ttl::For(d) => Some(now.saturating_add(d)),
            // A live value keeps what it has (an expiry, or none); a new one starts a window.
            Ttl::KeepOr(_) if live => live_expiry,
            Ttl::KeepOr(d) => Some(now.saturating_add(d)),
        }
    }
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Record, Timestamp, Ttl};

    #[test]
    fn a_sub_millisecond_ttl_still_outlives_its_commit() {
        let now = Timestamp::from_millis(1_000);
        let at = Ttl::For(Duration::from_micros(500)).expiry_after(false, None, now, true);
        assert_eq!(at, Some(Timestamp::from_millis(1_001)));
        let r = Record {
            value: Some(serde_json::json!(1)),
            version: 1,
            expires_at: at,
        };
        assert!(r.is_live(now), "live at the commit that wrote it");
        assert_eq!(
            now.saturating_add(Duration::from_millis(5)),
            Timestamp::from_millis(1_005),
            "whole milliseconds are exact"
        );
        assert_eq!(
            Timestamp::from_millis(i64::MAX - 1).saturating_add(Duration::from_nanos(1)),
            Timestamp::from_millis(i64::MAX)
        );
    }
}

//! Feature flags with a gradual rollout: app-scoped flags in a keyed collection, rolled out
//! 10 % → 50 % → 100 % with compare-and-swap updates; each user lands in a stable bucket.

use serde::{Deserialize, Serialize};
use state_core::{Collection, Engine, Result, Scope};

/// One flag.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Flag {
    /// Off switch.
    pub enabled: bool,
    /// Percentage of users who get it.
    pub rollout_percent: u8,
    /// Users who always get it.
    pub allow: Vec<String>,
}

/// A user's stable bucket, 0–99 (FNV-1a of flag and user).
pub fn bucket(flag: &str, user: &str) -> u8 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in flag.bytes().chain([0]).chain(user.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % 100) as u8
}

/// The flags of one app.
#[derive(Clone, Debug)]
pub struct Flags {
    flags: Collection<Flag>,
}

impl Flags {
    /// The flags of `app`.
    pub fn new(engine: &Engine, app: &str) -> Result<Self> {
        Ok(Flags {
            flags: engine.collection::<Flag>(Scope::app(app)?, "flags")?,
        })
    }

    /// Whether `user` gets `flag` (read-only).
    pub async fn on(&self, flag: &str, user: &str) -> Result<bool> {
        let view = self.flags.read_only();
        Ok(match view.entry(flag)?.get().await? {
            Some(f) => {
                f.enabled
                    && (f.allow.iter().any(|u| u == user) || bucket(flag, user) < f.rollout_percent)
            }
            None => false,
        })
    }

    /// Raises the rollout to `percent` (never lowers it; a CAS loop against concurrent admins).
    pub async fn roll_out(&self, flag: &str, percent: u8) -> Result<Flag> {
        let updated = self
            .flags
            .entry(flag)?
            .update(move |f| {
                let mut f = f.cloned().unwrap_or_default();
                f.enabled = true;
                f.rollout_percent = f.rollout_percent.max(percent.min(100));
                Ok(Some(f))
            })
            .await?;
        updated.ok_or_else(|| state_core::Error::InvalidArgument("flag vanished".into()))
    }
}

/// Rolls `new-checkout` out in three stages to 1000 users; returns how many had it at each
/// stage and whether anyone who had it lost it later.
pub async fn run(engine: Engine) -> Result<(Vec<usize>, bool)> {
    let flags = Flags::new(&engine, "shop")?;
    let users: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    flags
        .flags
        .entry("new-checkout")?
        .set(Flag {
            allow: vec!["qa-team".into()],
            ..Flag::default()
        })
        .await?;
    let mut counts = Vec::new();
    let mut had: Vec<bool> = vec![false; users.len()];
    let mut monotonic = true;
    for stage in [10u8, 50, 100] {
        flags.roll_out("new-checkout", stage).await?;
        let mut n = 0;
        for (i, u) in users.iter().enumerate() {
            let on = flags.on("new-checkout", u).await?;
            monotonic &= on || !had[i];
            had[i] = on;
            n += usize::from(on);
        }
        counts.push(n);
    }
    assert!(flags.on("new-checkout", "qa-team").await?);
    Ok((counts, monotonic))
}

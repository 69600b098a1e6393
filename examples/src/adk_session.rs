//! Google ADK: an agent session with unprefixed (session-wide), `user:`, `app:` and `temp:`
//! state, each turn's state delta committed atomically.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use state_core::{Context, Engine, Result, StateScope};

/// An agent conversation's state (ADK's `session.state`, prefixes as scopes).
#[derive(StateScope, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Agent {
    /// The conversation (ADK session state, no prefix).
    #[state(default)]
    pub turns: Vec<String>,
    /// `user:` — follows the user into every session.
    #[state(user, default)]
    pub preferences: BTreeMap<String, String>,
    /// `app:` — every user of the app.
    #[state(app, initial = 0)]
    pub requests: u64,
    /// `temp:` — this invocation only.
    #[state(temp)]
    pub raw_response: Option<String>,
}

/// ADK's `create_session(state=…)`: the session's initial state in one batch, written only
/// if every slot it names was never written (version 0) — creating it twice is
/// [`Error::VersionMismatch`](state_core::Error::VersionMismatch), and nothing is written.
pub async fn create_session(ctx: &Context, greeting: &str) -> Result<()> {
    let state = ctx.state::<Agent>()?;
    ctx.engine()
        .batch()
        .set_if(state.turns(), 0, vec![format!("agent: {greeting}")])
        .commit()
        .await?;
    Ok(())
}

/// One invocation: a user message, a model answer, and the state delta it commits.
pub async fn turn(ctx: &Context, message: &str) -> Result<String> {
    let state = ctx.state::<Agent>()?;
    let prefs = state.preferences().get().await?.unwrap_or_default();
    let tone = prefs.get("tone").cloned().unwrap_or_else(|| "plain".into());
    let answer = format!("[{tone}] answer to {message:?}");
    state
        .raw_response()
        .set(format!("{{\"text\": {answer:?}}}"))
        .await?;
    // ADK's state_delta: one atomic commit for the whole turn.
    state
        .batch(|b| {
            let b = b
                .turns()
                .append(format!("user: {message}"))
                .turns()
                .append(format!("agent: {answer}"));
            let b = b.requests().increment(1);
            if message.contains("formal") {
                b.preferences().insert("tone", "formal".into())
            } else {
                b
            }
        })
        .await?;
    Ok(answer)
}

/// What the scenario observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Ada's second session, first answer (her preference followed her).
    pub ada_second_session: String,
    /// Bob's answer (preferences are per user).
    pub bob: String,
    /// Turns in Ada's first session.
    pub ada_first_turns: usize,
    /// Turns in Ada's second session.
    pub ada_second_turns: usize,
    /// Turns in Bob's `session-1` (not Ada's `session-1`'s).
    pub bob_turns: usize,
    /// App-wide requests.
    pub requests: u64,
    /// Whether a new invocation of Ada's first session still saw the temp value.
    pub temp_survived: bool,
    /// Whether creating Ada's first session a second time was refused (version mismatch).
    pub second_create_refused: bool,
}

/// Two sessions of Ada and one of Bob, in one app. Each context is ADK's session identity,
/// `(app, user, session id)`: Bob's `session-1` is not Ada's.
pub async fn run(engine: Engine) -> Result<Observed> {
    let session = |user, id| Context::for_user_session(engine.clone(), "assistant", user, id);
    let s1 = session("ada", "session-1")?;
    create_session(&s1, "welcome").await?;
    let created_twice = create_session(&s1, "welcome again").await;
    let second_create_refused = matches!(
        created_twice,
        Err(state_core::Error::VersionMismatch { expected: 0, .. })
    );
    turn(&s1, "hello").await?;
    turn(&s1, "please be formal").await?;
    let s2 = session("ada", "session-2")?;
    let ada_second_session = turn(&s2, "what's new?").await?;
    let bob_ctx = session("bob", "session-1")?;
    let bob = turn(&bob_ctx, "hi").await?;
    // A new invocation of Ada's session 1: temp state is gone, the rest is there.
    let again = session("ada", "session-1")?;
    let a = again.state::<Agent>()?.load().await?.to_value()?;
    let b = s2.state::<Agent>()?.load().await?.to_value()?;
    let bobs = bob_ctx.state::<Agent>()?.load().await?.to_value()?;
    Ok(Observed {
        ada_second_session,
        bob,
        ada_first_turns: a.turns.len(),
        ada_second_turns: b.turns.len(),
        bob_turns: bobs.turns.len(),
        requests: b.requests,
        temp_survived: a.raw_response.is_some(),
        second_create_refused,
    })
}

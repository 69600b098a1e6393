//! Smoke test while building the derive.
#![allow(missing_docs)]
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use state_core::{Context, Engine, MemoryStore, StatePath, StateScope};

#[derive(StatePath, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub age: u32,
    pub display_name: String,
    pub nick: Option<String>,
    pub tags: Vec<String>,
}

#[derive(StateScope, Serialize, Deserialize, Debug)]
pub struct Research {
    /// How many attempts.
    #[state(initial = 0)]
    pub attempts: u32,
    pub articles: Vec<String>,
    pub total_cost: f64,
    pub profile: Profile,
    pub scores: BTreeMap<String, u32>,
    #[state(user)]
    pub theme: Option<String>,
    #[state(temp)]
    pub raw: Option<String>,
}

#[tokio::test]
async fn smoke() {
    let engine = Engine::new(MemoryStore::new());
    let ctx = Context::new(engine, "run-1")
        .unwrap()
        .with_user("app", "alice")
        .unwrap();
    let state = ctx.state::<Research>().unwrap();
    state.attempts().increment(1).await.unwrap();
    state.profile().set(Profile::default()).await.unwrap();
    state
        .batch(|b| {
            b.total_cost()
                .increment(0.25)
                .profile()
                .age()
                .set(30)
                .profile()
                .nick()
                .delete()
        })
        .await
        .unwrap();
    let snap = state.load().await.unwrap();
    assert_eq!(snap.attempts().cached().unwrap().unwrap().value, Some(1));
    assert_eq!(
        snap.profile().cached().unwrap().unwrap().value.unwrap().age,
        30
    );
}

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use state_core::{Context, StatePath, StateScope};

#[derive(StatePath, Serialize, Deserialize)]
pub struct Profile {
    pub age: u32,
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
}

#[derive(StateScope, Serialize, Deserialize)]
pub struct Research {
    pub profile: Profile,
}

async fn run(ctx: Context) {
    let state = ctx.state::<Research>().unwrap();
    let _ = state.batch(|b| b.profile().extra().insert("k", "v".into())).await;
}

fn main() {}

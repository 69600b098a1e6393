use serde::{Deserialize, Serialize};
use state_core::{Context, StatePath, StateScope};

#[derive(StatePath, Serialize, Deserialize)]
pub struct Address {
    pub city: String,
}

#[derive(StatePath, Serialize, Deserialize)]
pub struct Profile {
    pub age: u32,
    pub name: String,
    pub nick: Option<String>,
    pub address: Address,
}

#[derive(StateScope, Serialize, Deserialize)]
pub struct Research {
    #[state(initial = 0)]
    pub attempts: u32,
    pub articles: Vec<String>,
    pub title: String,
    pub profile: Profile,
}

async fn run(ctx: Context) {
    let state = ctx.state::<Research>().unwrap();
    let _ = state.batch(|b| b.profile().age().delete()).await;
}

fn main() {}

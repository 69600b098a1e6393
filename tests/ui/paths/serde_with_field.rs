use serde::{Deserialize, Serialize};
use state_core::{Context, StatePath, StateScope};

mod as_string {
    pub fn serialize<S: serde::Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(StatePath, Serialize, Deserialize)]
pub struct Profile {
    #[serde(with = "as_string")]
    pub age: u32,
}

#[derive(StateScope, Serialize, Deserialize)]
pub struct Research {
    pub profile: Profile,
}

async fn run(ctx: Context) {
    let state = ctx.state::<Research>().unwrap();
    let _ = state.batch(|b| b.profile().age().increment(1)).await;
}

fn main() {}

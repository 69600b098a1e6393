use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use state_core::{Context, StatePath, StateScope};

#[derive(StatePath, Serialize, Deserialize, Clone)]
pub struct Pair<A, B> {
    pub left: A,
    pub right: Option<B>,
}

#[derive(StateScope, Serialize, Deserialize)]
pub struct Store<T, U = u32>
where
    T: Debug,
{
    pub item: Option<T>,
    pub count: U,
    pub pairs: BTreeMap<String, T>,
    pub pair: Pair<U, String>,
}

#[derive(StateScope, Serialize, Deserialize)]
#[state(bound = "M: Serialize + DeserializeOwned + Send + Sync + 'static")]
pub struct Bounded<M> {
    pub value: Vec<M>,
}

async fn run(ctx: Context) -> state_core::Result<()> {
    let s: StoreState<String> = ctx.state::<Store<String>>()?;
    s.count().increment(1).await?;
    s.item().set("x".into()).await?;
    s.batch(|b| b.count().increment(1).pair().left().increment(2).pair().right().set("r".into()))
        .await?;
    let _snapshot: StoreSnapshot<String> = s.load().await?;
    let b = ctx.state::<Bounded<u8>>()?;
    b.value().append(1).await?;
    Ok(())
}

fn main() {
    let _ = run;
}

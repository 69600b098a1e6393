//! A user's types named `M`, `B` or `D` (the names generated code gives its own type
//! parameters) are not shadowed.
use serde::{Deserialize, Serialize};
use state_core::{StatePath, StateScope};

#[derive(StatePath, Serialize, Deserialize, Default)]
pub struct B {
    pub d: Option<u64>,
}

#[derive(StatePath, Serialize, Deserialize, Default)]
pub struct D {
    pub b: B,
}

#[derive(StateScope, Serialize, Deserialize)]
pub struct M {
    pub d: Option<u64>,
    pub nested: D,
}

#[derive(StateScope, Serialize, Deserialize)]
pub struct Uses {
    pub m: Option<B>,
    pub d: D,
}

async fn run(ctx: state_core::Context) -> state_core::Result<()> {
    let m = ctx.state::<M>()?;
    m.batch(|b| b.d().set(1).nested().b().d().set(2)).await?;
    let u = ctx.state::<Uses>()?;
    u.batch(|b| b.d().b().d().delete()).await?;
    Ok(())
}

fn main() {
    let _ = run;
}

use serde::{Deserialize, Serialize};
use state_core::{Context, StatePath, StateScope};

#[derive(StatePath, Serialize, Deserialize)]
pub struct r#Match {
    pub r#type: String,
    pub r#ref: Option<u32>,
}

#[derive(StateScope, Serialize, Deserialize)]
pub struct r#Loop {
    pub r#type: u32,
    pub r#match: r#Match,
}

async fn run(ctx: Context) -> state_core::Result<()> {
    let s = ctx.state::<r#Loop>()?;
    assert_eq!(s.r#type().slot().key(), "type");
    assert_eq!(s.r#type().slot().namespace(), "Loop");
    s.r#type().increment(1).await?;
    s.batch(|b| b.r#match().r#ref().increment(1).r#match().r#type().set("t".into())).await?;
    let _: LoopState = s;
    Ok(())
}

fn main() {
    let _ = run;
}

use state_core::{Engine, Scope};

async fn run(engine: Engine) {
    let flags = engine.collection::<bool>(Scope::app("shop").unwrap(), "flags").unwrap();
    let view = flags.read_only();
    let _ = view.entry("beta").unwrap().set(true).await;
}

fn main() {}

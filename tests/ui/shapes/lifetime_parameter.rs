use serde::Serialize;
use state_core::StateScope;

#[derive(StateScope, Serialize)]
pub struct Research<'a> {
    pub title: &'a str,
}

fn main() {}

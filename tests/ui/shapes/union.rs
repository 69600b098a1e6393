use state_core::StateScope;

#[derive(StateScope)]
pub union Research {
    pub attempts: u32,
    pub cost: f32,
}

fn main() {}

//! Fuzzes op application: any start value and any op list, as JSON, must give a typed result
//! — never a panic — deterministically, with one output per op and a value that serializes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::Value;
use state_core::backend::apply_ops;
use state_core::{Op, Scope, Slot};

#[derive(Deserialize)]
struct Input {
    start: Option<Value>,
    ops: Vec<Op>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<Input>(data) else {
        return;
    };
    let slot = Slot::new(Scope::app("fuzz").unwrap(), "F", "k").unwrap();
    let first = apply_ops(&slot, input.start.clone(), &input.ops);
    let second = apply_ops(&slot, input.start, &input.ops);
    match (first, second) {
        (Ok((value, outputs)), Ok((value2, outputs2))) => {
            assert_eq!(outputs.len(), input.ops.len());
            assert_eq!((&value, &outputs), (&value2, &outputs2), "not deterministic");
            if let Some(v) = value {
                serde_json::to_string(&v).unwrap();
            }
        }
        (Err(e), Err(e2)) => {
            assert_eq!(e.to_string(), e2.to_string(), "not deterministic");
            assert_eq!(e.slot(), Some(&slot), "an op error must name its slot");
        }
        _ => panic!("the same input gave different results"),
    }
});

//! What statectl's test binaries share.
#![allow(dead_code)]

use std::process::Output;

/// The command's stdout, after checking it succeeded (else its exit code and stderr).
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

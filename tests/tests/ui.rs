//! The compile-error user interface of the derives: every `.stderr` is a screen a user reads.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    for category in ["paths", "types", "access", "attributes", "shapes"] {
        t.compile_fail(format!("ui/{category}/*.rs"));
    }
}

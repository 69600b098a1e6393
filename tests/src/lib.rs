//! Cross-crate tests of the workspace; see the `tests/` directory of this package.

//! Placeholder: filled in by issue 3.
fn main() {}

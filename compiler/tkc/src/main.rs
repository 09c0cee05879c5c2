//! tkc (in progress).
fn main() {}

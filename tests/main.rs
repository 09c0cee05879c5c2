//! The integration test binary: one module per concern.

mod book;
mod common;
mod diagnostics;
mod fuzz_frontend;
mod interp_reference;
mod moe;
mod stdlib_check;

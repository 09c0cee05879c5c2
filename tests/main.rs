//! The integration test binary: one module per concern.

mod common;
mod stdlib_check;

//! Interpreter (in progress).

//! tk runtime (in progress).

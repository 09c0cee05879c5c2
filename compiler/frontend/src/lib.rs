//! AST to IR (in progress).

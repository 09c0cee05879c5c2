//! The `.tk` surface syntax: a logos lexer, a lalrpop grammar and the spanned AST.
//!
//! Entry point: [`parse_file`], which returns the AST or diagnostics (several where the parser can
//! recover). This crate knows nothing about types or names.

pub mod ast;

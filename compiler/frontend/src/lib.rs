//! The tk frontend: name resolution, shape and dtype inference, and lowering of the AST to IR.
//!
//! Input: the parsed files of one program (the main file and everything it imports) and the
//! `-D NAME=VALUE` overrides. Output: an IR [`tk_ir::Module`] holding one kernel per `kernel` of
//! the main file plus one helper per distinct helper instantiation, or diagnostics.
//!
//! Type rules (promotion, broadcasting, literals) are in [`val`]; builtins in `builtins.rs`;
//! statements and control flow in `stmt.rs`; helper instantiation in `helpers.rs`. The frontend
//! performs no IO: the driver loads files and resolves imports.

mod args;
mod builtins;
mod expr;
mod helpers;
mod kernel;
mod lower;
mod program;
mod stmt;
pub mod val;

use std::collections::HashMap;
use tk_diag::{Diagnostic, Diagnostics, FileId};
use tk_ir::Module;
use tk_syntax::ast;

pub use kernel::parse_define;
pub use program::BUILTINS;

/// Options of one lowering.
#[derive(Clone, Debug, Default)]
pub struct LowerOptions {
    /// `-D NAME=VALUE` overrides of compile-time parameters, as written.
    pub defines: Vec<(String, String)>,
    /// Only lower kernels with these names (all kernels of the main file when empty).
    pub kernels: Vec<String>,
}

/// Lowers the kernels of file `main` to IR. `files` holds every parsed file of the program (the
/// main file and its imports). Returns the module if there were no errors, and all diagnostics
/// (warnings too) either way.
pub fn lower_program(
    files: &[(FileId, ast::File)],
    main: FileId,
    opts: &LowerOptions,
) -> (Option<Module>, Vec<Diagnostic>) {
    let mut diags = Diagnostics::default();
    let items = program::collect_items(files, &mut diags);
    let mut prog = program::Program {
        items,
        module: Module::default(),
        diags,
        instances_full: HashMap::new(),
        defines: opts.defines.iter().cloned().collect(),
        const_values: HashMap::new(),
        depth: 0,
        evaluating: Vec::new(),
    };
    let mut used_defines: Vec<String> = Vec::new();
    let mut n_kernels = 0;
    if let Some((_, file)) = files.iter().find(|(id, _)| *id == main) {
        for item in &file.items {
            let ast::Item::Func(decl) = item else { continue };
            if decl.kind != ast::FuncKindAst::Kernel {
                continue;
            }
            if !opts.kernels.is_empty() && !opts.kernels.contains(&decl.name.name) {
                continue;
            }
            n_kernels += 1;
            for cp in &decl.const_params {
                used_defines.push(cp.name.name.clone());
            }
            let func = kernel::new_kernel(decl);
            let mut fl = lower::FnLower::new(&mut prog, func);
            fl.lower_kernel(decl);
            let func = fl.func;
            prog.module.functions.push(func);
        }
    }
    for (name, _) in &opts.defines {
        if !used_defines.contains(name) {
            prog.diags.push(
                Diagnostic::warning(
                    "W0801",
                    format!("-D {name} is set but no kernel has a compile-time parameter `{name}`"),
                    tk_diag::Span::DUMMY,
                )
                .with_help("check the spelling of the parameter"),
            );
        }
    }
    let _ = n_kernels;
    let diags = prog.diags.items;
    if diags.iter().any(Diagnostic::is_error) {
        (None, diags)
    } else {
        (Some(prog.module), diags)
    }
}

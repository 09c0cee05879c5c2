//! Program-wide state of one lowering: the items of every loaded file, the module being built,
//! the diagnostics, and the cache of helper instantiations.

use std::collections::HashMap;
use tk_diag::{Diagnostic, Diagnostics, FileId, Span};
use tk_ir::{ConstValue, DType, Module};
use tk_syntax::ast;

/// A named top-level item visible to every function.
#[derive(Clone, Copy)]
pub enum ItemRef<'a> {
    Func(&'a ast::FuncDecl),
    Const(&'a ast::ConstDecl),
}

/// The key of a helper instantiation: helpers are generic over shapes and over compile-time
/// arguments, so each distinct combination is lowered once as its own IR function.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ArgKey {
    Ir(tk_ir::TypeId),
    Const(DType, u8, u64),
    Func(String),
}

pub struct Program<'a> {
    pub items: HashMap<String, ItemRef<'a>>,
    pub module: Module,
    pub diags: Diagnostics,
    pub instances_full: HashMap<(String, Vec<ArgKey>), crate::helpers::Instance>,
    /// `-D NAME=VALUE` overrides, as written.
    pub defines: HashMap<String, String>,
    /// Global constants already evaluated.
    pub const_values: HashMap<String, Option<(ConstValue, DType)>>,
    /// Nesting of helper instantiations (guards against unbounded recursion).
    pub depth: usize,
    /// Names of constants being evaluated (detects `const A = B; const B = A;`).
    pub evaluating: Vec<String>,
}

impl<'a> Program<'a> {
    pub fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }
}

/// Names the language reserves for builtins; a helper with one of these names is an error.
pub const BUILTINS: &[&str] = &[
    "program_id",
    "num_programs",
    "arange",
    "zeros",
    "full",
    "load",
    "store",
    "atomic_add",
    "atomic_max",
    "atomic_min",
    "atomic_xchg",
    "atomic_cas",
    "exp",
    "exp2",
    "log",
    "log2",
    "sqrt",
    "rsqrt",
    "sin",
    "cos",
    "tanh",
    "erf",
    "sigmoid",
    "abs",
    "floor",
    "ceil",
    "fma",
    "minimum",
    "maximum",
    "where",
    "sum",
    "max",
    "min",
    "argmax",
    "argmin",
    "reduce",
    "cumsum",
    "scan",
    "topk",
    "sort",
    "histogram",
    "dot",
    "reshape",
    "trans",
    "permute",
    "broadcast_to",
    "expand_dims",
    "static_assert",
    "device_assert",
    "print",
    "cdiv",
    "multiple_of",
];

/// Collects the top-level items of all files into one namespace, reporting duplicates.
pub fn collect_items<'a>(
    files: &'a [(FileId, ast::File)],
    diags: &mut Diagnostics,
) -> HashMap<String, ItemRef<'a>> {
    let mut items: HashMap<String, ItemRef<'a>> = HashMap::new();
    let mut first_span: HashMap<String, Span> = HashMap::new();
    for (_, file) in files {
        for item in &file.items {
            let (name, item_ref) = match item {
                ast::Item::Func(f) => (&f.name, ItemRef::Func(f)),
                ast::Item::Const(c) => (&c.name, ItemRef::Const(c)),
                ast::Item::Import(_) => continue,
            };
            if BUILTINS.contains(&name.name.as_str()) {
                diags.push(
                    Diagnostic::error(
                        "E0301",
                        format!("`{}` is the name of a builtin and cannot be redefined", name.name),
                        name.span,
                    )
                    .with_label("builtin name")
                    .with_help("rename it"),
                );
                // Still registered (below), so that calls of it do not report follow-on errors
                // against the builtin's signature.
            }
            if let Some(prev) = first_span.get(&name.name) {
                diags.push(
                    Diagnostic::error(
                        "E0302",
                        format!("`{}` is defined twice", name.name),
                        name.span,
                    )
                    .with_label("second definition")
                    .with_secondary(*prev, "first defined here")
                    .with_help("rename one of them"),
                );
                continue;
            }
            if let ast::Item::Func(f) = item {
                check_param_names(f, diags);
            }
            first_span.insert(name.name.clone(), name.span);
            items.insert(name.name.clone(), item_ref);
        }
    }
    items
}

/// Reports parameters (compile-time ones included) that share a name: every parameter becomes a
/// named value of the function, so one would silently hide the other.
fn check_param_names(f: &ast::FuncDecl, diags: &mut Diagnostics) {
    let names = f.const_params.iter().map(|p| &p.name).chain(f.params.iter().map(|p| &p.name));
    let mut seen: Vec<&ast::Ident> = Vec::new();
    for name in names {
        match seen.iter().find(|s| s.name == name.name) {
            Some(first) => diags.push(
                Diagnostic::error(
                    "E0303",
                    format!(
                        "`{}` is declared twice in the parameters of `{}`",
                        name.name, f.name.name
                    ),
                    name.span,
                )
                .with_label("second declaration")
                .with_secondary(first.span, "first declared here")
                .with_help("give each parameter its own name"),
            ),
            None => seen.push(name),
        }
    }
}

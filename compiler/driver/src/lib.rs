//! The tk compilation pipeline, written in one place with named stages:
//!
//! 1. **load**: read the main file and, transitively, every file it imports (`import name;` from
//!    the stdlib folder, `import "path.tk";` relative to the importing file);
//! 2. **parse**: `tk_syntax::parse_file` per file;
//! 3. **lower**: `tk_frontend::lower_program` (names, shapes, dtypes → IR);
//! 4. **verify**: `tk_ir::verify` on the lowered IR;
//! 5. **optimise**: `tk_ir::passes::run_default_pipeline`, then verify again.
//!
//! Each stage's output is kept in [`Compilation`] so the CLI can dump any of them. The driver reads
//! source files through a [`SourceLoader`] but never prints or writes anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tk_diag::{Diagnostic, FileId, Sources, Span};
use tk_ir::Module;
use tk_syntax::ast;

pub use tk_frontend::parse_define;

/// Reads source files; tests substitute an in-memory map.
pub trait SourceLoader {
    fn load(&self, path: &Path) -> std::io::Result<Vec<u8>>;
}

/// Loads from the file system.
pub struct FsLoader;

impl SourceLoader for FsLoader {
    fn load(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// Loads from a map of path → text (for tests and embedders).
#[derive(Default)]
pub struct MemLoader {
    pub files: HashMap<PathBuf, String>,
}

impl SourceLoader for MemLoader {
    fn load(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        match self.files.get(path) {
            Some(t) => Ok(t.clone().into_bytes()),
            None => FsLoader.load(path),
        }
    }
}

/// Options of one compilation.
#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// `-D NAME=VALUE` overrides.
    pub defines: Vec<(String, String)>,
    /// Only these kernels (all when empty).
    pub kernels: Vec<String>,
    /// Where `import name;` looks; defaults to [`default_stdlib_dir`].
    pub stdlib_dir: Option<PathBuf>,
    /// Skip the optimisation passes (for `tkc emit ir --stage lowered`).
    pub no_passes: bool,
}

/// Everything a compilation produced, stage by stage.
pub struct Compilation {
    pub sources: Sources,
    pub main: Option<FileId>,
    pub diagnostics: Vec<Diagnostic>,
    /// IR straight out of the frontend (before passes), if lowering succeeded.
    pub lowered: Option<Module>,
    /// IR after the default pass pipeline, if every stage succeeded.
    pub optimized: Option<Module>,
}

impl Compilation {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
    /// Diagnostics rendered without colour.
    pub fn render_plain(&self) -> String {
        tk_diag::render_plain(&self.sources, &self.diagnostics)
    }
}

/// The stdlib folder: `$TK_STDLIB`, else the repository's `stdlib/`.
pub fn default_stdlib_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("TK_STDLIB") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stdlib")
}

/// Compiles the file at `path` with the file system loader.
pub fn compile_file(path: &Path, opts: &CompileOptions) -> Compilation {
    compile_with(&FsLoader, path, opts)
}

/// Compiles source text given in memory (named `name` in diagnostics).
pub fn compile_source(name: &str, text: &str, opts: &CompileOptions) -> Compilation {
    let mut loader = MemLoader::default();
    loader.files.insert(PathBuf::from(name), text.to_string());
    compile_with(&loader, Path::new(name), opts)
}

/// Runs the whole pipeline.
pub fn compile_with(loader: &dyn SourceLoader, path: &Path, opts: &CompileOptions) -> Compilation {
    let mut c = Compilation {
        sources: Sources::new(),
        main: None,
        diagnostics: Vec::new(),
        lowered: None,
        optimized: None,
    };
    let stdlib = opts.stdlib_dir.clone().unwrap_or_else(default_stdlib_dir);
    let files = match load_and_parse(loader, path, &stdlib, &mut c) {
        Some(f) => f,
        None => return c,
    };
    let main = c.main.expect("set by load_and_parse");
    let lopts =
        tk_frontend::LowerOptions { defines: opts.defines.clone(), kernels: opts.kernels.clone() };
    let (module, diags) = tk_frontend::lower_program(&files, main, &lopts);
    c.diagnostics.extend(diags);
    let Some(module) = module else { return c };
    if let Err(errs) = tk_ir::verify::verify_module(&module) {
        c.diagnostics.push(internal_error("the frontend produced invalid IR", &errs));
        return c;
    }
    c.lowered = Some(module.clone());
    if opts.no_passes {
        return c;
    }
    let mut m = module;
    if let Err(e) = tk_ir::passes::run_default_pipeline(&mut m) {
        c.diagnostics.push(internal_error("an IR pass failed", &[e]));
        return c;
    }
    if let Err(errs) = tk_ir::verify::verify_module(&m) {
        c.diagnostics.push(internal_error("an IR pass produced invalid IR", &errs));
        return c;
    }
    c.optimized = Some(m);
    c
}

fn internal_error<E: std::fmt::Display>(what: &str, errs: &[E]) -> Diagnostic {
    let mut d = Diagnostic::error("ICE01", format!("internal compiler error: {what}"), Span::DUMMY)
        .with_help("this is a bug in tkc; please report it with the source file");
    for e in errs.iter().take(5) {
        d = d.with_note(e.to_string());
    }
    d
}

/// Loads the main file and its imports (breadth first, each file once), parsing each.
fn load_and_parse(
    loader: &dyn SourceLoader,
    main: &Path,
    stdlib: &Path,
    c: &mut Compilation,
) -> Option<Vec<(FileId, ast::File)>> {
    let mut out = Vec::new();
    let mut queue: Vec<(PathBuf, Option<Span>)> = vec![(main.to_path_buf(), None)];
    let mut seen: HashMap<PathBuf, ()> = HashMap::new();
    let mut ok = true;
    while let Some((path, from)) = queue.pop() {
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if seen.insert(key, ()).is_some() {
            continue;
        }
        let bytes = match loader.load(&path) {
            Ok(b) => b,
            Err(e) => {
                let msg = format!("cannot read `{}`: {e}", path.display());
                let d = match from {
                    Some(span) => Diagnostic::error("E0002", msg, span).with_label("imported here"),
                    None => Diagnostic::error("E0002", msg, Span::DUMMY),
                }
                .with_help(if from.is_some() {
                    format!(
                        "stdlib modules are looked up in `{}` (set TK_STDLIB to change it)",
                        stdlib.display()
                    )
                } else {
                    "check the path".to_string()
                });
                c.diagnostics.push(d);
                ok = false;
                continue;
            }
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let id = c.sources.add(path.display().to_string(), text.clone());
        if c.main.is_none() {
            c.main = Some(id);
        }
        match tk_syntax::parse_file(id, &text) {
            Ok(file) => {
                for item in &file.items {
                    if let ast::Item::Import(imp) = item {
                        let p = match &imp.target {
                            ast::ImportTarget::Module(name) => {
                                stdlib.join(format!("{}.tk", name.name))
                            }
                            ast::ImportTarget::Path(rel) => {
                                path.parent().unwrap_or(Path::new(".")).join(rel)
                            }
                        };
                        queue.push((p, Some(imp.span)));
                    }
                }
                out.push((id, file));
            }
            Err(diags) => {
                c.diagnostics.extend(diags);
                ok = false;
            }
        }
    }
    if ok {
        Some(out)
    } else {
        None
    }
}

/// For each parameter of kernel `f`: whether the kernel may write through it (a `store` or atomic
/// whose address derives from that pointer). Scalars are `false`. When an address cannot be traced
/// to one parameter (e.g. a pointer carried through a loop), every pointer parameter counts as
/// written: the answer is conservative, never wrong in the unsafe direction.
pub fn written_params(m: &Module, f: &tk_ir::Function) -> Vec<bool> {
    use tk_ir::{Op, ValueDef};
    let mut written = vec![false; f.params.len()];
    let mut unknown = false;
    for op in f.walk() {
        let mut v = match &f.op(op).op {
            Op::Store { ptr, .. } | Op::Atomic { ptr, .. } | Op::AtomicCas { ptr, .. } => *ptr,
            _ => continue,
        };
        loop {
            match f.value(v).def {
                ValueDef::Param(i) => {
                    written[i as usize] = true;
                    break;
                }
                ValueDef::Result { op, .. } => match &f.op(op).op {
                    Op::AddPtr { ptr, .. } => v = *ptr,
                    Op::Splat { value }
                    | Op::Broadcast { value }
                    | Op::ExpandDims { value, .. }
                    | Op::Reshape { value }
                    | Op::Permute { value, .. } => v = *value,
                    _ => {
                        unknown = true;
                        break;
                    }
                },
                ValueDef::RegionArg { .. } => {
                    unknown = true;
                    break;
                }
            }
        }
    }
    if unknown {
        for (i, p) in f.params.iter().enumerate() {
            written[i] |= m.ty(p.ty).elem.is_ptr();
        }
    }
    written
}

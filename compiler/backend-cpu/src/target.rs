//! The target side: picking the CPU, running LLVM's pass pipeline, emitting an object file and
//! linking it into a shared library with the system C compiler.

use crate::{CpuError, CpuOptions, CpuTarget};
use inkwell::module::Module;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{
    CodeModel, FileType, InitializationConfig, RelocMode, Target, TargetMachine, TargetTriple,
};
use inkwell::OptimizationLevel;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A target machine with the names it was created from (for the artifact's description).
pub(crate) struct Machine {
    pub machine: TargetMachine,
    pub triple: String,
    pub cpu: String,
    pub features: String,
}

/// `(triple, cpu, features)` of the machine this process runs on, as LLVM names them.
pub fn host_description() -> (String, String, String) {
    (
        TargetMachine::get_default_triple().as_str().to_string_lossy().into_owned(),
        TargetMachine::get_host_cpu_name().to_string(),
        TargetMachine::get_host_cpu_features().to_string(),
    )
}

fn opt_level(level: u8) -> OptimizationLevel {
    match level {
        0 => OptimizationLevel::None,
        1 => OptimizationLevel::Less,
        2 => OptimizationLevel::Default,
        _ => OptimizationLevel::Aggressive,
    }
}

impl Machine {
    /// Lanes of a native vector of 32-bit elements: 16 with AVX-512, 8 with AVX, else 4.
    pub fn vector_lanes(&self) -> u32 {
        let has = |f: &str| self.features.split(',').any(|x| x == f);
        if has("+avx512f") || self.cpu == "x86-64-v4" {
            16
        } else if has("+avx") || has("+avx2") || self.cpu == "x86-64-v3" || self.features.is_empty()
        {
            8
        } else {
            4
        }
    }
}

pub(crate) fn machine(opts: &CpuOptions) -> Result<Machine, CpuError> {
    Target::initialize_x86(&InitializationConfig::default());
    let (host_triple, host_cpu, host_features) = host_description();
    if !host_triple.starts_with("x86_64") {
        return Err(CpuError::Llvm(format!(
            "the CPU backend targets x86-64 only for now; this host is {host_triple}"
        )));
    }
    let (cpu, features) = match &opts.target {
        CpuTarget::Host => (host_cpu, host_features),
        CpuTarget::Baseline => ("x86-64-v3".to_string(), String::new()),
        CpuTarget::Named { cpu, features } => (cpu.clone(), features.clone()),
    };
    let triple = TargetTriple::create(&host_triple);
    let target = Target::from_triple(&triple).map_err(|e| CpuError::Llvm(e.to_string()))?;
    let machine = target
        .create_target_machine(
            &triple,
            &cpu,
            &features,
            opt_level(opts.opt_level),
            RelocMode::PIC,
            CodeModel::Default,
        )
        .ok_or_else(|| {
            CpuError::Llvm(format!("no target machine for {host_triple} / {cpu} / {features}"))
        })?;
    Ok(Machine { machine, triple: host_triple, cpu, features })
}

/// The pass pipeline of optimisation levels 1 to 3. Loop rotation lets LICM hoist the
/// per-row and per-chunk invariants out of the fused loops; jump threading merges the
/// "every lane on?" branches of one chunk's masked accesses into one; nothing here vectorises or
/// unrolls
/// (the code generator already did both where they pay), which keeps a softmax build at a few
/// milliseconds of optimisation instead of the 20 of `default<O3>`, for the same kernel speed.
const PIPELINE: &str =
    "function(sroa,early-cse<memssa>,instcombine<no-verify-fixpoint>,simplifycfg,\
     loop-mssa(loop-rotate,licm),gvn,jump-threading,instcombine<no-verify-fixpoint>,simplifycfg)";

/// Verifies the module, then runs [`PIPELINE`] (nothing at level 0).
pub(crate) fn optimize(module: &Module, tm: &Machine, opts: &CpuOptions) -> Result<(), CpuError> {
    module.verify().map_err(|e| CpuError::Llvm(format!("invalid LLVM IR: {e}")))?;
    if opts.opt_level == 0 {
        return Ok(());
    }
    module
        .run_passes(PIPELINE, &tm.machine, PassBuilderOptions::create())
        .map_err(|e| CpuError::Llvm(format!("pass pipeline {PIPELINE}: {e}")))
}

pub(crate) fn emit_object(module: &Module, tm: &TargetMachine) -> Result<Vec<u8>, CpuError> {
    let buf = tm
        .write_to_memory_buffer(module, FileType::Object)
        .map_err(|e| CpuError::Llvm(format!("object emission: {e}")))?;
    Ok(buf.as_slice().to_vec())
}

/// Links an object file into a shared library and returns its bytes: with `$CC -shared` when
/// `$CC` is set; else in process (`elf.rs`) when the object is simple enough, which it nearly
/// always is; else with the system linker `ld` directly (the C compiler driver costs tens of
/// milliseconds more), falling back to `cc -shared` if `ld` fails.
pub(crate) fn link_shared(object: &[u8]) -> Result<Vec<u8>, CpuError> {
    if std::env::var_os("CC").is_none() {
        if let Some(lib) = crate::elf::link(object) {
            return Ok(lib);
        }
    }
    let io = |e: std::io::Error| CpuError::Io(e.to_string());
    let dir = tempfile::tempdir().map_err(io)?;
    let obj = dir.path().join("kernels.o");
    let lib = dir.path().join("kernels.so");
    std::fs::write(&obj, object).map_err(io)?;
    if let Ok(cc) = std::env::var("CC") {
        link_with_cc(&cc, &obj, &lib)?;
    } else if let Err(e) = link_with_ld(&obj, &lib) {
        link_with_cc("cc", &obj, &lib).map_err(|e2| CpuError::Link(format!("{e}; then {e2}")))?;
    }
    std::fs::read(&lib).map_err(io)
}

fn run_linker(cmd: &mut Command, what: &str) -> Result<(), CpuError> {
    let out = cmd.output().map_err(|e| CpuError::Link(format!("could not run `{what}`: {e}")))?;
    if !out.status.success() {
        return Err(CpuError::Link(format!(
            "`{what}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn link_with_cc(cc: &str, obj: &Path, lib: &Path) -> Result<(), CpuError> {
    let mut cmd = Command::new(cc);
    cmd.arg("-shared").arg("-o").arg(lib).arg(obj).arg("-lm");
    run_linker(&mut cmd, &format!("{cc} -shared"))
}

/// `ld -shared`, with libgcc (helpers LLVM may call, such as `__truncdfhf2`) and libm, libc as
/// needed.
fn link_with_ld(obj: &Path, lib: &Path) -> Result<(), CpuError> {
    let mut cmd = Command::new("ld");
    cmd.arg("-shared").arg("-o").arg(lib).arg(obj);
    if let Some(gcc) = libgcc() {
        cmd.arg(gcc);
    }
    cmd.args(["--as-needed", "-lm", "-lc"]);
    run_linker(&mut cmd, "ld -shared")
}

/// The static libgcc of the system C compiler: the newest `/usr/lib/gcc/<triple>/<n>/libgcc.a`,
/// else what `cc -print-libgcc-file-name` says (looked up once per process).
fn libgcc() -> Option<PathBuf> {
    static LIBGCC: OnceLock<Option<PathBuf>> = OnceLock::new();
    LIBGCC
        .get_or_init(|| {
            let mut found: Vec<(u32, PathBuf)> = Vec::new();
            for base in ["/usr/lib/gcc/x86_64-linux-gnu", "/usr/lib/gcc/x86_64-pc-linux-gnu"] {
                let Ok(rd) = std::fs::read_dir(base) else { continue };
                for e in rd.flatten() {
                    let p = e.path().join("libgcc.a");
                    let v = e
                        .file_name()
                        .to_string_lossy()
                        .split('.')
                        .next()
                        .and_then(|x| x.parse().ok());
                    if let (Some(v), true) = (v, p.exists()) {
                        found.push((v, p));
                    }
                }
            }
            if let Some((_, p)) = found.into_iter().max_by_key(|f| f.0) {
                return Some(p);
            }
            let out = Command::new("cc").arg("-print-libgcc-file-name").output().ok()?;
            let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            p.is_absolute().then_some(p).filter(|p| p.exists())
        })
        .clone()
}

#[cfg(test)]
mod tests {
    //! The in-process linker and the `ld` fallback both give loadable libraries.

    use super::*;

    fn object(src: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.tk");
        std::fs::write(&path, src).unwrap();
        let c = tk_driver::compile_file(&path, &tk_driver::CompileOptions::default());
        assert!(!c.has_errors(), "{}", c.render_plain());
        let m = c.optimized.unwrap();
        let opts = CpuOptions::default();
        let ctx = inkwell::context::Context::create();
        let tm = machine(&opts).unwrap();
        let (module, _) = crate::codegen::lower_module(&ctx, &m, &opts, &tm).unwrap();
        optimize(&module, &tm, &opts).unwrap();
        emit_object(&module, &tm.machine).unwrap()
    }

    fn loads(lib: &[u8], symbol: &str) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.so");
        std::fs::write(&p, lib).unwrap();
        // SAFETY: our own library, without initialisers.
        let l = unsafe {
            libloading::os::unix::Library::open(Some(&p), libloading::os::unix::RTLD_NOW)
        }
        .unwrap();
        // SAFETY: only the address is looked at.
        let f: libloading::os::unix::Symbol<unsafe extern "C" fn()> =
            unsafe { l.get(symbol.as_bytes()) }.unwrap();
        assert!(!f.into_raw().is_null());
    }

    const SRC: &str = "kernel k(x: *f32, y: *f64, n: i32) {
        let r = arange(0, 64);
        let m = r < n;
        store(x + r, exp(load(x + r, mask: m, other: 0.0)), mask: m);
        store(y + r, sin(load(y + r)));
    }";

    #[test]
    fn in_process_link_with_imports_and_ld_fallback() {
        let obj = object(SRC);
        let lib = crate::elf::link(&obj).expect("the in-process linker handles libm imports");
        loads(&lib, "tk_k");
        let dir = tempfile::tempdir().unwrap();
        let (o, l) = (dir.path().join("k.o"), dir.path().join("k.so"));
        std::fs::write(&o, &obj).unwrap();
        link_with_ld(&o, &l).unwrap();
        loads(&std::fs::read(&l).unwrap(), "tk_k");
    }

    #[test]
    fn in_process_link_rejects_what_it_does_not_know() {
        assert!(crate::elf::link(b"not an object").is_none());
        let mut obj = object(SRC);
        obj[18] = 3; // e_machine: i386
        assert!(crate::elf::link(&obj).is_none());
    }
}

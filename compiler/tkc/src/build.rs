//! `tkc build`: compile a `.tk` file for a target and write an artifact bundle (a folder with
//! `manifest.json` and the target files), in the format defined by `tk_runtime::manifest`.

use crate::cli::{compile_reporting, BuildArgs};
use crate::{EXIT_INTERNAL, EXIT_USER};
use clap::ValueEnum;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tk_ir::{ConstValue, DType, Elem, FuncKind, Module};
use tk_runtime::manifest::{
    self, Dtype, FileEntry, KernelInfo, Manifest, ParamInfo, ParamKind, TargetInfo, TargetKind,
};

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Target {
    /// Machine code for this CPU through LLVM (a shared library)
    Cpu,
    /// Every target this build of tkc supports, one sub-folder each
    All,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Emit {
    /// The bundle (manifest and target files)
    Bundle,
    /// LLVM IR text of the CPU target, printed to stdout
    LlvmIr,
}

#[derive(clap::Args)]
pub struct BuildCmd {
    #[command(flatten)]
    pub build: BuildArgs,
    /// Target to build for
    #[arg(long, short = 't', default_value = "cpu")]
    pub target: Target,
    /// Output folder of the bundle [default: build/<file stem>]
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// CPU to generate code for: `host` (this machine), `portable` (x86-64-v3: AVX2 + FMA), or an
    /// LLVM CPU name such as `skylake-avx512`
    #[arg(long, default_value = "host")]
    pub cpu: String,
    /// What to produce
    #[arg(long, default_value = "bundle")]
    pub emit: Emit,
    /// Leave out run-time checks (`device_assert`) for speed
    #[arg(long)]
    pub no_checks: bool,
}

pub fn build(cmd: BuildCmd) -> ExitCode {
    let c = match compile_reporting(&cmd.build, &cmd.build.options()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let module = c.optimized.as_ref().expect("no errors");
    let cpu_opts = cpu_options(&cmd.cpu, !cmd.no_checks);
    if cmd.emit == Emit::LlvmIr {
        return match tk_backend_cpu::emit_llvm_ir(module, &cpu_opts) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => backend_error(&e),
        };
    }
    let stem = cmd
        .build
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "kernels".into());
    let out = cmd.out.clone().unwrap_or_else(|| PathBuf::from("build").join(&stem));
    let dir = match cmd.target {
        Target::Cpu => out.clone(),
        Target::All => out.join("cpu"),
    };
    let started = std::time::Instant::now();
    let hash_input = hash_input(&c, &cmd.build.define);
    let m = match write_cpu_bundle(module, &cpu_opts, &dir, &stem, &hash_input) {
        Ok(m) => m,
        Err(code) => return code,
    };
    eprintln!(
        "built {} kernel{} for cpu ({}) into {} in {} ms",
        m.kernels.len(),
        if m.kernels.len() == 1 { "" } else { "s" },
        m.target.cpu,
        dir.display(),
        started.elapsed().as_millis()
    );
    ExitCode::SUCCESS
}

/// CPU backend options from the `--cpu` flag.
pub fn cpu_options(cpu: &str, checks: bool) -> tk_backend_cpu::CpuOptions {
    tk_backend_cpu::CpuOptions {
        target: match cpu {
            "host" | "native" => tk_backend_cpu::CpuTarget::Host,
            "portable" | "x86-64-v3" => tk_backend_cpu::CpuTarget::Baseline,
            other => {
                tk_backend_cpu::CpuTarget::Named { cpu: other.to_string(), features: String::new() }
            }
        },
        checks,
        ..Default::default()
    }
}

/// What identifies a build besides the target: every source text and the `-D` values.
pub fn hash_input(c: &tk_driver::Compilation, defines: &[(String, String)]) -> String {
    let sources: String =
        c.sources.iter().map(|(_, f)| format!("{}\n{}\n", f.name, f.text)).collect();
    format!("{sources}\n{defines:?}\n{}", env!("CARGO_PKG_VERSION"))
}

/// Compiles `module` for the CPU and writes a bundle into `dir`; errors are already reported.
pub fn write_cpu_bundle(
    module: &Module,
    cpu_opts: &tk_backend_cpu::CpuOptions,
    dir: &Path,
    stem: &str,
    hash_input: &str,
) -> Result<Manifest, ExitCode> {
    let art = tk_backend_cpu::compile_module(module, cpu_opts).map_err(|e| backend_error(&e))?;
    let lib_name = format!("lib{}.so", sanitize(stem));
    let mut kernels = Vec::new();
    for f in module.functions.iter().filter(|f| f.kind == FuncKind::Kernel) {
        let Some(k) = art.kernels.iter().find(|k| k.name == f.name) else { continue };
        kernels.push(KernelInfo {
            name: f.name.clone(),
            symbol: k.symbol.clone(),
            params: params_of(module, f),
            constexprs: f.constexprs.iter().map(|(n, v)| (n.clone(), const_text(v))).collect(),
            launch: None,
            traps: k.traps.iter().map(|t| t.message.clone()).collect(),
            stack_bytes: k.stack_bytes,
        });
    }
    let hash = format!("{hash_input}\ncpu {} {} {}", art.triple, art.cpu, art.features);
    let m = Manifest {
        format_version: manifest::FORMAT_VERSION,
        compiler_version: env!("CARGO_PKG_VERSION").to_string(),
        content_hash: manifest::sha256_hex(hash.as_bytes()),
        target: TargetInfo {
            kind: TargetKind::Cpu,
            triple: art.triple.clone(),
            cpu: art.cpu.clone(),
            features: art.features.clone(),
        },
        kernels,
        files: vec![FileEntry {
            path: lib_name.clone(),
            sha256: manifest::sha256_hex(&art.library),
        }],
    };
    write_bundle(dir, &lib_name, &art.library, &m).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_USER)
    })?;
    Ok(m)
}

fn backend_error(e: &tk_backend_cpu::CpuError) -> ExitCode {
    eprintln!("error: {e}");
    match e {
        tk_backend_cpu::CpuError::Unsupported { .. } => ExitCode::from(EXIT_USER),
        tk_backend_cpu::CpuError::Link(_) | tk_backend_cpu::CpuError::Io(_) => {
            eprintln!("help: the CPU target links with the system C compiler (`cc`); install it with `apt-get install gcc`");
            ExitCode::from(EXIT_USER)
        }
        _ => ExitCode::from(EXIT_INTERNAL),
    }
}

fn write_bundle(dir: &Path, lib_name: &str, lib: &[u8], m: &Manifest) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    let lib_path = dir.join(lib_name);
    std::fs::write(&lib_path, lib)
        .map_err(|e| format!("cannot write `{}`: {e}", lib_path.display()))?;
    let mpath = dir.join(manifest::MANIFEST_FILE);
    std::fs::write(&mpath, m.to_json())
        .map_err(|e| format!("cannot write `{}`: {e}", mpath.display()))
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

fn const_text(v: &ConstValue) -> String {
    v.to_string()
}

fn dtype(d: DType) -> Dtype {
    match d {
        DType::Bool => Dtype::Bool,
        DType::I8 => Dtype::I8,
        DType::I16 => Dtype::I16,
        DType::I32 => Dtype::I32,
        DType::I64 => Dtype::I64,
        DType::U8 => Dtype::U8,
        DType::U16 => Dtype::U16,
        DType::U32 => Dtype::U32,
        DType::U64 => Dtype::U64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::Bf16,
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    }
}

/// The manifest's view of a kernel's parameters.
pub fn params_of(m: &Module, f: &tk_ir::Function) -> Vec<ParamInfo> {
    let written = tk_driver::written_params(m, f);
    f.params
        .iter()
        .zip(written)
        .map(|(p, w)| match m.ty(p.ty).elem {
            Elem::Scalar(d) => ParamInfo {
                name: p.name.clone(),
                kind: ParamKind::Scalar,
                dtype: dtype(d),
                written: false,
            },
            Elem::Ptr(d) => ParamInfo {
                name: p.name.clone(),
                kind: ParamKind::Pointer,
                dtype: dtype(d),
                written: w,
            },
        })
        .collect()
}

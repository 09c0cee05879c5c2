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
    /// PTX text for NVIDIA GPUs
    Ptx,
    /// Ascend C source, host launcher and CMake project for Huawei Ascend NPUs
    Ascend,
    /// Every target, one sub-folder each (cpu/, ptx/, ascend/)
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
    /// GPU architecture for `--target ptx`: sm_80 or sm_90
    #[arg(long, default_value = "sm_80")]
    pub arch: String,
    /// Warps per program for `--target ptx`: 1, 2, 4, 8 or 16
    #[arg(long, default_value_t = 4)]
    pub num_warps: u32,
    /// Ascend chip for `--target ascend`: 910B (192 KB UB) or 310P (256 KB UB)
    #[arg(long, default_value = "910B")]
    pub soc: String,
}

pub fn build(cmd: BuildCmd) -> ExitCode {
    let c = match compile_reporting(&cmd.build, &cmd.build.options()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let module = c.optimized.as_ref().expect("no errors");
    let cpu_opts = match cpu_options(&cmd.cpu, !cmd.no_checks) {
        Ok(o) => o,
        Err(code) => return code,
    };
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
    let targets: Vec<Target> = match cmd.target {
        Target::All => vec![Target::Cpu, Target::Ptx, Target::Ascend],
        t => vec![t],
    };
    let hash_input = hash_input(&c, &cmd.build.define);
    for t in targets {
        let name = match t {
            Target::Cpu => "cpu",
            Target::Ptx => "ptx",
            _ => "ascend",
        };
        let dir = if cmd.target == Target::All { out.join(name) } else { out.clone() };
        let started = std::time::Instant::now();
        let result = match t {
            Target::Cpu => write_cpu_bundle(module, &cpu_opts, &dir, &stem, &hash_input),
            Target::Ptx => write_ptx_bundle(&cmd, &c, module, &dir, &stem, &hash_input),
            _ => write_ascend_bundle(&cmd, &c, module, &dir, &hash_input),
        };
        let m = match result {
            Ok(m) => m,
            Err(code) => return code,
        };
        eprintln!(
            "built {} kernel{} for {name} ({}) into {} in {} ms",
            m.kernels.len(),
            if m.kernels.len() == 1 { "" } else { "s" },
            m.target.cpu,
            dir.display(),
            started.elapsed().as_millis()
        );
    }
    ExitCode::SUCCESS
}

/// Kernel entries of the manifest, common to every target.
fn kernel_infos(module: &Module) -> Vec<KernelInfo> {
    module
        .functions
        .iter()
        .filter(|f| f.kind == FuncKind::Kernel)
        .map(|f| KernelInfo {
            name: f.name.clone(),
            symbol: f.name.clone(),
            params: params_of(module, f),
            constexprs: f.constexprs.iter().map(|(n, v)| (n.clone(), const_text(v))).collect(),
            launch: None,
            traps: Vec::new(),
            stack_bytes: 0,
        })
        .collect()
}

fn write_files(dir: &Path, files: &[(String, Vec<u8>)], m: &Manifest) -> Result<(), ExitCode> {
    let fail = |e: String| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_USER)
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| fail(format!("cannot create `{}`: {e}", dir.display())))?;
    for (name, bytes) in files {
        let p = dir.join(name);
        std::fs::write(&p, bytes)
            .map_err(|e| fail(format!("cannot write `{}`: {e}", p.display())))?;
    }
    let mpath = dir.join(manifest::MANIFEST_FILE);
    std::fs::write(&mpath, m.to_json())
        .map_err(|e| fail(format!("cannot write `{}`: {e}", mpath.display())))
}

fn write_ptx_bundle(
    cmd: &BuildCmd,
    c: &tk_driver::Compilation,
    module: &Module,
    dir: &Path,
    stem: &str,
    hash_input: &str,
) -> Result<Manifest, ExitCode> {
    let Some(arch) = tk_backend_ptx::Arch::parse(&cmd.arch) else {
        eprintln!("error: unknown --arch `{}`; use sm_80 or sm_90", cmd.arch);
        return Err(ExitCode::from(EXIT_USER));
    };
    let opts = tk_backend_ptx::Options { arch, num_warps: cmd.num_warps };
    let mut lowered = Vec::new();
    for f in module.kernels() {
        match tk_backend_ptx::lower_kernel(module, f, &opts) {
            Ok(k) => lowered.push(k),
            Err(e) => {
                eprint!("{}", tk_diag::render(&c.sources, &[e.to_diagnostic()], cmd.build.color()));
                return Err(ExitCode::from(EXIT_USER));
            }
        }
    }
    let text = tk_backend_ptx::ptx::print_module(&lowered, arch);
    let file = format!("{}.ptx", sanitize(stem));
    let mut kernels = kernel_infos(module);
    for k in &mut kernels {
        if let Some(l) = lowered.iter().find(|l| l.name == k.name) {
            k.launch = Some(manifest::LaunchInfo {
                threads_per_program: l.threads,
                shared_bytes: l.smem_bytes,
            });
        }
    }
    let m = Manifest {
        format_version: manifest::FORMAT_VERSION,
        compiler_version: env!("CARGO_PKG_VERSION").to_string(),
        content_hash: manifest::sha256_hex(
            format!("{hash_input}\nptx {} {}", arch.name(), cmd.num_warps).as_bytes(),
        ),
        target: TargetInfo {
            kind: TargetKind::Ptx,
            triple: "nvptx64-nvidia-cuda".into(),
            cpu: arch.name().into(),
            features: String::new(),
        },
        kernels,
        files: vec![FileEntry {
            path: file.clone(),
            sha256: manifest::sha256_hex(text.as_bytes()),
        }],
    };
    write_files(dir, &[(file, text.into_bytes())], &m)?;
    Ok(m)
}

fn write_ascend_bundle(
    cmd: &BuildCmd,
    c: &tk_driver::Compilation,
    module: &Module,
    dir: &Path,
    hash_input: &str,
) -> Result<Manifest, ExitCode> {
    let Some(soc) = tk_backend_ascend::Soc::parse(&cmd.soc) else {
        eprintln!("error: unknown --soc `{}`; use 910B or 310P", cmd.soc);
        return Err(ExitCode::from(EXIT_USER));
    };
    let opts = tk_backend_ascend::AscendOptions { soc, ..Default::default() };
    let out = match tk_backend_ascend::compile_module(module, &opts) {
        Ok(o) => o,
        Err(diags) => {
            eprint!("{}", tk_diag::render(&c.sources, &diags, cmd.build.color()));
            return Err(ExitCode::from(EXIT_USER));
        }
    };
    // Remarks explain lowering choices (scalar fallbacks, single buffering); opt-in to keep
    // builds quiet.
    if !out.remarks.is_empty() && std::env::var_os("TK_REMARKS").is_some() {
        eprint!("{}", tk_diag::render(&c.sources, &out.remarks, cmd.build.color()));
    }
    let files: Vec<(String, Vec<u8>)> =
        out.files().into_iter().map(|(n, t)| (n, t.into_bytes())).collect();
    let m = Manifest {
        format_version: manifest::FORMAT_VERSION,
        compiler_version: env!("CARGO_PKG_VERSION").to_string(),
        content_hash: manifest::sha256_hex(format!("{hash_input}\nascend {}", cmd.soc).as_bytes()),
        target: TargetInfo {
            kind: TargetKind::Ascend,
            triple: "ascend".into(),
            cpu: cmd.soc.clone(),
            features: String::new(),
        },
        kernels: kernel_infos(module),
        files: files
            .iter()
            .map(|(n, b)| FileEntry { path: n.clone(), sha256: manifest::sha256_hex(b) })
            .collect(),
    };
    write_files(dir, &files, &m)?;
    Ok(m)
}

/// LLVM x86-64 CPU names `--cpu` accepts besides `host` and `portable` (LLVM aborts on names it
/// does not know, so they are checked here first).
const KNOWN_CPUS: &[&str] = &[
    "x86-64",
    "x86-64-v2",
    "x86-64-v3",
    "x86-64-v4",
    "haswell",
    "broadwell",
    "skylake",
    "skylake-avx512",
    "cascadelake",
    "icelake-server",
    "sapphirerapids",
    "graniterapids",
    "alderlake",
    "znver1",
    "znver2",
    "znver3",
    "znver4",
    "znver5",
];

/// CPU backend options from the `--cpu` flag; unknown CPU names are a user error.
pub fn cpu_options(cpu: &str, checks: bool) -> Result<tk_backend_cpu::CpuOptions, ExitCode> {
    let target = match cpu {
        "host" | "native" => tk_backend_cpu::CpuTarget::Host,
        "portable" | "x86-64-v3" => tk_backend_cpu::CpuTarget::Baseline,
        other if KNOWN_CPUS.contains(&other) => {
            tk_backend_cpu::CpuTarget::Named { cpu: other.to_string(), features: String::new() }
        }
        other => {
            eprintln!(
                "error: unknown --cpu `{other}`; use host, portable, or one of: {}",
                KNOWN_CPUS.join(", ")
            );
            return Err(ExitCode::from(EXIT_USER));
        }
    };
    Ok(tk_backend_cpu::CpuOptions { target, checks, ..Default::default() })
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
        .enumerate()
        .map(|(idx, (p, w))| match m.ty(p.ty).elem {
            Elem::Scalar(d) => ParamInfo {
                name: p.name.clone(),
                kind: ParamKind::Scalar,
                dtype: dtype(d),
                written: false,
                multiple_of: f
                    .param_multiples
                    .iter()
                    .filter(|(i, _)| *i as usize == idx)
                    .map(|&(_, n)| n)
                    .reduce(lcm),
            },
            Elem::Ptr(d) => ParamInfo {
                name: p.name.clone(),
                kind: ParamKind::Pointer,
                dtype: dtype(d),
                written: w,
                multiple_of: None,
            },
        })
        .collect()
}

/// Least common multiple: two `multiple_of` facts on one parameter combine into one.
fn lcm(a: u64, b: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    a / gcd(a, b) * b
}

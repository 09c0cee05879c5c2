//! Shared test helpers: compile stdlib kernels, assemble PTX with ptxas, and run a kernel both in
//! the reference interpreter and in the CTA executor on the same seeded inputs.

#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::Command;
use tk_backend_ptx::exec::{self, ExecArg, ExecStats};
use tk_backend_ptx::{lower_kernel, ptx, Arch, Options};
use tk_interp::{Arg, Buffer, RunOptions};
use tk_ir::{DType, Module};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Compiles `stdlib/<file>` with `-D` overrides and returns the optimised module.
pub fn compile(file: &str, defines: &[(&str, &str)]) -> Module {
    let opts = tk_driver::CompileOptions {
        defines: defines.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        ..Default::default()
    };
    let c = tk_driver::compile_file(&root().join("stdlib").join(file), &opts);
    assert!(!c.has_errors(), "{}", c.render_plain());
    c.optimized.expect("optimised module")
}

/// Compiles kernel source given as text.
pub fn compile_src(text: &str, defines: &[(&str, &str)]) -> Module {
    let opts = tk_driver::CompileOptions {
        defines: defines.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        ..Default::default()
    };
    let c = tk_driver::compile_source("test.tk", text, &opts);
    assert!(!c.has_errors(), "{}", c.render_plain());
    c.optimized.expect("optimised module")
}

/// The pinned ptxas from `scripts/setup.sh`; fails with instructions when it is missing.
pub fn ptxas() -> PathBuf {
    let p = root().join(".tools/nvcc-13.5.37/nvidia/cu13/bin/ptxas");
    assert!(
        p.exists(),
        "ptxas not found at {}: run scripts/setup.sh once (it fetches ptxas from the \
         nvidia-cuda-nvcc wheel) and rerun the tests",
        p.display()
    );
    p
}

/// What ptxas said about one kernel.
#[derive(Debug)]
pub struct PtxasInfo {
    pub registers: u32,
    pub spill_stores: u32,
    pub spill_loads: u32,
    pub log: String,
}

/// Assembles `text` for `arch` and returns register and spill counts (panics on a ptxas error).
pub fn assemble(text: &str, arch: Arch, tag: &str) -> PtxasInfo {
    let dir =
        std::env::temp_dir().join(format!("tk-ptx-{}-{tag}-{}", std::process::id(), arch.name()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("k.ptx");
    std::fs::write(&src, text).unwrap();
    let out = Command::new(ptxas())
        .arg("-v")
        .arg("--gpu-name")
        .arg(arch.name())
        .arg(&src)
        .arg("-o")
        .arg(dir.join("k.cubin"))
        .output()
        .expect("run ptxas");
    let log =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "ptxas failed for {tag} on {}:\n{log}\n--- PTX ---\n{text}",
        arch.name()
    );
    let num = |key: &str, before: bool| -> u32 {
        log.lines()
            .filter_map(|l| {
                let i = l.find(key)?;
                let s = if before { &l[..i] } else { &l[i + key.len()..] };
                let w = if before {
                    s.split_whitespace().last()?
                } else {
                    s.split_whitespace().next()?
                };
                w.trim_matches(',').parse().ok()
            })
            .max()
            .unwrap_or(0)
    };
    PtxasInfo {
        registers: num("registers", true),
        spill_stores: num("bytes spill stores", true),
        spill_loads: num("bytes spill loads", true),
        log,
    }
}

/// One argument of a comparison run.
#[derive(Clone, Debug)]
pub enum TArg {
    /// An input buffer of random values.
    Rand(DType, usize),
    /// A buffer of given f32 values.
    F32s(Vec<f32>),
    /// A buffer of given i32 values.
    I32s(Vec<i32>),
    /// An output buffer of zeros.
    Zeros(DType, usize),
    I32(i32),
    I64(i64),
    F32(f32),
    Bool(bool),
}

pub struct Outcome {
    pub stats: ExecStats,
    pub ptx: String,
}

/// Runs `kernel` of `m` in the interpreter and in the executor, compares every buffer (floats
/// within `tol` relative+absolute, integers exactly), and assembles the PTX for both arches.
pub fn check(
    m: &Module,
    kernel: &str,
    grid: [u32; 3],
    targs: &[TArg],
    opts: &Options,
    seed: u64,
    tol: f64,
) -> Outcome {
    let fid = m.find(kernel).unwrap_or_else(|| panic!("no kernel {kernel}"));
    let f = m.func(fid);
    let k = lower_kernel(m, f, opts).unwrap_or_else(|e| panic!("lowering {kernel}: {e}"));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut bufs = Vec::new();
    let mut iargs = Vec::new();
    let mut eargs = Vec::new();
    for a in targs {
        match a {
            TArg::Rand(dt, n) => {
                let b = match dt {
                    DType::F32 => Buffer::from_slice(
                        &(0..*n).map(|_| rng.gen_range(-4.0f32..4.0)).collect::<Vec<_>>(),
                    ),
                    DType::I32 => Buffer::from_slice(
                        &(0..*n).map(|_| rng.gen_range(-1000i32..1000)).collect::<Vec<_>>(),
                    ),
                    DType::F16 => Buffer::from_slice(
                        &(0..*n)
                            .map(|_| half::f16::from_f32(rng.gen_range(-2.0f32..2.0)))
                            .collect::<Vec<_>>(),
                    ),
                    DType::BF16 => Buffer::from_slice(
                        &(0..*n)
                            .map(|_| half::bf16::from_f32(rng.gen_range(-2.0f32..2.0)))
                            .collect::<Vec<_>>(),
                    ),
                    d => panic!("no random {d}"),
                };
                iargs.push(Arg::Buffer(bufs.len()));
                eargs.push(ExecArg::Buffer(bufs.len()));
                bufs.push(b);
            }
            TArg::F32s(v) => {
                iargs.push(Arg::Buffer(bufs.len()));
                eargs.push(ExecArg::Buffer(bufs.len()));
                bufs.push(Buffer::from_slice(v));
            }
            TArg::I32s(v) => {
                iargs.push(Arg::Buffer(bufs.len()));
                eargs.push(ExecArg::Buffer(bufs.len()));
                bufs.push(Buffer::from_slice(v));
            }
            TArg::Zeros(dt, n) => {
                iargs.push(Arg::Buffer(bufs.len()));
                eargs.push(ExecArg::Buffer(bufs.len()));
                bufs.push(Buffer::zeroed(*dt, *n));
            }
            TArg::I32(x) => {
                iargs.push(Arg::i32(*x));
                eargs.push(ExecArg::Scalar(*x as u32 as u64));
            }
            TArg::I64(x) => {
                iargs.push(Arg::i64(*x));
                eargs.push(ExecArg::Scalar(*x as u64));
            }
            TArg::F32(x) => {
                iargs.push(Arg::f32(*x));
                eargs.push(ExecArg::Scalar(u64::from(x.to_bits())));
            }
            TArg::Bool(x) => {
                iargs.push(Arg::bool(*x));
                eargs.push(ExecArg::Scalar(u64::from(*x)));
            }
        }
    }
    let mut ebufs: Vec<Vec<u8>> = bufs.iter().map(|b| b.as_bytes().to_vec()).collect();
    tk_interp::run_kernel(m, fid, grid, &iargs, &mut bufs, &RunOptions::default())
        .unwrap_or_else(|e| panic!("interp {kernel}: {e:?}"));
    let stats = exec::run(&k, grid, &eargs, &mut ebufs)
        .unwrap_or_else(|e| panic!("executor {kernel}: {e}"));
    for (i, (b, eb)) in bufs.iter().zip(&ebufs).enumerate() {
        let want = b.values();
        let got = Buffer::from_bytes(b.dtype(), eb.clone()).unwrap().values();
        for (j, (w, g)) in want.iter().zip(&got).enumerate() {
            let (w, g) = (w.unwrap(), g.unwrap());
            let ok = match (w, g) {
                (tk_ir::ConstValue::Float(x), tk_ir::ConstValue::Float(y)) => {
                    (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= tol * (1.0 + x.abs())
                }
                _ => w == g,
            };
            assert!(ok, "{kernel}: buffer {i} element {j}: interpreter {w:?}, executor {g:?}");
        }
    }
    let text = ptx::print_module(std::slice::from_ref(&k), opts.arch);
    Outcome { stats, ptx: text }
}

/// Assembles every kernel of `m` for sm_80 and sm_90 and asserts 0 spill bytes; returns
/// (kernel, arch, registers) rows.
pub fn assemble_all(m: &Module, opts: &Options, tag: &str) -> Vec<(String, Arch, u32)> {
    let mut rows = Vec::new();
    for arch in [Arch::Sm80, Arch::Sm90] {
        let o = Options { arch, ..opts.clone() };
        let text = tk_backend_ptx::compile_module(m, &o).unwrap_or_else(|e| panic!("{tag}: {e}"));
        let info = assemble(&text, arch, tag);
        assert_eq!(
            (info.spill_stores, info.spill_loads),
            (0, 0),
            "{tag} spills on {}:\n{}",
            arch.name(),
            info.log
        );
        rows.push((tag.to_string(), arch, info.registers));
    }
    rows
}

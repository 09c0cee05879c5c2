//! Shared test machinery: compile a `.tk` kernel, emit Ascend C, build it with g++ against the
//! simulation header, run it on seeded inputs and compare with the interpreter.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use tk_backend_ascend::{AscendOptions, KernelSource, ParamKind};
use tk_interp::{Arg, Buffer, RunOptions};
use tk_ir::{ConstValue, DType, Module};

pub fn stdlib(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stdlib").join(file)
}

/// Compiles `path` with `-D` defines through the whole pipeline; panics with the rendered
/// diagnostics on failure (tests only).
pub fn compile(path: &Path, defines: &[(&str, &str)]) -> Module {
    let opts = tk_driver::CompileOptions {
        defines: defines.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        ..Default::default()
    };
    let c = tk_driver::compile_file(path, &opts);
    match c.optimized {
        Some(m) if !c.has_errors() => m,
        _ => panic!("{}", c.render_plain()),
    }
}

/// One kernel argument for a test run.
#[derive(Clone, Debug)]
pub enum TArg {
    Buf(Buffer),
    Scalar(DType, ConstValue),
}

/// What the simulator reported.
#[derive(Debug, Default, Clone)]
pub struct SimStats {
    pub gm_to_ub: u64,
    pub ub_to_gm: u64,
    pub gm_scalar_read: u64,
    pub gm_scalar_write: u64,
    /// GM -> L1 (cube operands) and L0C -> GM (Fixpipe) bytes.
    pub gm_to_l1: u64,
    pub l0c_to_gm: u64,
    pub vector: u64,
    pub dma: u64,
    /// Mmad and Sort32/MrgSort instructions.
    pub cube: u64,
    pub sort: u64,
}

impl SimStats {
    pub fn gm_bytes(&self) -> u64 {
        self.gm_to_ub
            + self.ub_to_gm
            + self.gm_to_l1
            + self.l0c_to_gm
            + self.gm_scalar_read
            + self.gm_scalar_write
    }
}

fn scalar_bytes(d: DType, v: ConstValue) -> Vec<u8> {
    match (d, v) {
        (DType::I32, ConstValue::Int(i)) => (i as i32).to_le_bytes().to_vec(),
        (DType::I64, ConstValue::Int(i)) => i.to_le_bytes().to_vec(),
        (DType::U32, ConstValue::Int(i)) => (i as u32).to_le_bytes().to_vec(),
        (DType::F32, ConstValue::Float(x)) => (x as f32).to_le_bytes().to_vec(),
        (DType::F64, ConstValue::Float(x)) => x.to_le_bytes().to_vec(),
        (DType::Bool, ConstValue::Bool(b)) => vec![b as u8],
        (DType::F16, ConstValue::Float(x)) => {
            half::f16::from_f64(x).to_bits().to_le_bytes().to_vec()
        }
        _ => panic!("scalar {d} {v:?} not supported by the test harness"),
    }
}

/// Writes the kernel's files, the harness, and builds it with g++ -Wall -Werror.
pub fn build(k: &KernelSource, cmake: &str, dir: &Path, extra_defines: &[&str]) -> PathBuf {
    for (name, text) in k.files() {
        std::fs::write(dir.join(name), text).unwrap();
    }
    std::fs::write(dir.join("CMakeLists.txt"), cmake).unwrap();
    std::fs::write(dir.join("harness.cpp"), k.sim_harness()).unwrap();
    let exe = dir.join("prog");
    let id = &k.name;
    let mut cmd = Command::new("g++");
    cmd.args(["-std=c++17", "-Wall", "-Werror", "-O1", "-DASCENDC_CPU_DEBUG=1"])
        .arg("-I")
        .arg(tk_backend_ascend::sim_include_dir())
        .arg("-I")
        .arg(dir);
    for d in extra_defines {
        cmd.arg(format!("-D{d}"));
    }
    cmd.arg(dir.join(format!("{id}.cpp")))
        .arg(dir.join(format!("{id}_host.cpp")))
        .arg(dir.join("harness.cpp"))
        .arg("-o")
        .arg(&exe);
    let out = cmd.output().expect("g++ runs");
    if !out.status.success() {
        panic!(
            "g++ rejected the emitted Ascend C for `{id}`:\n{}\n--- kernel ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            k.kernel_cpp
        );
    }
    exe
}

/// Runs the built program; returns the output buffers (by parameter index) and the counters,
/// or the simulator's error text.
pub fn run_sim(
    exe: &Path,
    dir: &Path,
    k: &KernelSource,
    args: &[TArg],
    grid: [u32; 3],
    block_dim: u32,
) -> Result<(Vec<Option<Buffer>>, SimStats), String> {
    for (i, a) in args.iter().enumerate() {
        let bytes = match a {
            TArg::Buf(b) => b.as_bytes().to_vec(),
            TArg::Scalar(d, v) => scalar_bytes(*d, *v),
        };
        std::fs::write(dir.join(format!("{i}.bin")), bytes).unwrap();
    }
    let out = Command::new(exe)
        .arg(dir)
        .arg(block_dim.to_string())
        .args(grid.iter().map(|g| g.to_string()))
        .output()
        .expect("simulation runs");
    if !out.status.success() {
        return Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text.lines().find(|l| l.starts_with("TKSIM")).ok_or("no TKSIM line")?;
    let mut st = SimStats::default();
    for kv in line.split_whitespace().skip(1) {
        let (key, val) = kv.split_once('=').unwrap();
        let v: u64 = val.parse().unwrap();
        match key {
            "gm_to_ub" => st.gm_to_ub = v,
            "ub_to_gm" => st.ub_to_gm = v,
            "gm_scalar_read" => st.gm_scalar_read = v,
            "gm_scalar_write" => st.gm_scalar_write = v,
            "vector" => st.vector = v,
            "dma" => st.dma = v,
            "gm_to_l1" => st.gm_to_l1 = v,
            "l0c_to_gm" => st.l0c_to_gm = v,
            "cube" => st.cube = v,
            "sort" => st.sort = v,
            _ => {}
        }
    }
    let mut bufs = Vec::new();
    for (i, (a, p)) in args.iter().zip(&k.params).enumerate() {
        match (a, p.kind) {
            (TArg::Buf(_), ParamKind::Pointer(d)) => {
                let bytes = std::fs::read(dir.join(format!("{i}.out"))).unwrap();
                bufs.push(Some(Buffer::from_bytes(d, bytes).unwrap()));
            }
            _ => bufs.push(None),
        }
    }
    Ok((bufs, st))
}

/// Runs the interpreter on the same arguments; returns buffers by parameter index.
pub fn run_interp(m: &Module, kernel: &str, args: &[TArg], grid: [u32; 3]) -> Vec<Option<Buffer>> {
    let mut buffers = Vec::new();
    let mut iargs = Vec::new();
    let mut map = Vec::new();
    for a in args {
        match a {
            TArg::Buf(b) => {
                iargs.push(Arg::Buffer(buffers.len()));
                map.push(Some(buffers.len()));
                buffers.push(b.clone());
            }
            TArg::Scalar(d, v) => {
                iargs.push(Arg::Scalar(*d, *v));
                map.push(None);
            }
        }
    }
    let fid = m.find(kernel).expect("kernel exists");
    tk_interp::run_kernel(m, fid, grid, &iargs, &mut buffers, &RunOptions::default())
        .unwrap_or_else(|e| panic!("interpreter failed: {e:?}"));
    map.into_iter().map(|i| i.map(|i| buffers[i].clone())).collect()
}

/// Compares two buffers element by element: floats within `atol + rtol * |want|`, others exact.
pub fn assert_close(name: &str, got: &Buffer, want: &Buffer, rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let mut bad = Vec::new();
    for i in 0..want.len() {
        let (g, w) = (got.get(i), want.get(i));
        let ok = match (g, w) {
            (Some(ConstValue::Float(a)), Some(ConstValue::Float(b))) => {
                (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs()
            }
            (a, b) => a == b,
        };
        if !ok {
            bad.push((i, g, w));
        }
    }
    assert!(
        bad.is_empty(),
        "{name}: {} of {} elements differ; first: {:?}",
        bad.len(),
        want.len(),
        &bad[..bad.len().min(8)]
    );
}

pub struct Case<'a> {
    pub file: &'a str,
    pub kernel: &'a str,
    pub defines: &'a [(&'a str, &'a str)],
    pub args: Vec<TArg>,
    pub grid: [u32; 3],
    pub block_dim: u32,
    pub rtol: f64,
    pub atol: f64,
}

/// The full check: emit, build, run, compare every buffer. Returns the simulator's counters.
pub fn check(case: &Case, opts: &AscendOptions) -> SimStats {
    check_all(std::slice::from_ref(case), opts).remove(0)
}

/// [`check`] for several argument sets of one kernel (same file, kernel and defines): the
/// emitted code is built once and run once per case.
pub fn check_all(cases: &[Case], opts: &AscendOptions) -> Vec<SimStats> {
    let first = &cases[0];
    assert!(cases
        .iter()
        .all(|c| c.file == first.file && c.kernel == first.kernel && c.defines == first.defines));
    let m = compile(&stdlib(first.file), first.defines);
    let out = tk_backend_ascend::compile_module(&m, opts).unwrap_or_else(|d| panic!("{d:#?}"));
    let k = out.kernels.iter().find(|k| k.name == first.kernel).expect("kernel emitted");
    let dir = tempfile::tempdir().unwrap();
    let defs: Vec<&str> = opts.soc.sim_define().into_iter().collect();
    let exe = build(k, &out.cmake, dir.path(), &defs);
    let mut stats = Vec::new();
    for case in cases {
        let (got, st) = run_sim(&exe, dir.path(), k, &case.args, case.grid, case.block_dim)
            .unwrap_or_else(|e| {
                panic!(
                    "simulation of `{}` failed:\n{e}\n--- kernel ---\n{}",
                    case.kernel, k.kernel_cpp
                )
            });
        let want = run_interp(&m, case.kernel, &case.args, case.grid);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            if let (Some(g), Some(w)) = (g, w) {
                assert_close(&format!("{} param {i}", case.kernel), g, w, case.rtol, case.atol);
            }
        }
        stats.push(st);
    }
    stats
}

/// Prints one row of the traffic table (`bench/ascend-traffic.md`) and returns the ratio of the
/// GM bytes the simulation moved to `min`, the bytes a kernel must move at least.
pub fn traffic_row(kernel: &str, sizes: &str, st: &SimStats, min: u64) -> f64 {
    let r = st.gm_bytes() as f64 / min as f64;
    println!(
        "| {kernel} | {sizes} | {} | {} | {} | {} | {min} | {r:.3} |",
        st.gm_to_ub + st.gm_to_l1,
        st.ub_to_gm + st.l0c_to_gm,
        st.gm_scalar_read + st.gm_scalar_write,
        st.gm_bytes(),
    );
    r
}

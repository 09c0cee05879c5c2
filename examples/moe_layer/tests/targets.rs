//! Every MoE stdlib kernel (`moe_gating`, `moe_routing`, `moe_permute`, `moe_grouped_gemm`,
//! `moe_swiglu`, `moe_combine`) gives the reference interpreter's results on every target that
//! can run here, for 8, 160 and 256 experts:
//!
//! - **CPU**: machine code from `tk-backend-cpu`, loaded from its shared library and called
//!   through the kernel ABI once per program;
//! - **PTX**: the per-thread program of `tk-backend-ptx` run by its CTA executor (and, when the
//!   pinned `ptxas` of `scripts/setup.sh` is present, the PTX text assembled for sm_80 and sm_90);
//! - **Ascend C**: the emitted source built with g++ against the backend's simulation header and
//!   run on the simulated cores.
//!
//! Every buffer is compared after the run: integers exactly, floats within 1e-5 relative plus
//! 1e-6 absolute (targets may sum in another order). Outputs start as a sentinel, so an element
//! a target writes and the interpreter does not (or the reverse) is caught too. The inputs are
//! the ones the layer produces: real routing ids, consistent offsets and positions.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::process::Command;
use tk_interp::{Arg, Buffer, RunOptions};
use tk_ir::{ConstValue, Module};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One argument of a case.
#[derive(Clone, Debug)]
enum V {
    Buf(Buffer),
    I32(i32),
    I64(i64),
    F32(f32),
}

impl V {
    fn scalar_bits(&self) -> u64 {
        match self {
            V::I32(x) => *x as u32 as u64,
            V::I64(x) => *x as u64,
            V::F32(x) => x.to_bits() as u64,
            V::Buf(_) => unreachable!("a buffer is not a scalar"),
        }
    }
}

/// A kernel launch to run everywhere.
struct Case {
    file: &'static str,
    kernel: &'static str,
    defines: Vec<(&'static str, String)>,
    grid: [u32; 3],
    args: Vec<V>,
}

impl Case {
    fn what(&self) -> String {
        format!("{} {:?} grid {:?}", self.kernel, self.defines, self.grid)
    }
}

fn compile(case: &Case) -> Module {
    let opts = tk_driver::CompileOptions {
        defines: case.defines.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        kernels: vec![case.kernel.to_string()],
        stdlib_dir: Some(root().join("stdlib")),
        ..Default::default()
    };
    let c = tk_driver::compile_file(&root().join("stdlib").join(case.file), &opts);
    assert!(!c.has_errors(), "{}: {}", case.what(), c.render_plain());
    c.optimized.expect("no errors")
}

/// The buffers of `case` (by argument index) after the interpreter ran it.
fn interp(m: &Module, case: &Case) -> Vec<Option<Buffer>> {
    let mut bufs = Vec::new();
    let mut args = Vec::new();
    let mut map = Vec::new();
    for v in &case.args {
        match v {
            V::Buf(b) => {
                args.push(Arg::Buffer(bufs.len()));
                map.push(Some(bufs.len()));
                bufs.push(b.clone());
            }
            V::I32(x) => {
                args.push(Arg::i32(*x));
                map.push(None)
            }
            V::I64(x) => {
                args.push(Arg::i64(*x));
                map.push(None)
            }
            V::F32(x) => {
                args.push(Arg::f32(*x));
                map.push(None)
            }
        }
    }
    let fid = m.find(case.kernel).expect("kernel");
    tk_interp::run_kernel(m, fid, case.grid, &args, &mut bufs, &RunOptions::default())
        .unwrap_or_else(|e| panic!("{}: interpreter: {e}", case.what()));
    map.into_iter().map(|i| i.map(|i| bufs[i].clone())).collect()
}

/// Compares a target's buffers with the interpreter's.
fn compare(target: &str, case: &Case, got: &[Option<Buffer>], want: &[Option<Buffer>]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let (Some(g), Some(w)) = (g, w) else { continue };
        assert_eq!(g.len(), w.len());
        let mut bad = Vec::new();
        for j in 0..w.len() {
            let ok = match (g.get(j), w.get(j)) {
                (Some(ConstValue::Float(a)), Some(ConstValue::Float(b))) => {
                    a == b || (a - b).abs() <= 1e-6 + 1e-5 * b.abs()
                }
                (a, b) => a == b,
            };
            if !ok {
                bad.push((j, g.get(j), w.get(j)));
            }
        }
        assert!(
            bad.is_empty(),
            "{target}: {}: argument {i}: {} of {} elements differ from the interpreter; first \
             (index, {target}, interpreter): {:?}",
            case.what(),
            bad.len(),
            w.len(),
            &bad[..bad.len().min(6)]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// CPU

/// Bytes in 64-byte aligned memory (the runtime's alignment promise to compiled code).
struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    fn new(bytes: &[u8]) -> Aligned {
        let mut a = Aligned { words: vec![0; bytes.len().div_ceil(8) + 8], len: bytes.len() };
        let p = a.ptr();
        // SAFETY: `words` has room for the bytes after the alignment offset (8 spare words).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
        a
    }
    fn ptr(&mut self) -> *mut u8 {
        let base = self.words.as_mut_ptr() as *mut u8;
        let off = (64 - base as usize % 64) % 64;
        // SAFETY: within the allocation (see `new`).
        unsafe { base.add(off) }
    }
    fn bytes(&mut self) -> Vec<u8> {
        let p = self.ptr();
        // SAFETY: `len` initialised bytes start there.
        unsafe { std::slice::from_raw_parts(p, self.len).to_vec() }
    }
}

type KernelFn = unsafe extern "C" fn(*const *const c_void, *const i32, *const i32) -> i32;

fn run_cpu(m: &Module, case: &Case) -> Vec<Option<Buffer>> {
    let opts = tk_backend_cpu::CpuOptions::default();
    let art = tk_backend_cpu::compile_module(m, &opts)
        .unwrap_or_else(|e| panic!("{}: CPU backend: {e}", case.what()));
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("k.so");
    std::fs::write(&so, &art.library).unwrap();
    // SAFETY: a library the CPU backend just built; it has no initialisers.
    let lib = unsafe { libloading::Library::new(&so) }.expect("dlopen");
    let k = art.kernels.iter().find(|k| k.name == case.kernel).expect("kernel in the library");
    // SAFETY: the backend exports kernels with this ABI (see tk-runtime's cpu module).
    let f: libloading::Symbol<KernelFn> = unsafe { lib.get(k.symbol.as_bytes()) }.expect("symbol");
    let mut mem: Vec<Option<Aligned>> = case
        .args
        .iter()
        .map(|v| match v {
            V::Buf(b) => Some(Aligned::new(b.as_bytes())),
            _ => None,
        })
        .collect();
    let slots: Vec<u64> = case
        .args
        .iter()
        .zip(mem.iter_mut())
        .map(|(v, a)| match a {
            Some(a) => a.ptr() as u64,
            None => v.scalar_bits(),
        })
        .collect();
    let ptrs: Vec<*const c_void> = slots.iter().map(|s| s as *const u64 as *const c_void).collect();
    let np = case.grid.map(|g| g as i32);
    for z in 0..np[2] {
        for y in 0..np[1] {
            for x in 0..np[0] {
                let pid = [x, y, z];
                // SAFETY: one argument slot per parameter, of the kernel's types (the interpreter
                // accepted the same arguments), and buffers as large as the interpreter's.
                let rc = unsafe { f(ptrs.as_ptr(), pid.as_ptr(), np.as_ptr()) };
                assert_eq!(rc, 0, "{}: CPU program {pid:?} trapped: {:?}", case.what(), k.traps);
            }
        }
    }
    case.args
        .iter()
        .zip(mem.iter_mut())
        .map(|(v, a)| match (v, a) {
            (V::Buf(b), Some(a)) => Some(Buffer::from_bytes(b.dtype(), a.bytes()).unwrap()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// PTX

fn ptxas() -> Option<PathBuf> {
    let p = root().join(".tools/nvcc-13.5.37/nvidia/cu13/bin/ptxas");
    p.exists().then_some(p)
}

fn run_ptx(m: &Module, case: &Case) -> Vec<Option<Buffer>> {
    use tk_backend_ptx::exec::{self, ExecArg};
    let opts = tk_backend_ptx::Options::default();
    let f = m.func(m.find(case.kernel).expect("kernel"));
    let k = tk_backend_ptx::lower_kernel(m, f, &opts)
        .unwrap_or_else(|e| panic!("{}: PTX backend: {e}", case.what()));
    let mut bufs = Vec::new();
    let mut args = Vec::new();
    for v in &case.args {
        match v {
            V::Buf(b) => {
                args.push(ExecArg::Buffer(bufs.len()));
                bufs.push(b.as_bytes().to_vec());
            }
            s => args.push(ExecArg::Scalar(s.scalar_bits())),
        }
    }
    exec::run(&k, case.grid, &args, &mut bufs)
        .unwrap_or_else(|e| panic!("{}: PTX executor: {e}", case.what()));
    if let Some(ptxas) = ptxas() {
        for arch in [tk_backend_ptx::Arch::Sm80, tk_backend_ptx::Arch::Sm90] {
            let o = tk_backend_ptx::Options { arch, ..opts.clone() };
            let text = tk_backend_ptx::compile_module(m, &o).expect("PTX text");
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("k.ptx"), &text).unwrap();
            let out = Command::new(&ptxas)
                .args(["--gpu-name", arch.name()])
                .arg(dir.path().join("k.ptx"))
                .arg("-o")
                .arg(dir.path().join("k.cubin"))
                .output()
                .expect("ptxas runs");
            assert!(
                out.status.success(),
                "{}: ptxas rejected the PTX for {}:\n{}",
                case.what(),
                arch.name(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let mut it = bufs.into_iter();
    case.args
        .iter()
        .map(|v| match v {
            V::Buf(b) => Some(Buffer::from_bytes(b.dtype(), it.next().unwrap()).unwrap()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Ascend C

fn run_ascend(m: &Module, case: &Case) -> Vec<Option<Buffer>> {
    let opts = tk_backend_ascend::AscendOptions::default();
    let out = tk_backend_ascend::compile_module(m, &opts)
        .unwrap_or_else(|d| panic!("{}: Ascend backend: {d:#?}", case.what()));
    let k = out.kernels.iter().find(|k| k.name == case.kernel).expect("kernel emitted");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, text) in k.files() {
        std::fs::write(d.join(name), text).unwrap();
    }
    std::fs::write(d.join("harness.cpp"), k.sim_harness()).unwrap();
    let id: String =
        k.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let exe = d.join("prog");
    let mut cmd = Command::new("g++");
    cmd.args(["-std=c++17", "-Wall", "-Werror", "-O0", "-DASCENDC_CPU_DEBUG=1"])
        .arg("-I")
        .arg(tk_backend_ascend::sim_include_dir())
        .arg("-I")
        .arg(d);
    if let Some(def) = opts.soc.sim_define() {
        cmd.arg(format!("-D{def}"));
    }
    let built = cmd
        .arg(d.join(format!("{id}.cpp")))
        .arg(d.join(format!("{id}_host.cpp")))
        .arg(d.join("harness.cpp"))
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("g++ runs");
    assert!(
        built.status.success(),
        "{}: g++ rejected the Ascend C:\n{}\n--- kernel ---\n{}",
        case.what(),
        String::from_utf8_lossy(&built.stderr),
        k.kernel_cpp
    );
    for (i, v) in case.args.iter().enumerate() {
        let bytes = match v {
            V::Buf(b) => b.as_bytes().to_vec(),
            V::I32(x) => x.to_le_bytes().to_vec(),
            V::I64(x) => x.to_le_bytes().to_vec(),
            V::F32(x) => x.to_le_bytes().to_vec(),
        };
        std::fs::write(d.join(format!("{i}.bin")), bytes).unwrap();
    }
    // More programs than the 3 simulated cores, so that cores loop over programs.
    let run = Command::new(&exe)
        .arg(d)
        .arg("3")
        .args(case.grid.iter().map(|g| g.to_string()))
        .output()
        .expect("the simulation runs");
    assert!(
        run.status.success(),
        "{}: the Ascend simulation failed:\n{}{}\n--- kernel ---\n{}",
        case.what(),
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
        k.kernel_cpp
    );
    case.args
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            V::Buf(b) => {
                let bytes = std::fs::read(d.join(format!("{i}.out"))).unwrap();
                Some(Buffer::from_bytes(b.dtype(), bytes).unwrap())
            }
            _ => None,
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    Cpu,
    Ptx,
    Ascend,
}

/// Runs `case` on the interpreter and on `target`, and compares.
fn check(case: &Case, target: Target) {
    let m = compile(case);
    let want = interp(&m, case);
    let got = match target {
        Target::Cpu => run_cpu(&m, case),
        Target::Ptx => run_ptx(&m, case),
        Target::Ascend => run_ascend(&m, case),
    };
    compare(&format!("{target:?}"), case, &got, &want);
}

// ---------------------------------------------------------------------------------------------
// The cases: one MoE layer's worth of launches per expert count

fn f32s(v: Vec<f32>) -> V {
    V::Buf(Buffer::from_slice(&v))
}
fn i32s(v: Vec<i32>) -> V {
    V::Buf(Buffer::from_slice(&v))
}
fn sentinel_f32(n: usize) -> V {
    f32s(vec![-777.0; n])
}
fn sentinel_i32(n: usize) -> V {
    i32s(vec![-777; n])
}

/// Sizes of one layer: small enough for the executor and the simulator, ragged everywhere.
struct Shape {
    tokens: usize,
    experts: usize,
    top_k: usize,
    hidden: usize,
    inter: usize,
}

/// Routing ids as the routing kernel produces them (k distinct experts per token), skewed so
/// that some experts get many rows and some none.
fn routed_ids(rng: &mut ChaCha8Rng, s: &Shape) -> Vec<i32> {
    let mut ids = Vec::new();
    for _ in 0..s.tokens {
        let mut chosen: Vec<i32> = Vec::new();
        while chosen.len() < s.top_k {
            let r: f64 = rng.gen();
            let x = (r * r * s.experts as f64) as i32;
            if !chosen.contains(&x) {
                chosen.push(x);
            }
        }
        ids.extend(chosen);
    }
    ids
}

const BLOCK: usize = 64;

/// Every MoE kernel's launch for one shape.
fn cases(s: &Shape, seed: u64) -> Vec<Case> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (t, e, k, h, f) = (s.tokens, s.experts, s.top_k, s.hidden, s.inter);
    let n = t * k;
    let nb = n.div_ceil(BLOCK);
    let stride = e + 1;
    // Logits on a 1/64 grid (ties are exact, other gaps far above rounding).
    let logits: Vec<f32> =
        (0..t * stride).map(|_| rng.gen_range(-256..=256) as f32 / 64.0).collect();
    let bias: Vec<f32> = (0..e).map(|_| rng.gen_range(-2..=2) as f32 / 8.0).collect();
    let ids = routed_ids(&mut rng, s);
    // The permutation's intermediate results, from their definitions.
    let mut block_counts = vec![0i32; nb * e];
    for (i, &x) in ids.iter().enumerate() {
        block_counts[(i / BLOCK) * e + x as usize] += 1;
    }
    let mut offsets = vec![0i32; e + 1];
    for x in 0..e {
        offsets[x + 1] = offsets[x] + (0..nb).map(|b| block_counts[b * e + x]).sum::<i32>();
    }
    let mut block_base = vec![0i32; nb * e];
    for x in 0..e {
        let mut run = offsets[x];
        for b in 0..nb {
            block_base[b * e + x] = run;
            run += block_counts[b * e + x];
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| ids[i]);
    let mut pos = vec![0i32; n];
    let mut src = vec![0i32; n];
    for (row, &i) in order.iter().enumerate() {
        pos[i] = row as i32;
        src[row] = i as i32;
    }
    let mut uni =
        |len: usize, a: f32| -> Vec<f32> { (0..len).map(|_| rng.gen_range(-a..a)).collect() };
    let x = uni(t * h, 1.0);
    let xp = uni(n * h, 1.0);
    let w1 = uni(e * h * 2 * f, 0.5);
    let gu = uni(n * 2 * f, 4.0);
    let yp = uni(n * h, 1.0);
    let weights: Vec<f32> = uni(n, 1.0).iter().map(|v| v.abs()).collect();
    let es = e.to_string();
    let perm = |extra: &[(&'static str, usize)]| {
        let mut d = vec![("BLOCK", BLOCK.to_string()), ("BLOCK_E", es.clone())];
        d.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        d
    };
    let routing_defines = |renorm: bool| {
        vec![("BLOCK_E", es.clone()), ("K", k.to_string()), ("RENORM", renorm.to_string())]
    };
    let g = |x: usize, y: usize| [x as u32, y as u32, 1];
    let (bm, bn, bk) = (8usize, 16usize, 16usize);
    let tiles = n.div_ceil(bm) + e;
    vec![
        Case {
            file: "moe_gating.tk",
            kernel: "topk_gating",
            defines: routing_defines(true),
            grid: g(t, 1),
            args: vec![
                f32s(logits.clone()),
                sentinel_f32(n),
                sentinel_i32(n),
                V::I32(e as i32),
                V::I64(stride as i64),
            ],
        },
        Case {
            file: "moe_routing.tk",
            kernel: "softmax_topk_routing",
            defines: routing_defines(false),
            grid: g(t, 1),
            args: vec![
                f32s(logits.clone()),
                sentinel_f32(n),
                sentinel_i32(n),
                V::I32(e as i32),
                V::I64(stride as i64),
                V::F32(1.0),
            ],
        },
        Case {
            file: "moe_routing.tk",
            kernel: "sigmoid_topk_routing",
            defines: routing_defines(true),
            grid: g(t, 1),
            args: vec![
                f32s(logits),
                f32s(bias),
                sentinel_f32(n),
                sentinel_i32(n),
                V::I32(e as i32),
                V::I64(stride as i64),
                V::F32(2.5),
            ],
        },
        Case {
            file: "moe_permute.tk",
            kernel: "expert_histogram",
            defines: perm(&[]),
            grid: g(nb, 1),
            args: vec![i32s(ids.clone()), sentinel_i32(nb * e), V::I32(n as i32), V::I32(e as i32)],
        },
        Case {
            file: "moe_permute.tk",
            kernel: "expert_offsets",
            defines: perm(&[]),
            grid: g(1, 1),
            args: vec![
                i32s(block_counts),
                sentinel_i32(e + 1),
                sentinel_i32(nb * e),
                V::I32(nb as i32),
                V::I32(e as i32),
            ],
        },
        Case {
            file: "moe_permute.tk",
            kernel: "dispatch_index",
            defines: perm(&[]),
            grid: g(nb, 1),
            args: vec![
                i32s(ids),
                i32s(block_base),
                sentinel_i32(n),
                sentinel_i32(n),
                V::I32(n as i32),
                V::I32(e as i32),
            ],
        },
        Case {
            file: "moe_permute.tk",
            kernel: "permute_rows",
            defines: vec![("BLOCK_R", "4".into()), ("BLOCK_H", "32".into())],
            grid: g(n.div_ceil(4), h.div_ceil(32)),
            args: vec![
                f32s(x.clone()),
                i32s(src),
                sentinel_f32(n * h),
                V::I32(n as i32),
                V::I32(h as i32),
                V::I32(k as i32),
            ],
        },
        Case {
            file: "moe_permute.tk",
            kernel: "scatter_rows",
            defines: vec![("BLOCK_R", "4".into()), ("BLOCK_H", "32".into())],
            grid: g(n.div_ceil(4), h.div_ceil(32)),
            args: vec![
                f32s(x.clone()),
                i32s(pos.clone()),
                sentinel_f32(n * h),
                V::I32(n as i32),
                V::I32(h as i32),
                V::I32(k as i32),
            ],
        },
        Case {
            file: "moe_permute.tk",
            kernel: "unpermute_rows",
            defines: vec![("BLOCK_R", "4".into()), ("BLOCK_H", "32".into())],
            grid: g(n.div_ceil(4), h.div_ceil(32)),
            args: vec![
                f32s(yp.clone()),
                i32s(pos.clone()),
                sentinel_f32(n * h),
                V::I32(n as i32),
                V::I32(h as i32),
            ],
        },
        Case {
            file: "moe_grouped_gemm.tk",
            kernel: "grouped_gemm",
            defines: vec![("BM", bm.to_string()), ("BN", bn.to_string()), ("BK", bk.to_string())],
            grid: g(tiles, (2 * f).div_ceil(bn)),
            args: vec![
                f32s(xp),
                f32s(w1),
                sentinel_f32((n + 1) * 2 * f),
                i32s(offsets),
                V::I32(e as i32),
                V::I32(2 * f as i32),
                V::I32(h as i32),
            ],
        },
        Case {
            file: "moe_swiglu.tk",
            kernel: "swiglu",
            defines: vec![("BLOCK_R", "4".into()), ("BLOCK", "16".into())],
            grid: g(n.div_ceil(4), f.div_ceil(16)),
            args: vec![f32s(gu), sentinel_f32(n * f), V::I32(n as i32), V::I32(f as i32)],
        },
        Case {
            file: "moe_combine.tk",
            kernel: "combine",
            defines: vec![("BLOCK", "32".into())],
            grid: g(t, h.div_ceil(32)),
            args: vec![
                f32s(yp),
                i32s(pos),
                f32s(weights),
                sentinel_f32(t * h),
                V::I32(h as i32),
                V::I32(k as i32),
            ],
        },
    ]
}

/// (experts, top_k, tokens): the expert counts of the issue, with top-k 1 to 8 among them.
const SHAPES: [(usize, usize, usize); 3] = [(8, 2, 23), (160, 6, 19), (256, 8, 13)];

/// Checks every case on `target`, going on after a failure so that one run lists them all.
fn check_target(target: Target) {
    let mut failures = Vec::new();
    for (i, &(experts, top_k, tokens)) in SHAPES.iter().enumerate() {
        let s = Shape { tokens, experts, top_k, hidden: 40, inter: 24 };
        for case in cases(&s, 9000 + i as u64) {
            // MOE_KERNELS=a,b limits a run to some kernels (while working on them).
            if let Ok(only) = std::env::var("MOE_KERNELS") {
                if !only.split(',').any(|k| k == case.kernel) {
                    continue;
                }
            }
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&case, target)));
            if r.is_err() {
                failures.push(case.what());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{target:?}: {} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn moe_kernels_on_cpu_equal_the_interpreter() {
    check_target(Target::Cpu);
}

#[test]
fn moe_kernels_on_ptx_equal_the_interpreter() {
    check_target(Target::Ptx);
}

#[test]
fn moe_kernels_on_ascend_equal_the_interpreter() {
    check_target(Target::Ascend);
}

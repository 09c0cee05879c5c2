//! `tkc run`: launch a kernel over a grid on the reference interpreter, with scalars from the
//! command line and buffers from `.npy` files, seeded random fills, zeros, or poisoned outputs.

use crate::cli::{compile_reporting, BuildArgs};
use crate::{npy, EXIT_USER};
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::process::ExitCode;
use tk_diag::Diagnostic;
use tk_interp::{Arg, Buffer, RunOptions};
use tk_ir::{ConstValue, DType, Elem};

#[derive(clap::Args)]
#[command(after_help = "ARGUMENT SPECS (--arg NAME=SPEC):\n  \
scalar parameters:   n=1000, eps=1e-5, flag=true\n  \
pointer parameters:  x=data.npy        read a .npy file (dtype must match)\n                       \
x=rand:4096       seeded uniform random: floats in [-1, 1), integers in [0, 100)\n                       \
x=rand:64x128     (the shape is kept when the buffer is written back)\n                       \
x=zeros:4096      zero-filled\n                       \
y=out:4096        output: poisoned, so reads before writes and unwritten elements are errors\n\n\
EXAMPLE:\n  tkc run stdlib/softmax.tk --kernel softmax --grid 64 \\\n    \
--arg x=rand:64x1000 --arg y=out:64x1000 --arg n_cols=1000 --arg stride=1000 --out results/")]
pub struct RunArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// Kernel to launch (optional when the file has one kernel)
    #[arg(long, short = 'k')]
    pub kernel: Option<String>,
    /// Grid size: X, X,Y or X,Y,Z programs
    #[arg(long, default_value = "1")]
    pub grid: String,
    /// A kernel argument NAME=SPEC (see below); every parameter needs one
    #[arg(long = "arg", short = 'a', value_name = "NAME=SPEC")]
    pub args: Vec<String>,
    /// Seed of the random fills
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write every buffer the kernel could write (out: and zeros:) as NAME.npy into this folder
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print every element of the output buffers instead of a summary
    #[arg(long)]
    pub print_all: bool,
    /// Where to run: the reference interpreter, or compiled code through the runtime
    #[arg(long, short = 't', default_value = "interp")]
    pub target: RunTarget,
    /// Run on the target AND the interpreter and compare every output (floats within 1e-5 relative
    /// plus 1e-6 absolute,
    /// integers exactly)
    #[arg(long)]
    pub check: bool,
    /// CPU to compile for with `--target cpu` (see `tkc build --help`)
    #[arg(long, default_value = "host")]
    pub cpu: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum RunTarget {
    /// The reference interpreter (bounds-checked, poisoned outputs)
    Interp,
    /// Machine code for this CPU, run by tk-runtime on a thread pool
    Cpu,
}

/// How a pointer argument's buffer is made.
enum BufferSpec {
    File(PathBuf),
    Rand(Vec<u64>),
    Zeros(Vec<u64>),
    Out(Vec<u64>),
}

fn user_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_USER)
}

fn parse_shape(s: &str) -> Result<Vec<u64>, String> {
    let dims: Result<Vec<u64>, _> = s.split(['x', ',']).map(|d| d.trim().parse::<u64>()).collect();
    match dims {
        Ok(d)
            if !d.is_empty()
                && d.iter().all(|&x| x > 0)
                && d.iter().product::<u64>() <= 1 << 31 =>
        {
            Ok(d)
        }
        _ => Err(format!("`{s}` is not a shape; write e.g. `4096` or `64x128`")),
    }
}

fn parse_buffer_spec(s: &str) -> Result<BufferSpec, String> {
    if let Some(rest) = s.strip_prefix("rand:") {
        return parse_shape(rest).map(BufferSpec::Rand);
    }
    if let Some(rest) = s.strip_prefix("zeros:") {
        return parse_shape(rest).map(BufferSpec::Zeros);
    }
    if let Some(rest) = s.strip_prefix("out:") {
        return parse_shape(rest).map(BufferSpec::Out);
    }
    if s.ends_with(".npy") {
        return Ok(BufferSpec::File(PathBuf::from(s)));
    }
    Err(format!("`{s}` is not a buffer spec; use FILE.npy, rand:SHAPE, zeros:SHAPE or out:SHAPE"))
}

fn parse_grid(s: &str) -> Result<[u32; 3], String> {
    let parts: Vec<&str> = s.split(',').collect();
    if parts.is_empty() || parts.len() > 3 {
        return Err(format!("`{s}` is not a grid; write X, X,Y or X,Y,Z"));
    }
    let mut g = [1u32; 3];
    for (i, p) in parts.iter().enumerate() {
        g[i] = p
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("grid size `{p}` must be a positive integer"))?;
    }
    Ok(g)
}

fn random_buffer(d: DType, n: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Buffer {
    let vals: Vec<ConstValue> = (0..n)
        .map(|_| {
            if d.is_float() {
                ConstValue::Float(tk_ir::eval::round_float(d, rng.gen_range(-1.0f64..1.0)))
            } else if d.is_bool() {
                ConstValue::Bool(rng.gen_bool(0.5))
            } else {
                ConstValue::Int(rng.gen_range(0..100))
            }
        })
        .collect();
    Buffer::from_values(d, &vals)
}

pub fn run(a: RunArgs) -> ExitCode {
    let c = match compile_reporting(&a.build, &a.build.options()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let module = c.optimized.as_ref().expect("no errors");
    let kernels: Vec<&tk_ir::Function> = module.kernels().collect();
    let kernel = match (&a.kernel, kernels.len()) {
        (Some(k), _) => match kernels.iter().find(|f| &f.name == k) {
            Some(f) => *f,
            None => {
                let names: Vec<&str> = kernels.iter().map(|f| f.name.as_str()).collect();
                return user_error(format!(
                    "no kernel `{k}` in {}; it has: {}",
                    a.build.file.display(),
                    names.join(", ")
                ));
            }
        },
        (None, 1) => kernels[0],
        (None, 0) => return user_error(format!("{} has no kernel", a.build.file.display())),
        (None, _) => {
            let names: Vec<&str> = kernels.iter().map(|f| f.name.as_str()).collect();
            return user_error(format!(
                "{} has several kernels; choose one with --kernel ({})",
                a.build.file.display(),
                names.join(", ")
            ));
        }
    };
    let grid = match parse_grid(&a.grid) {
        Ok(g) => g,
        Err(e) => return user_error(e),
    };
    let mut given: Vec<(String, String)> = Vec::new();
    for s in &a.args {
        match s.split_once('=') {
            Some((k, v)) => given.push((k.trim().to_string(), v.trim().to_string())),
            None => return user_error(format!("`--arg {s}` must be NAME=SPEC")),
        }
    }
    for (k, _) in &given {
        if !kernel.params.iter().any(|p| &p.name == k) {
            let names: Vec<&str> = kernel.params.iter().map(|p| p.name.as_str()).collect();
            return user_error(format!(
                "kernel `{}` has no parameter `{k}`; its parameters are: {}",
                kernel.name,
                names.join(", ")
            ));
        }
    }
    let mut args = Vec::new();
    let mut buffers: Vec<Buffer> = Vec::new();
    // Per buffer: parameter name, shape, and whether the kernel's results live there.
    let mut buffer_info: Vec<(String, Vec<u64>, bool)> = Vec::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(a.seed);
    for p in &kernel.params {
        let Some((_, spec)) = given.iter().find(|(k, _)| k == &p.name) else {
            let t = module.ty(p.ty);
            let example =
                if t.elem.is_ptr() { "rand:1024 or out:1024 or data.npy" } else { "a number" };
            return user_error(format!(
                "missing `--arg {}=...` for parameter `{}: {t}` ({example})",
                p.name, p.name
            ));
        };
        match module.ty(p.ty).elem {
            Elem::Scalar(d) => match tk_driver::parse_define(spec, d) {
                Some(v) => args.push(Arg::Scalar(d, v)),
                None => return user_error(format!("`{}={spec}`: not a valid `{d}`", p.name)),
            },
            Elem::Ptr(d) => {
                let spec = match parse_buffer_spec(spec) {
                    Ok(s) => s,
                    Err(e) => return user_error(format!("`{}`: {e}", p.name)),
                };
                let (buf, shape, written) = match spec {
                    BufferSpec::File(path) => match npy::read(&path, d) {
                        Ok(arr) => match Buffer::from_bytes(d, arr.bytes) {
                            Ok(b) => (b, arr.shape, false),
                            Err(e) => return user_error(format!("`{}`: {}", p.name, e.message())),
                        },
                        Err(e) => return user_error(e),
                    },
                    BufferSpec::Rand(s) => {
                        (random_buffer(d, s.iter().product::<u64>() as usize, &mut rng), s, false)
                    }
                    BufferSpec::Zeros(s) => {
                        (Buffer::zeroed(d, s.iter().product::<u64>() as usize), s, true)
                    }
                    BufferSpec::Out(s) => {
                        (Buffer::uninit(d, s.iter().product::<u64>() as usize), s, true)
                    }
                };
                args.push(Arg::Buffer(buffers.len()));
                buffers.push(buf);
                buffer_info.push((p.name.clone(), shape, written));
            }
        }
    }
    let func_id = module.find(&kernel.name).expect("kernel exists");
    let reference =
        if a.target == RunTarget::Interp || a.check { Some(buffers.clone()) } else { None };
    let mut report = tk_interp::RunReport::default();
    if let Some(mut ref_bufs) = reference {
        match tk_interp::run_kernel(
            module,
            func_id,
            grid,
            &args,
            &mut ref_bufs,
            &RunOptions::default(),
        ) {
            Ok(r) => report = r,
            Err(e) => {
                let d: Diagnostic = e.to_diagnostic();
                eprint!("{}", tk_diag::render(&c.sources, &[d], a.build.color()));
                eprintln!(
                    "error: kernel `{}` failed at {}",
                    kernel.name,
                    c.sources.describe(e.span)
                );
                return ExitCode::from(EXIT_USER);
            }
        }
        if a.target == RunTarget::Interp {
            buffers = ref_bufs;
        } else {
            let compiled = match run_compiled(&a, &c, module, &kernel.name, grid, &args, &buffers) {
                Ok(b) => b,
                Err(code) => return code,
            };
            let ok = compare(&buffer_info, &ref_bufs, &compiled);
            buffers = compiled;
            if !ok {
                return ExitCode::from(EXIT_USER);
            }
        }
    } else {
        buffers = match run_compiled(&a, &c, module, &kernel.name, grid, &args, &buffers) {
            Ok(b) => b,
            Err(code) => return code,
        };
    }
    for line in &report.prints {
        println!("{line}");
    }
    let mut failed = false;
    for (i, (name, shape, written)) in buffer_info.iter().enumerate() {
        if !written {
            continue;
        }
        let b = &buffers[i];
        if b.uninit_count() > 0 {
            eprintln!(
                "error: {} of {} elements of `{name}` were never written (first: {name}[{}]); is the grid large enough?",
                b.uninit_count(),
                b.len(),
                b.first_uninit().unwrap_or(0)
            );
            failed = true;
            continue;
        }
        summarise(name, b, a.print_all);
        if let Some(dir) = &a.out {
            if let Err(e) = std::fs::create_dir_all(dir) {
                return user_error(format!("cannot create `{}`: {e}", dir.display()));
            }
            let path = dir.join(format!("{name}.npy"));
            let bytes = match npy::encode(b.dtype(), shape, b.as_bytes()) {
                Ok(x) => x,
                Err(e) => return user_error(e),
            };
            if let Err(e) = std::fs::write(&path, bytes) {
                return user_error(format!("cannot write `{}`: {e}", path.display()));
            }
            println!("wrote {}", path.display());
        }
    }
    if failed {
        ExitCode::from(EXIT_USER)
    } else {
        ExitCode::SUCCESS
    }
}

fn summarise(name: &str, b: &Buffer, all: bool) {
    let vals = b.values();
    let shown = if all { vals.len() } else { vals.len().min(8) };
    let text: Vec<String> = vals[..shown]
        .iter()
        .map(|v| match v {
            Some(ConstValue::Float(f)) => format!("{f:.6}"),
            Some(v) => v.to_string(),
            None => "?".to_string(),
        })
        .collect();
    let more =
        if shown < vals.len() { format!(", ... ({} elements)", vals.len()) } else { String::new() };
    println!("{name} ({}): [{}{more}]", b.dtype(), text.join(", "));
}

/// Builds the module for the CPU into a temporary bundle, loads it with tk-runtime and launches
/// the kernel on copies of `buffers` (16-byte aligned, as compiled code assumes). Elements of
/// poisoned (`out:`) buffers start as all-ones bytes (NaN for floats, -1 for integers).
fn run_compiled(
    a: &RunArgs,
    c: &tk_driver::Compilation,
    module: &tk_ir::Module,
    kernel: &str,
    grid: [u32; 3],
    args: &[Arg],
    buffers: &[Buffer],
) -> Result<Vec<Buffer>, ExitCode> {
    let dir = tempfile::tempdir()
        .map_err(|e| user_error(format!("cannot create a temporary folder: {e}")))?;
    let opts = crate::build::cpu_options(&a.cpu, true)?;
    let hash = crate::build::hash_input(c, &a.build.define);
    crate::build::write_cpu_bundle(module, &opts, dir.path(), "run", &hash)?;
    let rt = tk_runtime::Runtime::with_device(tk_runtime::Device::Cpu).map_err(user_error)?;
    let bundle = rt.load(dir.path()).map_err(user_error)?;
    let k = bundle.kernel(kernel).map_err(user_error)?;
    // u128 storage gives 16-byte alignment.
    let mut storage: Vec<Vec<u128>> = buffers
        .iter()
        .map(|b| {
            let bytes = b.as_bytes();
            let mut v = vec![u128::MAX; bytes.len().div_ceil(16).max(1)];
            if !b.is_poisoned() || b.uninit_count() < b.len() {
                // SAFETY: `v` holds at least `bytes.len()` bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        bytes.as_ptr(),
                        v.as_mut_ptr() as *mut u8,
                        bytes.len(),
                    )
                };
            }
            v
        })
        .collect();
    let mut rt_args = Vec::new();
    let mut ptrs: Vec<*mut u8> = storage.iter_mut().map(|v| v.as_mut_ptr() as *mut u8).collect();
    for arg in args {
        match arg {
            Arg::Scalar(d, v) => rt_args.push(scalar_arg(*d, *v)),
            Arg::Buffer(i) => {
                let b = &buffers[*i];
                // SAFETY: the storage outlives the launch and holds `len` elements of `dtype`.
                rt_args.push(unsafe {
                    tk_runtime::Arg::raw(ptrs[*i], b.len(), runtime_dtype(b.dtype()), true)
                });
            }
        }
    }
    k.launch(grid, &rt_args).map_err(user_error)?;
    ptrs.clear();
    let mut out = Vec::new();
    for (b, v) in buffers.iter().zip(&storage) {
        let n = b.as_bytes().len();
        // SAFETY: reading back the bytes written above and by the kernel.
        let bytes = unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, n) }.to_vec();
        out.push(Buffer::from_bytes(b.dtype(), bytes).map_err(|e| user_error(e.message()))?);
    }
    Ok(out)
}

fn scalar_arg(d: DType, v: ConstValue) -> tk_runtime::Arg<'static> {
    match (d, v) {
        (DType::Bool, ConstValue::Bool(b)) => tk_runtime::Arg::scalar(b),
        (DType::I8, ConstValue::Int(i)) => tk_runtime::Arg::scalar(i as i8),
        (DType::I16, ConstValue::Int(i)) => tk_runtime::Arg::scalar(i as i16),
        (DType::I32, ConstValue::Int(i)) => tk_runtime::Arg::scalar(i as i32),
        (DType::I64, ConstValue::Int(i)) => tk_runtime::Arg::scalar(i),
        (DType::U8, ConstValue::Int(i)) => tk_runtime::Arg::scalar(i as u8),
        (DType::U16, ConstValue::Int(i)) => tk_runtime::Arg::scalar(i as u16),
        (DType::U32, ConstValue::Int(i)) => tk_runtime::Arg::scalar(i as u32),
        (DType::U64, ConstValue::Int(i)) => tk_runtime::Arg::scalar(i as u64),
        (DType::F32, ConstValue::Float(f)) => tk_runtime::Arg::scalar(f as f32),
        (DType::F64, ConstValue::Float(f)) => tk_runtime::Arg::scalar(f),
        (DType::F16, ConstValue::Float(f)) => {
            raw_scalar(tk_runtime::Dtype::F16, half::f16::from_f32(f as f32).to_bits() as u64)
        }
        (DType::BF16, ConstValue::Float(f)) => {
            raw_scalar(tk_runtime::Dtype::Bf16, half::bf16::from_f32(f as f32).to_bits() as u64)
        }
        (d, v) => raw_scalar(
            runtime_dtype(d),
            match v {
                ConstValue::Bool(b) => b as u64,
                ConstValue::Int(i) => i as u64,
                ConstValue::Float(f) => f.to_bits(),
            },
        ),
    }
}

fn raw_scalar(dtype: tk_runtime::Dtype, bits: u64) -> tk_runtime::Arg<'static> {
    tk_runtime::Arg::Scalar(tk_runtime::ScalarValue { dtype, bits })
}

fn runtime_dtype(d: DType) -> tk_runtime::Dtype {
    tk_runtime::Dtype::from_name(d.name()).expect("the runtime knows every dtype")
}

/// Compares the buffers the kernel writes: floats within 1e-5 relative (1e-6 absolute near 0,
/// where relative error is meaningless), other types exactly. Prints a line per buffer.
fn compare(info: &[(String, Vec<u64>, bool)], reference: &[Buffer], got: &[Buffer]) -> bool {
    let mut ok = true;
    for (i, (name, _, written)) in info.iter().enumerate() {
        if !written {
            continue;
        }
        let (r, g) = (reference[i].values(), got[i].values());
        let mut bad = 0usize;
        let mut first = None;
        let mut max_err = 0.0f64;
        let mut unwritten = 0usize;
        for (j, (a, b)) in r.iter().zip(&g).enumerate() {
            let same = match (a, b) {
                (Some(ConstValue::Float(x)), Some(ConstValue::Float(y))) => {
                    let err = (x - y).abs();
                    if err.is_finite() && x.abs() >= 1e-3 {
                        max_err = max_err.max(err / x.abs());
                    }
                    // Equal infinities and NaN-for-NaN are matches; finite values need the tolerance.
                    x == y || (x.is_nan() && y.is_nan()) || err <= 1e-5 * x.abs() + 1e-6
                }
                // The interpreter never wrote this element: the kernel leaves it undefined.
                (None, _) => {
                    unwritten += 1;
                    true
                }
                (a, b) => a == b,
            };
            if !same {
                bad += 1;
                first.get_or_insert(j);
            }
        }
        if unwritten > 0 {
            ok = false;
            eprintln!("error: {unwritten} of {} elements of `{name}` were never written by the kernel (interpreter); is the grid large enough?", r.len());
        } else if bad == 0 {
            println!("check {name}: matches the interpreter ({} elements, max relative error {max_err:.2e} where |x| >= 1e-3)", r.len());
        } else {
            ok = false;
            let j = first.unwrap_or(0);
            eprintln!("error: {name}: {bad} of {} elements differ from the interpreter; first {name}[{j}]: cpu {}, interpreter {}", r.len(), show(g[j]), show(r[j]));
        }
    }
    ok
}

fn show(v: Option<ConstValue>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "(unwritten)".to_string())
}

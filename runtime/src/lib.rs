//! tk-runtime: load a tk artifact bundle, pick the artifact for this host, check launch
//! arguments against the manifest, and run kernels over a grid.
//!
//! ```no_run
//! use tk_runtime::{Arg, Runtime};
//! let rt = Runtime::new()?;
//! let bundle = rt.load("build/softmax")?;
//! let softmax = bundle.kernel("softmax")?;
//! let x = vec![0.5f32; 64 * 1000];
//! let mut y = vec![0.0f32; 64 * 1000];
//! softmax.launch([64, 1, 1], &[Arg::slice(&x), Arg::slice_mut(&mut y), Arg::i32(1000), Arg::i64(1000)])?;
//! # Ok::<(), tk_runtime::RuntimeError>(())
//! ```
//!
//! The runtime never depends on compiler crates; the bundle format is defined in [`manifest`].
//! A [`Runtime`] and the kernels it loads are `Send + Sync`: launch from as many threads as you like.

mod args;
pub mod ascend;
mod cpu;
pub mod cuda;
pub mod device;
mod error;
pub mod manifest;

pub use args::{Arg, Element, ScalarValue};
pub use device::Device;
pub use error::RuntimeError;
pub use manifest::{Dtype, Manifest, ParamKind, TargetKind};

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The runtime: the chosen device, the CPU thread pool, and the CUDA context on a GPU host.
pub struct Runtime {
    device: Device,
    pool: Arc<rayon::ThreadPool>,
    stack_bytes: u64,
    cuda: Option<Arc<cuda::Context>>,
    ascend: Option<Arc<ascend::Context>>,
}

/// Stack of each CPU worker thread: block values of compiled kernels live on the stack, and the
/// memory is only reserved, not touched, until used.
const DEFAULT_STACK_MB: usize = 64;

/// Alignment every buffer's base address must have: compiled kernels use aligned vector accesses
/// where the compiler proved contiguity from the base (the IR analysis assumes 16 bytes).
pub const BUFFER_ALIGN: usize = 16;

impl Runtime {
    /// Detects the device (see [`device::detect`]); CPU threads: `TK_NUM_THREADS` or all cores.
    pub fn new() -> Result<Runtime, RuntimeError> {
        Runtime::with_device(device::detect()?)
    }

    /// A runtime for a given device.
    pub fn with_device(device: Device) -> Result<Runtime, RuntimeError> {
        let threads =
            std::env::var("TK_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
        Runtime::with_threads(device, threads)
    }

    /// A runtime with `threads` CPU worker threads (0 = one per core).
    pub fn with_threads(device: Device, threads: usize) -> Result<Runtime, RuntimeError> {
        let stack_mb = std::env::var("TK_STACK_MB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(DEFAULT_STACK_MB);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .stack_size(stack_mb << 20)
            .thread_name(|i| format!("tk-cpu-{i}"))
            .build()
            .map_err(|e| RuntimeError::Unsupported(format!("cannot start CPU threads: {e}")))?;
        let cuda = if device == Device::Cuda { Some(cuda::Context::new()?) } else { None };
        let ascend = if device == Device::Ascend { Some(ascend::Context::new()?) } else { None };
        Ok(Runtime {
            device,
            pool: Arc::new(pool),
            stack_bytes: (stack_mb as u64) << 20,
            cuda,
            ascend,
        })
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn num_threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// The CUDA context when the device is a GPU (for [`cuda::DeviceBuffer`]s).
    pub fn cuda_context(&self) -> Option<&Arc<cuda::Context>> {
        self.cuda.as_ref()
    }

    /// Loads the bundle in folder `dir` (written by `tkc build`). A folder holding several
    /// bundles (`tkc build --target all`) is searched for the one matching this device.
    pub fn load(&self, dir: impl AsRef<Path>) -> Result<Bundle, RuntimeError> {
        let dir = dir.as_ref();
        let want = self.device.target();
        let direct = dir.join(manifest::MANIFEST_FILE);
        let manifest_dir = if direct.exists() {
            dir.to_path_buf()
        } else {
            let sub = dir.join(want.name());
            if sub.join(manifest::MANIFEST_FILE).exists() {
                sub
            } else {
                return Err(RuntimeError::Io {
                    path: direct.display().to_string(),
                    error: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no manifest.json (is this a `tkc build` output folder?)",
                    ),
                });
            }
        };
        let m = read_manifest(&manifest_dir)?;
        if m.target.kind != want {
            return Err(RuntimeError::WrongTarget {
                bundle: m.target.kind.name().to_string(),
                device: self.device.name().to_string(),
            });
        }
        let missing = device::missing_cpu_features(&m.target.features);
        if !missing.is_empty() {
            return Err(RuntimeError::UnsupportedCpu {
                needed: m.target.features.clone(),
                missing: missing.join(","),
            });
        }
        let file = m.files.first().ok_or_else(|| RuntimeError::BadManifest {
            path: manifest_dir.join(manifest::MANIFEST_FILE).display().to_string(),
            reason: "it lists no files".into(),
        })?;
        let lib_path = manifest_dir.join(&file.path);
        let bytes = std::fs::read(&lib_path)
            .map_err(|e| RuntimeError::Io { path: lib_path.display().to_string(), error: e })?;
        if manifest::sha256_hex(&bytes) != file.sha256 {
            return Err(RuntimeError::CorruptFile { path: lib_path.display().to_string() });
        }
        if let Some(ctx) = &self.ascend {
            // The bundle holds sources; the launchers come from its CMake build (ascend.rs).
            let (libs, ls) = ascend::bundle_launchers(&m, &manifest_dir)?;
            let kernels = m
                .kernels
                .iter()
                .zip(ls)
                .map(|(k, l)| Kernel {
                    info: k.clone(),
                    exec: Exec::Ascend { ctx: ctx.clone(), l, _libs: libs.clone() },
                })
                .collect();
            return Ok(Bundle { dir: manifest_dir, manifest: m, kernels });
        }
        if let Some(ctx) = &self.cuda {
            let kernels = cuda_kernels(ctx, &m, &bytes, &lib_path)?;
            return Ok(Bundle { dir: manifest_dir, manifest: m, kernels });
        }
        let lib = Arc::new(cpu::CpuLibrary::open(&lib_path)?);
        let mut kernels = Vec::new();
        for k in &m.kernels {
            // Headroom for the C library calls a kernel makes.
            if k.stack_bytes + (1 << 20) > self.stack_bytes {
                return Err(RuntimeError::StackTooSmall {
                    kernel: k.name.clone(),
                    needed: k.stack_bytes,
                    available: self.stack_bytes,
                });
            }
            let f = lib.symbol(&k.symbol, &lib_path)?;
            kernels.push(Kernel {
                info: k.clone(),
                exec: Exec::Cpu { entry: f, _lib: lib.clone(), pool: self.pool.clone() },
            });
        }
        Ok(Bundle { dir: manifest_dir, manifest: m, kernels })
    }
}

/// The kernels of a PTX bundle, JIT-compiled by the CUDA driver.
fn cuda_kernels(
    ctx: &Arc<cuda::Context>,
    m: &Manifest,
    ptx: &[u8],
    path: &Path,
) -> Result<Vec<Kernel>, RuntimeError> {
    let path = path.display().to_string();
    if !ctx.supports(&m.target.cpu) {
        let (major, minor) = ctx.capability;
        return Err(RuntimeError::Load {
            path,
            reason: format!(
                "it was built for {} but this GPU is sm_{major}{minor}; rebuild with `tkc build \
                 --target ptx --arch sm_80`",
                m.target.cpu
            ),
        });
    }
    let module = ctx.load_module(ptx, &path)?;
    let mut kernels = Vec::new();
    for k in &m.kernels {
        let l = k.launch.clone().unwrap_or_default();
        let f = module.function(
            &k.symbol,
            k.params.len(),
            l.threads_per_program.max(1),
            l.shared_bytes,
        )?;
        kernels.push(Kernel { info: k.clone(), exec: Exec::Cuda { ctx: ctx.clone(), f } });
    }
    Ok(kernels)
}

/// Reads and validates `dir/manifest.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, RuntimeError> {
    let path = dir.join(manifest::MANIFEST_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| RuntimeError::Io { path: path.display().to_string(), error: e })?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| RuntimeError::BadManifest {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    if m.format_version != manifest::FORMAT_VERSION {
        return Err(RuntimeError::FormatVersion {
            found: m.format_version,
            expected: manifest::FORMAT_VERSION,
        });
    }
    Ok(m)
}

/// A loaded bundle: its manifest and kernels.
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
    kernels: Vec<Kernel>,
}

impl Bundle {
    pub fn kernel(&self, name: &str) -> Result<&Kernel, RuntimeError> {
        self.kernels.iter().find(|k| k.info.name == name).ok_or_else(|| {
            RuntimeError::KernelNotFound {
                name: name.to_string(),
                available: self.kernels.iter().map(|k| k.info.name.clone()).collect(),
            }
        })
    }
    pub fn kernels(&self) -> impl Iterator<Item = &Kernel> {
        self.kernels.iter()
    }
}

/// One kernel, ready to launch. Cheap to share between threads.
pub struct Kernel {
    pub info: manifest::KernelInfo,
    exec: Exec,
}

/// Where a kernel runs.
enum Exec {
    Cpu { entry: cpu::KernelFn, _lib: Arc<cpu::CpuLibrary>, pool: Arc<rayon::ThreadPool> },
    Cuda { ctx: Arc<cuda::Context>, f: cuda::Function },
    Ascend { ctx: Arc<ascend::Context>, l: ascend::Launcher, _libs: Arc<ascend::Launchers> },
}

// SAFETY: the CPU entry point is a plain function in a library kept alive by `_lib`; the
// generated code keeps no global state, so concurrent launches only share what the caller
// passes. CUDA handles are usable from any thread.
unsafe impl Send for Kernel {}
unsafe impl Sync for Kernel {}

impl Kernel {
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The CUDA function, on a GPU host (to launch on [`cuda::DeviceBuffer`]s directly).
    pub fn cuda_function(&self) -> Option<&cuda::Function> {
        match &self.exec {
            Exec::Cuda { f, .. } => Some(f),
            Exec::Cpu { .. } | Exec::Ascend { .. } => None,
        }
    }

    /// Checks `args` against the manifest and runs the kernel over `grid` (blocking).
    pub fn launch(&self, grid: [u32; 3], args: &[Arg<'_>]) -> Result<(), RuntimeError> {
        if grid.contains(&0) {
            return Err(RuntimeError::BadGrid { reason: format!("{grid:?} has a zero dimension") });
        }
        if grid.iter().any(|&g| g > i32::MAX as u32) {
            return Err(RuntimeError::BadGrid {
                reason: format!("{grid:?} exceeds 2^31 - 1 programs along an axis"),
            });
        }
        let slots = self.check_args(args)?;
        let (entry, pool) = match &self.exec {
            Exec::Cpu { entry, pool, .. } => (*entry, pool),
            Exec::Cuda { ctx, f } => return cuda::launch_host(ctx, f, &self.info, grid, args),
            Exec::Ascend { ctx, l, .. } => {
                return ascend::launch_host(ctx, l, &self.info, grid, args)
            }
        };
        match cpu::launch(pool, entry, grid, &slots) {
            None => Ok(()),
            Some(t) => {
                let message = usize::try_from(t.code - 1)
                    .ok()
                    .and_then(|i| self.info.traps.get(i))
                    .cloned()
                    .unwrap_or_else(|| format!("unknown trap code {}", t.code));
                Err(RuntimeError::KernelTrap {
                    kernel: self.info.name.clone(),
                    program: t.program,
                    message,
                })
            }
        }
    }

    fn check_args(&self, args: &[Arg<'_>]) -> Result<cpu::ArgSlots, RuntimeError> {
        let kname = &self.info.name;
        if args.len() != self.info.params.len() {
            return Err(RuntimeError::ArgCount {
                kernel: kname.clone(),
                expected: self.info.params.len(),
                found: args.len(),
            });
        }
        let mut slots = Vec::with_capacity(args.len());
        for (p, a) in self.info.params.iter().zip(args) {
            let mismatch = || {
                let expected = match p.kind {
                    ParamKind::Scalar => format!("a `{}` scalar", p.dtype.name()),
                    ParamKind::Pointer => format!("a `*{}` buffer", p.dtype.name()),
                };
                RuntimeError::ArgType {
                    kernel: kname.clone(),
                    param: p.name.clone(),
                    expected,
                    found: a.describe(),
                }
            };
            match (p.kind, a) {
                (ParamKind::Scalar, Arg::Scalar(s)) if s.dtype == p.dtype => {
                    if let Some(factor) = p.multiple_of {
                        let value = scalar_int(s);
                        if factor > 0 && value % factor as i128 != 0 {
                            return Err(RuntimeError::NotMultiple {
                                kernel: kname.clone(),
                                param: p.name.clone(),
                                value,
                                factor,
                            });
                        }
                    }
                    slots.push(s.bits)
                }
                (ParamKind::Pointer, Arg::Buffer { ptr, dtype, mutable, .. })
                    if *dtype == p.dtype =>
                {
                    if ptr.is_null() {
                        return Err(RuntimeError::NullPointer {
                            kernel: kname.clone(),
                            param: p.name.clone(),
                        });
                    }
                    if !(*ptr as usize).is_multiple_of(BUFFER_ALIGN) {
                        return Err(RuntimeError::Misaligned {
                            kernel: kname.clone(),
                            param: p.name.clone(),
                            align: BUFFER_ALIGN,
                        });
                    }
                    if p.written && !mutable {
                        return Err(RuntimeError::ReadOnlyBuffer {
                            kernel: kname.clone(),
                            param: p.name.clone(),
                        });
                    }
                    slots.push(*ptr as u64);
                }
                _ => return Err(mismatch()),
            }
        }
        Ok(cpu::ArgSlots::new(slots))
    }
}

/// The integer value of a scalar argument (sign-extended for signed types).
fn scalar_int(s: &ScalarValue) -> i128 {
    let bits = s.bits;
    match s.dtype {
        Dtype::I8 => bits as u8 as i8 as i128,
        Dtype::I16 => bits as u16 as i16 as i128,
        Dtype::I32 => bits as u32 as i32 as i128,
        Dtype::I64 => bits as i64 as i128,
        Dtype::U8 => bits as u8 as i128,
        Dtype::U16 => bits as u16 as i128,
        Dtype::U32 => bits as u32 as i128,
        _ => bits as i128,
    }
}

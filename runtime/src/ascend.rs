//! The Ascend path: the ACL runtime (`libascendcl.so`) loaded at run time with libloading, device
//! memory, and launches through the host launchers of an Ascend bundle.
//!
//! # What the user builds, and where the runtime looks
//!
//! `tkc build k.tk --target ascend --soc 910B -o DIR` writes Ascend C sources, not a binary: per
//! kernel `NAME.cpp` (device code), `NAME_tiling.h` and `NAME_host.cpp` (the launcher
//! `tk_launch_NAME`), plus `CMakeLists.txt` and `manifest.json`. Compiling them needs CANN, on
//! the NPU host:
//!
//! ```text
//! source /usr/local/Ascend/ascend-toolkit/set_env.sh     # sets ASCEND_HOME_PATH
//! cmake -S DIR -B DIR/build -DSOC_VERSION=Ascend910B1     # the SoC of the card (npu-smi info)
//! cmake --build DIR/build
//! ```
//!
//! This produces `DIR/build/libtk_kernels.so` (the device code, through CANN's
//! `ascendc_library`) and `DIR/build/libtk_launch.so` (the launchers, linked against it and
//! libascendcl). The runtime loads **`DIR/build/libtk_launch.so`** (or `DIR/libtk_launch.so`,
//! or the file named by `TK_ASCEND_LAUNCHER`) and calls, per kernel,
//!
//! ```text
//! int32_t tk_launch_NAME(uint32_t blockDim, void* stream, uint8_t* ptr..., const TkTiling_NAME* tiling)
//! ```
//!
//! with the pointer parameters in order (device addresses from `aclrtMalloc`), `blockDim = 0`
//! (the launcher picks min(programs, cores)) and the tiling struct built here from the manifest:
//! `uint32_t grid[3]`, then every scalar parameter in order with C alignment (16-bit floats as
//! their bits). The launcher copies the tiling to the device, launches with
//! `ACLRT_LAUNCH_KERNEL`, synchronises the stream and returns 0 on success.
//!
//! # What the runtime does
//!
//! [`Context::new`] binds `aclInit`, `aclrtSetDevice`, `aclrtResetDevice`, `aclrtCreateStream`,
//! `aclrtDestroyStream`, `aclrtSynchronizeStream`, `aclrtMalloc`, `aclrtFree`, `aclrtMemcpy` (and
//! `aclGetRecentErrMsg` when present) up front, so a missing library or symbol is a
//! [`RuntimeError::DriverNotFound`] there, never a panic later; then initialises ACL (an earlier
//! `aclInit` in the process is fine), selects device `TK_ASCEND_DEVICE` (default 0) and creates
//! a stream. A launch with host slices copies every buffer to the device, runs the launcher, and
//! copies back the buffers the kernel writes. Launches are serialised on the context's stream.
//!
//! None of this can run without an NPU: it is compiled and unit-tested here (missing driver,
//! tiling layout, launcher lookup and calling convention with a C stand-in).

use crate::args::Arg;
use crate::error::RuntimeError;
use crate::manifest::{Dtype, KernelInfo, Manifest, ParamKind};
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

type AclError = c_int;
type AclrtStream = *mut c_void;

const ACL_SUCCESS: AclError = 0;
/// `aclInit` called a second time in one process.
const ACL_ERROR_REPEAT_INITIALIZE: AclError = 100002;
const ACL_MEM_MALLOC_HUGE_FIRST: c_int = 0;
const ACL_MEMCPY_HOST_TO_DEVICE: c_int = 1;
const ACL_MEMCPY_DEVICE_TO_HOST: c_int = 2;

/// Library names tried in order.
pub const ASCEND_LIBS: &[&str] = &["libascendcl.so"];
/// Environment variable naming the launcher library explicitly.
pub const LAUNCHER_ENV: &str = "TK_ASCEND_LAUNCHER";
/// Environment variable choosing the NPU (default 0).
pub const DEVICE_ENV: &str = "TK_ASCEND_DEVICE";
/// Where the bundle's CMake project puts the launchers, relative to the bundle folder.
pub const LAUNCHER_PATHS: &[&str] = &["build/libtk_launch.so", "libtk_launch.so"];
/// Most pointer parameters a kernel may have on this path.
pub const MAX_POINTERS: usize = 16;

/// The bound ACL entry points.
struct Api {
    init: unsafe extern "C" fn(*const c_char) -> AclError,
    set_device: unsafe extern "C" fn(i32) -> AclError,
    reset_device: unsafe extern "C" fn(i32) -> AclError,
    create_stream: unsafe extern "C" fn(*mut AclrtStream) -> AclError,
    destroy_stream: unsafe extern "C" fn(AclrtStream) -> AclError,
    synchronize_stream: unsafe extern "C" fn(AclrtStream) -> AclError,
    malloc: unsafe extern "C" fn(*mut *mut c_void, usize, c_int) -> AclError,
    free: unsafe extern "C" fn(*mut c_void) -> AclError,
    memcpy: unsafe extern "C" fn(*mut c_void, usize, *const c_void, usize, c_int) -> AclError,
    recent_err_msg: Option<unsafe extern "C" fn() -> *const c_char>,
}

/// The loaded ACL library and its entry points.
pub struct Driver {
    api: Api,
    // Keeps the function pointers above valid.
    _lib: libloading::Library,
}

fn not_found(detail: String) -> RuntimeError {
    RuntimeError::DriverNotFound {
        driver: "the Ascend runtime (libascendcl.so)".into(),
        hint: format!(
            "{detail}; install CANN and source its set_env.sh (LD_LIBRARY_PATH must reach \
             libascendcl.so), or run on the CPU (unset TK_DEVICE or set TK_DEVICE=cpu)"
        ),
    }
}

impl Driver {
    /// Opens the first of `names` that loads and binds every entry point.
    pub fn open(names: &[&str]) -> Result<Driver, RuntimeError> {
        let mut errors = Vec::new();
        for name in names {
            // SAFETY: loading the vendor's runtime library runs its initialisers.
            match unsafe { libloading::Library::new(name) } {
                Ok(lib) => return Driver::bind(lib, name),
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        Err(not_found(format!("could not load it ({})", errors.join("; "))))
    }

    fn bind(lib: libloading::Library, name: &str) -> Result<Driver, RuntimeError> {
        macro_rules! sym {
            ($s:literal) => {
                // SAFETY: the symbol is the ACL function of that name, whose C signature the
                // field type restates.
                match unsafe { lib.get($s.as_bytes()) } {
                    Ok(f) => *f,
                    Err(_) => {
                        return Err(not_found(format!(
                            "{name} has no `{}` (not the ACL runtime, or one too old)",
                            $s
                        )))
                    }
                }
            };
        }
        let api = Api {
            init: sym!("aclInit"),
            set_device: sym!("aclrtSetDevice"),
            reset_device: sym!("aclrtResetDevice"),
            create_stream: sym!("aclrtCreateStream"),
            destroy_stream: sym!("aclrtDestroyStream"),
            synchronize_stream: sym!("aclrtSynchronizeStream"),
            malloc: sym!("aclrtMalloc"),
            free: sym!("aclrtFree"),
            memcpy: sym!("aclrtMemcpy"),
            // SAFETY: as above; optional (older CANN releases lack it).
            recent_err_msg: unsafe { lib.get(b"aclGetRecentErrMsg") }.ok().map(|f| *f),
        };
        Ok(Driver { api, _lib: lib })
    }

    fn check(&self, what: &str, code: AclError) -> Result<(), RuntimeError> {
        if code == ACL_SUCCESS {
            return Ok(());
        }
        let mut msg = format!("{what} failed with ACL error {code}");
        if let Some(f) = self.api.recent_err_msg {
            // SAFETY: aclGetRecentErrMsg returns null or a NUL-terminated string owned by ACL.
            let p = unsafe { f() };
            if !p.is_null() {
                // SAFETY: non-null, NUL-terminated (above).
                let s = unsafe { CStr::from_ptr(p) }.to_string_lossy();
                if !s.trim().is_empty() {
                    msg.push_str(&format!(": {}", s.trim()));
                }
            }
        }
        Err(RuntimeError::Unsupported(msg))
    }
}

/// An initialised NPU: the ACL library, the device and one stream.
pub struct Context {
    driver: Driver,
    pub device_id: i32,
    stream: AclrtStream,
    // ACL binds a device to each calling thread; launches are serialised here.
    lock: Mutex<()>,
}

// SAFETY: the stream handle is only used under `lock`, after the calling thread selected the
// device; ACL handles may be used from any thread of the process.
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

impl Context {
    /// Opens libascendcl, initialises ACL and device `TK_ASCEND_DEVICE` (0 by default).
    pub fn new() -> Result<Arc<Context>, RuntimeError> {
        let device_id = match std::env::var(DEVICE_ENV) {
            Ok(v) if !v.is_empty() => v.parse::<i32>().map_err(|_| {
                RuntimeError::Unsupported(format!("{DEVICE_ENV}={v} is not a device number"))
            })?,
            _ => 0,
        };
        Context::with_driver(Driver::open(ASCEND_LIBS)?, device_id)
    }

    fn with_driver(driver: Driver, device_id: i32) -> Result<Arc<Context>, RuntimeError> {
        // SAFETY: plain ACL calls with valid arguments (a null config path is documented).
        let code = unsafe { (driver.api.init)(std::ptr::null()) };
        if code != ACL_ERROR_REPEAT_INITIALIZE {
            driver.check("aclInit", code)?;
        }
        // SAFETY: as above.
        driver.check("aclrtSetDevice", unsafe { (driver.api.set_device)(device_id) })?;
        let mut stream: AclrtStream = std::ptr::null_mut();
        // SAFETY: `stream` is a valid out-pointer.
        driver.check("aclrtCreateStream", unsafe { (driver.api.create_stream)(&mut stream) })?;
        Ok(Arc::new(Context { driver, device_id, stream, lock: Mutex::new(()) }))
    }

    fn bind_thread(&self) -> Result<(), RuntimeError> {
        // SAFETY: selecting an already initialised device on the calling thread.
        self.driver.check("aclrtSetDevice", unsafe { (self.driver.api.set_device)(self.device_id) })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the stream was created by this context and is no longer used.
        unsafe {
            (self.driver.api.destroy_stream)(self.stream);
            (self.driver.api.reset_device)(self.device_id);
        }
    }
}

/// Device memory, freed on drop.
struct DeviceBuffer<'c> {
    ctx: &'c Context,
    ptr: *mut c_void,
    bytes: usize,
}

impl<'c> DeviceBuffer<'c> {
    fn new(ctx: &'c Context, bytes: usize) -> Result<DeviceBuffer<'c>, RuntimeError> {
        let mut ptr = std::ptr::null_mut();
        // aclrtMalloc refuses 0 bytes; kernels never touch an empty buffer anyway.
        let n = bytes.max(32);
        // SAFETY: `ptr` is a valid out-pointer.
        let code = unsafe { (ctx.driver.api.malloc)(&mut ptr, n, ACL_MEM_MALLOC_HUGE_FIRST) };
        ctx.driver.check(&format!("aclrtMalloc({n} bytes)"), code)?;
        Ok(DeviceBuffer { ctx, ptr, bytes })
    }

    fn upload(&self, host: &[u8]) -> Result<(), RuntimeError> {
        if host.is_empty() {
            return Ok(());
        }
        // SAFETY: the device buffer holds at least `host.len()` bytes.
        let code = unsafe {
            (self.ctx.driver.api.memcpy)(
                self.ptr,
                self.bytes,
                host.as_ptr() as *const c_void,
                host.len(),
                ACL_MEMCPY_HOST_TO_DEVICE,
            )
        };
        self.ctx.driver.check("aclrtMemcpy (host to device)", code)
    }

    fn download(&self, host: &mut [u8]) -> Result<(), RuntimeError> {
        if host.is_empty() {
            return Ok(());
        }
        // SAFETY: both sides hold `host.len()` bytes.
        let code = unsafe {
            (self.ctx.driver.api.memcpy)(
                host.as_mut_ptr() as *mut c_void,
                host.len(),
                self.ptr,
                host.len(),
                ACL_MEMCPY_DEVICE_TO_HOST,
            )
        };
        self.ctx.driver.check("aclrtMemcpy (device to host)", code)
    }
}

impl Drop for DeviceBuffer<'_> {
    fn drop(&mut self) {
        // SAFETY: allocated by aclrtMalloc in `new`, freed once.
        unsafe { (self.ctx.driver.api.free)(self.ptr) };
    }
}

/// The launchers of a built bundle (`libtk_launch.so`).
pub struct Launchers {
    lib: libloading::Library,
    pub path: PathBuf,
}

/// One kernel's launcher entry point.
#[derive(Clone, Copy, Debug)]
pub struct Launcher {
    f: *const c_void,
    pointers: usize,
}

// SAFETY: a plain C function pointer into a library kept alive by the bundle's kernels.
unsafe impl Send for Launcher {}
unsafe impl Sync for Launcher {}

/// Finds the launcher library of the bundle in `dir` (see the module doc).
pub fn find_launchers(dir: &Path) -> Result<PathBuf, RuntimeError> {
    if let Ok(p) = std::env::var(LAUNCHER_ENV) {
        if !p.is_empty() {
            let p = PathBuf::from(p);
            return if p.exists() {
                Ok(p)
            } else {
                Err(RuntimeError::Load {
                    path: p.display().to_string(),
                    reason: format!("{LAUNCHER_ENV} names a file that does not exist"),
                })
            };
        }
    }
    for rel in LAUNCHER_PATHS {
        let p = dir.join(rel);
        if p.exists() {
            return Ok(p);
        }
    }
    let d = dir.display();
    Err(RuntimeError::Load {
        path: dir.join(LAUNCHER_PATHS[0]).display().to_string(),
        reason: format!(
            "the bundle's Ascend C is not compiled yet. On the NPU host, with CANN's set_env.sh \
             sourced, run `cmake -S {d} -B {d}/build -DSOC_VERSION=<your SoC, e.g. Ascend910B1> \
             && cmake --build {d}/build`, which writes {d}/build/libtk_launch.so (or set \
             {LAUNCHER_ENV} to a libtk_launch.so built elsewhere)"
        ),
    })
}

impl Launchers {
    pub fn open(path: &Path) -> Result<Arc<Launchers>, RuntimeError> {
        // SAFETY: a library built from the bundle's own CMake project; loading runs no tk code.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| RuntimeError::Load {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Arc::new(Launchers { lib, path: path.to_path_buf() }))
    }

    /// The launcher of kernel `info` (`tk_launch_<symbol>`).
    pub fn launcher(&self, info: &KernelInfo) -> Result<Launcher, RuntimeError> {
        let pointers = info.params.iter().filter(|p| p.kind == ParamKind::Pointer).count();
        if pointers > MAX_POINTERS {
            return Err(RuntimeError::Unsupported(format!(
                "kernel `{}` has {pointers} pointer parameters; the Ascend runtime launches at most {MAX_POINTERS}",
                info.name
            )));
        }
        let name = format!("tk_launch_{}", info.symbol);
        // SAFETY: only the address is taken; its type is restated at the call.
        let f = unsafe { self.lib.get::<*const c_void>(name.as_bytes()) }.map_err(|_| {
            RuntimeError::Load {
                path: self.path.display().to_string(),
                reason: format!(
                    "no `{name}`: the library was built from another bundle; rebuild it from this one"
                ),
            }
        })?;
        Ok(Launcher { f: *f, pointers })
    }
}

/// The tiling struct of a launch: `uint32_t grid[3]`, then the scalar arguments in order, each
/// at its natural alignment, the whole padded to the largest alignment (C layout).
pub fn tiling_bytes(info: &KernelInfo, grid: [u32; 3], args: &[Arg<'_>]) -> Vec<u8> {
    let mut out: Vec<u8> = grid.iter().flat_map(|g| g.to_le_bytes()).collect();
    let mut align = 4usize;
    for (p, a) in info.params.iter().zip(args) {
        if let (ParamKind::Scalar, Arg::Scalar(s)) = (p.kind, a) {
            let size = scalar_size(p.dtype);
            align = align.max(size);
            out.resize(out.len().div_ceil(size) * size, 0);
            out.extend_from_slice(&s.bits.to_le_bytes()[..size]);
        }
    }
    out.resize(out.len().div_ceil(align) * align, 0);
    out
}

/// Bytes of a scalar in the tiling struct (`bool` is one byte; f16/bf16 travel as uint16_t).
fn scalar_size(d: Dtype) -> usize {
    d.size_bytes()
}

/// Calls a launcher: `f(blockDim, stream, pointers..., tiling)`.
///
/// # Safety
/// `l` must be a `tk_launch_*` function with `l.pointers` pointer parameters; the pointers and
/// the tiling must be valid for the launch.
pub unsafe fn call_launcher(
    l: &Launcher,
    block_dim: u32,
    stream: *mut c_void,
    ptrs: &[*mut u8],
    tiling: *const u8,
) -> i32 {
    assert_eq!(ptrs.len(), l.pointers, "pointer count checked against the manifest");
    type P = *mut u8;
    macro_rules! call {
        (@p $i:tt) => { P };
        ($($i:tt)*) => {{
            let g: unsafe extern "C" fn(u32, *mut c_void, $(call!(@p $i),)* *const u8) -> i32 =
                std::mem::transmute(l.f);
            g(block_dim, stream, $(ptrs[$i],)* tiling)
        }};
    }
    match ptrs.len() {
        0 => call!(),
        1 => call!(0),
        2 => call!(0 1),
        3 => call!(0 1 2),
        4 => call!(0 1 2 3),
        5 => call!(0 1 2 3 4),
        6 => call!(0 1 2 3 4 5),
        7 => call!(0 1 2 3 4 5 6),
        8 => call!(0 1 2 3 4 5 6 7),
        9 => call!(0 1 2 3 4 5 6 7 8),
        10 => call!(0 1 2 3 4 5 6 7 8 9),
        11 => call!(0 1 2 3 4 5 6 7 8 9 10),
        12 => call!(0 1 2 3 4 5 6 7 8 9 10 11),
        13 => call!(0 1 2 3 4 5 6 7 8 9 10 11 12),
        14 => call!(0 1 2 3 4 5 6 7 8 9 10 11 12 13),
        15 => call!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14),
        _ => call!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15),
    }
}

/// The launchers of every kernel of an Ascend bundle in `dir`.
pub(crate) fn bundle_launchers(
    m: &Manifest,
    dir: &Path,
) -> Result<(Arc<Launchers>, Vec<Launcher>), RuntimeError> {
    let libs = Launchers::open(&find_launchers(dir)?)?;
    let ls = m.kernels.iter().map(|k| libs.launcher(k)).collect::<Result<Vec<_>, _>>()?;
    Ok((libs, ls))
}

/// `Kernel::launch` for host slices (arguments already checked against `info`): every buffer is
/// copied to the device, the launcher runs the kernel and waits, and the buffers it writes are
/// copied back.
pub(crate) fn launch_host(
    ctx: &Context,
    l: &Launcher,
    info: &KernelInfo,
    grid: [u32; 3],
    args: &[Arg<'_>],
) -> Result<(), RuntimeError> {
    let _guard = ctx.lock.lock().unwrap_or_else(|e| e.into_inner());
    ctx.bind_thread()?;
    let mut bufs = Vec::new();
    let mut ptrs = Vec::new();
    for (p, a) in info.params.iter().zip(args) {
        if let Arg::Buffer { ptr, len, dtype, .. } = a {
            let bytes = len * dtype.size_bytes();
            // SAFETY: `Arg` guarantees `ptr` is valid for `len` elements for the launch.
            let host = unsafe { std::slice::from_raw_parts(*ptr as *const u8, bytes) };
            let d = DeviceBuffer::new(ctx, bytes)?;
            d.upload(host)?;
            ptrs.push(d.ptr as *mut u8);
            bufs.push((d, *ptr, bytes, p.written));
        }
    }
    let tiling = tiling_bytes(info, grid, args);
    // SAFETY: the launcher was resolved for this kernel; the device buffers live until after
    // the call returns (it synchronises the stream).
    let rc = unsafe { call_launcher(l, 0, ctx.stream, &ptrs, tiling.as_ptr()) };
    if rc != 0 {
        let what = match rc {
            1 => "allocating the tiling on the device failed",
            2 => "the kernel failed (aclrtSynchronizeStream reported an error)",
            _ => "the launcher failed",
        };
        return Err(RuntimeError::KernelTrap {
            kernel: info.name.clone(),
            program: [0, 0, 0],
            message: format!("{what} (tk_launch_{} returned {rc})", info.symbol),
        });
    }
    // SAFETY: plain stream synchronisation (the launcher already waited; this is cheap).
    ctx.driver.check("aclrtSynchronizeStream", unsafe {
        (ctx.driver.api.synchronize_stream)(ctx.stream)
    })?;
    for (d, ptr, bytes, written) in bufs {
        if written && bytes > 0 {
            // SAFETY: the argument check required written buffers to be passed mutably.
            let host = unsafe { std::slice::from_raw_parts_mut(ptr, bytes) };
            d.download(host)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ParamInfo;

    fn param(name: &str, kind: ParamKind, dtype: Dtype) -> ParamInfo {
        ParamInfo { name: name.into(), kind, dtype, written: false, multiple_of: None }
    }

    fn info(params: Vec<ParamInfo>) -> KernelInfo {
        KernelInfo {
            name: "k".into(),
            symbol: "k".into(),
            params,
            constexprs: vec![],
            launch: None,
            traps: vec![],
            stack_bytes: 0,
        }
    }

    #[test]
    fn a_missing_runtime_is_an_error_not_a_panic() {
        let e = Driver::open(&["libtk-no-such-ascendcl.so"]).err().expect("cannot load");
        let s = e.to_string();
        assert!(s.contains("libascendcl.so") && s.contains("not found"), "{s}");
        assert!(s.contains("libtk-no-such-ascendcl.so") && s.contains("TK_DEVICE=cpu"), "{s}");
        // A loadable library that is not ACL: binding stops at the first missing symbol.
        let e = Driver::open(&["libm.so.6"]).err().expect("libm is not ACL");
        assert!(e.to_string().contains("has no `aclInit`"), "{e}");
        // And the context itself, on a host without CANN.
        if Driver::open(ASCEND_LIBS).is_err() {
            assert!(Context::new().is_err());
        }
    }

    #[test]
    fn tiling_follows_the_c_layout_of_the_generated_struct() {
        // struct { uint32_t grid[3]; int32_t n; int64_t stride; uint16_t h; float eps; bool b; }
        let k = info(vec![
            param("x", ParamKind::Pointer, Dtype::F32),
            param("n", ParamKind::Scalar, Dtype::I32),
            param("stride", ParamKind::Scalar, Dtype::I64),
            param("h", ParamKind::Scalar, Dtype::F16),
            param("eps", ParamKind::Scalar, Dtype::F32),
            param("b", ParamKind::Scalar, Dtype::Bool),
        ]);
        let mut x = [0f32; 4];
        let args = [
            Arg::slice_mut(&mut x),
            Arg::i32(-3),
            Arg::i64(1 << 40),
            Arg::Scalar(crate::args::ScalarValue { dtype: Dtype::F16, bits: 0x3c00 }),
            Arg::f32(0.5),
            Arg::scalar(true),
        ];
        let t = tiling_bytes(&k, [7, 2, 1], &args);
        assert_eq!(t.len(), 40);
        assert_eq!(&t[0..12], &[7, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&t[12..16], &(-3i32).to_le_bytes());
        assert_eq!(&t[16..24], &(1i64 << 40).to_le_bytes());
        assert_eq!(&t[24..26], &0x3c00u16.to_le_bytes());
        assert_eq!(&t[28..32], &0.5f32.to_le_bytes());
        assert_eq!(t[32], 1);
    }

    #[test]
    fn an_unbuilt_bundle_says_how_to_build_it() {
        let dir = tempfile::tempdir().unwrap();
        if std::env::var(LAUNCHER_ENV).is_ok() {
            return;
        }
        let s = find_launchers(dir.path()).unwrap_err().to_string();
        assert!(s.contains("cmake -S") && s.contains("build/libtk_launch.so"), "{s}");
        assert!(s.contains(LAUNCHER_ENV), "{s}");
        std::fs::create_dir(dir.path().join("build")).unwrap();
        std::fs::write(dir.path().join("build/libtk_launch.so"), b"").unwrap();
        assert_eq!(find_launchers(dir.path()).unwrap(), dir.path().join("build/libtk_launch.so"));
    }

    #[test]
    fn launchers_are_called_with_pointers_in_order_and_the_tiling() {
        // A C stand-in for a generated launcher (3 buffers): it checks what it receives.
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("l.c");
        std::fs::write(
            &c,
            r#"#include <stdint.h>
struct T { uint32_t grid[3]; int32_t n; int64_t s; };
int32_t tk_launch_k(uint32_t blockDim, void* stream, uint8_t* a, uint8_t* b, uint8_t* c, const struct T* t)
{
    if (blockDim != 0 || stream != (void*)0x1234) return 10;
    if (a[0] != 1 || b[0] != 2) return 11;
    if (t->grid[0] != 5 || t->grid[1] != 1 || t->n != 9 || t->s != 77) return 12;
    c[0] = (uint8_t)(a[0] + b[0]);
    return 0;
}
"#,
        )
        .unwrap();
        let so = dir.path().join("libtk_launch.so");
        let st = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&so)
            .arg(&c)
            .status();
        if !st.is_ok_and(|s| s.success()) {
            eprintln!("no C compiler: skipping");
            return;
        }
        let k = info(vec![
            param("a", ParamKind::Pointer, Dtype::U8),
            param("b", ParamKind::Pointer, Dtype::U8),
            param("n", ParamKind::Scalar, Dtype::I32),
            param("c", ParamKind::Pointer, Dtype::U8),
            param("s", ParamKind::Scalar, Dtype::I64),
        ]);
        let libs = Launchers::open(&so).unwrap();
        let l = libs.launcher(&k).unwrap();
        let (mut a, mut b, mut cc) = ([1u8; 4], [2u8; 4], [0u8; 4]);
        let ptrs = [a.as_mut_ptr(), b.as_mut_ptr(), cc.as_mut_ptr()];
        // SAFETY: the three arrays outlive the arguments and the call.
        let args = unsafe {
            [
                Arg::raw(ptrs[0], 4, Dtype::U8, false),
                Arg::raw(ptrs[1], 4, Dtype::U8, false),
                Arg::i32(9),
                Arg::raw(ptrs[2], 4, Dtype::U8, true),
                Arg::i64(77),
            ]
        };
        let t = tiling_bytes(&k, [5, 1, 1], &args);
        // SAFETY: the stand-in takes three pointers and the tiling, all valid here.
        let rc = unsafe { call_launcher(&l, 0, 0x1234 as *mut c_void, &ptrs, t.as_ptr()) };
        assert_eq!(rc, 0);
        assert_eq!(cc[0], 3);
        let missing = info(vec![]);
        let missing = KernelInfo { symbol: "nope".into(), ..missing };
        assert!(libs.launcher(&missing).unwrap_err().to_string().contains("tk_launch_nope"));
    }
}

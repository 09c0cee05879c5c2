//! The CUDA path: the NVIDIA driver API loaded at run time with libloading, PTX modules JIT
//! compiled by the driver, device buffers, and launches.
//!
//! Only the handful of driver entry points tk needs are bound (`cuInit`, `cuDeviceGet`,
//! `cuDeviceGetAttribute`, `cuDevicePrimaryCtxRetain`/`Release`, `cuCtxSetCurrent`,
//! `cuModuleLoadDataEx`/`Unload`, `cuModuleGetFunction`, `cuFuncSetAttribute`,
//! `cuMemAlloc_v2`/`cuMemFree_v2`, `cuMemcpyHtoD_v2`/`DtoH_v2`, `cuLaunchKernel`,
//! `cuCtxSynchronize`, `cuGetErrorString`); each is resolved once when the driver is opened, so
//! a missing library or symbol is an error at [`Context::new`], never a panic later. Nothing
//! links libcuda at build time: the same binary runs on hosts without a GPU and says so.
//!
//! Launch ABI (written by `tk-backend-ptx`): one CTA of `threads_per_program` threads per
//! program, grid = the program grid, dynamic shared memory = `shared_bytes` (the module declares
//! its scratch as `.extern .shared`), parameters in order with pointers as 64-bit device
//! addresses and scalars by their own size. [`Function::launch`] takes device buffers;
//! `Kernel::launch` with host slices copies every buffer to the device, launches, waits and
//! copies the buffers the kernel writes back (simple and always correct; keep data on the
//! device with [`DeviceBuffer`] for speed).
//!
//! The context is the device's primary context, made current on the calling thread by every
//! operation, so launches may come from any thread.

use crate::args::Arg;
use crate::error::RuntimeError;
use crate::manifest::{KernelInfo, ParamKind};
use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::sync::Arc;

type CuResult = c_int;
type CuDevice = c_int;
type CuContext = *mut c_void;
type CuModule = *mut c_void;
type CuFunction = *mut c_void;
type CuDevicePtr = u64;

const CUDA_SUCCESS: CuResult = 0;
const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: c_int = 75;
const CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: c_int = 76;
const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: c_int = 8;
const CU_JIT_INFO_LOG_BUFFER: c_uint = 3;
const CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES: c_uint = 4;
const CU_JIT_ERROR_LOG_BUFFER: c_uint = 5;
const CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES: c_uint = 6;
/// Dynamic shared memory a kernel may use without opting in.
const DEFAULT_SHARED_LIMIT: u32 = 48 * 1024;

/// Library names tried in order.
pub const CUDA_LIBS: &[&str] = &["libcuda.so.1", "libcuda.so"];

/// The bound driver entry points.
struct Api {
    init: unsafe extern "C" fn(c_uint) -> CuResult,
    device_get: unsafe extern "C" fn(*mut CuDevice, c_int) -> CuResult,
    device_get_attribute: unsafe extern "C" fn(*mut c_int, c_int, CuDevice) -> CuResult,
    primary_ctx_retain: unsafe extern "C" fn(*mut CuContext, CuDevice) -> CuResult,
    primary_ctx_release: unsafe extern "C" fn(CuDevice) -> CuResult,
    ctx_set_current: unsafe extern "C" fn(CuContext) -> CuResult,
    ctx_synchronize: unsafe extern "C" fn() -> CuResult,
    module_load_data_ex: unsafe extern "C" fn(
        *mut CuModule,
        *const c_void,
        c_uint,
        *mut c_uint,
        *mut *mut c_void,
    ) -> CuResult,
    module_unload: unsafe extern "C" fn(CuModule) -> CuResult,
    module_get_function: unsafe extern "C" fn(*mut CuFunction, CuModule, *const c_char) -> CuResult,
    func_set_attribute: unsafe extern "C" fn(CuFunction, c_int, c_int) -> CuResult,
    mem_alloc: unsafe extern "C" fn(*mut CuDevicePtr, usize) -> CuResult,
    mem_free: unsafe extern "C" fn(CuDevicePtr) -> CuResult,
    memcpy_htod: unsafe extern "C" fn(CuDevicePtr, *const c_void, usize) -> CuResult,
    memcpy_dtoh: unsafe extern "C" fn(*mut c_void, CuDevicePtr, usize) -> CuResult,
    #[allow(clippy::type_complexity)]
    launch_kernel: unsafe extern "C" fn(
        CuFunction,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        c_uint,
        *mut c_void,
        *mut *mut c_void,
        *mut *mut c_void,
    ) -> CuResult,
    get_error_string: unsafe extern "C" fn(CuResult, *mut *const c_char) -> CuResult,
}

/// The loaded driver library and its entry points.
pub struct Driver {
    api: Api,
    // Keeps the function pointers above valid.
    _lib: libloading::Library,
}

fn not_found(detail: String) -> RuntimeError {
    RuntimeError::DriverNotFound {
        driver: "the NVIDIA CUDA driver (libcuda.so.1)".into(),
        hint: format!(
            "{detail}; install the NVIDIA driver, or run on the CPU (unset TK_DEVICE or set \
             TK_DEVICE=cpu)"
        ),
    }
}

impl Driver {
    /// Opens the first of `names` that loads and binds every entry point.
    pub fn open(names: &[&str]) -> Result<Driver, RuntimeError> {
        let mut errors = Vec::new();
        for name in names {
            // SAFETY: loading the vendor's driver library runs its initialisers.
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
                // SAFETY: the symbol is the driver API function of that name, whose C
                // signature the field type restates.
                match unsafe { lib.get($s.as_bytes()) } {
                    Ok(f) => *f,
                    Err(_) => {
                        return Err(not_found(format!(
                            "{name} has no `{}` (not a CUDA driver, or one too old)",
                            $s
                        )))
                    }
                }
            };
        }
        let api = Api {
            init: sym!("cuInit"),
            device_get: sym!("cuDeviceGet"),
            device_get_attribute: sym!("cuDeviceGetAttribute"),
            primary_ctx_retain: sym!("cuDevicePrimaryCtxRetain"),
            primary_ctx_release: sym!("cuDevicePrimaryCtxRelease_v2"),
            ctx_set_current: sym!("cuCtxSetCurrent"),
            ctx_synchronize: sym!("cuCtxSynchronize"),
            module_load_data_ex: sym!("cuModuleLoadDataEx"),
            module_unload: sym!("cuModuleUnload"),
            module_get_function: sym!("cuModuleGetFunction"),
            func_set_attribute: sym!("cuFuncSetAttribute"),
            mem_alloc: sym!("cuMemAlloc_v2"),
            mem_free: sym!("cuMemFree_v2"),
            memcpy_htod: sym!("cuMemcpyHtoD_v2"),
            memcpy_dtoh: sym!("cuMemcpyDtoH_v2"),
            launch_kernel: sym!("cuLaunchKernel"),
            get_error_string: sym!("cuGetErrorString"),
        };
        Ok(Driver { api, _lib: lib })
    }

    /// `Ok` for `CUDA_SUCCESS`, else an error naming the call and the driver's description.
    fn check(&self, call: &str, r: CuResult) -> Result<(), RuntimeError> {
        if r == CUDA_SUCCESS {
            return Ok(());
        }
        let mut s: *const c_char = std::ptr::null();
        // SAFETY: cuGetErrorString writes a pointer to a static string (or leaves it null).
        let desc =
            if unsafe { (self.api.get_error_string)(r, &mut s) } == CUDA_SUCCESS && !s.is_null() {
                // SAFETY: a NUL-terminated static string owned by the driver.
                unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
            } else {
                "unknown error".into()
            };
        Err(RuntimeError::Unsupported(format!(
            "CUDA driver call {call} failed with error {r}: {desc}"
        )))
    }
}

/// The device's primary context (device `TK_CUDA_DEVICE`, default 0).
pub struct Context {
    driver: Driver,
    ctx: CuContext,
    device: CuDevice,
    /// Compute capability (major, minor).
    pub capability: (i32, i32),
}

// SAFETY: the driver API is thread-safe; every operation makes the primary context current on
// its own thread first.
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

impl Context {
    /// Opens the driver and retains the primary context of the chosen device.
    pub fn new() -> Result<Arc<Context>, RuntimeError> {
        Context::with_driver(Driver::open(CUDA_LIBS)?)
    }

    fn with_driver(driver: Driver) -> Result<Arc<Context>, RuntimeError> {
        let ordinal =
            std::env::var("TK_CUDA_DEVICE").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let a = &driver.api;
        // SAFETY: plain driver calls with valid out-pointers.
        unsafe {
            driver.check("cuInit", (a.init)(0))?;
            let mut device = 0;
            driver.check("cuDeviceGet", (a.device_get)(&mut device, ordinal))?;
            let (mut major, mut minor) = (0, 0);
            driver.check(
                "cuDeviceGetAttribute",
                (a.device_get_attribute)(
                    &mut major,
                    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                    device,
                ),
            )?;
            driver.check(
                "cuDeviceGetAttribute",
                (a.device_get_attribute)(
                    &mut minor,
                    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                    device,
                ),
            )?;
            let mut ctx = std::ptr::null_mut();
            driver.check("cuDevicePrimaryCtxRetain", (a.primary_ctx_retain)(&mut ctx, device))?;
            let c = Context { driver, ctx, device, capability: (major, minor) };
            c.current()?;
            Ok(Arc::new(c))
        }
    }

    fn current(&self) -> Result<(), RuntimeError> {
        // SAFETY: `ctx` is a retained primary context.
        self.driver.check("cuCtxSetCurrent", unsafe { (self.driver.api.ctx_set_current)(self.ctx) })
    }

    /// Whether PTX built for `arch` (`sm_80`, `sm_90`) can run on this device.
    pub fn supports(&self, arch: &str) -> bool {
        arch_runs_on(arch, self.capability)
    }

    /// JIT-compiles a PTX module; a rejection carries the driver's error log.
    pub fn load_module(
        self: &Arc<Self>,
        ptx: &[u8],
        path: &str,
    ) -> Result<Arc<Module>, RuntimeError> {
        self.current()?;
        let mut image = ptx.to_vec();
        image.push(0);
        let mut err_log = vec![0u8; 16 << 10];
        let mut info_log = vec![0u8; 4 << 10];
        let mut opts = [
            CU_JIT_ERROR_LOG_BUFFER,
            CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
            CU_JIT_INFO_LOG_BUFFER,
            CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES,
        ];
        // Sizes are passed as integers in pointer-sized slots, as the driver API specifies.
        let mut vals: [*mut c_void; 4] = [
            err_log.as_mut_ptr().cast(),
            err_log.len() as *mut c_void,
            info_log.as_mut_ptr().cast(),
            info_log.len() as *mut c_void,
        ];
        let mut m = std::ptr::null_mut();
        // SAFETY: a NUL-terminated PTX image, and option arrays of equal length whose buffers
        // outlive the call.
        let r = unsafe {
            (self.driver.api.module_load_data_ex)(
                &mut m,
                image.as_ptr().cast(),
                opts.len() as c_uint,
                opts.as_mut_ptr(),
                vals.as_mut_ptr(),
            )
        };
        if let Err(e) = self.driver.check("cuModuleLoadDataEx", r) {
            let log = String::from_utf8_lossy(&err_log);
            let log = log.trim_end_matches('\0').trim();
            return Err(RuntimeError::Load {
                path: path.to_string(),
                reason: if log.is_empty() { e.to_string() } else { format!("{e}; JIT log: {log}") },
            });
        }
        Ok(Arc::new(Module { ctx: self.clone(), raw: m }))
    }

    /// Allocates `bytes` of device memory (at least one byte, so every buffer has an address).
    pub fn alloc(self: &Arc<Self>, bytes: usize) -> Result<DeviceBuffer, RuntimeError> {
        self.current()?;
        let mut ptr = 0;
        // SAFETY: a valid out-pointer.
        self.driver
            .check("cuMemAlloc", unsafe { (self.driver.api.mem_alloc)(&mut ptr, bytes.max(1)) })?;
        Ok(DeviceBuffer { ctx: self.clone(), ptr, bytes })
    }

    /// Waits for every launch so far.
    pub fn synchronize(&self) -> Result<(), RuntimeError> {
        self.current()?;
        // SAFETY: a plain driver call.
        self.driver.check("cuCtxSynchronize", unsafe { (self.driver.api.ctx_synchronize)() })
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: releases the retain taken in `new`.
        unsafe { (self.driver.api.primary_ctx_release)(self.device) };
    }
}

/// A loaded PTX module.
pub struct Module {
    ctx: Arc<Context>,
    raw: CuModule,
}

// SAFETY: module handles may be used from any thread of the process.
unsafe impl Send for Module {}
unsafe impl Sync for Module {}

impl Module {
    /// The kernel `symbol` taking `num_params` parameters, launched with `threads` per CTA and
    /// `shared` bytes of dynamic shared memory.
    pub fn function(
        self: &Arc<Self>,
        symbol: &str,
        num_params: usize,
        threads: u32,
        shared: u32,
    ) -> Result<Function, RuntimeError> {
        let d = &self.ctx.driver;
        self.ctx.current()?;
        let name = std::ffi::CString::new(symbol).map_err(|_| RuntimeError::KernelNotFound {
            name: symbol.to_string(),
            available: Vec::new(),
        })?;
        let mut f = std::ptr::null_mut();
        // SAFETY: a loaded module and a NUL-terminated name.
        d.check("cuModuleGetFunction", unsafe {
            (d.api.module_get_function)(&mut f, self.raw, name.as_ptr())
        })?;
        if shared > DEFAULT_SHARED_LIMIT {
            // SAFETY: a valid function handle; the attribute takes a byte count.
            d.check("cuFuncSetAttribute", unsafe {
                (d.api.func_set_attribute)(
                    f,
                    CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    shared as c_int,
                )
            })?;
        }
        Ok(Function {
            module: self.clone(),
            raw: f,
            name: symbol.to_string(),
            num_params,
            threads,
            shared,
        })
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        if self.ctx.current().is_ok() {
            // SAFETY: the module is no longer referenced by any `Function` (they hold an Arc).
            unsafe { (self.ctx.driver.api.module_unload)(self.raw) };
        }
    }
}

/// One kernel of a loaded module.
pub struct Function {
    module: Arc<Module>,
    raw: CuFunction,
    name: String,
    num_params: usize,
    threads: u32,
    shared: u32,
}

// SAFETY: function handles may be launched from any thread.
unsafe impl Send for Function {}
unsafe impl Sync for Function {}

impl Function {
    /// Launches over `grid` with one 8-byte slot per parameter (a device address, or a scalar's
    /// bits, little-endian: the driver copies each parameter's own size from its slot), then
    /// waits for it.
    pub fn launch(&self, grid: [u32; 3], params: &[u64]) -> Result<(), RuntimeError> {
        // The driver reads one value per declared parameter: too few slots would be read past.
        if params.len() != self.num_params {
            return Err(RuntimeError::ArgCount {
                kernel: self.name.clone(),
                expected: self.num_params,
                found: params.len(),
            });
        }
        if grid.contains(&0) {
            return Err(RuntimeError::BadGrid { reason: format!("{grid:?} has a zero dimension") });
        }
        let ctx = &self.module.ctx;
        ctx.current()?;
        let mut slots = params.to_vec();
        let mut ptrs: Vec<*mut c_void> = slots.iter_mut().map(|s| (s as *mut u64).cast()).collect();
        let a = &ctx.driver.api;
        // SAFETY: `ptrs` points at one live slot per kernel parameter for the call.
        let r = unsafe {
            (a.launch_kernel)(
                self.raw,
                grid[0],
                grid[1],
                grid[2],
                self.threads,
                1,
                1,
                self.shared,
                std::ptr::null_mut(),
                ptrs.as_mut_ptr(),
                std::ptr::null_mut(),
            )
        };
        ctx.driver.check("cuLaunchKernel", r)?;
        ctx.synchronize()
    }
}

/// Device memory, freed on drop.
pub struct DeviceBuffer {
    ctx: Arc<Context>,
    ptr: CuDevicePtr,
    bytes: usize,
}

// SAFETY: a device address is usable from any thread of the process.
unsafe impl Send for DeviceBuffer {}
unsafe impl Sync for DeviceBuffer {}

impl DeviceBuffer {
    /// The device address (what a pointer parameter receives).
    pub fn device_ptr(&self) -> u64 {
        self.ptr
    }
    pub fn len_bytes(&self) -> usize {
        self.bytes
    }
    /// Copies `host` to the start of the buffer.
    pub fn upload(&mut self, host: &[u8]) -> Result<(), RuntimeError> {
        self.fits(host.len())?;
        self.ctx.current()?;
        let d = &self.ctx.driver;
        // SAFETY: `host` is valid for its length, which fits the allocation.
        d.check("cuMemcpyHtoD", unsafe {
            (d.api.memcpy_htod)(self.ptr, host.as_ptr().cast(), host.len())
        })
    }
    /// Copies the start of the buffer to `host`.
    pub fn download(&self, host: &mut [u8]) -> Result<(), RuntimeError> {
        self.fits(host.len())?;
        self.ctx.current()?;
        let d = &self.ctx.driver;
        // SAFETY: `host` is valid for writes of its length, which fits the allocation.
        d.check("cuMemcpyDtoH", unsafe {
            (d.api.memcpy_dtoh)(host.as_mut_ptr().cast(), self.ptr, host.len())
        })
    }
    fn fits(&self, n: usize) -> Result<(), RuntimeError> {
        if n > self.bytes {
            return Err(RuntimeError::Unsupported(format!(
                "copy of {n} bytes does not fit a device buffer of {} bytes",
                self.bytes
            )));
        }
        Ok(())
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        if self.ctx.current().is_ok() {
            // SAFETY: frees this buffer's own allocation once.
            unsafe { (self.ctx.driver.api.mem_free)(self.ptr) };
        }
    }
}

/// Whether PTX for `arch` JIT-compiles on a device of compute capability `cap`: PTX runs on
/// the same or a newer architecture (an `a` suffix is treated like the plain arch here; the
/// driver rejects it elsewhere with its own message).
pub fn arch_runs_on(arch: &str, cap: (i32, i32)) -> bool {
    let want = arch.strip_prefix("sm_").and_then(|s| s.trim_end_matches('a').parse::<i32>().ok());
    want.is_some_and(|w| cap.0 * 10 + cap.1 >= w)
}

/// `Kernel::launch` for host slices (arguments already checked against `info`): every buffer is
/// copied to the device, the kernel runs, and the buffers it writes are copied back.
pub(crate) fn launch_host(
    ctx: &Arc<Context>,
    f: &Function,
    info: &KernelInfo,
    grid: [u32; 3],
    args: &[Arg<'_>],
) -> Result<(), RuntimeError> {
    let mut bufs = Vec::new();
    let mut params = Vec::with_capacity(args.len());
    for (p, a) in info.params.iter().zip(args) {
        match a {
            Arg::Scalar(s) => params.push(s.bits),
            Arg::Buffer { ptr, len, dtype, .. } => {
                let bytes = len * dtype.size_bytes();
                // SAFETY: `Arg` guarantees `ptr` is valid for `len` elements for the launch.
                let host = unsafe { std::slice::from_raw_parts(*ptr as *const u8, bytes) };
                let mut d = ctx.alloc(bytes)?;
                if bytes > 0 {
                    d.upload(host)?;
                }
                params.push(d.device_ptr());
                let write_back = p.kind == ParamKind::Pointer && p.written;
                bufs.push((d, *ptr, bytes, write_back));
            }
        }
    }
    f.launch(grid, &params)?;
    for (d, ptr, bytes, write_back) in bufs {
        if write_back && bytes > 0 {
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

    #[test]
    fn a_missing_driver_is_an_error_not_a_panic() {
        let e = Driver::open(&["libtk-no-such-cuda-driver.so.1"]).err().expect("cannot load");
        let s = e.to_string();
        assert!(s.contains("libcuda.so.1") && s.contains("not found"), "{s}");
        assert!(s.contains("libtk-no-such-cuda-driver.so.1"), "{s}");
        assert!(s.contains("TK_DEVICE=cpu"), "{s}");
    }

    #[test]
    fn a_library_without_the_driver_api_is_an_error_not_a_panic() {
        // Any loadable library that is not libcuda: binding stops at the first missing symbol.
        let e = Driver::open(&["libm.so.6"]).err().expect("libm is not a CUDA driver");
        let s = e.to_string();
        assert!(s.contains("has no `cuInit`"), "{s}");
    }

    #[test]
    fn context_on_this_host_is_an_error_or_a_device() {
        // Without a GPU: DriverNotFound (or a failing cuInit); with one: a usable context.
        match Context::new() {
            Ok(c) => assert!(c.capability.0 >= 3),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn a_cuda_runtime_without_a_driver_is_an_error_not_a_panic() {
        if Driver::open(CUDA_LIBS).is_ok() {
            return; // a GPU host: covered by scripts/gpu-check.sh
        }
        let e = crate::Runtime::with_device(crate::Device::Cuda).err().expect("no driver here");
        assert!(matches!(e, RuntimeError::DriverNotFound { .. }), "{e}");
        assert!(e.to_string().contains("libcuda.so.1"), "{e}");
    }

    /// `x[i] += 1` for `i < n`, 32 threads per program.
    const ADD_ONE: &str = ".version 7.0\n.target sm_80\n.address_size 64\n\
.visible .entry add_one(.param .u64 add_one_param_0, .param .u32 add_one_param_1)\n{\n\
.reg .pred %p<2>; .reg .b32 %r<5>; .reg .b64 %rd<4>; .reg .f32 %f<3>;\n\
ld.param.u64 %rd1, [add_one_param_0]; ld.param.u32 %r1, [add_one_param_1];\n\
mov.u32 %r2, %tid.x; mov.u32 %r3, %ctaid.x; mad.lo.s32 %r4, %r3, 32, %r2;\n\
setp.ge.u32 %p1, %r4, %r1; @%p1 bra DONE;\n\
cvta.to.global.u64 %rd1, %rd1; mul.wide.u32 %rd2, %r4, 4; add.s64 %rd3, %rd1, %rd2;\n\
ld.global.f32 %f1, [%rd3]; add.f32 %f2, %f1, 0f3F800000; st.global.f32 [%rd3], %f2;\n\
DONE:\nret;\n}\n";

    /// On a GPU host: device buffers and a launch through the context, then the same kernel as
    /// a bundle through `Runtime::load` and `Kernel::launch` with host slices.
    #[test]
    fn launches_on_a_gpu_when_there_is_one() {
        use crate::manifest::*;
        let Ok(ctx) = Context::new() else { return };
        let m = ctx.load_module(ADD_ONE.as_bytes(), "add_one.ptx").expect("JIT");
        let f = m.function("add_one", 2, 32, 0).expect("function");
        assert!(matches!(f.launch([1, 1, 1], &[0]), Err(RuntimeError::ArgCount { .. })));
        let host: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let mut d = ctx.alloc(400).expect("alloc");
        d.upload(&host.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        f.launch([4, 1, 1], &[d.device_ptr(), 99]).expect("launch");
        let mut back = vec![0u8; 400];
        d.download(&mut back).unwrap();
        let got: Vec<f32> =
            back.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(got[0], 1.0);
        assert_eq!(got[98], 99.0);
        assert_eq!(got[99], 99.0, "n = 99: the last element is untouched");
        // A PTX syntax error comes back with the JIT log.
        let e = ctx.load_module(b".version 7.0\n.target sm_80\nbogus;", "bad.ptx").err().unwrap();
        assert!(e.to_string().contains("bad.ptx"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.ptx"), ADD_ONE).unwrap();
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            compiler_version: "test".into(),
            content_hash: "0".into(),
            target: TargetInfo {
                kind: TargetKind::Ptx,
                triple: "nvptx64-nvidia-cuda".into(),
                cpu: "sm_80".into(),
                features: String::new(),
            },
            kernels: vec![KernelInfo {
                name: "add_one".into(),
                symbol: "add_one".into(),
                params: vec![
                    ParamInfo {
                        name: "x".into(),
                        kind: ParamKind::Pointer,
                        dtype: Dtype::F32,
                        written: true,
                        multiple_of: None,
                    },
                    ParamInfo {
                        name: "n".into(),
                        kind: ParamKind::Scalar,
                        dtype: Dtype::U32,
                        written: false,
                        multiple_of: None,
                    },
                ],
                constexprs: Vec::new(),
                launch: Some(LaunchInfo { threads_per_program: 32, shared_bytes: 0 }),
                traps: Vec::new(),
                stack_bytes: 0,
            }],
            files: vec![FileEntry { path: "k.ptx".into(), sha256: sha256_hex(ADD_ONE.as_bytes()) }],
        };
        std::fs::write(dir.path().join(MANIFEST_FILE), manifest.to_json()).unwrap();
        let rt = crate::Runtime::with_device(crate::Device::Cuda).expect("runtime");
        let bundle = rt.load(dir.path()).expect("load the PTX bundle");
        let mut x = vec![1.5f32; 70];
        bundle
            .kernel("add_one")
            .unwrap()
            .launch([3, 1, 1], &[Arg::slice_mut(&mut x), Arg::scalar(70u32)])
            .expect("launch with host slices");
        assert!(x.iter().all(|&v| v == 2.5), "{x:?}");
    }

    #[test]
    fn arch_support_follows_ptx_forward_compatibility() {
        assert!(arch_runs_on("sm_80", (9, 0)) && arch_runs_on("sm_90", (9, 0)));
        assert!(arch_runs_on("sm_80", (8, 6)) && !arch_runs_on("sm_90", (8, 9)));
        assert!(!arch_runs_on("bogus", (9, 0)));
    }
}

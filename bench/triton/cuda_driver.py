"""A minimal CUDA driver API binding with ctypes (no torch, no CUDA toolkit): load PTX or cubin
modules, device buffers, launches and event timing. Used by gpu_check.py to run tk's PTX and
Triton's cubins the same way, so that their timings are comparable."""

import ctypes
import ctypes.util

CU_JIT_ERROR_LOG_BUFFER = 5
CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6
CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76


class CudaError(RuntimeError):
    pass


def load_libcuda():
    """The driver library, or None when this host has none."""
    for name in ("libcuda.so.1", "libcuda.so"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


class Driver:
    def __init__(self, device=0):
        lib = load_libcuda()
        if lib is None:
            raise CudaError("libcuda.so.1 not found: this host has no NVIDIA driver")
        self.lib = lib
        self._check("cuInit", lib.cuInit(0))
        dev = ctypes.c_int()
        self._check("cuDeviceGet", lib.cuDeviceGet(ctypes.byref(dev), device))
        self.dev = dev
        major, minor = ctypes.c_int(), ctypes.c_int()
        lib.cuDeviceGetAttribute(ctypes.byref(major), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)
        lib.cuDeviceGetAttribute(ctypes.byref(minor), CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)
        self.capability = (major.value, minor.value)
        name = ctypes.create_string_buffer(256)
        lib.cuDeviceGetName(name, 256, dev)
        self.name = name.value.decode()
        ctx = ctypes.c_void_p()
        self._check("cuDevicePrimaryCtxRetain", lib.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev))
        self._check("cuCtxSetCurrent", lib.cuCtxSetCurrent(ctx))
        self.ctx = ctx
        lib.cuMemAlloc_v2.argtypes = [ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t]
        lib.cuMemFree_v2.argtypes = [ctypes.c_uint64]
        lib.cuMemcpyHtoD_v2.argtypes = [ctypes.c_uint64, ctypes.c_void_p, ctypes.c_size_t]
        lib.cuMemcpyDtoH_v2.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t]
        lib.cuMemsetD8_v2.argtypes = [ctypes.c_uint64, ctypes.c_ubyte, ctypes.c_size_t]
        lib.cuLaunchKernel.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [
            ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
        self._elapsed = getattr(lib, "cuEventElapsedTime_v2", None) or lib.cuEventElapsedTime

    def _check(self, call, r):
        if r != 0:
            s = ctypes.c_char_p()
            self.lib.cuGetErrorString(r, ctypes.byref(s))
            raise CudaError(f"{call} failed: error {r} ({(s.value or b'?').decode()})")

    def load_ptx(self, text):
        """JIT-compiles PTX text; raises with the driver's JIT log."""
        log = ctypes.create_string_buffer(16384)
        opts = (ctypes.c_int * 2)(CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES)
        vals = (ctypes.c_void_p * 2)(ctypes.cast(log, ctypes.c_void_p), ctypes.c_void_p(16384))
        m = ctypes.c_void_p()
        image = ctypes.create_string_buffer(text.encode() + b"\0")
        r = self.lib.cuModuleLoadDataEx(ctypes.byref(m), image, 2, opts, vals)
        if r != 0:
            try:
                self._check("cuModuleLoadDataEx", r)
            except CudaError as e:
                raise CudaError(f"{e}; JIT log: {log.value.decode(errors='replace')}") from None
        return m

    def load_cubin(self, data):
        m = ctypes.c_void_p()
        buf = ctypes.create_string_buffer(data, len(data))
        self._check("cuModuleLoadData", self.lib.cuModuleLoadData(ctypes.byref(m), buf))
        return m

    def function(self, module, name, shared=0):
        f = ctypes.c_void_p()
        self._check("cuModuleGetFunction",
                    self.lib.cuModuleGetFunction(ctypes.byref(f), module, name.encode()))
        if shared > 48 * 1024:
            self._check("cuFuncSetAttribute", self.lib.cuFuncSetAttribute(
                f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, shared))
        return f

    def alloc(self, nbytes):
        p = ctypes.c_uint64()
        self._check("cuMemAlloc", self.lib.cuMemAlloc_v2(ctypes.byref(p), max(nbytes, 1)))
        return p.value

    def free(self, p):
        self.lib.cuMemFree_v2(p)

    def upload(self, dptr, array):
        self._check("cuMemcpyHtoD", self.lib.cuMemcpyHtoD_v2(
            dptr, array.ctypes.data_as(ctypes.c_void_p), array.nbytes))

    def download(self, array, dptr):
        self._check("cuMemcpyDtoH", self.lib.cuMemcpyDtoH_v2(
            array.ctypes.data_as(ctypes.c_void_p), dptr, array.nbytes))

    def zero(self, dptr, nbytes):
        self._check("cuMemsetD8", self.lib.cuMemsetD8_v2(dptr, 0, nbytes))

    def launch(self, f, grid, block, shared, params):
        """`params`: ctypes values (c_uint64 for pointers, c_int32/c_int64/c_float scalars)."""
        ptrs = (ctypes.c_void_p * len(params))(*[ctypes.addressof(p) for p in params])
        self._check("cuLaunchKernel", self.lib.cuLaunchKernel(
            f, grid[0], grid[1], grid[2], block, 1, 1, shared, None, ptrs, None))

    def sync(self):
        self._check("cuCtxSynchronize", self.lib.cuCtxSynchronize())

    def time_ms(self, fn, warmup=3, reps=20):
        """Median milliseconds of `fn()` (one launch) over `reps`, measured with CUDA events."""
        start, end = ctypes.c_void_p(), ctypes.c_void_p()
        self._check("cuEventCreate", self.lib.cuEventCreate(ctypes.byref(start), 0))
        self._check("cuEventCreate", self.lib.cuEventCreate(ctypes.byref(end), 0))
        for _ in range(warmup):
            fn()
        self.sync()
        times = []
        for _ in range(reps):
            self.lib.cuEventRecord(start, None)
            fn()
            self.lib.cuEventRecord(end, None)
            self._check("cuEventSynchronize", self.lib.cuEventSynchronize(end))
            ms = ctypes.c_float()
            self._check("cuEventElapsedTime", self._elapsed(ctypes.byref(ms), start, end))
            times.append(ms.value)
        self.lib.cuEventDestroy_v2(start)
        self.lib.cuEventDestroy_v2(end)
        times.sort()
        return times[len(times) // 2]

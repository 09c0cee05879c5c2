//! The runtime's error type: every failure a caller can act on, as a typed enum with a message
//! that names the problem and the fix.

use std::fmt;

#[derive(Debug)]
pub enum RuntimeError {
    /// The bundle folder or one of its files could not be read.
    Io {
        path: String,
        error: std::io::Error,
    },
    /// `manifest.json` is not valid JSON of the expected shape (corrupt or truncated).
    BadManifest {
        path: String,
        reason: String,
    },
    /// The bundle was written by an incompatible format version.
    FormatVersion {
        found: u32,
        expected: u32,
    },
    /// A file's bytes do not match the hash recorded in the manifest.
    CorruptFile {
        path: String,
    },
    /// The bundle holds no artifact for the device this host runs.
    WrongTarget {
        bundle: String,
        device: String,
    },
    /// The bundle's code needs CPU features this host lacks.
    UnsupportedCpu {
        needed: String,
        missing: String,
    },
    /// A GPU/NPU driver library could not be loaded.
    DriverNotFound {
        driver: String,
        hint: String,
    },
    /// The device exists but tk cannot launch on it yet (or the forced device name is unknown).
    Unsupported(String),
    /// The shared library could not be loaded or lacks a symbol.
    Load {
        path: String,
        reason: String,
    },
    KernelNotFound {
        name: String,
        available: Vec<String>,
    },
    ArgCount {
        kernel: String,
        expected: usize,
        found: usize,
    },
    /// An argument of the wrong kind (scalar for pointer or the reverse) or element type.
    ArgType {
        kernel: String,
        param: String,
        expected: String,
        found: String,
    },
    NullPointer {
        kernel: String,
        param: String,
    },
    /// A buffer the kernel writes was passed read-only.
    ReadOnlyBuffer {
        kernel: String,
        param: String,
    },
    BadGrid {
        reason: String,
    },
    /// A buffer's base address is not aligned as compiled kernels assume.
    Misaligned {
        kernel: String,
        param: String,
        align: usize,
    },
    /// A scalar breaks a `multiple_of` fact the kernel was compiled with.
    NotMultiple {
        kernel: String,
        param: String,
        value: i128,
        factor: u64,
    },
    /// A program stopped early: a failed `device_assert`, a bad loop step, a division fault.
    KernelTrap {
        kernel: String,
        program: [u32; 3],
        message: String,
    },
    /// A kernel needs more stack per program than the worker threads have.
    StackTooSmall {
        kernel: String,
        needed: u64,
        available: u64,
    },
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RuntimeError::*;
        match self {
            Io { path, error } => write!(f, "cannot read `{path}`: {error}"),
            BadManifest { path, reason } => write!(f, "`{path}` is not a valid tk manifest ({reason}); rebuild the bundle with `tkc build`"),
            FormatVersion { found, expected } => write!(f, "the bundle has format version {found} but this runtime reads version {expected}; rebuild it with a matching `tkc build`"),
            CorruptFile { path } => write!(f, "`{path}` does not match the hash in the manifest (corrupt or modified); rebuild the bundle"),
            WrongTarget { bundle, device } => write!(f, "the bundle holds code for {bundle}, but this host runs {device}; build it with `tkc build --target {device}` (or set TK_DEVICE)"),
            UnsupportedCpu { needed, missing } => write!(f, "the bundle was built for CPU features {needed}; this CPU lacks {missing}; rebuild with `tkc build --target cpu --cpu portable`"),
            DriverNotFound { driver, hint } => write!(f, "{driver} was not found: {hint}"),
            Unsupported(m) => write!(f, "{m}"),
            Load { path, reason } => write!(f, "cannot load `{path}`: {reason}"),
            KernelNotFound { name, available } => write!(f, "no kernel `{name}` in the bundle; it has: {}", available.join(", ")),
            ArgCount { kernel, expected, found } => write!(f, "kernel `{kernel}` takes {expected} arguments, {found} were given"),
            ArgType { kernel, param, expected, found } => write!(f, "kernel `{kernel}`: parameter `{param}` is {expected}, but the argument is {found}"),
            NullPointer { kernel, param } => write!(f, "kernel `{kernel}`: parameter `{param}` got a null pointer"),
            ReadOnlyBuffer { kernel, param } => write!(f, "kernel `{kernel}` writes through `{param}`, so it must be passed with `Arg::slice_mut`"),
            Misaligned { kernel, param, align } => write!(f, "kernel `{kernel}`: buffer `{param}` does not start at a {align}-byte aligned address; pass a whole Vec (Rust allocations of 16 bytes or more are aligned) or copy the sub-slice into one"),
            NotMultiple { kernel, param, value, factor } => write!(f, "kernel `{kernel}` was compiled assuming `{param}` is a multiple of {factor} (multiple_of), but it is {value}; pad the data to meet it, or rebuild a variant without the assumption (for the stdlib row kernels: -D ALIGNED=false)"),
            BadGrid { reason } => write!(f, "bad grid: {reason}"),
            KernelTrap { kernel, program, message } => write!(f, "kernel `{kernel}` stopped in program {program:?}: {message}"),
            StackTooSmall { kernel, needed, available } => write!(f, "kernel `{kernel}` needs {needed} bytes of stack per program but worker threads have {available}; set TK_STACK_MB higher or use smaller blocks"),
        }
    }
}

impl std::error::Error for RuntimeError {}

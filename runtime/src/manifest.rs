//! The artifact bundle format shared by `tkc build` (which writes it) and the runtime (which
//! reads it). A bundle is a folder holding `manifest.json` and the per-target files it names.
//!
//! This module is the single definition of the format; the compiler depends on it, never the
//! other way round.

use serde::{Deserialize, Serialize};

/// Bumped whenever a field changes meaning; the runtime refuses other versions.
pub const FORMAT_VERSION: u32 = 1;

/// File name of the manifest inside a bundle folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Which kind of device an artifact runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Cpu,
    Ptx,
    Ascend,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Cpu => "cpu",
            TargetKind::Ptx => "ptx",
            TargetKind::Ascend => "ascend",
        }
    }
}

/// The element types a kernel parameter may have (names as in the language).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F16,
    Bf16,
    F32,
    F64,
}

impl Dtype {
    pub fn size_bytes(self) -> usize {
        match self {
            Dtype::Bool | Dtype::I8 | Dtype::U8 => 1,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::U64 | Dtype::F64 => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "bool",
            Dtype::I8 => "i8",
            Dtype::I16 => "i16",
            Dtype::I32 => "i32",
            Dtype::I64 => "i64",
            Dtype::U8 => "u8",
            Dtype::U16 => "u16",
            Dtype::U32 => "u32",
            Dtype::U64 => "u64",
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        }
    }
    pub fn from_name(s: &str) -> Option<Dtype> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// Whether a parameter is passed by value or is a pointer to global memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    Scalar,
    Pointer,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    pub name: String,
    pub kind: ParamKind,
    /// The scalar's type, or the pointee type of a pointer.
    pub dtype: Dtype,
    /// For pointers: whether the kernel may write through it (stores, atomics). The runtime
    /// requires such buffers to be passed mutably.
    #[serde(default)]
    pub written: bool,
    /// For integer scalars declared with `multiple_of(param, n)`: `n`. The runtime refuses
    /// launches whose value is not a multiple (the compiled code relies on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple_of: Option<u64>,
}

/// Launch facts a GPU target records (threads per program, shared memory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LaunchInfo {
    pub threads_per_program: u32,
    pub shared_bytes: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelInfo {
    pub name: String,
    /// The entry symbol in the target file.
    pub symbol: String,
    pub params: Vec<ParamInfo>,
    /// Compile-time parameters and the values the kernel was built with, as written.
    pub constexprs: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<LaunchInfo>,
    /// CPU: what a non-zero return code `n` of the entry means (`traps[n - 1]`).
    #[serde(default)]
    pub traps: Vec<String>,
    /// CPU: stack bytes one program may need (block values live on the stack).
    #[serde(default)]
    pub stack_bytes: u64,
}

/// What the artifact was built for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub kind: TargetKind,
    /// LLVM target triple (CPU), `nvptx64-nvidia-cuda` (PTX), or the SoC (Ascend).
    pub triple: String,
    /// CPU name (`x86-64-v3`, `znver4`, ...), GPU arch (`sm_90`), or Ascend SoC.
    pub cpu: String,
    /// Target features the code relies on (e.g. `+avx2,+fma`).
    pub features: String,
}

/// One file of the bundle and the SHA-256 of its bytes (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    /// `tkc` version that wrote the bundle.
    pub compiler_version: String,
    /// SHA-256 of the source text, the compile-time values and the target (hex): a cache key.
    pub content_hash: String,
    pub target: TargetInfo,
    pub kernels: Vec<KernelInfo>,
    /// The target files (for CPU: the shared library).
    pub files: Vec<FileEntry>,
}

impl Manifest {
    pub fn kernel(&self, name: &str) -> Option<&KernelInfo> {
        self.kernels.iter().find(|k| k.name == name)
    }
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest serialises")
    }
}

/// Hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

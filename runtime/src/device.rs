//! Which device this host offers: a CUDA GPU (libcuda), an Ascend NPU (libascendcl), or the CPU.
//! Drivers are probed with `dlopen` at run time, so one binary runs everywhere; `TK_DEVICE`
//! (`cpu`, `cuda`, `ascend`) forces a choice.

use crate::error::RuntimeError;
use crate::manifest::TargetKind;

/// A device kind the runtime can launch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
    Ascend,
}

impl Device {
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
            Device::Ascend => "ascend",
        }
    }
    /// The bundle target that runs on this device.
    pub fn target(self) -> TargetKind {
        match self {
            Device::Cpu => TargetKind::Cpu,
            Device::Cuda => TargetKind::Ptx,
            Device::Ascend => TargetKind::Ascend,
        }
    }
}

const CUDA_LIBS: &[&str] = &["libcuda.so.1", "libcuda.so"];
const ASCEND_LIBS: &[&str] = &["libascendcl.so"];

fn can_load(names: &[&str]) -> bool {
    // SAFETY: loading a driver library runs its initialisers; these are the vendors' drivers.
    names.iter().any(|n| unsafe { libloading::Library::new(n) }.is_ok())
}

/// Picks the device: `TK_DEVICE` if set (failing clearly when its driver is missing), else the
/// first of CUDA, Ascend, CPU whose driver loads.
pub fn detect() -> Result<Device, RuntimeError> {
    match std::env::var("TK_DEVICE") {
        Ok(v) if !v.is_empty() => force(&v),
        _ => Ok(if can_load(CUDA_LIBS) {
            Device::Cuda
        } else if can_load(ASCEND_LIBS) {
            Device::Ascend
        } else {
            Device::Cpu
        }),
    }
}

/// The device named `name`, if this host can use it.
pub fn force(name: &str) -> Result<Device, RuntimeError> {
    match name.to_ascii_lowercase().as_str() {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" | "ptx" => {
            if can_load(CUDA_LIBS) {
                Ok(Device::Cuda)
            } else {
                Err(RuntimeError::DriverNotFound {
                    driver: "the NVIDIA CUDA driver (libcuda.so.1)".into(),
                    hint: "install the NVIDIA driver, or run on the CPU (unset TK_DEVICE or set TK_DEVICE=cpu)".into(),
                })
            }
        }
        "ascend" | "npu" => {
            if can_load(ASCEND_LIBS) {
                Ok(Device::Ascend)
            } else {
                Err(RuntimeError::DriverNotFound {
                    driver: "the Ascend runtime (libascendcl.so)".into(),
                    hint:
                        "install CANN and source its set_env.sh, or run on the CPU (TK_DEVICE=cpu)"
                            .into(),
                })
            }
        }
        other => Err(RuntimeError::Unsupported(format!(
            "unknown device `{other}` in TK_DEVICE; use cpu, cuda or ascend"
        ))),
    }
}

/// Features (LLVM names) from `features` that this x86-64 CPU lacks; unknown names are ignored.
pub fn missing_cpu_features(features: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for f in features.split(',').filter_map(|f| f.strip_prefix('+')) {
        if let Some(false) = has_feature(f) {
            missing.push(f.to_string());
        }
    }
    missing
}

#[cfg(target_arch = "x86_64")]
fn has_feature(f: &str) -> Option<bool> {
    Some(match f {
        "sse4.1" => is_x86_feature_detected!("sse4.1"),
        "sse4.2" => is_x86_feature_detected!("sse4.2"),
        "avx" => is_x86_feature_detected!("avx"),
        "avx2" => is_x86_feature_detected!("avx2"),
        "fma" => is_x86_feature_detected!("fma"),
        "f16c" => is_x86_feature_detected!("f16c"),
        "bmi2" => is_x86_feature_detected!("bmi2"),
        "avx512f" => is_x86_feature_detected!("avx512f"),
        "avx512bw" => is_x86_feature_detected!("avx512bw"),
        "avx512dq" => is_x86_feature_detected!("avx512dq"),
        "avx512vl" => is_x86_feature_detected!("avx512vl"),
        _ => return None,
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn has_feature(_f: &str) -> Option<bool> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forcing_cuda_without_a_driver_says_the_driver_was_not_found() {
        if can_load(CUDA_LIBS) {
            return; // a GPU host: nothing to check here
        }
        let e = force("cuda").unwrap_err().to_string();
        assert!(e.contains("libcuda.so.1") && e.contains("not found"), "{e}");
    }

    #[test]
    fn unknown_device_names_are_rejected() {
        assert!(force("tpu").unwrap_err().to_string().contains("unknown device"));
    }

    #[test]
    fn baseline_features_are_present() {
        assert!(missing_cpu_features("+sse4.1,+made-up-feature").is_empty());
    }
}

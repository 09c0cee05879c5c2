//! The target side: picking the CPU, running LLVM's pass pipeline, emitting an object file and
//! linking it into a shared library with the system C compiler.

use crate::{CpuError, CpuOptions, CpuTarget};
use inkwell::module::Module;
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{
    CodeModel, FileType, InitializationConfig, RelocMode, Target, TargetMachine, TargetTriple,
};
use inkwell::OptimizationLevel;
use std::process::Command;

/// A target machine with the names it was created from (for the artifact's description).
pub(crate) struct Machine {
    pub machine: TargetMachine,
    pub triple: String,
    pub cpu: String,
    pub features: String,
}

/// `(triple, cpu, features)` of the machine this process runs on, as LLVM names them.
pub fn host_description() -> (String, String, String) {
    (
        TargetMachine::get_default_triple().as_str().to_string_lossy().into_owned(),
        TargetMachine::get_host_cpu_name().to_string(),
        TargetMachine::get_host_cpu_features().to_string(),
    )
}

fn opt_level(level: u8) -> OptimizationLevel {
    match level {
        0 => OptimizationLevel::None,
        1 => OptimizationLevel::Less,
        2 => OptimizationLevel::Default,
        _ => OptimizationLevel::Aggressive,
    }
}

impl Machine {
    /// Lanes of a native vector of 32-bit elements: 16 with AVX-512, 8 with AVX, else 4.
    pub fn vector_lanes(&self) -> u32 {
        let has = |f: &str| self.features.split(',').any(|x| x == f);
        if has("+avx512f") || self.cpu == "x86-64-v4" {
            16
        } else if has("+avx") || has("+avx2") || self.cpu == "x86-64-v3" || self.features.is_empty()
        {
            8
        } else {
            4
        }
    }
}

pub(crate) fn machine(opts: &CpuOptions) -> Result<Machine, CpuError> {
    Target::initialize_x86(&InitializationConfig::default());
    let (host_triple, host_cpu, host_features) = host_description();
    if !host_triple.starts_with("x86_64") {
        return Err(CpuError::Llvm(format!(
            "the CPU backend targets x86-64 only for now; this host is {host_triple}"
        )));
    }
    let (cpu, features) = match &opts.target {
        CpuTarget::Host => (host_cpu, host_features),
        CpuTarget::Baseline => ("x86-64-v3".to_string(), String::new()),
        CpuTarget::Named { cpu, features } => (cpu.clone(), features.clone()),
    };
    let triple = TargetTriple::create(&host_triple);
    let target = Target::from_triple(&triple).map_err(|e| CpuError::Llvm(e.to_string()))?;
    let machine = target
        .create_target_machine(
            &triple,
            &cpu,
            &features,
            opt_level(opts.opt_level),
            RelocMode::PIC,
            CodeModel::Default,
        )
        .ok_or_else(|| {
            CpuError::Llvm(format!("no target machine for {host_triple} / {cpu} / {features}"))
        })?;
    Ok(Machine { machine, triple: host_triple, cpu, features })
}

/// Verifies the module, then runs `default<On>` (nothing at level 0).
pub(crate) fn optimize(module: &Module, tm: &Machine, opts: &CpuOptions) -> Result<(), CpuError> {
    module.verify().map_err(|e| CpuError::Llvm(format!("invalid LLVM IR: {e}")))?;
    if opts.opt_level == 0 {
        return Ok(());
    }
    let pipeline = format!("default<O{}>", opts.opt_level.min(3));
    module
        .run_passes(&pipeline, &tm.machine, PassBuilderOptions::create())
        .map_err(|e| CpuError::Llvm(format!("pass pipeline {pipeline}: {e}")))
}

pub(crate) fn emit_object(module: &Module, tm: &TargetMachine) -> Result<Vec<u8>, CpuError> {
    let buf = tm
        .write_to_memory_buffer(module, FileType::Object)
        .map_err(|e| CpuError::Llvm(format!("object emission: {e}")))?;
    Ok(buf.as_slice().to_vec())
}

/// Links an object file into a shared library with `$CC` (default `cc`) and returns its bytes.
pub(crate) fn link_shared(object: &[u8]) -> Result<Vec<u8>, CpuError> {
    let io = |e: std::io::Error| CpuError::Io(e.to_string());
    let dir = tempfile::tempdir().map_err(io)?;
    let obj = dir.path().join("kernels.o");
    let lib = dir.path().join("kernels.so");
    std::fs::write(&obj, object).map_err(io)?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = Command::new(&cc)
        .arg("-shared")
        .arg("-o")
        .arg(&lib)
        .arg(&obj)
        .arg("-lm")
        .output()
        .map_err(|e| CpuError::Link(format!("could not run `{cc}`: {e}")))?;
    if !out.status.success() {
        return Err(CpuError::Link(format!(
            "`{cc} -shared` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    std::fs::read(&lib).map_err(io)
}

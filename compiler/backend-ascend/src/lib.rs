//! The Ascend C backend of tk: optimised IR → Ascend C source in the classic CANN 8.x style.
//!
//! [`compile_module`] turns every kernel of a [`Module`] into a [`KernelSource`]: the kernel
//! `.cpp` (`extern "C" __global__ __aicore__`, `GM_ADDR`, `TPipe`/`TQue`/`TBuf`,
//! `DataCopy`/`DataCopyPad`, vector APIs), a tiling header carrying the run-time scalars and the
//! grid, and a host launcher (`<<<>>>` behind `#ifndef ASCENDC_CPU_DEBUG`). [`AscendOutput::cmake`]
//! builds them with CANN's `ascendc` toolchain.
//!
//! Without Ascend hardware the emitted code is checked by compiling it with g++ against the
//! simulation header in `sim/` ([`sim_include_dir`]), which implements exactly the API subset
//! emitted here, runs the blocks one after another, asserts the rules the hardware breaks
//! silently (alignment, UB capacity, queue order, use after free) and counts GM↔UB bytes.
//!
//! On 910B a kernel whose block work is matrix products (`load`s feeding `dot`s, an f32
//! accumulator, `store`s) runs on the AI Cube core: GM → L1 with ND → NZ, L1 → L0A/L0B, `Mmad`
//! into L0C, `Fixpipe` back to GM (`emit/cube.rs`). L1/L0 capacities are checked at compile time
//! (error EA101 at the `dot`); the simulation models the fractal layouts and reports reads of
//! data the kernel never wrote.
//!
//! How each op is lowered is described in `emit.rs`; UB placement in `layout.rs`. Decisions that
//! cost performance (gathers, scalar fallbacks, a `dot` left on the vector unit) come back as
//! remarks; programs the chip cannot run (a block too large for the UB or the cube buffers, a
//! dtype it cannot compute) as errors pointing at the `.tk` line.

mod cxx;
mod emit;
mod host;
mod layout;
mod prelude;
mod soc;

pub use soc::Soc;

use std::path::PathBuf;
use tk_diag::Diagnostic;
use tk_ir::{DType, Elem, Module};

/// Options of an Ascend compilation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AscendOptions {
    /// Target chip (`--soc 910B|310P`).
    pub soc: Soc,
    /// Double-buffer the copy-in/copy-out queues (falls back to single buffers when the UB is
    /// too small for two).
    pub double_buffer: bool,
}

impl Default for AscendOptions {
    fn default() -> Self {
        AscendOptions { soc: Soc::Ascend910B, double_buffer: true }
    }
}

/// How a kernel parameter is passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A `GM_ADDR` argument of the kernel.
    Pointer(DType),
    /// A field of the tiling struct.
    Scalar(DType),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamInfo {
    pub name: String,
    pub kind: ParamKind,
}

/// The emitted files of one kernel.
#[derive(Clone, Debug)]
pub struct KernelSource {
    pub name: String,
    pub params: Vec<ParamInfo>,
    /// `<name>.cpp`: the device code.
    pub kernel_cpp: String,
    /// `<name>_tiling.h`: `struct TkTiling_<name>`.
    pub tiling_h: String,
    /// `<name>_host.cpp`: `tk_launch_<name>(...)`.
    pub host_cpp: String,
    /// Unified Buffer bytes the kernel allocates (queues and calc buffer).
    pub ub_bytes: u64,
    pub double_buffered: bool,
    /// The kernel runs on the AI Cube core (its `dot`s go through L1/L0A/L0B/L0C).
    pub cube: bool,
}

impl KernelSource {
    /// `(file name, contents)` of the kernel's files.
    pub fn files(&self) -> Vec<(String, String)> {
        let id = cxx::ident(&self.name);
        vec![
            (format!("{id}.cpp"), self.kernel_cpp.clone()),
            (format!("{id}_tiling.h"), self.tiling_h.clone()),
            (format!("{id}_host.cpp"), self.host_cpp.clone()),
        ]
    }

    /// A `main` that runs this kernel in the simulation from files (see [`host::sim_harness`]).
    pub fn sim_harness(&self) -> String {
        host::sim_harness(self)
    }
}

/// Everything emitted for a module.
#[derive(Clone, Debug)]
pub struct AscendOutput {
    pub kernels: Vec<KernelSource>,
    /// `CMakeLists.txt` building all kernels of the module.
    pub cmake: String,
    /// Remarks about lowering decisions (gathers, scalar fallbacks, single buffering).
    pub remarks: Vec<Diagnostic>,
}

impl AscendOutput {
    /// Every file of the output, `CMakeLists.txt` included.
    pub fn files(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self.kernels.iter().flat_map(|k| k.files()).collect();
        v.push(("CMakeLists.txt".to_string(), self.cmake.clone()));
        v
    }
}

/// The folder holding `kernel_operator.h` and `tk_ascend_sim.h` (pass it to g++ with `-I`).
pub fn sim_include_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sim")
}

/// Emits Ascend C for every kernel of `m` (optimised IR: no `call` ops). Errors (and the
/// remarks gathered so far) come back as diagnostics; valid IR never panics.
pub fn compile_module(m: &Module, opts: &AscendOptions) -> Result<AscendOutput, Vec<Diagnostic>> {
    let mut kernels = Vec::new();
    let mut remarks = Vec::new();
    let mut errors = Vec::new();
    for f in m.kernels() {
        match compile_kernel(m, f, opts) {
            Ok((k, mut r)) => {
                kernels.push(k);
                remarks.append(&mut r);
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        errors.extend(remarks);
        return Err(errors);
    }
    let cmake = host::cmake(&kernels, opts.soc);
    Ok(AscendOutput { kernels, cmake, remarks })
}

fn compile_kernel(
    m: &Module,
    f: &tk_ir::Function,
    opts: &AscendOptions,
) -> Result<(KernelSource, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut params = Vec::new();
    for p in &f.params {
        let ty = m.types.try_get(p.ty).ok_or_else(|| {
            vec![Diagnostic::error(
                "EA001",
                format!("internal: parameter `{}` has no type", p.name),
                f.span,
            )]
        })?;
        let kind = match ty.elem {
            Elem::Ptr(d) => ParamKind::Pointer(d),
            Elem::Scalar(d) => ParamKind::Scalar(d),
        };
        params.push(ParamInfo { name: p.name.clone(), kind });
    }
    let usable = u64::from(opts.soc.ub_usable());
    let mut em = emit::emit_kernel(m, f, opts, opts.double_buffer).map_err(|d| vec![*d])?;
    let mut extra = Vec::new();
    let fits = |em: &emit::Emitted| {
        em.ub_bytes <= usable
            && em.cube.as_ref().is_none_or(|c| cube_overflow(c, opts.soc).is_none())
    };
    if !fits(&em) && opts.double_buffer {
        let single = emit::emit_kernel(m, f, opts, false).map_err(|d| vec![*d])?;
        if fits(&single) {
            extra.push(Diagnostic::remark(
                "RA010",
                if em.cube.is_some() {
                    format!(
                        "kernel `{}` does not fit the {} cube buffers (L1/L0) double-buffered: using single buffers",
                        f.name, opts.soc
                    )
                } else {
                    format!(
                        "kernel `{}` does not fit the {} Unified Buffer double-buffered ({} bytes): using single buffers ({} bytes)",
                        f.name, opts.soc, em.ub_bytes, single.ub_bytes
                    )
                },
                f.span,
            ));
        }
        em = single;
    }
    if let Some((mem, need, have)) = em.cube.as_ref().and_then(|c| cube_overflow(c, opts.soc)) {
        let span = em.cube.as_ref().map(|c| c.span).unwrap_or(f.span);
        let d = Diagnostic::error(
            "EA101",
            format!(
                "the tiles of this `dot` need {need} bytes of {mem} on the cube core, but {} has {have}",
                opts.soc
            ),
            span,
        )
        .with_label(format!("operands and accumulator of this product go through {mem}"))
        .with_note("L1 holds both operand tiles (NZ), L0A the left one (Zz), L0B the right one (Zn), L0C the f32 accumulator (rows and columns padded to 16)")
        .with_help("use smaller tiles (for example -D BM=64 -D BN=64 -D BK=32)");
        return Err(vec![d]);
    }
    if em.ub_bytes > usable {
        let (span, bytes, what) =
            em.ub_users.first().cloned().unwrap_or((f.span, 0, String::new()));
        let mut d = Diagnostic::error(
            "EA100",
            format!(
                "kernel `{}` needs {} bytes of Unified Buffer, but {} has {} usable ({} KB physical, 8 KB reserved by Ascend C)",
                f.name,
                em.ub_bytes,
                opts.soc,
                usable,
                opts.soc.ub_physical() / 1024
            ),
            span,
        )
        .with_label(format!("this block takes {bytes} bytes ({what})"));
        for (s, b, w) in em.ub_users.iter().skip(1).take(4) {
            if !s.is_dummy() && *s != span {
                d = d.with_secondary(*s, format!("{b} bytes ({w})"));
            }
        }
        d = d.with_help("use smaller blocks (a smaller -D BLOCK) or split the row over a loop");
        return Err(vec![d]);
    }
    let id = cxx::ident(&f.name);
    let mut cpp = String::new();
    cpp.push_str(&format!(
        "// Ascend C for tk kernel `{}` (generated by tkc for {}; classic CANN 8.x kernel-launch style).\n",
        f.name, opts.soc
    ));
    let bufs = if em.double_buffered { "double-buffered queues" } else { "single-buffered queues" };
    match &em.cube {
        Some(c) => cpp.push_str(&format!(
            "// Cube core: L1 {} of {}, L0A {} of {}, L0B {} of {}, L0C {} of {} bytes, {bufs}.\n",
            c.l1,
            opts.soc.l1_bytes(),
            c.l0a,
            opts.soc.l0a_bytes(),
            c.l0b,
            opts.soc.l0b_bytes(),
            c.l0c,
            opts.soc.l0c_bytes()
        )),
        None => {
            cpp.push_str(&format!("// UB: {} of {} usable bytes, {bufs}.\n", em.ub_bytes, usable))
        }
    }
    cpp.push_str(&format!("#include \"kernel_operator.h\"\n#include \"{id}_tiling.h\"\n\n"));
    cpp.push_str(prelude::PRELUDE);
    cpp.push('\n');
    cpp.push_str(&host::kernel_signature(&f.name, &params));
    cpp.push_str("\n{\n");
    if opts.soc == Soc::Ascend910B {
        cpp.push_str(if em.cube.is_some() {
            "    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIC_ONLY);\n"
        } else {
            "    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIV_ONLY);\n"
        });
    }
    cpp.push_str(&format!("    TkTiling_{id} tk_t;\n    tk_load_tiling(&tk_t, tiling);\n"));
    for p in &params {
        let n = cxx::ident(&p.name);
        match p.kind {
            ParamKind::Scalar(d) => {
                let conv = if matches!(d, DType::F16 | DType::BF16) {
                    // 16-bit floats travel as their bits; reinterpret them.
                    format!("*reinterpret_cast<const {}*>(&tk_t.{n})", cxx::ctype(d))
                } else {
                    format!("tk_t.{n}")
                };
                cpp.push_str(&format!(
                    "    [[maybe_unused]] const {} p_{n} = {conv};\n",
                    cxx::ctype(d)
                ));
            }
            ParamKind::Pointer(d) => {
                let ty = if d == DType::Bool { "uint8_t" } else { cxx::ctype(d) };
                cpp.push_str(&format!(
                    "    AscendC::GlobalTensor<{ty}> g_{n};\n    g_{n}.SetGlobalBuffer((__gm__ {ty}*){n});\n"
                ));
            }
        }
    }
    cpp.push_str(
        "    const int64_t tk_total = (int64_t)tk_t.grid[0] * tk_t.grid[1] * tk_t.grid[2];\n",
    );
    for a in 0..3 {
        cpp.push_str(&format!(
            "    [[maybe_unused]] const int32_t tk_grid{a} = (int32_t)tk_t.grid[{a}];\n"
        ));
    }
    // The body starts with the pipe/queue/buffer setup.
    cpp.push_str(&em.body);
    cpp.push_str("}\n");
    let ks = KernelSource {
        name: f.name.clone(),
        tiling_h: host::tiling_struct(&f.name, &params),
        host_cpp: host::launcher(
            &f.name,
            &params,
            opts.soc,
            if em.cube.is_some() { opts.soc.cube_cores() } else { opts.soc.vector_cores() },
        ),
        kernel_cpp: cpp,
        params,
        ub_bytes: em.ub_bytes,
        double_buffered: em.double_buffered,
        cube: em.cube.is_some(),
    };
    let mut remarks = em.remarks;
    remarks.extend(extra);
    Ok((ks, remarks))
}

/// The first cube memory the usage overflows: (name, bytes needed, bytes the chip has).
fn cube_overflow(c: &emit::CubeUsage, soc: Soc) -> Option<(&'static str, u64, u64)> {
    [
        ("L1", c.l1, soc.l1_bytes()),
        ("L0A", c.l0a, soc.l0a_bytes()),
        ("L0B", c.l0b, soc.l0b_bytes()),
        ("L0C", c.l0c, soc.l0c_bytes()),
    ]
    .into_iter()
    .find(|&(_, need, have)| need > u64::from(have))
    .map(|(m, need, have)| (m, need, u64::from(have)))
}

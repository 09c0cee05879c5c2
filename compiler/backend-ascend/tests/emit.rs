//! Compile-time checks (UB capacity with a diagnostic at the `.tk` line, dtype support), the
//! `--soc 310P` path (no DataCopyPad) run in the simulation, and snapshots of emitted Ascend C.

mod common;

use common::{check, Case, TArg};
use tk_backend_ascend::{AscendOptions, Soc};
use tk_interp::Buffer;
use tk_ir::{ConstValue, DType};

fn emit(
    file: &str,
    defines: &[(&str, &str)],
    soc: Soc,
) -> (tk_driver::Compilation, Result<tk_backend_ascend::AscendOutput, Vec<tk_diag::Diagnostic>>) {
    let opts = tk_driver::CompileOptions {
        defines: defines.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        ..Default::default()
    };
    let c = tk_driver::compile_file(&common::stdlib(file), &opts);
    assert!(!c.has_errors(), "{}", c.render_plain());
    let m = c.optimized.clone().unwrap();
    let r = tk_backend_ascend::compile_module(&m, &AscendOptions { soc, double_buffer: true });
    (c, r)
}

#[test]
fn block_larger_than_the_ub_is_a_compile_error_at_the_load() {
    // 50000 f32 = 200000 bytes: more than the 188416 usable bytes of a 910B UB even single-buffered.
    let (c, r) = emit("softmax.tk", &[("BLOCK", "50000")], Soc::Ascend910B);
    let diags = r.expect_err("must not fit");
    let text = tk_diag::render_plain(&c.sources, &diags);
    eprintln!("{text}");
    assert!(text.contains("EA100"), "{text}");
    assert!(text.contains("needs") && text.contains("188416 usable"), "{text}");
    assert!(text.contains("softmax.tk:14"), "the error points at the load on line 14:\n{text}");
    assert!(text.contains("let v = load(x + row * stride + cols"), "{text}");
    // The 310P's 256 KB UB... still too small for two 200 KB tiles, but the message names it.
    let (c, r) = emit("softmax.tk", &[("BLOCK", "50000")], Soc::Ascend310P);
    let text = tk_diag::render_plain(&c.sources, &r.expect_err("must not fit"));
    assert!(text.contains("Ascend310P") && text.contains("253952 usable"), "{text}");
}

#[test]
fn double_buffering_falls_back_to_single_buffers_with_a_remark() {
    // 10000 f32 = 40000 bytes per tile: double-buffered x and y queues plus the calc tiles do not
    // fit 188416 bytes, single-buffered ones do.
    let (_, r) = emit("softmax.tk", &[("BLOCK", "10000")], Soc::Ascend910B);
    let out = r.expect("fits single-buffered");
    assert!(!out.kernels[0].double_buffered);
    assert!(out.remarks.iter().any(|d| d.code == "RA010"), "{:#?}", out.remarks);
    assert!(out.kernels[0].ub_bytes <= 188416);
}

#[test]
fn bf16_is_rejected_on_310p() {
    let src = "kernel k<BLOCK: i32 = 64>(x: *bf16, y: *bf16, n: i32) {\n    let o = program_id(0) * BLOCK + arange(0, BLOCK);\n    let v = load(x + o, mask: o < n, other: 0.0);\n    store(y + o, v * v, mask: o < n);\n}\n";
    let c = tk_driver::compile_source("k.tk", src, &Default::default());
    assert!(!c.has_errors(), "{}", c.render_plain());
    let m = c.optimized.clone().unwrap();
    let diags = tk_backend_ascend::compile_module(
        &m,
        &AscendOptions { soc: Soc::Ascend310P, double_buffer: true },
    )
    .expect_err("310P has no bf16");
    let text = tk_diag::render_plain(&c.sources, &diags);
    assert!(text.contains("EA010") && text.contains("k.tk:3"), "{text}");
    // On 910B it compiles (computed through f32).
    assert!(tk_backend_ascend::compile_module(&m, &AscendOptions::default()).is_ok());
}

#[test]
fn vector_add_and_softmax_run_on_310p_without_datacopypad() {
    let n = 1000usize;
    let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    let y: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
    let opts = AscendOptions { soc: Soc::Ascend310P, double_buffer: true };
    let case = Case {
        file: "vector_add.tk",
        kernel: "vector_add",
        defines: &[("BLOCK", "160")],
        args: vec![
            TArg::Buf(Buffer::from_slice(&x)),
            TArg::Buf(Buffer::from_slice(&y)),
            TArg::Buf(Buffer::from_slice(&vec![-7.0f32; n])),
            TArg::Scalar(DType::I64, ConstValue::Int(n as i64)),
        ],
        grid: [7, 1, 1],
        block_dim: 2,
        rtol: 0.0,
        atol: 0.0,
    };
    check(&case, &opts);
    let (rows, cols) = (9usize, 150usize);
    let xs: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 1000) as f32 / 100.0 - 5.0).collect();
    let case = Case {
        file: "softmax.tk",
        kernel: "softmax",
        defines: &[("BLOCK", "160"), ("ALIGNED", "false")],
        args: vec![
            TArg::Buf(Buffer::from_slice(&xs)),
            TArg::Buf(Buffer::from_slice(&vec![-7.0f32; rows * cols])),
            TArg::Scalar(DType::I32, ConstValue::Int(cols as i64)),
            TArg::Scalar(DType::I64, ConstValue::Int(cols as i64)),
        ],
        grid: [rows as u32, 1, 1],
        block_dim: 2,
        rtol: 1e-5,
        atol: 1e-7,
    };
    check(&case, &opts);
}

fn kernel_cpp(file: &str, kernel: &str, defines: &[(&str, &str)]) -> String {
    let (_, r) = emit(file, defines, Soc::Ascend910B);
    let out = r.unwrap_or_else(|d| panic!("{d:#?}"));
    out.kernels.into_iter().find(|k| k.name == kernel).unwrap().kernel_cpp
}

/// The kernel function only (the prelude is the same in every file).
fn kernel_fn(cpp: &str) -> String {
    let i = cpp.find("extern \"C\" __global__").unwrap();
    cpp[i..].to_string()
}

#[test]
fn snapshot_vector_add() {
    insta::assert_snapshot!(kernel_fn(&kernel_cpp(
        "vector_add.tk",
        "vector_add",
        &[("BLOCK", "160")]
    )));
}

#[test]
fn snapshot_softmax() {
    insta::assert_snapshot!(kernel_fn(&kernel_cpp("softmax.tk", "softmax", &[("BLOCK", "160")])));
}

#[test]
fn snapshot_matmul() {
    insta::assert_snapshot!(kernel_fn(&kernel_cpp("matmul.tk", "matmul", &[])));
}

#[test]
fn host_files_and_cmake() {
    let (_, r) = emit("softmax.tk", &[], Soc::Ascend910B);
    let out = r.unwrap();
    let k = &out.kernels[0];
    assert!(k.tiling_h.contains("struct TkTiling_softmax {"));
    assert!(k.tiling_h.contains("int32_t n_cols;") && k.tiling_h.contains("int64_t stride;"));
    assert!(k.host_cpp.contains("#ifndef ASCENDC_CPU_DEBUG"));
    assert!(k.host_cpp.contains("#include \"aclrtlaunch_softmax.h\""));
    assert!(k.host_cpp.contains(
        "ACLRT_LAUNCH_KERNEL(softmax)(blockDim, (aclrtStream)stream, x, y, (uint8_t*)dev);"
    ));
    assert!(out.cmake.contains("ascendc_library(tk_kernels SHARED ${TK_KERNEL_SOURCES})"));
    assert!(out.cmake.contains("SOC_VERSION \"Ascend910B1\""));
    insta::assert_snapshot!(k.host_cpp.clone());
}

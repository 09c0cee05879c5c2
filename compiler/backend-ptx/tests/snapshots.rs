//! Snapshots of emitted PTX (vector add, softmax, the tensor-core f16 matmul), and errors (not
//! panics) for what the PTX backend does not support yet.

mod common;

use common::*;
use tk_backend_ptx::{compile_module, lower_kernel, ptx, Arch, Options};

fn ptx_of(file: &str, defs: &[(&str, &str)], arch: Arch) -> String {
    let m = compile(file, defs);
    compile_module(&m, &Options { arch, num_warps: 4 }).unwrap()
}

#[test]
fn vector_add_ptx() {
    let text = ptx_of("vector_add.tk", &[("BLOCK", "1024")], Arch::Sm80);
    assert!(
        text.starts_with("//") && text.contains(".version 7.0\n.target sm_80\n.address_size 64")
    );
    insta::assert_snapshot!("vector_add_sm80", text);
    let text = ptx_of("vector_add.tk", &[("BLOCK", "1024")], Arch::Sm90);
    assert!(text.contains(".version 7.8\n.target sm_90\n"));
}

#[test]
fn softmax_ptx() {
    insta::assert_snapshot!("softmax_sm80", ptx_of("softmax.tk", &[("BLOCK", "1024")], Arch::Sm80));
    // The stdlib softmax declares `multiple_of(stride, 4)`: rows are 16-byte aligned, so the
    // row loads and stores are 128-bit at the default -D values too.
    let text = ptx_of("softmax.tk", &[], Arch::Sm90);
    assert!(text.contains("ld.global.v4.f32") && text.contains("st.global.v4.f32"), "{text}");
}

#[test]
fn matmul_f16_ptx_uses_mma() {
    // The stdlib defaults (BM = BN = 64, BK = 32), 4 warps.
    let m = compile("matmul.tk", &[]);
    let f = m.func(m.find("matmul_f16").unwrap());
    let k = lower_kernel(&m, f, &Options::default()).unwrap();
    let text = ptx::print_module(std::slice::from_ref(&k), Arch::Sm80);
    // Per k step of 16: 2 A and 2 B ldmatrix.x4 and 8 mma per warp; BK = 32 is 2 steps.
    assert_eq!(text.matches("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32").count(), 16);
    assert_eq!(text.matches("ldmatrix.sync.aligned.m8n8.x4.shared.b16").count(), 4);
    assert_eq!(text.matches("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16").count(), 4);
    insta::assert_snapshot!("matmul_f16_sm80", text);
}

#[test]
fn unsupported_ops_are_errors_with_spans() {
    let m = compile_src(
        "kernel k(x: *f32, y: *f32) {\n    let v = load(x + arange(0, 16));\n    store(y + arange(0, 16), cumsum(v, axis: 0));\n}\n",
        &[],
    );
    let e = compile_module(&m, &Options::default()).unwrap_err();
    assert_eq!(e.message, "not yet supported on PTX: `cumsum`");
    assert!(!e.span.is_dummy());
    let e = compile_module(&m, &Options { num_warps: 3, ..Default::default() }).unwrap_err();
    assert!(e.message.contains("--num-warps must be 1, 2, 4, 8 or 16"), "{}", e.message);
}

//! The stdlib kernels compiled for the host CPU agree with the reference interpreter on seeded
//! random inputs (f32 within 1e-5 relative + 1e-6 absolute; integers exactly).

mod common;

use common::*;
use tk_backend_cpu::{emit_llvm_ir, CpuOptions, CpuTarget};
use tk_interp::Buffer;
use tk_ir::{ConstValue, DType};

#[test]
fn vector_add_ragged() {
    let m = frontend(&stdlib("vector_add.tk"), &[("BLOCK", "128")]);
    let l = load(&m, &CpuOptions::default());
    let n = 1000usize;
    let mut r = rng(1);
    let bufs = vec![
        Buffer::from_slice(&randn(&mut r, n, 10.0)),
        Buffer::from_slice(&randn(&mut r, n, 10.0)),
        zeros(DType::F32, n),
    ];
    let args = [A::Buf(0), A::Buf(1), A::Buf(2), A::I64(n as i64)];
    // Exact: one f32 addition per element on both sides.
    check(
        &m,
        &l,
        "vector_add",
        [n.div_ceil(128) as u32, 1, 1],
        &args,
        &bufs,
        &[2],
        Tol { rtol: 0.0, atol: 0.0 },
    );
}

fn rows_kernel(file: &str, kernel: &str, extra_f32: &[usize], eps: bool) {
    let m = frontend(&stdlib(file), &[("BLOCK", "160"), ("ALIGNED", "false")]);
    let l = load(&m, &CpuOptions::default());
    eprintln!("{kernel}: compile_module took {:?}", l.compile_time);
    let (rows, cols, stride) = (7usize, 150usize, 153usize);
    let mut r = rng(2);
    let mut bufs = vec![Buffer::from_slice(&randn(&mut r, rows * stride, 4.0))];
    for &len in extra_f32 {
        bufs.push(Buffer::from_slice(&randn(&mut r, len, 2.0)));
    }
    bufs.push(zeros(DType::F32, rows * stride));
    let out = bufs.len() - 1;
    let mut args: Vec<A> = (0..bufs.len()).map(A::Buf).collect();
    args.push(A::I32(cols as i32));
    args.push(A::I64(stride as i64));
    if eps {
        args.push(A::F32(1e-5));
    }
    let worst = check(&m, &l, kernel, [rows as u32, 1, 1], &args, &bufs, &[out], F32_TOL);
    eprintln!("{kernel}: worst relative error {worst:e}");
}

#[test]
fn softmax_block_160_cols_150() {
    rows_kernel("softmax.tk", "softmax", &[], false);
}

#[test]
fn rmsnorm_block_160() {
    rows_kernel("rmsnorm.tk", "rmsnorm", &[150], true);
}

#[test]
fn layernorm_block_160() {
    rows_kernel("layernorm.tk", "layernorm", &[150, 150], true);
}

#[test]
fn softmax_assert_traps_when_the_row_is_too_long() {
    let m = frontend(&stdlib("softmax.tk"), &[("BLOCK", "16")]);
    let l = load(&m, &CpuOptions::default());
    let bufs = vec![zeros(DType::F32, 40), zeros(DType::F32, 40)];
    let args = [A::Buf(0), A::Buf(1), A::I32(20), A::I64(20)];
    let rc = run_cpu(&l, "softmax", [2, 1, 1], &args, &bufs).expect_err("must trap");
    let k = &l.artifact.kernels[0];
    let trap = &k.traps[(rc - 1) as usize];
    assert_eq!(trap.kind, tk_backend_cpu::TrapKind::AssertFailed);
    assert!(trap.message.contains("longer than BLOCK"), "{}", trap.message);
}

#[test]
fn matmul_ragged_tiles() {
    let m = frontend(&stdlib("matmul.tk"), &[("BM", "16"), ("BN", "16"), ("BK", "16")]);
    let l = load(&m, &CpuOptions::default());
    let (mm, nn, kk) = (37usize, 45usize, 53usize);
    let mut r = rng(3);
    let bufs = vec![
        Buffer::from_slice(&randn(&mut r, mm * kk, 1.0)),
        Buffer::from_slice(&randn(&mut r, kk * nn, 1.0)),
        zeros(DType::F32, mm * nn),
    ];
    let args =
        [A::Buf(0), A::Buf(1), A::Buf(2), A::I32(mm as i32), A::I32(nn as i32), A::I32(kk as i32)];
    let grid = [mm.div_ceil(16) as u32, nn.div_ceil(16) as u32, 1];
    // Sums of 53 products of magnitude <= 1 accumulate in f32 with FMA (the interpreter uses
    // f64): allow 1e-5 relative plus 1e-5 absolute for outputs that nearly cancel.
    let worst = check(&m, &l, "matmul", grid, &args, &bufs, &[2], Tol { rtol: 1e-5, atol: 1e-5 });
    eprintln!("matmul: worst relative error {worst:e}");
}

/// The tile shape recommended for speed (see the crate's benchmark notes), on ragged sizes.
#[test]
fn matmul_bench_tiles_ragged() {
    let m = frontend(&stdlib("matmul.tk"), &[("BM", "128"), ("BN", "128"), ("BK", "64")]);
    let l = load(&m, &CpuOptions::default());
    let (mm, nn, kk) = (130usize, 200usize, 70usize);
    let mut r = rng(31);
    let bufs = vec![
        Buffer::from_slice(&randn(&mut r, mm * kk, 1.0)),
        Buffer::from_slice(&randn(&mut r, kk * nn, 1.0)),
        zeros(DType::F32, mm * nn),
    ];
    let args =
        [A::Buf(0), A::Buf(1), A::Buf(2), A::I32(mm as i32), A::I32(nn as i32), A::I32(kk as i32)];
    let grid = [mm.div_ceil(128) as u32, nn.div_ceil(128) as u32, 1];
    check(&m, &l, "matmul", grid, &args, &bufs, &[2], Tol { rtol: 1e-5, atol: 1e-5 });
}

#[test]
fn matmul_f16_inputs_f32_accumulator() {
    let m = frontend(&stdlib("matmul.tk"), &[("BM", "16"), ("BN", "16"), ("BK", "16")]);
    let l = load(&m, &CpuOptions::default());
    let (mm, nn, kk) = (20usize, 33usize, 40usize);
    let mut r = rng(7);
    let f16s = |r: &mut _, n| {
        let v: Vec<ConstValue> =
            randn(r, n, 1.0).into_iter().map(|x| ConstValue::Float(x as f64)).collect();
        Buffer::from_values(DType::F16, &v)
    };
    let bufs = vec![f16s(&mut r, mm * kk), f16s(&mut r, kk * nn), zeros(DType::F32, mm * nn)];
    let args =
        [A::Buf(0), A::Buf(1), A::Buf(2), A::I32(mm as i32), A::I32(nn as i32), A::I32(kk as i32)];
    let grid = [mm.div_ceil(16) as u32, nn.div_ceil(16) as u32, 1];
    check(&m, &l, "matmul_f16", grid, &args, &bufs, &[2], Tol { rtol: 1e-5, atol: 1e-5 });
}

#[test]
fn portable_baseline_and_llvm_ir_text() {
    let m = frontend(&stdlib("softmax.tk"), &[("BLOCK", "64"), ("ALIGNED", "false")]);
    let opts = CpuOptions { target: CpuTarget::Baseline, ..CpuOptions::default() };
    let l = load(&m, &opts);
    assert_eq!(l.artifact.cpu, "x86-64-v3");
    let bufs = vec![Buffer::from_slice(&randn(&mut rng(8), 3 * 50, 3.0)), zeros(DType::F32, 150)];
    let args = [A::Buf(0), A::Buf(1), A::I32(50), A::I64(50)];
    check(&m, &l, "softmax", [3, 1, 1], &args, &bufs, &[1], F32_TOL);
    let ir = emit_llvm_ir(&m, &CpuOptions { opt_level: 0, ..opts }).unwrap();
    assert!(ir.contains("define i32 @tk_softmax(ptr"), "{ir}");
}

fn activation(kernel: &str) {
    let m = frontend(&stdlib("activations.tk"), &[("BLOCK", "256")]);
    let l = load(&m, &CpuOptions::default());
    let n = 1000usize;
    let mut x = randn(&mut rng(5), n, 6.0);
    x[0] = f32::NAN;
    x[1] = f32::INFINITY;
    x[2] = f32::NEG_INFINITY;
    x[3] = -0.0;
    x[4] = 40.0;
    x[5] = -40.0;
    let bufs = vec![Buffer::from_slice(&x), zeros(DType::F32, n)];
    let args = [A::Buf(0), A::Buf(1), A::I64(n as i64)];
    let grid = [n.div_ceil(256) as u32, 1, 1];
    let worst = check(&m, &l, kernel, grid, &args, &bufs, &[1], F32_TOL);
    eprintln!("{kernel}: worst relative error {worst:e}");
}

#[test]
fn gelu_erf_polynomial() {
    activation("gelu_kernel");
}

#[test]
fn silu_sigmoid_polynomial() {
    activation("silu_kernel");
}

fn gating(renorm: bool) {
    let rn = if renorm { "true" } else { "false" };
    let m = frontend(&stdlib("moe_gating.tk"), &[("BLOCK_E", "160"), ("K", "6"), ("RENORM", rn)]);
    let l = load(&m, &CpuOptions::default());
    let (t, e, k) = (9usize, 160usize, 6usize);
    let mut r = rng(4);
    let mut logits = randn(&mut r, t * e, 3.0);
    // Ties: token 0 has equal logits for experts 3, 7 and 100 (must come out in index order).
    for &x in &[3usize, 7, 100] {
        logits[x] = 50.0;
    }
    let bufs =
        vec![Buffer::from_slice(&logits), zeros(DType::F32, t * k), zeros(DType::I32, t * k)];
    let args = [A::Buf(0), A::Buf(1), A::Buf(2), A::I32(e as i32), A::I64(e as i64)];
    check(&m, &l, "topk_gating", [t as u32, 1, 1], &args, &bufs, &[1, 2], F32_TOL);
}

#[test]
fn topk_gating_e160_k6() {
    gating(false);
}

#[test]
fn topk_gating_e160_k6_renorm() {
    gating(true);
}

/// Rough single-thread speed (run with `--ignored --nocapture`; `examples/cpu_bench.rs` times
/// every stdlib kernel on 2 threads next to the C baselines).
#[test]
#[ignore = "benchmark: run by hand"]
fn bench_softmax_single_thread() {
    let m = frontend(&stdlib("softmax.tk"), &[("BLOCK", "1024")]);
    let l = load(&m, &CpuOptions::default());
    eprintln!("softmax BLOCK=1024: compile_module {:?}", l.compile_time);
    let (rows, cols) = (2048usize, 1000usize);
    let bufs = vec![
        Buffer::from_slice(&randn(&mut rng(10), rows * cols, 3.0)),
        zeros(DType::F32, rows * cols),
    ];
    let args = [A::Buf(0), A::Buf(1), A::I32(cols as i32), A::I64(cols as i64)];
    let t = std::time::Instant::now();
    run_cpu(&l, "softmax", [rows as u32, 1, 1], &args, &bufs).unwrap();
    let dt = t.elapsed();
    let gbs = (2 * rows * cols * 4) as f64 / dt.as_secs_f64() / 1e9;
    eprintln!("softmax {rows}x{cols}: {dt:?} ({gbs:.2} GB/s, includes buffer copies)");
}

/// Every stdlib kernel also compiles for 16-lane AVX-512 and for plain SSE2 x86-64 (this host
/// cannot run them; the vector widths and masks differ from the host's).
#[test]
fn stdlib_compiles_for_avx512_and_sse2() {
    let targets = [
        CpuTarget::Named {
            cpu: "skylake-avx512".into(),
            features: "+avx512f,+avx512bw,+avx512vl,+avx512dq,+avx2,+fma,+f16c".into(),
        },
        CpuTarget::Named { cpu: "x86-64".into(), features: "+sse2".into() },
    ];
    let files: [(&str, &[(&str, &str)]); 7] = [
        ("vector_add.tk", &[]),
        ("softmax.tk", &[("BLOCK", "200")]),
        ("layernorm.tk", &[]),
        ("rmsnorm.tk", &[]),
        ("activations.tk", &[]),
        ("matmul.tk", &[("BM", "40"), ("BN", "72"), ("BK", "24")]),
        ("moe_gating.tk", &[("BLOCK_E", "160"), ("K", "6")]),
    ];
    for target in targets {
        for (file, defines) in files {
            let m = frontend(&stdlib(file), defines);
            let opts = CpuOptions { target: target.clone(), ..CpuOptions::default() };
            let a = tk_backend_cpu::compile_module(&m, &opts)
                .unwrap_or_else(|e| panic!("{file} for {target:?}: {e}"));
            assert!(!a.library.is_empty());
        }
    }
}

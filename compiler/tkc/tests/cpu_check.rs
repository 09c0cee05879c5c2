//! Every stdlib kernel built for the CPU matches the interpreter (`tkc run --target cpu --check`)
//! on seeded random inputs, for at least five shapes each: ragged sizes, blocks that are not
//! powers of two, padded strides. `--check` compares f32 within 1e-5 relative (1e-6 absolute near
//! zero) and integers (top-k ids) exactly.

use std::path::Path;
use std::process::Command;

fn stdlib(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stdlib").join(name).display().to_string()
}

/// Runs one case; returns the `check` lines or panics with tkc's output.
fn check(
    file: &str,
    kernel: &str,
    defines: &[(&str, String)],
    grid: &str,
    args: &[String],
    seed: u64,
) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tkc"));
    cmd.args([
        "run",
        &stdlib(file),
        "--kernel",
        kernel,
        "--grid",
        grid,
        "--target",
        "cpu",
        "--check",
    ]);
    cmd.args(["--seed", &seed.to_string()]);
    for (k, v) in defines {
        cmd.args(["-D", &format!("{k}={v}")]);
    }
    for a in args {
        cmd.args(["--arg", a]);
    }
    let o = cmd.output().expect("tkc runs");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{file} {kernel} {defines:?} grid {grid} {args:?}:\n{out}\n{err}");
    assert!(out.contains("matches the interpreter"), "{out}");
}

fn s(x: impl ToString) -> String {
    x.to_string()
}

#[test]
fn vector_add_and_activations() {
    for (i, (n, block)) in
        [(1000, 160), (1, 64), (4097, 1024), (333, 100), (50, 7)].into_iter().enumerate()
    {
        let grid = s((n as usize).div_ceil(block));
        let d = [("BLOCK", s(block))];
        let args =
            [format!("x=rand:{n}"), format!("y=rand:{n}"), format!("z=out:{n}"), format!("n={n}")];
        check("vector_add.tk", "vector_add", &d, &grid, &args, i as u64);
        for k in ["gelu_kernel", "silu_kernel"] {
            let args = [format!("x=rand:{n}"), format!("y=out:{n}"), format!("n={n}")];
            check("activations.tk", k, &d, &grid, &args, i as u64);
        }
    }
}

#[test]
fn row_kernels() {
    // (rows, n_cols, BLOCK, stride): aligned and padded strides, non-power-of-two blocks.
    let shapes = [
        (5, 150, 160, 152),
        (3, 1000, 1000, 1000),
        (4, 37, 64, 41),
        (2, 1, 8, 1),
        (6, 160, 160, 163),
    ];
    for (i, (rows, cols, block, stride)) in shapes.into_iter().enumerate() {
        let d = [("BLOCK", s(block)), ("ALIGNED", s(stride % 4 == 0))];
        let len = rows * stride;
        let common =
            [format!("x=rand:{len}"), format!("n_cols={cols}"), format!("stride={stride}")];
        // Rows are written only up to n_cols: zeroed outputs keep the gaps defined.
        let mut a = common.to_vec();
        a.push(format!("y=zeros:{len}"));
        check("softmax.tk", "softmax", &d, &s(rows), &a, i as u64);
        let mut a = common.to_vec();
        a.extend([format!("w=rand:{cols}"), format!("y=zeros:{len}"), "eps=0.00001".to_string()]);
        check("rmsnorm.tk", "rmsnorm", &d, &s(rows), &a, i as u64);
        a.push(format!("b=rand:{cols}"));
        check("layernorm.tk", "layernorm", &d, &s(rows), &a, i as u64);
    }
}

#[test]
fn matmuls() {
    // (M, N, K, BM, BN, BK)
    let shapes = [
        (37, 45, 29, 16, 24, 8),
        (1, 1, 1, 16, 16, 16),
        (33, 17, 50, 12, 20, 10),
        (64, 64, 64, 32, 32, 32),
        (20, 3, 70, 16, 16, 16),
    ];
    for (i, (m, n, k, bm, bn, bk)) in shapes.into_iter().enumerate() {
        let d = [("BM", s(bm)), ("BN", s(bn)), ("BK", s(bk))];
        let grid = format!("{},{}", (m as usize).div_ceil(bm), (n as usize).div_ceil(bn));
        let args = [
            format!("a=rand:{m}x{k}"),
            format!("b=rand:{k}x{n}"),
            format!("c=out:{m}x{n}"),
            format!("M={m}"),
            format!("N={n}"),
            format!("K={k}"),
        ];
        check("matmul.tk", "matmul", &d, &grid, &args, i as u64);
        check("matmul.tk", "matmul_f16", &d, &grid, &args, i as u64);
    }
}

#[test]
fn topk_gating() {
    // (tokens, experts, BLOCK_E, K, RENORM)
    let shapes = [
        (12, 160, 160, 6, true),
        (7, 256, 256, 8, false),
        (9, 8, 8, 1, true),
        (5, 100, 128, 4, false),
        (4, 64, 64, 8, true),
    ];
    for (i, (t, e, be, k, renorm)) in shapes.into_iter().enumerate() {
        let d = [("BLOCK_E", s(be)), ("K", s(k)), ("RENORM", s(renorm))];
        let args = [
            format!("logits=rand:{t}x{e}"),
            format!("weights=out:{t}x{k}"),
            format!("ids=out:{t}x{k}"),
            format!("n_experts={e}"),
            format!("stride={e}"),
        ];
        check("moe_gating.tk", "topk_gating", &d, &s(t), &args, i as u64);
    }
}

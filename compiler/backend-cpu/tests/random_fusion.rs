//! Randomised differential test of the fused lowering: seeded random kernels built from
//! element-wise chains, broadcasts of row and column vectors, reductions along either axis fed
//! back into further arithmetic, masked loads and stores with ragged shapes, and values used by
//! several consumers, values that go through memory (a store, then a load of the same place);
//! each is compiled for the host (every fourth for plain SSE2, with 4 lanes) and compared with the
//! interpreter.

mod common;

use common::*;
use rand::Rng;
use tk_backend_cpu::{CpuOptions, CpuTarget};
use tk_interp::Buffer;
use tk_ir::DType;

struct Gen {
    r: rand_chacha::ChaCha8Rng,
    lines: Vec<String>,
    /// 2-D values `[R, C]` defined so far.
    vals: Vec<String>,
    next: usize,
}

impl Gen {
    fn fresh(&mut self) -> String {
        self.next += 1;
        format!("t{}", self.next)
    }
    fn pick(&mut self) -> String {
        let i = self.r.gen_range(0..self.vals.len());
        self.vals[i].clone()
    }
    /// One new `[R, C]` value from existing ones.
    fn step(&mut self) {
        let a = self.pick();
        let b = self.pick();
        let e = match self.r.gen_range(0..14) {
            0 => format!("{a} + {b}"),
            1 => format!("{a} - {b} * 0.5"),
            2 => format!("{a} * {b}"),
            3 => format!("{a} / (abs({b}) + 1.0)"),
            4 => format!("maximum({a}, {b})"),
            5 => format!("minimum({a}, {b}) + 1.0"),
            6 => format!("exp(minimum({a}, 10.0))"),
            7 => format!("where({a} > {b}, {a}, -{b})"),
            8 => format!("sqrt(abs({a}))"),
            9 => format!("{a} - max({b}, axis: 1)[:, None]"),
            10 => format!("{a} * sum({b}, axis: 0)[None, :]"),
            11 => format!("tanh({a}) + sigmoid({b})"),
            12 => format!("fma({a}, {b}, 2.0)"),
            _ => format!("{a} + rowv[:, None] * colv[None, :]"),
        };
        let t = self.fresh();
        self.lines.push(format!("    let {t} = {e};"));
        self.vals.push(t);
    }
}

fn kernel(seed: u64) -> (String, usize, usize) {
    let mut r = rng(seed);
    let rows = [1usize, 2, 3, 5, 8][r.gen_range(0..5)];
    let cols = [1usize, 3, 7, 8, 12, 16, 21, 33][r.gen_range(0..8)];
    let mut g = Gen { r, lines: Vec::new(), vals: Vec::new(), next: 0 };
    g.lines.push(format!("    let i = arange(0, {rows});"));
    g.lines.push(format!("    let j = arange(0, {cols});"));
    g.lines.push("    let m = (i[:, None] < nr) && (j[None, :] < nc);".into());
    g.lines.push(format!("    let offs = i[:, None] * {cols} + j[None, :];"));
    g.lines.push("    let a = load(x + offs, mask: m, other: 1.5);".into());
    g.lines.push("    let b = load(y + offs);".into());
    g.lines.push("    let rowv = load(y + i * 0 + i);".into());
    g.lines.push("    let colv = load(x + j, mask: j < nc, other: 0.0);".into());
    g.vals = vec!["a".into(), "b".into()];
    let steps = g.r.gen_range(2..9);
    let scratch = 2 * rows * cols + rows;
    for _ in 0..steps {
        g.step();
        if g.r.gen_bool(0.25) {
            // Through memory: a store, then a load of what it wrote (memory order).
            let v = g.pick();
            let t = g.fresh();
            g.lines.push(format!("    store(o + {scratch} + offs, {v} + 0.25);"));
            g.lines.push(format!("    let {t} = load(o + {scratch} + offs) * 0.5;"));
            g.vals.push(t);
        }
    }
    // Stores: the last value, masked; one more value; a row reduction.
    let last = g.vals.last().unwrap().clone();
    let other = g.pick();
    g.lines.push(format!("    store(o + offs, {last}, mask: m);"));
    g.lines.push(format!("    store(o + {} + offs, {other} * 2.0);", rows * cols));
    let red = g.pick();
    g.lines.push(format!("    store(o + {} + i, sum({red}, axis: 1));", 2 * rows * cols));
    let src = format!(
        "kernel k(x: *f32, y: *f32, o: *f32, nr: i32, nc: i32) {{\n{}\n}}\n",
        g.lines.join("\n")
    );
    (src, rows, cols)
}

#[test]
fn random_fused_kernels_match_the_interpreter() {
    let dir = tempfile::tempdir().unwrap();
    for seed in 0..250u64 {
        let (src, rows, cols) = kernel(seed);
        let path = dir.path().join(format!("k{seed}.tk"));
        std::fs::write(&path, &src).unwrap();
        let m = frontend(&path, &[]);
        // Every fourth kernel for plain SSE2 (4 lanes instead of 8), which this host also runs.
        let opts = if seed % 4 == 3 {
            let target = CpuTarget::Named { cpu: "x86-64".into(), features: "+sse2".into() };
            CpuOptions { target, ..CpuOptions::default() }
        } else {
            CpuOptions::default()
        };
        let l = load(&m, &opts);
        let mut r = rng(1000 + seed);
        let n = rows * cols;
        let bufs = vec![
            Buffer::from_slice(&randn(&mut r, n.max(cols), 2.0)),
            Buffer::from_slice(&randn(&mut r, n.max(rows), 2.0)),
            zeros(DType::F32, 3 * n + rows),
        ];
        let (nr, nc) = (r.gen_range(0..=rows) as i32, r.gen_range(0..=cols) as i32);
        let args = [A::Buf(0), A::Buf(1), A::Buf(2), A::I32(nr), A::I32(nc)];
        let want = run_interp(&m, "k", [1, 1, 1], &args, &bufs);
        let got = run_cpu(&l, "k", [1, 1, 1], &args, &bufs).unwrap();
        let name = format!("seed {seed}:\n{src}");
        compare(&name, &want[2], &got[2], Tol { rtol: 2e-5, atol: 1e-5 });
    }
}

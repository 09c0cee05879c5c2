//! Atomics on PTX: one atomic per element even when the layout replicates elements (blocks far
//! smaller than the CTA), the old value given to every copy, scalar atomics issued once per
//! program, compare-and-swap; compared with the interpreter.

mod common;

use common::*;
use tk_backend_ptx::Options;
use tk_ir::DType;

const SRC: &str = r#"
kernel scatter_add<BLOCK: i32 = 8>(idx: *i32, counts: *i32, old: *i32, total: *i32, seen: *i32, n: i32) {
    let offs = program_id(0) * BLOCK + arange(0, BLOCK);
    let mask = offs < n;
    let b = load(idx + offs, mask: mask, other: 0);
    let prev = atomic_add(counts + b, offs + 1, mask: mask);
    store(old + offs, prev, mask: mask);
    let t = atomic_add(total, 1);
    store(seen + program_id(0), t);
}

kernel cas<BLOCK: i32 = 8>(x: *i32, expect: *i32, old: *i32, n: i32) {
    let offs = program_id(0) * BLOCK + arange(0, BLOCK);
    let mask = offs < n;
    let e = load(expect + offs, mask: mask, other: 0);
    let prev = atomic_cas(x + offs, e, offs * 10, mask: mask);
    let mx = atomic_max(x + offs, offs * 3, mask: mask);
    store(old + offs, prev + mx, mask: mask);
}
"#;

#[test]
fn atomics_issue_once_per_element_and_broadcast_results() {
    for (block, n, warps) in
        [(8usize, 30usize, 4u32), (8, 8, 1), (64, 100, 4), (160, 300, 2), (1024, 1500, 4)]
    {
        let m = compile_src(SRC, &[("BLOCK", &block.to_string())]);
        // A permutation of bins, so that the old values do not depend on the order of atomics.
        let idx: Vec<i32> = (0..n).map(|i| ((i * 7) % n) as i32).collect();
        let grid = n.div_ceil(block) as u32;
        let o = check(
            &m,
            "scatter_add",
            [grid, 1, 1],
            &[
                TArg::I32s(idx),
                TArg::Rand(DType::I32, n),
                TArg::Zeros(DType::I32, n),
                TArg::Zeros(DType::I32, 1),
                TArg::Zeros(DType::I32, grid as usize),
                TArg::I32(n as i32),
            ],
            &Options { num_warps: warps, ..Default::default() },
            5,
            0.0,
        );
        assert_eq!(o.stats.atomics, (n + grid as usize) as u64, "one atomic per element");
        let expect: Vec<i32> = (0..n).map(|i| if i % 3 == 0 { 0 } else { i as i32 }).collect();
        check(
            &m,
            "cas",
            [grid, 1, 1],
            &[
                TArg::Zeros(DType::I32, n),
                TArg::I32s(expect),
                TArg::Zeros(DType::I32, n),
                TArg::I32(n as i32),
            ],
            &Options { num_warps: warps, ..Default::default() },
            6,
            0.0,
        );
    }
}

#[test]
fn atomics_assemble_without_spills() {
    let m = compile_src(SRC, &[("BLOCK", "64")]);
    assemble_all(&m, &Options::default(), "atomics");
}

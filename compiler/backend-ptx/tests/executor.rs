//! The CTA executor's own guarantees: performed out-of-bounds or misaligned accesses trap,
//! predicated-off accesses are never dereferenced, shuffles exchange lanes, and shared-memory
//! races without a barrier are reported.

use tk_backend_ptx::exec::{run, ExecArg};
use tk_backend_ptx::pir::*;

/// A 32-thread kernel: `p = (tid < limit)`, loads `x[tid]` (predicated by `p` when `guarded`)
/// and stores it to `y[tid]` under the same predicate.
fn copy_kernel(guarded: bool, limit: u64) -> Kernel {
    use RegClass::*;
    let regs = vec![B32, B64, B64, B64, B64, Pred, F32, B64];
    let (tid, x, y, off, xa, p, v, ya) =
        (Reg(0), Reg(1), Reg(2), Reg(3), Reg(4), Reg(5), Reg(6), Reg(7));
    let pred = if guarded { Some(p) } else { None };
    let body = vec![
        Inst::Sreg { dst: tid, sreg: SReg::TidX },
        Inst::LdParam { ty: Ty::U64, dst: x, index: 0 },
        Inst::LdParam { ty: Ty::U64, dst: y, index: 1 },
        Inst::MulWide { ty: Ty::U32, dst: off, a: tid.into(), b: Opnd::Imm(4) },
        Inst::Binary { op: BinOp::Add, ty: Ty::S64, dst: xa, a: x.into(), b: off.into() },
        Inst::Binary { op: BinOp::Add, ty: Ty::S64, dst: ya, a: y.into(), b: off.into() },
        Inst::Setp { cmp: Cmp::Lt, ty: Ty::U32, dst: p, a: tid.into(), b: Opnd::Imm(limit) },
        Inst::Mov { ty: Ty::F32, dst: v, src: Opnd::f32(0.0) },
        Inst::LdGlobal { ty: Ty::F32, dsts: vec![v], addr: xa, pred },
        Inst::StGlobal { ty: Ty::F32, srcs: vec![v.into()], addr: ya, pred: Some(p) },
    ];
    let params = ["x", "y"]
        .iter()
        .map(|n| ParamDecl { name: n.to_string(), ty: Ty::U64, is_ptr: true })
        .collect();
    Kernel { name: "copy".into(), params, regs, body, threads: 32, smem_bytes: 0, min_version: 70 }
}

fn bufs(n: usize) -> Vec<Vec<u8>> {
    let x: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
    vec![x, vec![0; 32 * 4]]
}

#[test]
fn predicated_off_lanes_are_not_dereferenced() {
    let mut b = bufs(20);
    run(&copy_kernel(true, 20), [1, 1, 1], &[ExecArg::Buffer(0), ExecArg::Buffer(1)], &mut b)
        .unwrap();
    let y: Vec<f32> = b[1].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(y[19], 19.0);
    assert_eq!(y[20], 0.0);
}

#[test]
fn unpredicated_out_of_bounds_load_traps() {
    let mut b = bufs(20);
    let e =
        run(&copy_kernel(false, 20), [1, 1, 1], &[ExecArg::Buffer(0), ExecArg::Buffer(1)], &mut b)
            .unwrap_err();
    assert!(e.message.contains("thread 20: out-of-bounds load of 4 bytes"), "{e}");
    assert!(e.message.contains("byte offset 80 of buffer 0 with 80 bytes"), "{e}");
}

#[test]
fn misaligned_and_negative_pointers_trap() {
    let mut b = bufs(32);
    let e = run(
        &copy_kernel(true, 32),
        [1, 1, 1],
        &[ExecArg::BufferAt(0, 2), ExecArg::Buffer(1)],
        &mut b,
    )
    .unwrap_err();
    assert!(e.message.contains("out-of-bounds") || e.message.contains("misaligned"), "{e}");
    let e = run(
        &copy_kernel(true, 32),
        [1, 1, 1],
        &[ExecArg::BufferAt(0, -4), ExecArg::Buffer(1)],
        &mut b,
    )
    .unwrap_err();
    assert!(e.message.contains("thread 0: out-of-bounds load"), "{e}");
}

#[test]
fn shuffle_and_shared_race_detection() {
    use RegClass::*;
    let regs = vec![B32, B32, B32, B32];
    let (tid, s, base, v) = (Reg(0), Reg(1), Reg(2), Reg(3));
    let body = |barrier: bool| {
        let mut b = vec![
            Inst::Sreg { dst: tid, sreg: SReg::TidX },
            Inst::ShflBfly { dst: s, src: tid, lane_mask: 1 },
            Inst::SmemBase { dst: base },
            Inst::Binary { op: BinOp::Shl, ty: Ty::B32, dst: v, a: tid.into(), b: Opnd::Imm(2) },
            Inst::Binary { op: BinOp::Add, ty: Ty::U32, dst: base, a: base.into(), b: v.into() },
            Inst::StShared { ty: Ty::B32, src: s.into(), addr: base, off: 0, pred: None },
        ];
        if barrier {
            b.push(Inst::Bar);
        }
        // Each thread reads its neighbour's word.
        b.push(Inst::LdShared { ty: Ty::B32, dst: v, addr: base, off: 4, pred: Some(Reg(4)) });
        b.insert(
            0,
            Inst::Setp { cmp: Cmp::Lt, ty: Ty::U32, dst: Reg(4), a: Opnd::Imm(0), b: Opnd::Imm(1) },
        );
        b
    };
    let mk = |barrier| Kernel {
        name: "k".into(),
        params: vec![],
        regs: [regs.clone(), vec![Pred]].concat(),
        body: body(barrier),
        threads: 32,
        smem_bytes: 33 * 4,
        min_version: 70,
    };
    // Without a barrier, thread 0 reads thread 1's fresh word: a race.
    let e = run(&mk(false), [1, 1, 1], &[], &mut []).unwrap_err();
    assert!(e.message.contains("without a barrier"), "{e}");
    // With it, thread 31 reads past the written words: an unwritten word.
    let e = run(&mk(true), [1, 1, 1], &[], &mut []).unwrap_err();
    assert!(e.message.contains("thread 31: read of unwritten shared word 128"), "{e}");
}

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
    // With it, thread 31 reads past the written bytes: an unwritten byte.
    let e = run(&mk(true), [1, 1, 1], &[], &mut []).unwrap_err();
    assert!(e.message.contains("thread 31: read of unwritten shared byte 128"), "{e}");
}

/// One warp: each lane loads `n_in` b32 words per input buffer at `lane * 16`, runs `body` on
/// them and stores `n_out` words back; a harness for the warp-wide instructions.
fn warp_kernel(ins: &[usize], outs: Vec<Reg>, regs: Vec<RegClass>, mid: Vec<Inst>) -> Kernel {
    use RegClass::*;
    let mut regs = regs;
    let r = |c: RegClass, regs: &mut Vec<RegClass>| {
        regs.push(c);
        Reg(regs.len() as u32 - 1)
    };
    let tid = r(B32, &mut regs);
    let off = r(B64, &mut regs);
    let mut body = vec![
        Inst::Sreg { dst: tid, sreg: SReg::TidX },
        Inst::MulWide { ty: Ty::U32, dst: off, a: tid.into(), b: Opnd::Imm(16) },
    ];
    let mut k = 0;
    let mut params = Vec::new();
    for (i, &n) in ins.iter().enumerate() {
        let p = r(B64, &mut regs);
        body.push(Inst::LdParam { ty: Ty::U64, dst: p, index: i as u32 });
        body.push(Inst::Binary { op: BinOp::Add, ty: Ty::S64, dst: p, a: p.into(), b: off.into() });
        let dsts: Vec<Reg> = (k..k + n).map(|j| Reg(j as u32)).collect();
        body.push(Inst::LdGlobal { ty: Ty::B32, dsts, addr: p, pred: None });
        k += n;
        params.push(ParamDecl { name: format!("in{i}"), ty: Ty::U64, is_ptr: true });
    }
    body.extend(mid);
    let p = r(B64, &mut regs);
    body.push(Inst::LdParam { ty: Ty::U64, dst: p, index: ins.len() as u32 });
    body.push(Inst::Binary { op: BinOp::Add, ty: Ty::S64, dst: p, a: p.into(), b: off.into() });
    let srcs = outs.into_iter().map(Opnd::Reg).collect();
    body.push(Inst::StGlobal { ty: Ty::B32, srcs, addr: p, pred: None });
    params.push(ParamDecl { name: "out".into(), ty: Ty::U64, is_ptr: true });
    Kernel {
        name: "warp".into(),
        params,
        regs,
        body,
        threads: 32,
        smem_bytes: 256,
        min_version: 70,
    }
}

fn words(b: &[u8]) -> Vec<u32> {
    b.chunks(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect()
}

/// `ldmatrix` per the PTX ISA: lanes 0-7 give the rows of an 8x8 matrix of b16; lane `l`
/// receives elements (l / 4, 2 (l % 4)) and (l / 4, 2 (l % 4) + 1), or with `.trans`
/// (2 (l % 4), l / 4) and (2 (l % 4) + 1, l / 4), the first in the low half.
#[test]
fn ldmatrix_distributes_rows_as_the_isa_says() {
    use RegClass::*;
    // r0 = packed pair written by the lane (elements 2 lane, 2 lane + 1 of a row-major 8x8
    // matrix whose element e holds the value 100 + e); r1 = row address; r2, r3 = results.
    let regs = vec![B32, B32, B32, B32, B32];
    let tid = Reg(5);
    let mid = vec![
        Inst::StShared { ty: Ty::B32, src: Reg(0).into(), addr: Reg(4), off: 0, pred: None },
        Inst::Bar,
        Inst::Binary { op: BinOp::And, ty: Ty::B32, dst: Reg(1), a: tid.into(), b: Opnd::Imm(7) },
        Inst::Binary {
            op: BinOp::Mul,
            ty: Ty::U32,
            dst: Reg(1),
            a: Reg(1).into(),
            b: Opnd::Imm(16),
        },
        Inst::Ldmatrix { trans: false, dsts: vec![Reg(2)], addr: Reg(1), off: 0 },
        Inst::Ldmatrix { trans: true, dsts: vec![Reg(3)], addr: Reg(1), off: 0 },
    ];
    let mut k = warp_kernel(&[1], vec![Reg(2), Reg(3)], regs, mid);
    // Shared address of the lane's pair: 4 * lane.
    k.body.insert(
        2,
        Inst::Binary { op: BinOp::Mul, ty: Ty::U32, dst: Reg(4), a: tid.into(), b: Opnd::Imm(4) },
    );
    let input: Vec<u8> = (0..32u32)
        .flat_map(|l| {
            let w = (100 + 2 * l) | ((101 + 2 * l) << 16);
            let mut v = w.to_le_bytes().to_vec();
            v.extend([0u8; 12]);
            v
        })
        .collect();
    let mut b = vec![input, vec![0u8; 32 * 16]];
    let st = run(&k, [1, 1, 1], &[ExecArg::Buffer(0), ExecArg::Buffer(1)], &mut b).unwrap();
    assert_eq!(st.ldmatrix, 2);
    let out = words(&b[1]);
    for l in 0..32u32 {
        let (g, c) = (l / 4, 2 * (l % 4));
        let at = |r: u32, c: u32| 100 + r * 8 + c;
        assert_eq!(out[(l * 4) as usize], at(g, c) | (at(g, c + 1) << 16), "lane {l}");
        assert_eq!(out[(l * 4 + 1) as usize], at(c, g) | (at(c + 1, g) << 16), "lane {l} trans");
    }
}

/// `mma.sync.m16n8k16.row.col.f32.f16.f16.f32` per the PTX ISA fragment tables, written here
/// in the ISA's own element numbering: A element a_i of a lane is row g (i in {0,1,4,5}) or
/// g + 8, column 2t + (i & 1) (+ 8 for i >= 4); B element b_i is row 2t + (i & 1) (+ 8 for
/// i >= 2), column g; C/D c_i is row g (+ 8 for i >= 2), column 2t + (i & 1).
#[test]
fn mma_f16_computes_a_times_b_plus_c_in_isa_fragments() {
    use RegClass::*;
    let regs = vec![B32, B32, B32, B32, B32, B32, F32, F32, F32, F32];
    let c: Vec<Reg> = (6..10).map(Reg).collect();
    let mid = vec![Inst::Mma {
        kind: MmaKind::F16,
        d: c.clone(),
        a: (0..4).map(Reg).collect(),
        b: (4..6).map(Reg).collect(),
        c: c.clone(),
    }];
    let k = warp_kernel(&[4, 2, 4], c, regs, mid);
    let a = |r: usize, k: usize| ((r * 16 + k) % 7) as f32 - 3.0;
    let bm = |k: usize, n: usize| ((k * 8 + n) % 5) as f32 * 0.5 - 1.0;
    let cm = |r: usize, n: usize| (r * 8 + n) as f32 * 0.25;
    let h = |x: f32| u32::from(half::f16::from_f32(x).to_bits());
    let (mut ab, mut bb, mut cb) = (Vec::new(), Vec::new(), Vec::new());
    for lane in 0..32usize {
        let (g, t) = (lane / 4, lane % 4);
        let ai = |i: usize| {
            let row = if matches!(i, 0 | 1 | 4 | 5) { g } else { g + 8 };
            let col = 2 * t + (i & 1) + if i >= 4 { 8 } else { 0 };
            a(row, col)
        };
        let bi = |i: usize| bm(2 * t + (i & 1) + if i >= 2 { 8 } else { 0 }, g);
        let mut wa: Vec<u32> = (0..4).map(|r| h(ai(2 * r)) | (h(ai(2 * r + 1)) << 16)).collect();
        let mut wb: Vec<u32> = (0..2).map(|r| h(bi(2 * r)) | (h(bi(2 * r + 1)) << 16)).collect();
        wb.extend([0, 0]);
        let mut wc: Vec<u32> =
            (0..4).map(|i| cm(g + if i >= 2 { 8 } else { 0 }, 2 * t + (i & 1)).to_bits()).collect();
        for (dst, src) in [(&mut ab, &mut wa), (&mut bb, &mut wb), (&mut cb, &mut wc)] {
            dst.extend(src.iter().flat_map(|w| w.to_le_bytes()));
        }
    }
    let mut b = vec![ab, bb, cb, vec![0u8; 32 * 16]];
    let args: Vec<ExecArg> = (0..4).map(ExecArg::Buffer).collect();
    let st = run(&k, [1, 1, 1], &args, &mut b).unwrap();
    assert_eq!(st.mma, 1);
    let out = words(&b[3]);
    for lane in 0..32usize {
        let (g, t) = (lane / 4, lane % 4);
        for i in 0..4 {
            let (r, n) = (g + if i >= 2 { 8 } else { 0 }, 2 * t + (i & 1));
            let want = (0..16).map(|k| a(r, k) * bm(k, n)).sum::<f32>() + cm(r, n);
            assert_eq!(f32::from_bits(out[lane * 4 + i]), want, "lane {lane} c{i}");
        }
    }
}

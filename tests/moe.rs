//! The Mixture-of-Experts stdlib kernels (`moe_routing`, `moe_permute`, `moe_grouped_gemm`,
//! `moe_swiglu`, `moe_combine`), compiled from `stdlib/` and run by the reference interpreter,
//! equal plain Rust references written here (f64 loops, stable sorts), for expert counts 8, 64,
//! 160 and 256 and top-k from 1 to 8; and a whole MoE feed-forward layer chained from those
//! kernels equals a direct per-token computation.
//!
//! Outputs are poisoned buffers: every element a kernel should write must be written. Integer
//! results (expert ids, offsets, positions) are exact; f32 results are within 1e-5 relative of
//! the exact value plus an absolute floor of 1e-6 times the size of the terms combined (dot
//! products and weighted sums cancel).
//!
//! Routing inputs are drawn on a grid (multiples of 1/64), so that two experts' scores are either
//! exactly equal (then both the kernel and the reference pick the lower expert id) or differ by
//! far more than f32 rounding: the choice of experts is never decided by rounding noise.

use crate::common;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tk_driver::{compile_file, CompileOptions};
use tk_interp::{run_kernel, Arg, Buffer, RunOptions};
use tk_ir::{ConstValue, DType, FuncId, Module};

const REL: f64 = 1e-5;
const ABS: f64 = 1e-6;

/// A kernel compiled from the stdlib.
struct Compiled {
    module: Module,
    kernel: FuncId,
    sources: tk_diag::Sources,
}

fn compile(file: &str, kernel: &str, defines: &[(&str, usize)]) -> Compiled {
    compile_with(
        file,
        kernel,
        &defines.iter().map(|(k, v)| (*k, v.to_string())).collect::<Vec<_>>(),
    )
}

fn compile_with(file: &str, kernel: &str, defines: &[(&str, String)]) -> Compiled {
    let stdlib = common::repo_root().join("stdlib");
    let opts = CompileOptions {
        defines: defines.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        kernels: vec![kernel.to_string()],
        stdlib_dir: Some(stdlib.clone()),
        ..Default::default()
    };
    let c = compile_file(&stdlib.join(file), &opts);
    assert!(!c.has_errors(), "{file} {kernel} {defines:?}:\n{}", c.render_plain());
    let module = c.optimized.expect("no errors, so the pipeline finished");
    let kernel = module.find(kernel).unwrap_or_else(|| panic!("no kernel `{kernel}` in {file}"));
    Compiled { module, kernel, sources: c.sources }
}

/// Runs over the whole grid; the run must succeed and write every poisoned element.
fn run(k: &Compiled, grid: [u32; 3], args: &[Arg], bufs: &mut [Buffer], what: &str) {
    let report = run_kernel(&k.module, k.kernel, grid, args, bufs, &RunOptions::default())
        .unwrap_or_else(|e| {
            panic!(
                "{what}: the run failed:\n{}",
                tk_diag::render_plain(&k.sources, &[e.to_diagnostic()])
            )
        });
    assert!(report.unwritten.is_empty(), "{what}: elements left unwritten: {:?}", report.unwritten);
}

fn cdiv(a: usize, b: usize) -> usize {
    a.div_ceil(b)
}

/// `got[i]` within `REL * |want[i]| + ABS * mag[i]` of `want[i]` (mag: size of the terms).
fn assert_close(what: &str, got: &[f32], want: &[f64], mag: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut bad = Vec::new();
    for i in 0..want.len() {
        let tol = REL * want[i].abs() + ABS * mag[i] + 1e-36;
        let d = (got[i] as f64 - want[i]).abs();
        if d.is_nan() || d > tol {
            bad.push(format!(
                "[{i}] got {:e}, want {:e} (|diff| {d:e} > {tol:e})",
                got[i], want[i]
            ));
        }
    }
    let n = bad.len();
    bad.truncate(8);
    assert!(n == 0, "{what}: {n} of {} elements differ:\n{}", want.len(), bad.join("\n"));
}

/// `n` values on the grid of multiples of 1/64 in [lo, hi].
fn grid_values(rng: &mut ChaCha8Rng, n: usize, lo: i32, hi: i32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(lo * 64..=hi * 64) as f32 / 64.0).collect()
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

// ---------------------------------------------------------------------------------------------
// References

/// Indices of the `k` largest scores, largest first, equal scores by lower index (a stable sort).
fn ref_topk(scores: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).expect("no NaN").then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Selection scores are either equal or at least `gap` apart around the k-th place: otherwise
/// f32 rounding could legitimately decide the choice and the data would not test anything.
fn assert_unambiguous(what: &str, sel: &[f64], k: usize, gap: f64) {
    let order = ref_topk(sel, sel.len());
    if k < sel.len() {
        let (a, b) = (sel[order[k - 1]], sel[order[k]]);
        assert!(
            a == b || a - b > gap,
            "{what}: test data has a near tie at the k-th place ({a} vs {b})"
        );
    }
}

/// Routing reference: (weights [T, K], ids [T, K]).
#[allow(clippy::too_many_arguments)]
fn ref_routing(
    what: &str,
    sigmoid: bool,
    logits: &[f32],
    bias: &[f32],
    t: usize,
    e: usize,
    stride: usize,
    k: usize,
    renorm: bool,
    scale: f64,
) -> (Vec<f64>, Vec<i32>) {
    let mut w = Vec::new();
    let mut ids = Vec::new();
    for tok in 0..t {
        let x: Vec<f64> =
            logits[tok * stride..tok * stride + e].iter().map(|&v| v as f64).collect();
        let (score, sel): (Vec<f64>, Vec<f64>) = if sigmoid {
            let s: Vec<f64> = x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
            let sel = s.iter().zip(bias).map(|(s, &b)| s + b as f64).collect();
            (s, sel)
        } else {
            let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let p: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
            let z: f64 = p.iter().sum();
            let p: Vec<f64> = p.iter().map(|v| v / z).collect();
            (p.clone(), p)
        };
        assert_unambiguous(&format!("{what} token {tok}"), &sel, k, 1e-5);
        let top = ref_topk(&sel, k);
        let chosen: Vec<f64> = top.iter().map(|&i| score[i]).collect();
        let total: f64 = chosen.iter().sum();
        for (&i, &c) in top.iter().zip(&chosen) {
            w.push(if renorm { c / total } else { c } * scale);
            ids.push(i as i32);
        }
    }
    (w, ids)
}

/// Permutation reference: (counts, offsets [E+1], pos [n], src [n]) of a stable sort by expert.
fn ref_permutation(ids: &[i32], e: usize) -> (Vec<i32>, Vec<i32>, Vec<i32>, Vec<i32>) {
    let mut counts = vec![0i32; e];
    for &i in ids {
        counts[i as usize] += 1;
    }
    let mut offsets = vec![0i32; e + 1];
    for x in 0..e {
        offsets[x + 1] = offsets[x] + counts[x];
    }
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i]); // stable
    let mut pos = vec![0i32; ids.len()];
    let mut src = vec![0i32; ids.len()];
    for (row, &i) in order.iter().enumerate() {
        pos[i] = row as i32;
        src[row] = i as i32;
    }
    (counts, offsets, pos, src)
}

fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

// ---------------------------------------------------------------------------------------------
// Routing

fn check_routing(sigmoid: bool, e: usize, block_e: usize, k: usize, renorm: bool, seed: u64) {
    let kernel = if sigmoid { "sigmoid_topk_routing" } else { "softmax_topk_routing" };
    let what = format!("{kernel} E={e} BLOCK_E={block_e} K={k} RENORM={renorm}");
    let (t, stride) = (9, e + 3);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut logits = vec![f32::NAN; t * stride];
    for row in 0..t {
        let v = grid_values(&mut rng, e, -4, 4);
        logits[row * stride..row * stride + e].copy_from_slice(&v);
    }
    // Bias on a coarser grid, so that score + bias near-ties are rare (and checked).
    let bias: Vec<f32> = (0..e).map(|_| rng.gen_range(-2..=2) as f32 / 8.0).collect();
    let scale = 2.5f32;
    let defines =
        [("BLOCK_E", block_e.to_string()), ("K", k.to_string()), ("RENORM", renorm.to_string())];
    let c = compile_with("moe_routing.tk", kernel, &defines);
    let mut bufs = vec![Buffer::from_slice(&logits)];
    let mut args = vec![Arg::Buffer(0)];
    if sigmoid {
        bufs.push(Buffer::from_slice(&bias));
        args.push(Arg::Buffer(1));
    }
    let (wi, ii) = (bufs.len(), bufs.len() + 1);
    bufs.push(Buffer::uninit(DType::F32, t * k));
    bufs.push(Buffer::uninit(DType::I32, t * k));
    args.extend([
        Arg::Buffer(wi),
        Arg::Buffer(ii),
        Arg::i32(e as i32),
        Arg::i64(stride as i64),
        Arg::f32(scale),
    ]);
    run(&c, [t as u32, 1, 1], &args, &mut bufs, &what);
    let got_w = bufs[wi].to_vec::<f32>().unwrap();
    let got_ids = bufs[ii].to_vec::<i32>().unwrap();
    let (want_w, want_ids) =
        ref_routing(&what, sigmoid, &logits, &bias, t, e, stride, k, renorm, scale as f64);
    assert_eq!(got_ids, want_ids, "{what}: expert ids");
    assert_close(&what, &got_w, &want_w, &vec![0.0; want_w.len()]);
}

#[test]
fn softmax_topk_routing_equals_reference() {
    let mut seed = 7000;
    for (e, block_e) in [(8, 8), (64, 64), (160, 160), (256, 256), (60, 64)] {
        for k in 1..=8 {
            seed += 1;
            check_routing(false, e, block_e, k, k % 2 == 0, seed);
        }
    }
}

#[test]
fn sigmoid_topk_routing_equals_reference() {
    let mut seed = 7100;
    for (e, block_e) in [(8, 8), (64, 64), (160, 160), (256, 256), (100, 128)] {
        for k in 1..=8 {
            seed += 1;
            check_routing(true, e, block_e, k, k % 2 == 1, seed);
        }
    }
}

#[test]
fn routing_ties_go_to_the_lower_expert_id() {
    // Every logit equal: the chosen experts are 0..K in order, with equal weights.
    for sigmoid in [false, true] {
        let kernel = if sigmoid { "sigmoid_topk_routing" } else { "softmax_topk_routing" };
        let (e, k) = (160, 6);
        let c = compile_with(
            "moe_routing.tk",
            kernel,
            &[("BLOCK_E", "160".into()), ("K", "6".into()), ("RENORM", "true".into())],
        );
        let mut bufs = vec![Buffer::from_slice(&vec![0.25f32; e])];
        let mut args = vec![Arg::Buffer(0)];
        if sigmoid {
            bufs.push(Buffer::from_slice(&vec![0.0f32; e]));
            args.push(Arg::Buffer(1));
        }
        let n = bufs.len();
        bufs.push(Buffer::uninit(DType::F32, k));
        bufs.push(Buffer::uninit(DType::I32, k));
        args.extend([
            Arg::Buffer(n),
            Arg::Buffer(n + 1),
            Arg::i32(e as i32),
            Arg::i64(e as i64),
            Arg::f32(1.0),
        ]);
        run(&c, [1, 1, 1], &args, &mut bufs, kernel);
        assert_eq!(bufs[n + 1].to_vec::<i32>().unwrap(), vec![0, 1, 2, 3, 4, 5], "{kernel}");
        for w in bufs[n].to_vec::<f32>().unwrap() {
            assert!((w as f64 - 1.0 / 6.0).abs() < 1e-7, "{kernel}: weight {w}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Permutation

/// `t` tokens with `k` distinct experts each, skewed towards low expert ids (so that some
/// experts get many rows and, with many experts, some get none).
fn routed_ids(rng: &mut ChaCha8Rng, t: usize, e: usize, k: usize) -> Vec<i32> {
    let mut ids = Vec::with_capacity(t * k);
    for _ in 0..t {
        let mut chosen: Vec<i32> = Vec::new();
        while chosen.len() < k {
            let r: f64 = rng.gen();
            let x = ((r * r) * e as f64) as i32;
            if !chosen.contains(&x) {
                chosen.push(x);
            }
        }
        ids.extend(chosen);
    }
    ids
}

/// What the four permutation kernels produced.
struct Permuted {
    offsets: Vec<i32>,
    pos: Vec<i32>,
    src: Vec<i32>,
}

/// Runs expert_histogram, expert_offsets and dispatch_index on `ids`, checking every output
/// (block counts and bases included) against the reference.
fn run_permutation(what: &str, ids: &[i32], e: usize, block: usize, block_e: usize) -> Permuted {
    let n = ids.len();
    let nb = cdiv(n, block);
    let defines = [("BLOCK", block), ("BLOCK_E", block_e)];
    let hist = compile("moe_permute.tk", "expert_histogram", &defines);
    let offs = compile("moe_permute.tk", "expert_offsets", &defines);
    let disp = compile("moe_permute.tk", "dispatch_index", &defines);
    // 0 ids, 1 block_counts, 2 offsets, 3 block_base, 4 pos, 5 src
    let mut bufs = vec![
        Buffer::from_slice(ids),
        Buffer::uninit(DType::I32, nb * e),
        Buffer::uninit(DType::I32, e + 1),
        Buffer::uninit(DType::I32, nb * e),
        Buffer::uninit(DType::I32, n),
        Buffer::uninit(DType::I32, n),
    ];
    let (n32, e32) = (Arg::i32(n as i32), Arg::i32(e as i32));
    run(
        &hist,
        [nb as u32, 1, 1],
        &[Arg::Buffer(0), Arg::Buffer(1), n32.clone(), e32.clone()],
        &mut bufs,
        what,
    );
    run(
        &offs,
        [1, 1, 1],
        &[Arg::Buffer(1), Arg::Buffer(2), Arg::Buffer(3), Arg::i32(nb as i32), e32.clone()],
        &mut bufs,
        what,
    );
    run(
        &disp,
        [nb as u32, 1, 1],
        &[Arg::Buffer(0), Arg::Buffer(3), Arg::Buffer(4), Arg::Buffer(5), n32, e32],
        &mut bufs,
        what,
    );
    let (_, want_offsets, want_pos, want_src) = ref_permutation(ids, e);
    // Block counts and bases, from their definitions.
    let mut want_counts = vec![0i32; nb * e];
    for (i, &x) in ids.iter().enumerate() {
        want_counts[(i / block) * e + x as usize] += 1;
    }
    let mut want_base = vec![0i32; nb * e];
    for x in 0..e {
        let mut run = want_offsets[x];
        for b in 0..nb {
            want_base[b * e + x] = run;
            run += want_counts[b * e + x];
        }
    }
    assert_eq!(bufs[1].to_vec::<i32>().unwrap(), want_counts, "{what}: block_counts");
    assert_eq!(bufs[3].to_vec::<i32>().unwrap(), want_base, "{what}: block_base");
    let got = Permuted {
        offsets: bufs[2].to_vec::<i32>().unwrap(),
        pos: bufs[4].to_vec::<i32>().unwrap(),
        src: bufs[5].to_vec::<i32>().unwrap(),
    };
    assert_eq!(got.offsets, want_offsets, "{what}: offsets");
    assert_eq!(got.pos, want_pos, "{what}: pos");
    assert_eq!(got.src, want_src, "{what}: src");
    got
}

#[test]
fn permutation_indices_equal_a_stable_sort() {
    // (tokens, E, K, BLOCK, BLOCK_E): several blocks with a ragged last one, a single partial
    // block, more experts than pairs (empty groups), non-power-of-two blocks.
    let cases = [
        (50, 8, 2, 32, 8),
        (37, 64, 6, 64, 64),
        (29, 160, 6, 48, 160),
        (21, 256, 8, 100, 256),
        (3, 256, 1, 16, 256),
        (40, 8, 8, 256, 16),
    ];
    for (s, &(t, e, k, block, block_e)) in cases.iter().enumerate() {
        let what = format!("permutation T={t} E={e} K={k} BLOCK={block} BLOCK_E={block_e}");
        let mut rng = ChaCha8Rng::seed_from_u64(7200 + s as u64);
        run_permutation(&what, &routed_ids(&mut rng, t, e, k), e, block, block_e);
    }
}

#[test]
fn permutation_of_arbitrary_ids_is_stable() {
    // Repeated experts within a token and one expert taking everything: still a stable sort.
    let mut rng = ChaCha8Rng::seed_from_u64(7300);
    let ids: Vec<i32> = (0..300).map(|_| rng.gen_range(0..5)).collect();
    run_permutation("random ids E=8", &ids, 8, 64, 8);
    run_permutation("one expert", &[3; 77], 8, 32, 8);
}

#[test]
fn expert_histogram_rejects_out_of_range_ids() {
    let hist = compile("moe_permute.tk", "expert_histogram", &[("BLOCK", 16), ("BLOCK_E", 8)]);
    let mut bufs = vec![Buffer::from_slice(&[0i32, 1, 8, 2]), Buffer::uninit(DType::I32, 8)];
    let e = run_kernel(
        &hist.module,
        hist.kernel,
        [1, 1, 1],
        &[Arg::Buffer(0), Arg::Buffer(1), Arg::i32(4), Arg::i32(8)],
        &mut bufs,
        &RunOptions::default(),
    )
    .expect_err("expert id 8 of 8 experts must fail");
    assert!(e.to_string().contains("an expert id is out of range"), "{e}");
}

#[test]
fn permute_and_unpermute_rows_move_whole_rows() {
    // (tokens, E, K, hidden, BLOCK_R, BLOCK_H)
    let cases = [(20, 8, 2, 40, 8, 16), (13, 160, 6, 33, 5, 32), (9, 256, 8, 70, 8, 64)];
    for (s, &(t, e, k, hidden, br, bh)) in cases.iter().enumerate() {
        let what = format!("permute_rows T={t} E={e} K={k} hidden={hidden}");
        let mut rng = ChaCha8Rng::seed_from_u64(7400 + s as u64);
        let ids = routed_ids(&mut rng, t, e, k);
        let (_, _, pos, src) = ref_permutation(&ids, e);
        let n = t * k;
        let x = uniform(&mut rng, t * hidden, -1.0, 1.0);
        let defines = [("BLOCK_R", br), ("BLOCK_H", bh)];
        let perm = compile("moe_permute.tk", "permute_rows", &defines);
        let unperm = compile("moe_permute.tk", "unpermute_rows", &defines);
        let mut bufs = vec![
            Buffer::from_slice(&x),
            Buffer::from_slice(&src),
            Buffer::uninit(DType::F32, n * hidden),
            Buffer::from_slice(&pos),
            Buffer::uninit(DType::F32, n * hidden),
        ];
        let grid = [cdiv(n, br) as u32, cdiv(hidden, bh) as u32, 1];
        let hid = Arg::i32(hidden as i32);
        run(
            &perm,
            grid,
            &[
                Arg::Buffer(0),
                Arg::Buffer(1),
                Arg::Buffer(2),
                Arg::i32(n as i32),
                hid.clone(),
                Arg::i32(k as i32),
            ],
            &mut bufs,
            &what,
        );
        let xp = bufs[2].to_vec::<f32>().unwrap();
        // The scatter form moves the same rows.
        let scat = compile("moe_permute.tk", "scatter_rows", &defines);
        let mut sb = vec![
            Buffer::from_slice(&x),
            Buffer::from_slice(&pos),
            Buffer::uninit(DType::F32, n * hidden),
        ];
        let sargs = [
            Arg::Buffer(0),
            Arg::Buffer(1),
            Arg::Buffer(2),
            Arg::i32(n as i32),
            hid.clone(),
            Arg::i32(k as i32),
        ];
        run(&scat, grid, &sargs, &mut sb, &what);
        assert_eq!(sb[2].to_vec::<f32>().unwrap(), xp, "{what}: scatter_rows vs permute_rows");
        for r in 0..n {
            let tok = src[r] as usize / k;
            assert_eq!(
                &xp[r * hidden..(r + 1) * hidden],
                &x[tok * hidden..(tok + 1) * hidden],
                "{what}: row {r}"
            );
        }
        run(
            &unperm,
            grid,
            &[Arg::Buffer(2), Arg::Buffer(3), Arg::Buffer(4), Arg::i32(n as i32), hid],
            &mut bufs,
            &what,
        );
        // Unpermuting the permuted rows gives every (token, slot) its token's row.
        let y = bufs[4].to_vec::<f32>().unwrap();
        for i in 0..n {
            let tok = i / k;
            assert_eq!(
                &y[i * hidden..(i + 1) * hidden],
                &x[tok * hidden..(tok + 1) * hidden],
                "{what}: pair {i}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Grouped GEMM

/// Group sizes: skewed, with empty groups, groups smaller than a tile and larger than several.
fn group_sizes(rng: &mut ChaCha8Rng, e: usize, rows: usize) -> Vec<usize> {
    let mut sizes = vec![0usize; e];
    for _ in 0..rows {
        let r: f64 = rng.gen();
        sizes[((r * r * r) * e as f64) as usize] += 1;
    }
    sizes
}

#[allow(clippy::too_many_arguments)]
fn check_grouped_gemm(
    e: usize,
    rows: usize,
    n: usize,
    kk: usize,
    bm: usize,
    bn: usize,
    bk: usize,
    seed: u64,
) {
    let what = format!("grouped_gemm E={e} rows={rows} N={n} K={kk} BM={bm} BN={bn} BK={bk}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sizes = group_sizes(&mut rng, e, rows);
    let mut offsets = vec![0i32; e + 1];
    for x in 0..e {
        offsets[x + 1] = offsets[x] + sizes[x] as i32;
    }
    let a = uniform(&mut rng, rows * kk, -1.0, 1.0);
    let w = uniform(&mut rng, e * kk * n, -1.0, 1.0);
    // Two spare rows after the groups: programs past the last tile must not touch them.
    let sentinel = -777.0f32;
    let mut c = Buffer::uninit(DType::F32, (rows + 2) * n);
    for i in rows * n..(rows + 2) * n {
        c.set(i, ConstValue::Float(sentinel as f64)).unwrap();
    }
    let g = compile("moe_grouped_gemm.tk", "grouped_gemm", &[("BM", bm), ("BN", bn), ("BK", bk)]);
    let mut bufs =
        vec![Buffer::from_slice(&a), Buffer::from_slice(&w), c, Buffer::from_slice(&offsets)];
    let grid = [(cdiv(rows, bm) + e) as u32, cdiv(n, bn) as u32, 1];
    let args = [
        Arg::Buffer(0),
        Arg::Buffer(1),
        Arg::Buffer(2),
        Arg::Buffer(3),
        Arg::i32(e as i32),
        Arg::i32(n as i32),
        Arg::i32(kk as i32),
    ];
    run(&g, grid, &args, &mut bufs, &what);
    let got = bufs[2].to_vec::<f32>().unwrap();
    let mut want = Vec::with_capacity(rows * n);
    let mut mag = Vec::with_capacity(rows * n);
    for x in 0..e {
        for r in offsets[x] as usize..offsets[x + 1] as usize {
            for j in 0..n {
                let (mut s, mut m) = (0.0f64, 0.0f64);
                for q in 0..kk {
                    let p = a[r * kk + q] as f64 * w[(x * kk + q) * n + j] as f64;
                    s += p;
                    m += p.abs();
                }
                want.push(s);
                mag.push(m);
            }
        }
    }
    assert_close(&what, &got[..rows * n], &want, &mag);
    assert!(
        got[rows * n..].iter().all(|&v| v == sentinel),
        "{what}: rows past the groups were written"
    );
}

#[test]
fn grouped_gemm_equals_per_group_products() {
    // (E, rows, N, K, BM, BN, BK)
    check_grouped_gemm(8, 100, 40, 33, 16, 16, 16, 7500);
    check_grouped_gemm(64, 90, 24, 20, 8, 24, 8, 7501);
    check_grouped_gemm(160, 150, 17, 12, 16, 16, 8, 7502);
    check_grouped_gemm(256, 120, 20, 9, 8, 8, 16, 7503);
    check_grouped_gemm(8, 5, 3, 70, 4, 4, 32, 7504);
}

// ---------------------------------------------------------------------------------------------
// SwiGLU and combine

#[test]
fn swiglu_equals_reference() {
    for (s, &(rows, inter, br, bl)) in
        [(10, 40, 4, 16), (7, 33, 3, 64), (1, 5, 4, 8)].iter().enumerate()
    {
        let what = format!("swiglu rows={rows} inter={inter}");
        let mut rng = ChaCha8Rng::seed_from_u64(7600 + s as u64);
        let gu = uniform(&mut rng, rows * 2 * inter, -6.0, 6.0);
        let k = compile("moe_swiglu.tk", "swiglu", &[("BLOCK_R", br), ("BLOCK", bl)]);
        let mut bufs = vec![Buffer::from_slice(&gu), Buffer::uninit(DType::F32, rows * inter)];
        let grid = [cdiv(rows, br) as u32, cdiv(inter, bl) as u32, 1];
        run(
            &k,
            grid,
            &[Arg::Buffer(0), Arg::Buffer(1), Arg::i32(rows as i32), Arg::i32(inter as i32)],
            &mut bufs,
            &what,
        );
        let want: Vec<f64> = (0..rows * inter)
            .map(|i| {
                let (r, c) = (i / inter, i % inter);
                silu(gu[r * 2 * inter + c] as f64) * gu[r * 2 * inter + inter + c] as f64
            })
            .collect();
        assert_close(&what, &bufs[1].to_vec::<f32>().unwrap(), &want, &vec![0.0; want.len()]);
    }
}

#[test]
fn combine_sums_weighted_expert_rows_in_slot_order() {
    for (s, &(t, k, hidden, bl)) in
        [(12, 6, 40, 16), (5, 1, 33, 64), (7, 8, 100, 32)].iter().enumerate()
    {
        let what = format!("combine T={t} K={k} hidden={hidden}");
        let mut rng = ChaCha8Rng::seed_from_u64(7700 + s as u64);
        let n = t * k;
        let yp = uniform(&mut rng, n * hidden, -2.0, 2.0);
        let w = uniform(&mut rng, n, 0.0, 1.0);
        let mut pos: Vec<i32> = (0..n as i32).collect();
        for i in (1..n).rev() {
            pos.swap(i, rng.gen_range(0..=i));
        }
        let c = compile("moe_combine.tk", "combine", &[("BLOCK", bl)]);
        let mut bufs = vec![
            Buffer::from_slice(&yp),
            Buffer::from_slice(&pos),
            Buffer::from_slice(&w),
            Buffer::uninit(DType::F32, t * hidden),
        ];
        let args = [
            Arg::Buffer(0),
            Arg::Buffer(1),
            Arg::Buffer(2),
            Arg::Buffer(3),
            Arg::i32(hidden as i32),
            Arg::i32(k as i32),
        ];
        run(&c, [t as u32, cdiv(hidden, bl) as u32, 1], &args, &mut bufs, &what);
        let got = bufs[3].to_vec::<f32>().unwrap();
        let mut want = vec![0.0f64; t * hidden];
        let mut mag = vec![0.0f64; t * hidden];
        // The kernel's own order of f32 operations, replayed: the result is bit-exact.
        let mut exact = vec![0.0f32; t * hidden];
        for tok in 0..t {
            for slot in 0..k {
                let i = tok * k + slot;
                let row = pos[i] as usize;
                for j in 0..hidden {
                    let p = w[i] as f64 * yp[row * hidden + j] as f64;
                    want[tok * hidden + j] += p;
                    mag[tok * hidden + j] += p.abs();
                    exact[tok * hidden + j] += w[i] * yp[row * hidden + j];
                }
            }
        }
        assert_close(&what, &got, &want, &mag);
        assert_eq!(got, exact, "{what}: slot order s = 0..K with one rounding per operation");
    }
}

// ---------------------------------------------------------------------------------------------
// A whole layer

/// One MoE feed-forward layer chained from the stdlib kernels in the interpreter, against a
/// direct per-token computation: router matmul, softmax top-k routing, permutation, grouped GEMM
/// (gate and up), SwiGLU, grouped GEMM (down), combine.
fn check_layer(t: usize, hidden: usize, inter: usize, e: usize, k: usize, seed: u64) {
    let what = format!("MoE layer T={t} hidden={hidden} inter={inter} E={e} K={k}");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Grid values keep the router logits exact in f32 (see the module doc).
    let x = grid_values(&mut rng, t * hidden, -1, 1);
    let wr: Vec<f32> = (0..hidden * e).map(|_| rng.gen_range(-8..=8) as f32 / 64.0).collect();
    let w1 = uniform(&mut rng, e * hidden * 2 * inter, -0.3, 0.3);
    let w2 = uniform(&mut rng, e * inter * hidden, -0.3, 0.3);
    let n = t * k;
    let (block, bm, bn, bk) = (64, 8, 16, 16);
    let nb = cdiv(n, block);
    // Buffers, by index.
    let names = [
        "x", "wr", "logits", "weights", "ids", "counts", "offsets", "base", "pos", "src", "xp",
        "w1", "gu", "h", "w2", "yp", "out",
    ];
    let ix = |name: &str| names.iter().position(|&s| s == name).unwrap();
    let mut bufs = vec![
        Buffer::from_slice(&x),
        Buffer::from_slice(&wr),
        Buffer::uninit(DType::F32, t * e),
        Buffer::uninit(DType::F32, n),
        Buffer::uninit(DType::I32, n),
        Buffer::uninit(DType::I32, nb * e),
        Buffer::uninit(DType::I32, e + 1),
        Buffer::uninit(DType::I32, nb * e),
        Buffer::uninit(DType::I32, n),
        Buffer::uninit(DType::I32, n),
        Buffer::uninit(DType::F32, n * hidden),
        Buffer::from_slice(&w1),
        Buffer::uninit(DType::F32, n * 2 * inter),
        Buffer::uninit(DType::F32, n * inter),
        Buffer::from_slice(&w2),
        Buffer::uninit(DType::F32, n * hidden),
        Buffer::uninit(DType::F32, t * hidden),
    ];
    let b = |name: &str| Arg::Buffer(ix(name));
    let i = |v: usize| Arg::i32(v as i32);
    let mm = compile("matmul.tk", "matmul", &[("BM", 16), ("BN", 16), ("BK", 32)]);
    run(
        &mm,
        [cdiv(t, 16) as u32, cdiv(e, 16) as u32, 1],
        &[b("x"), b("wr"), b("logits"), i(t), i(e), i(hidden)],
        &mut bufs,
        &what,
    );
    let route = compile_with(
        "moe_routing.tk",
        "softmax_topk_routing",
        &[("BLOCK_E", e.to_string()), ("K", k.to_string()), ("RENORM", "true".into())],
    );
    run(
        &route,
        [t as u32, 1, 1],
        &[b("logits"), b("weights"), b("ids"), i(e), Arg::i64(e as i64), Arg::f32(1.0)],
        &mut bufs,
        &what,
    );
    let pd = [("BLOCK", block), ("BLOCK_E", e), ("BLOCK_R", 4), ("BLOCK_H", 32)];
    let hist = compile("moe_permute.tk", "expert_histogram", &pd);
    run(&hist, [nb as u32, 1, 1], &[b("ids"), b("counts"), i(n), i(e)], &mut bufs, &what);
    let offs = compile("moe_permute.tk", "expert_offsets", &pd);
    run(&offs, [1, 1, 1], &[b("counts"), b("offsets"), b("base"), i(nb), i(e)], &mut bufs, &what);
    let disp = compile("moe_permute.tk", "dispatch_index", &pd);
    run(
        &disp,
        [nb as u32, 1, 1],
        &[b("ids"), b("base"), b("pos"), b("src"), i(n), i(e)],
        &mut bufs,
        &what,
    );
    let perm = compile("moe_permute.tk", "permute_rows", &pd);
    run(
        &perm,
        [cdiv(n, 4) as u32, cdiv(hidden, 32) as u32, 1],
        &[b("x"), b("src"), b("xp"), i(n), i(hidden), i(k)],
        &mut bufs,
        &what,
    );
    let gg = compile("moe_grouped_gemm.tk", "grouped_gemm", &[("BM", bm), ("BN", bn), ("BK", bk)]);
    let tiles = (cdiv(n, bm) + e) as u32;
    run(
        &gg,
        [tiles, cdiv(2 * inter, bn) as u32, 1],
        &[b("xp"), b("w1"), b("gu"), b("offsets"), i(e), i(2 * inter), i(hidden)],
        &mut bufs,
        &what,
    );
    let sw = compile("moe_swiglu.tk", "swiglu", &[("BLOCK_R", 4), ("BLOCK", 32)]);
    run(
        &sw,
        [cdiv(n, 4) as u32, cdiv(inter, 32) as u32, 1],
        &[b("gu"), b("h"), i(n), i(inter)],
        &mut bufs,
        &what,
    );
    run(
        &gg,
        [tiles, cdiv(hidden, bn) as u32, 1],
        &[b("h"), b("w2"), b("yp"), b("offsets"), i(e), i(hidden), i(inter)],
        &mut bufs,
        &what,
    );
    let comb = compile("moe_combine.tk", "combine", &[("BLOCK", 32)]);
    run(
        &comb,
        [t as u32, cdiv(hidden, 32) as u32, 1],
        &[b("yp"), b("pos"), b("weights"), b("out"), i(hidden), i(k)],
        &mut bufs,
        &what,
    );
    let got = bufs[ix("out")].to_vec::<f32>().unwrap();

    // The reference: route each token, run its experts' MLPs on it, and add them up.
    let mut logits = vec![0.0f32; t * e];
    for tok in 0..t {
        for x_e in 0..e {
            // Exact: every partial sum is a multiple of 1/4096 far below 2^24/4096.
            logits[tok * e + x_e] = (0..hidden)
                .map(|q| x[tok * hidden + q] as f64 * wr[q * e + x_e] as f64)
                .sum::<f64>() as f32;
        }
    }
    let (rw, rids) = ref_routing(&what, false, &logits, &[], t, e, e, k, true, 1.0);
    assert_eq!(bufs[ix("ids")].to_vec::<i32>().unwrap(), rids, "{what}: expert ids");
    let mut want = vec![0.0f64; t * hidden];
    let mut mag = vec![0.0f64; t * hidden];
    for tok in 0..t {
        let xt = &x[tok * hidden..(tok + 1) * hidden];
        for slot in 0..k {
            let (ex, wt) = (rids[tok * k + slot] as usize, rw[tok * k + slot]);
            let mut h = vec![0.0f64; inter];
            for (c, hc) in h.iter_mut().enumerate() {
                let (mut g, mut u) = (0.0, 0.0);
                for q in 0..hidden {
                    g += xt[q] as f64 * w1[(ex * hidden + q) * 2 * inter + c] as f64;
                    u += xt[q] as f64 * w1[(ex * hidden + q) * 2 * inter + inter + c] as f64;
                }
                *hc = silu(g) * u;
            }
            for j in 0..hidden {
                let y: f64 =
                    (0..inter).map(|c| h[c] * w2[(ex * inter + c) * hidden + j] as f64).sum();
                let ym: f64 = (0..inter)
                    .map(|c| (h[c] * w2[(ex * inter + c) * hidden + j] as f64).abs())
                    .sum();
                want[tok * hidden + j] += wt * y;
                mag[tok * hidden + j] += wt * ym;
            }
        }
    }
    // Three rounded stages (gate/up, SwiGLU, down) feed each other; 1e-5 relative of the term
    // size covers them with a wide margin.
    let mag: Vec<f64> = mag.iter().map(|m| m * 10.0).collect();
    assert_close(&what, &got, &want, &mag);
}

#[test]
fn a_moe_layer_from_stdlib_kernels_equals_the_direct_computation() {
    check_layer(12, 40, 24, 8, 2, 7800);
    check_layer(10, 32, 16, 160, 6, 7801);
}

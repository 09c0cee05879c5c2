//! Timing (warm-up, then the median of repeated runs), 64-byte-aligned buffers, seeded inputs
//! and the output comparisons that gate every measurement.

use std::time::{Duration, Instant};

/// How long and how often one implementation is run.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Warm-up runs (at least this many, and at least `warm_s` seconds' worth, at most 50).
    pub warmup: usize,
    pub warm_s: f64,
    /// Timed runs per implementation: as many as fit in `budget_s`, clamped to
    /// `min_runs..=max_runs`.
    pub budget_s: f64,
    pub min_runs: usize,
    pub max_runs: usize,
    /// Pause whenever the implementation being timed changes, so that OpenMP and OpenBLAS
    /// worker threads, which spin for a while after their last job, are asleep before the next
    /// one starts.
    pub gap: Duration,
}

impl Plan {
    pub fn full() -> Plan {
        Plan {
            warmup: 3,
            warm_s: 0.3,
            budget_s: 2.0,
            min_runs: 11,
            max_runs: 201,
            gap: Duration::from_millis(200),
        }
    }
    pub fn quick() -> Plan {
        Plan {
            warmup: 1,
            warm_s: 0.05,
            budget_s: 0.3,
            min_runs: 3,
            max_runs: 21,
            gap: Duration::from_millis(100),
        }
    }
}

/// Seconds per run of one implementation.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub median: f64,
    pub min: f64,
    pub runs: usize,
}

/// A function that runs one implementation once.
pub type Runner<'a> = Box<dyn FnMut() -> Result<(), String> + 'a>;

/// Times several implementations of the same kernel: each is warmed up, then they take turns in
/// `ROUNDS` rounds (so that a change in machine load hits them alike) and each one's median and
/// minimum are taken over all its runs.
pub fn time_group(plan: &Plan, impls: &mut [Runner<'_>]) -> Result<Vec<Timing>, String> {
    const ROUNDS: usize = 3;
    let mut per_round = Vec::with_capacity(impls.len());
    for f in impls.iter_mut() {
        let start = Instant::now();
        let mut warm = 0usize;
        while warm < plan.warmup || (start.elapsed().as_secs_f64() < plan.warm_s && warm < 50) {
            f()?;
            warm += 1;
        }
        let per_run = start.elapsed().as_secs_f64() / warm as f64;
        let runs =
            ((plan.budget_s / per_run.max(1e-9)) as usize).clamp(plan.min_runs, plan.max_runs);
        per_round.push(runs.div_ceil(ROUNDS));
        std::thread::sleep(plan.gap);
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); impls.len()];
    for _ in 0..ROUNDS {
        for (i, f) in impls.iter_mut().enumerate() {
            for _ in 0..per_round[i] {
                let t = Instant::now();
                f()?;
                samples[i].push(t.elapsed().as_secs_f64());
            }
            std::thread::sleep(plan.gap);
        }
    }
    Ok(samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(|a, b| a.total_cmp(b));
            Timing { median: s[s.len() / 2], min: s[0], runs: s.len() }
        })
        .collect())
}

/// A buffer whose first element sits on a 64-byte boundary (a cache line), so that every
/// implementation reads and writes the same, equally aligned memory. tk needs 16 bytes.
pub struct Buf<T> {
    v: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Copy> Buf<T> {
    pub fn filled(len: usize, value: T) -> Buf<T> {
        let pad = 64 / std::mem::size_of::<T>();
        // Writing every element also faults every page in before any timing.
        let v = vec![value; len + pad];
        let addr = v.as_ptr() as usize;
        let off = ((64 - addr % 64) % 64) / std::mem::size_of::<T>();
        Buf { v, off, len }
    }
    pub fn from_fn(len: usize, mut f: impl FnMut(usize) -> T, fill: T) -> Buf<T> {
        let mut b = Buf::filled(len, fill);
        for (i, x) in b.m().iter_mut().enumerate() {
            *x = f(i);
        }
        b
    }
    pub fn s(&self) -> &[T] {
        &self.v[self.off..self.off + self.len]
    }
    pub fn m(&mut self) -> &mut [T] {
        &mut self.v[self.off..self.off + self.len]
    }
}

/// SplitMix64: a tiny seeded generator, so that every run times the same inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
}

/// Fails, naming the worst element, unless `|got - want| <= atol + rtol * |want|` everywhere
/// (NaN anywhere fails: outputs are poisoned with NaN before the checked run).
pub fn check_close(
    what: &str,
    got: &[f32],
    want: &[f32],
    atol: f32,
    rtol: f32,
) -> Result<f32, String> {
    if got.len() != want.len() {
        return Err(format!("{what}: {} elements, expected {}", got.len(), want.len()));
    }
    let mut worst = 0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs();
        if err.is_nan() || err > atol + rtol * w.abs() {
            return Err(format!(
                "{what}: element {i} is {g}, the baseline says {w} (tolerance {atol} + {rtol} * |baseline|)"
            ));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_start_on_a_cache_line() {
        for len in [1usize, 3, 1000, 1 << 16] {
            let b = Buf::filled(len, 0u8);
            assert_eq!(b.s().as_ptr() as usize % 64, 0);
            assert_eq!(b.s().len(), len);
            let f = Buf::from_fn(len, |i| i as f32, 0.0);
            assert_eq!(f.s().as_ptr() as usize % 64, 0);
            assert_eq!(f.s()[len - 1], (len - 1) as f32);
        }
    }

    #[test]
    fn uniform_stays_in_range_and_is_seeded() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..10_000 {
            let x = a.uniform(-4.0, 4.0);
            assert!((-4.0..4.0).contains(&x));
            assert_eq!(x, b.uniform(-4.0, 4.0));
        }
    }

    #[test]
    fn check_close_rejects_nan_and_errors_beyond_tolerance() {
        assert_eq!(check_close("t", &[1.0, 2.0], &[1.0, 2.0], 0.0, 0.0), Ok(0.0));
        // 2.0 vs 2.1: error 0.1 <= 0.05 + 0.1 * 2.1 = 0.26.
        assert!(check_close("t", &[2.0], &[2.1], 0.05, 0.1).is_ok());
        assert!(check_close("t", &[2.0], &[2.1], 0.05, 0.0).is_err());
        assert!(check_close("t", &[f32::NAN], &[1.0], 1.0, 1.0).is_err());
        assert!(check_close("t", &[1.0], &[1.0, 2.0], 1.0, 1.0).is_err());
    }

    #[test]
    fn time_group_runs_every_implementation_and_stops_on_error() {
        let plan = Plan { gap: Duration::ZERO, ..Plan::quick() };
        let (mut a, mut b) = (0usize, 0usize);
        {
            let mut impls: Vec<Runner> = vec![
                Box::new(|| {
                    a += 1;
                    Ok(())
                }),
                Box::new(|| {
                    b += 1;
                    Ok(())
                }),
            ];
            let t = time_group(&plan, &mut impls).unwrap();
            assert_eq!(t.len(), 2);
            assert!(t.iter().all(|t| t.runs >= plan.min_runs && t.min <= t.median));
        }
        assert!(a > plan.min_runs && b > plan.min_runs);
        let mut bad: Vec<Runner> = vec![Box::new(|| Err("wrong".to_string()))];
        assert_eq!(time_group(&plan, &mut bad).unwrap_err(), "wrong");
    }
}

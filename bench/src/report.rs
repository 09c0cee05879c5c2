//! Results: the rows of the table, the PyTorch timings read back from bench/torch_bench.py's
//! JSON, the bars from the benchmark issue, and the Markdown and JSON renderings.

use crate::measure::Timing;
use serde_json::{json, Value};
use std::path::Path;

/// Keys of the copy-bandwidth results that memory-bound kernels are compared with.
pub const COPY_LARGE: &str = "copy_64mib";
pub const COPY_ROWS: &str = "copy_16mib";

/// Who produced a timing: `tag` is what bars refer to (tk, c, openblas, torch, memcpy, loop).
#[derive(Clone, Debug)]
pub struct Impl {
    pub tag: String,
    pub label: String,
}

impl Impl {
    pub fn new(tag: &str, label: &str) -> Impl {
        Impl { tag: tag.into(), label: label.into() }
    }
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub imp: Impl,
    pub t: Timing,
}

impl Entry {
    pub fn new(imp: Impl, t: Timing) -> Entry {
        Entry { imp, t }
    }
}

/// The work one call does: bytes that must cross memory at least once, floating-point
/// operations, or items of some kind (tokens) for kernels where neither says much.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    Bytes(f64),
    Flops(f64),
    Items(f64, &'static str),
}

pub struct KernelResult {
    pub key: &'static str,
    pub title: String,
    /// tk's compile-time configuration (the `-D` values the bundle was built with).
    pub config: String,
    pub work: Work,
    /// The copy result (COPY_*) whose bandwidth this kernel is compared with.
    pub copy_ref: Option<&'static str>,
    /// Largest |tk - baseline| seen in the check before timing.
    pub max_err: f32,
    pub entries: Vec<Entry>,
}

impl KernelResult {
    fn by_tag(&self, tag: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.imp.tag == tag)
    }
    fn rate(&self, t: &Timing) -> f64 {
        match self.work {
            Work::Bytes(b) => b / t.median / 1e9,
            Work::Flops(f) => f / t.median / 1e9,
            Work::Items(n, _) => n / t.median / 1e6,
        }
    }
    fn rate_text(&self, t: &Timing) -> String {
        match self.work {
            Work::Bytes(_) => format!("{:.1} GB/s", self.rate(t)),
            Work::Flops(_) => format!("{:.1} GFLOP/s", self.rate(t)),
            Work::Items(_, what) => format!("{:.1} M {what}/s", self.rate(t)),
        }
    }
    /// The best bandwidth any copy implementation reached.
    fn best_rate(&self) -> f64 {
        self.entries.iter().map(|e| self.rate(&e.t)).fold(0.0, f64::max)
    }
}

/// PyTorch timings from bench/torch_bench.py.
pub struct TorchResults {
    v: Value,
}

impl TorchResults {
    pub fn read(path: &Path) -> Result<TorchResults, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading torch results {}: {e}", path.display()))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("torch results {}: {e}", path.display()))?;
        if !v["results"].is_object() {
            return Err(format!("torch results {}: no `results` object", path.display()));
        }
        Ok(TorchResults { v })
    }

    pub fn entry(&self, key: &str) -> Option<Entry> {
        let r = &self.v["results"][key];
        let median = r["median_s"].as_f64()?;
        let min = r["min_s"].as_f64()?;
        let runs = r["runs"].as_u64()? as usize;
        let api = r["api"].as_str().unwrap_or("torch");
        Some(Entry::new(Impl::new("torch", api), Timing { median, min, runs }))
    }

    pub fn describe(&self) -> String {
        let s = |k: &str| self.v[k].as_str().unwrap_or("?").to_string();
        format!(
            "torch {} ({} threads, CPU capability {}, {})",
            s("torch_version"),
            self.v["threads"].as_u64().map(|t| t.to_string()).unwrap_or_else(|| "?".into()),
            s("cpu_capability"),
            s("blas"),
        )
    }
}

pub struct Meta {
    pub threads: usize,
    pub blas: String,
    pub torch: Option<String>,
    pub load_start: String,
    pub load_end: String,
    pub quick: bool,
}

/// The bars from the issue: tk's speed relative to a baseline (baseline time ÷ tk time) must be
/// at least `need`. Recorded, not enforced: the run does not fail when one is missed.
const BARS: [(&str, &str, f64); 6] = [
    ("vector_add", "c", 0.9),
    ("vector_add", "torch", 0.9),
    ("softmax", "torch", 0.8),
    ("layernorm", "torch", 0.8),
    ("rmsnorm", "torch", 0.8),
    ("matmul", "openblas", 0.5),
];

struct BarResult {
    kernel: String,
    baseline: String,
    need: f64,
    /// Ratio of the medians (what the bar is judged by) and of the minimums (what the machine
    /// can do when nothing else runs: a hint when the run was made under load).
    got: Option<f64>,
    got_min: Option<f64>,
}

fn bars(results: &[KernelResult]) -> Vec<BarResult> {
    BARS.iter()
        .map(|&(key, tag, need)| {
            let r = results.iter().find(|r| r.key == key);
            let got = r.and_then(|r| Some(r.by_tag(tag)?.t.median / r.by_tag("tk")?.t.median));
            let got_min = r.and_then(|r| Some(r.by_tag(tag)?.t.min / r.by_tag("tk")?.t.min));
            let baseline = r
                .and_then(|r| r.by_tag(tag))
                .map(|e| e.imp.label.clone())
                .unwrap_or_else(|| tag.to_string());
            BarResult {
                kernel: r.map(|r| r.title.clone()).unwrap_or_else(|| key.to_string()),
                baseline,
                need,
                got,
                got_min,
            }
        })
        .collect()
}

fn ms(s: f64) -> String {
    let ms = s * 1e3;
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

pub fn markdown(meta: &Meta, results: &[KernelResult]) -> String {
    let mut s = String::new();
    let copy = |key: &str| results.iter().find(|r| r.key == key);
    s.push_str(&format!(
        "Threads: {} for every implementation (tk runtime pool, OpenMP `num_threads`, \
         OpenBLAS, `torch.set_num_threads`).  \n",
        meta.threads
    ));
    s.push_str(&format!("BLAS: {}.  \n", meta.blas));
    match &meta.torch {
        Some(t) => s.push_str(&format!("PyTorch: {t}.  \n")),
        None => s.push_str("PyTorch: not measured in this run.  \n"),
    }
    s.push_str(&format!(
        "Load average (1, 5, 15 min) when the harness started: {}; when it ended: {}.{}\n\n",
        meta.load_start,
        meta.load_end,
        if meta.quick { " **Quick run (few repetitions): indicative only.**" } else { "" }
    ));
    s.push_str(
        "| kernel | implementation | median ms | min ms | runs | throughput | of copy BW | \
         tk speed vs this |\n|---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in results.iter().filter(|r| !r.key.starts_with("copy_")) {
        let tk = r.by_tag("tk");
        let copy_bw = r.copy_ref.and_then(copy).map(|c| c.best_rate());
        for (i, e) in r.entries.iter().enumerate() {
            let kernel = if i == 0 {
                if r.config.is_empty() {
                    r.title.clone()
                } else {
                    format!("{} (tk: {})", r.title, r.config)
                }
            } else {
                String::new()
            };
            let frac = match (r.work, copy_bw) {
                (Work::Bytes(_), Some(c)) if c > 0.0 => {
                    format!("{:.0}%", 100.0 * r.rate(&e.t) / c)
                }
                _ => "—".into(),
            };
            let vs = match tk {
                Some(tk) if e.imp.tag != "tk" => format!("{:.2}×", e.t.median / tk.t.median),
                _ => "—".into(),
            };
            s.push_str(&format!(
                "| {kernel} | {} | {} | {} | {} | {} | {frac} | {vs} |\n",
                e.imp.label,
                ms(e.t.median),
                ms(e.t.min),
                e.t.runs,
                r.rate_text(&e.t),
            ));
        }
    }
    s.push_str(
        "\n\"tk speed vs this\" is the baseline's median time ÷ tk's: above 1 tk is faster. \
         \"of copy BW\" divides the kernel's bytes (every input read once, every output \
         written once) per second by the copy bandwidth measured at a similar footprint in \
         this run (below).\n\n",
    );
    s.push_str(
        "| copy (same run) | implementation | median ms | min ms | runs | bandwidth |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for r in results.iter().filter(|r| r.key.starts_with("copy_")) {
        for (i, e) in r.entries.iter().enumerate() {
            let title = if i == 0 { r.title.as_str() } else { "" };
            s.push_str(&format!(
                "| {title} | {} | {} | {} | {} | {} |\n",
                e.imp.label,
                ms(e.t.median),
                ms(e.t.min),
                e.t.runs,
                r.rate_text(&e.t)
            ));
        }
    }
    s.push_str(
        "\n| bar | needed | measured (medians) | met | ratio of the minimums |\n\
         |---|---:|---:|---|---:|\n",
    );
    for b in bars(results) {
        let (got, met) = match b.got {
            Some(g) => (format!("{g:.2}×"), if g >= b.need { "yes" } else { "**no**" }),
            None => ("not measured".into(), "—"),
        };
        let min = b.got_min.map(|g| format!("{g:.2}×")).unwrap_or_else(|| "—".into());
        s.push_str(&format!(
            "| {}: tk vs {} | ≥ {:.1}× | {got} | {met} | {min} |\n",
            b.kernel, b.baseline, b.need
        ));
    }
    s
}

pub fn json(meta: &Meta, results: &[KernelResult]) -> String {
    let kernels: Vec<Value> = results
        .iter()
        .map(|r| {
            json!({
                "key": r.key,
                "title": r.title,
                "tk_config": r.config,
                "work": match r.work {
                    Work::Bytes(b) => json!({"bytes": b}),
                    Work::Flops(f) => json!({"flops": f}),
                    Work::Items(n, what) => json!({ what: n }),
                },
                "copy_ref": r.copy_ref,
                "max_abs_err_vs_baseline": r.max_err,
                "entries": r.entries.iter().map(|e| json!({
                    "tag": e.imp.tag,
                    "label": e.imp.label,
                    "median_s": e.t.median,
                    "min_s": e.t.min,
                    "runs": e.t.runs,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let bars: Vec<Value> = bars(results)
        .iter()
        .map(|b| {
            json!({"kernel": b.kernel, "baseline": b.baseline, "need": b.need, "got": b.got,
                   "got_min": b.got_min, "met": b.got.map(|g| g >= b.need)})
        })
        .collect();
    let v = json!({
        "threads": meta.threads,
        "blas": meta.blas,
        "torch": meta.torch,
        "load_start": meta.load_start,
        "load_end": meta.load_end,
        "quick": meta.quick,
        "kernels": kernels,
        "bars": bars,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: &str, median: f64) -> Entry {
        Entry::new(Impl::new(tag, tag), Timing { median, min: median, runs: 1 })
    }

    #[test]
    fn bars_divide_baseline_time_by_tk_time() {
        let r = KernelResult {
            key: "matmul",
            title: "matmul".into(),
            config: String::new(),
            work: Work::Flops(2e9),
            copy_ref: None,
            max_err: 0.0,
            entries: vec![entry("tk", 0.2), entry("openblas", 0.05)],
        };
        let b = bars(std::slice::from_ref(&r));
        let mm = b.iter().find(|b| b.kernel == "matmul").unwrap();
        assert_eq!(mm.got, Some(0.25));
        assert!(mm.got.unwrap() < mm.need);
        // 2e9 flops in 0.2 s.
        assert_eq!(r.rate_text(&r.entries[0].t), "10.0 GFLOP/s");
        // Kernels that were not run are reported as not measured.
        assert!(b.iter().filter(|b| b.kernel != "matmul").all(|b| b.got.is_none()));
    }

    #[test]
    fn copy_fraction_uses_the_fastest_copy() {
        let copy = KernelResult {
            key: COPY_ROWS,
            title: "copy".into(),
            config: String::new(),
            work: Work::Bytes(1e9),
            copy_ref: None,
            max_err: 0.0,
            entries: vec![entry("memcpy", 0.1), entry("loop", 0.2)],
        };
        let k = KernelResult {
            key: "rmsnorm",
            title: "rmsnorm".into(),
            config: "BLOCK=1024".into(),
            work: Work::Bytes(1e9),
            copy_ref: Some(COPY_ROWS),
            max_err: 0.0,
            entries: vec![entry("tk", 0.2), entry("torch", 0.1)],
        };
        let meta = Meta {
            threads: 2,
            blas: "b".into(),
            torch: None,
            load_start: "0".into(),
            load_end: "0".into(),
            quick: false,
        };
        let md = markdown(&meta, &[copy, k]);
        // tk: 5 GB/s of the 10 GB/s memcpy; torch is twice as fast as tk.
        assert!(
            md.contains("| rmsnorm (tk: BLOCK=1024) | tk | 200 | 200 | 1 | 5.0 GB/s | 50% | — |"),
            "{md}"
        );
        assert!(md.contains("| torch | 100 | 100 | 1 | 10.0 GB/s | 100% | 0.50× |"), "{md}");
        assert!(md.contains("| rmsnorm: tk vs torch | ≥ 0.8× | 0.50× | **no** | 0.50× |"), "{md}");
    }
}

//! A progress line for steps that take more than a second: silent for the first second, then the
//! elapsed time (and a percentage when the step reports one), redrawn in place on a terminal and
//! printed every few seconds otherwise (logs stay readable).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shared counter a step advances to show how far it is (`done` out of `total`).
#[derive(Clone)]
pub struct Counter {
    done: Arc<AtomicUsize>,
    total: usize,
}

impl Counter {
    pub fn new(total: usize) -> Counter {
        Counter { done: Arc::new(AtomicUsize::new(0)), total }
    }
    pub fn add(&self, n: usize) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    fn fraction(&self) -> f64 {
        self.done.load(Ordering::Relaxed) as f64 / self.total.max(1) as f64
    }
}

/// Runs `f`, showing `label` with the elapsed time while it runs past one second; returns its
/// result and duration.
pub fn run<R>(label: &str, counter: Option<&Counter>, f: impl FnOnce() -> R) -> (R, Duration) {
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let tty = std::io::stderr().is_terminal();
    let shown = std::thread::scope(|s| {
        let ticker = {
            let stop = stop.clone();
            let counter = counter.cloned();
            s.spawn(move || {
                let mut shown = false;
                let mut last_print = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    // Parked, not asleep: `run` unparks it so that it ends at once.
                    std::thread::park_timeout(Duration::from_millis(100));
                    let t = start.elapsed();
                    if t < Duration::from_secs(1) || stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    let pct = counter
                        .as_ref()
                        .map(|c| format!(" {:5.1}%", 100.0 * c.fraction()))
                        .unwrap_or_default();
                    if tty {
                        eprint!("\r  {label} ...{pct} {:.1} s   ", t.as_secs_f64());
                        let _ = std::io::stderr().flush();
                        shown = true;
                    } else if !shown || last_print.elapsed() >= Duration::from_secs(5) {
                        eprintln!("  {label} ...{pct} {:.1} s", t.as_secs_f64());
                        shown = true;
                        last_print = Instant::now();
                    }
                }
                shown
            })
        };
        let r = f();
        let took = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        ticker.thread().unpark();
        let shown = ticker.join().unwrap_or(false);
        (r, took, shown)
    });
    let (r, took, shown) = shown;
    if shown && tty {
        // Clear the progress line; the caller prints the result.
        eprint!("\r{}\r", " ".repeat(label.len() + 40));
        let _ = std::io::stderr().flush();
    }
    (r, took)
}

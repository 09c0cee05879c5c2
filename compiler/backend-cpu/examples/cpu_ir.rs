//! Prints the LLVM IR the CPU backend makes for a `.tk` file (a development aid):
//! `cargo run -p tk-backend-cpu --example cpu_ir -- FILE [NAME=VALUE...] [--O0] [--time] [--so OUT]`.

use std::time::Instant;
use tk_backend_cpu::{compile_module, emit_llvm_ir, CpuOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(file) = args.first() else {
        eprintln!("usage: cpu_ir FILE [NAME=VALUE...] [--O0] [--time]");
        std::process::exit(2);
    };
    let defines = args[1..]
        .iter()
        .filter_map(|a| a.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let opts = tk_driver::CompileOptions { defines, ..Default::default() };
    let c = tk_driver::compile_file(std::path::Path::new(file), &opts);
    if c.has_errors() {
        eprintln!("{}", c.render_plain());
        std::process::exit(1);
    }
    let Some(m) = c.optimized else { std::process::exit(1) };
    let mut o = CpuOptions::default();
    if args.iter().any(|a| a == "--O0") {
        o.opt_level = 0;
    }
    if let Some(i) = args.iter().position(|a| a == "--so") {
        let a = compile_module(&m, &o).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&args[i + 1], &a.library).unwrap();
        return;
    }
    if args.iter().any(|a| a == "--time") {
        let reps: usize = std::env::var("TK_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
        for _ in 0..reps {
            let t = Instant::now();
            let a = compile_module(&m, &o).unwrap_or_else(|e| panic!("{e}"));
            let st: Vec<(String, u64)> =
                a.kernels.iter().map(|k| (k.name.clone(), k.stack_bytes)).collect();
            eprintln!(
                "compile_module: {:?} ({} bytes, stack {st:?})",
                t.elapsed(),
                a.library.len()
            );
        }
        return;
    }
    match emit_llvm_ir(&m, &o) {
        Ok(ir) => println!("{ir}"),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

//! Prints the PTX of one stdlib kernel: `cargo run -p tk-backend-ptx --example dump_ptx -- FILE
//! [sm_80|sm_90] [NAME=VALUE...]` (a debugging aid until `tkc` grows `--target ptx`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(file) = args.first() else {
        eprintln!("usage: dump_ptx FILE.tk [sm_80|sm_90] [NAME=VALUE...]");
        std::process::exit(2);
    };
    let arch = args
        .get(1)
        .and_then(|a| tk_backend_ptx::Arch::parse(a))
        .unwrap_or(tk_backend_ptx::Arch::Sm80);
    let defines = args
        .iter()
        .skip(2)
        .filter_map(|d| d.split_once('=').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect();
    let c = tk_driver::compile_file(
        std::path::Path::new(file),
        &tk_driver::CompileOptions { defines, ..Default::default() },
    );
    let Some(m) = c.optimized.as_ref() else {
        eprintln!("{}", c.render_plain());
        std::process::exit(1);
    };
    match tk_backend_ptx::compile_module(m, &tk_backend_ptx::Options { arch, num_warps: 4 }) {
        Ok(text) => print!("{text}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

//! Every `.tk` file in stdlib/ and examples/ compiles without errors, and its IR (before and after
//! the pass pipeline) round-trips through the text printer and parser and still verifies.

use crate::common;

use tk_driver::{compile_file, CompileOptions};

#[test]
fn every_kernel_file_checks_and_round_trips() {
    let files: Vec<_> =
        common::tk_files("stdlib").into_iter().chain(common::tk_files("examples")).collect();
    assert!(
        files.len() >= 6,
        "expected the stdlib and examples to hold kernels, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let c = compile_file(f, &CompileOptions::default());
        if c.has_errors() {
            failures.push(format!("{}:\n{}", f.display(), c.render_plain()));
            continue;
        }
        for (stage, m) in [("lowered", c.lowered.as_ref()), ("optimized", c.optimized.as_ref())] {
            let m = m.expect("no errors");
            let text = tk_ir::print::print_module(m);
            let parsed = match tk_ir::parse::parse_module(&text) {
                Ok(p) => p,
                Err(e) => {
                    failures.push(format!(
                        "{} ({stage}): IR does not parse back: {e}\n{text}",
                        f.display()
                    ));
                    continue;
                }
            };
            if let Err(errs) = tk_ir::verify::verify_module(&parsed) {
                failures.push(format!(
                    "{} ({stage}): parsed IR does not verify: {:?}",
                    f.display(),
                    errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
                ));
            }
            let again = tk_ir::print::print_module(&parsed);
            if again != text {
                failures.push(format!(
                    "{} ({stage}): print(parse(print(m))) differs from print(m)",
                    f.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

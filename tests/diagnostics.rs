//! Diagnostic snapshots: every file under `tests/cases/diagnostics/` is a small wrong program that
//! must fail to compile. Its rendered diagnostics (plain text, as `tkc check` prints them) are
//! compared with `tests/snapshots/diagnostics__<case>.snap`, which also holds the input, so a
//! snapshot can be reviewed on its own. Re-bless with `scripts/bless.sh`.
//!
//! A case fails when compilation panics, when it produces no error, when it reports an internal
//! compiler error (`ICE...`), or when its rendered diagnostics differ from the snapshot. All cases
//! run before the test reports, so one run lists every failing case.

use crate::common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use tk_driver::{compile_source, CompileOptions};

/// The name diagnostics use for a case: stable across machines and checkouts.
fn case_name(file_name: &str) -> String {
    format!("cases/diagnostics/{file_name}")
}

/// The snapshot text: the input, a separator, then the diagnostics with machine-specific paths
/// replaced by placeholders.
fn snapshot_body(name: &str, source: &str, rendered: &str) -> String {
    let stdlib = tk_driver::default_stdlib_dir().display().to_string();
    let rendered = rendered.replace(&stdlib, "<stdlib>");
    let source = source.trim_end();
    format!("input: {name}\n{source}\n---\n{}\n", rendered.trim_end())
}

/// Text of a panic payload (`&str` or `String`; anything else is named as such).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

#[test]
fn every_diagnostic_case_matches_its_snapshot() {
    let files = common::tk_files("tests/cases/diagnostics");
    assert!(files.len() >= 45, "expected at least 45 diagnostic cases, found {}", files.len());

    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);

    let mut failures = Vec::new();
    let stems: Vec<String> = files
        .iter()
        .map(|p| format!("diagnostics__{}", p.file_stem().expect("a file").to_string_lossy()))
        .collect();
    for path in &files {
        let file_name = path.file_name().expect("a file").to_string_lossy().into_owned();
        let stem = path.file_stem().expect("a file").to_string_lossy().into_owned();
        let name = case_name(&file_name);
        let source = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{name}: cannot read: {e}"));
                continue;
            }
        };
        let compiled = catch_unwind(AssertUnwindSafe(|| {
            let c = compile_source(&name, &source, &CompileOptions::default());
            let ices: Vec<String> = c
                .diagnostics
                .iter()
                .filter(|d| d.code.starts_with("ICE"))
                .map(|d| d.message.clone())
                .collect();
            (c.has_errors(), ices, c.render_plain())
        }));
        let (has_errors, ices, rendered) = match compiled {
            Ok(x) => x,
            Err(payload) => {
                failures.push(format!(
                    "{name}: the compiler panicked: {}",
                    panic_message(payload.as_ref())
                ));
                continue;
            }
        };
        if !ices.is_empty() {
            failures
                .push(format!("{name}: internal compiler error: {}\n{rendered}", ices.join("; ")));
            continue;
        }
        if !has_errors {
            failures.push(format!(
                "{name}: compiled without errors, but every diagnostic case must fail\n{rendered}"
            ));
            continue;
        }
        let body = snapshot_body(&name, &source, &rendered);
        let snapshot = format!("diagnostics__{stem}");
        let checked = catch_unwind(AssertUnwindSafe(|| {
            settings.bind(|| insta::assert_snapshot!(snapshot.as_str(), body));
        }));
        if let Err(payload) = checked {
            failures
                .push(format!("{name}: snapshot mismatch: {}", panic_message(payload.as_ref())));
        }
    }

    // A snapshot without a case is left over from a renamed or deleted case.
    let snap_dir = common::repo_root().join("tests/snapshots");
    if let Ok(entries) = std::fs::read_dir(&snap_dir) {
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = file.strip_suffix(".snap") {
                if stem.starts_with("diagnostics__") && !stems.iter().any(|s| s == stem) {
                    failures.push(format!(
                        "tests/snapshots/{file} has no case in tests/cases/diagnostics/; delete it"
                    ));
                }
            }
        }
    }

    assert!(
        failures.is_empty(),
        "{} diagnostic case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

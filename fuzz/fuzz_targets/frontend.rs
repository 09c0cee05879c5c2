//! libFuzzer target: any byte string, read as lossy UTF-8 (as the driver reads files), goes
//! through the whole front half of the compiler (`tk_driver::compile_source`: lexing, parsing,
//! checking, lowering, IR verification, passes). A panic or an internal compiler error (`ICE...`)
//! is a finding; ordinary diagnostics are not. The seeded, bounded version of this runs in the
//! normal test suite (`tests/fuzz_frontend.rs`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tk_driver::{compile_source, CompileOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let c = compile_source("fuzz.tk", &text, &CompileOptions::default());
    if let Some(ice) = c.diagnostics.iter().find(|d| d.code.starts_with("ICE")) {
        panic!("internal compiler error {}: {}\n{}", ice.code, ice.message, c.render_plain());
    }
    if !c.has_errors() {
        assert!(c.optimized.is_some(), "no errors but no optimised IR");
    }
});

//! `tkc`: the tk compiler command line. The only crate that prints or writes files.
//!
//! Exit codes: 0 success, 1 the program or its input has errors (diagnostics printed),
//! 2 bad command-line usage (clap), 70 internal compiler error (a bug in tkc).

mod build;
mod cli;
mod npy;
mod run;

use clap::Parser;
use std::process::ExitCode;

/// Exit code for errors in the user's program or inputs.
pub const EXIT_USER: u8 = 1;
/// Exit code for internal compiler errors (EX_SOFTWARE).
pub const EXIT_INTERNAL: u8 = 70;

fn main() -> ExitCode {
    // Like any Unix filter, stop quietly when the reader of our output goes away
    // (`tkc check f.tk 2>&1 | head -1`) instead of failing to print and panicking.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse();
    // A panic is a tkc bug: report it as an internal error with a distinct exit code, never as a
    // user error.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("internal compiler error: {info}");
        eprintln!("note: this is a bug in tkc; please report it with the input that caused it");
    }));
    match std::panic::catch_unwind(|| cli::dispatch(args)) {
        Ok(code) => code,
        Err(_) => ExitCode::from(EXIT_INTERNAL),
    }
}

//! Command-line definitions (clap) and dispatch to the subcommands.

use crate::{run, EXIT_INTERNAL, EXIT_USER};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tk_diag::ColorChoice;
use tk_driver::{Compilation, CompileOptions};

#[derive(Parser)]
#[command(
    name = "tkc",
    version,
    about = "The tk kernel compiler: check, inspect and run .tk kernels"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command that compiles.
#[derive(clap::Args, Clone)]
pub struct BuildArgs {
    /// The .tk source file
    pub file: PathBuf,
    /// Set a compile-time parameter, e.g. `-D BLOCK=256` (repeatable)
    #[arg(short = 'D', value_name = "NAME=VALUE", value_parser = parse_define)]
    pub define: Vec<(String, String)>,
    /// Folder that `import name;` reads stdlib modules from [default: $TK_STDLIB or the repository's stdlib/]
    #[arg(long, value_name = "DIR")]
    pub stdlib: Option<PathBuf>,
    /// Colour diagnostics: auto (when stderr is a terminal), always, never
    #[arg(long, default_value = "auto", value_name = "WHEN")]
    pub color: String,
}

#[derive(Subcommand)]
pub enum Command {
    /// Parse, type-check and lower a file; print diagnostics
    Check {
        #[command(flatten)]
        build: BuildArgs,
    },
    /// Print an intermediate form of a file
    Emit {
        /// What to print
        what: EmitKind,
        #[command(flatten)]
        build: BuildArgs,
        /// `lowered` (straight from the frontend) or `optimized` (after the pass pipeline)
        #[arg(long, default_value = "optimized")]
        stage: Stage,
    },
    /// Compile for a target and write an artifact bundle (manifest + library)
    Build(crate::build::BuildCmd),
    /// Run a kernel: on the reference interpreter, or compiled for the CPU (--target cpu, --check)
    Run(run::RunArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum EmitKind {
    /// tk IR text (see `tkc emit ir --help`)
    Ir,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Stage {
    /// IR as lowered from the source, before any pass
    Lowered,
    /// IR after inlining, canonicalisation, constant folding, CSE and DCE
    Optimized,
    /// Both, one after the other
    Both,
}

fn parse_define(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("expected NAME=VALUE, got `{s}`")),
    }
}

impl BuildArgs {
    pub fn options(&self) -> CompileOptions {
        CompileOptions {
            defines: self.define.clone(),
            kernels: Vec::new(),
            stdlib_dir: self.stdlib.clone(),
            no_passes: false,
        }
    }
    pub fn color(&self) -> ColorChoice {
        match self.color.as_str() {
            "always" => ColorChoice::Ansi,
            "never" => ColorChoice::Plain,
            _ if std::io::stderr().is_terminal() => ColorChoice::Ansi,
            _ => ColorChoice::Plain,
        }
    }
}

/// Compiles and prints the diagnostics; `None` if there were errors.
pub fn compile_reporting(
    build: &BuildArgs,
    opts: &CompileOptions,
) -> Result<Compilation, ExitCode> {
    let c = tk_driver::compile_file(Path::new(&build.file), opts);
    if !c.diagnostics.is_empty() {
        eprint!("{}", tk_diag::render(&c.sources, &c.diagnostics, build.color()));
    }
    if c.has_errors() {
        let internal = c.diagnostics.iter().any(|d| d.code.starts_with("ICE"));
        let n = c.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!(
            "error: could not compile `{}` ({n} error{})",
            build.file.display(),
            if n == 1 { "" } else { "s" }
        );
        return Err(ExitCode::from(if internal { EXIT_INTERNAL } else { EXIT_USER }));
    }
    Ok(c)
}

pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Check { build } => match compile_reporting(&build, &build.options()) {
            Ok(c) => {
                let m = c.optimized.as_ref().expect("no errors");
                let names: Vec<&str> = m.kernels().map(|k| k.name.as_str()).collect();
                println!(
                    "ok: {} ({} kernel{}: {})",
                    build.file.display(),
                    names.len(),
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", ")
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Emit { what: EmitKind::Ir, build, stage } => {
            let mut opts = build.options();
            opts.no_passes = stage == Stage::Lowered;
            match compile_reporting(&build, &opts) {
                Ok(c) => {
                    if matches!(stage, Stage::Lowered | Stage::Both) {
                        if stage == Stage::Both {
                            println!("// ---- lowered ----");
                        }
                        print!(
                            "{}",
                            tk_ir::print::print_module(c.lowered.as_ref().expect("lowered"))
                        );
                    }
                    if matches!(stage, Stage::Optimized | Stage::Both) {
                        if stage == Stage::Both {
                            println!("// ---- optimized ----");
                        }
                        print!(
                            "{}",
                            tk_ir::print::print_module(c.optimized.as_ref().expect("optimized"))
                        );
                    }
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
        Command::Build(cmd) => crate::build::build(cmd),
        Command::Run(args) => run::run(args),
    }
}

//! Building the layer's kernels: finds (or builds) `tkc` and runs `tkc build --target cpu` on the
//! stdlib files with the example's block sizes, one bundle per file.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository this example belongs to (stdlib/ and the Cargo workspace live there).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Cargo target folder: `$CARGO_TARGET_DIR`, else the folder two levels above this program
/// (`target/release/moe_layer`), else the workspace's `target/`.
fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .filter(|d| d.join("CACHEDIR.TAG").exists() || d.join("release").exists())
        .unwrap_or_else(|| repo_root().join("target"))
}

/// Where the bundles go.
pub fn bundle_root() -> PathBuf {
    target_dir().join("moe_layer_kernels")
}

/// `tkc`: `explicit` (from `--tkc` or `$TKC`) when given; otherwise this workspace's release
/// build, brought up to date with `cargo build --release -p tkc` (minutes on the first run,
/// about a second afterwards; cargo shows its own progress).
pub fn tkc(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.exists() { Ok(p) } else { Err(format!("tkc not found at {}", p.display())) };
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building tkc: cargo build --release -p tkc (a few minutes the first time)");
    let status = Command::new(&cargo)
        .args(["build", "--release", "-p", "tkc"])
        .current_dir(repo_root())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&cargo).display()))?;
    if !status.success() {
        return Err(format!(
            "`cargo build --release -p tkc` failed ({status}); tkc needs LLVM 19 and a C \
             compiler, which scripts/setup.sh installs"
        ));
    }
    let p = target_dir().join("release").join("tkc");
    if p.exists() {
        Ok(p)
    } else {
        Err(format!("cargo built tkc, but it is not at {}; pass --tkc PATH", p.display()))
    }
}

/// One bundle to build: a stdlib file and its `-D` values.
pub struct Spec {
    pub file: &'static str,
    pub defines: Vec<(&'static str, String)>,
}

impl Spec {
    /// The bundle's folder: named after the file and the `-D` values, so that different block
    /// sizes never share a folder.
    pub fn dir(&self) -> PathBuf {
        let mut name = self.file.trim_end_matches(".tk").to_string();
        for (k, v) in &self.defines {
            name.push_str(&format!("_{k}{v}"));
        }
        bundle_root().join(name)
    }

    /// The `tkc build` command line, as shown to the user.
    pub fn command(&self) -> String {
        let mut s = format!("tkc build stdlib/{} --target cpu", self.file);
        for (k, v) in &self.defines {
            s.push_str(&format!(" -D {k}={v}"));
        }
        s
    }

    /// Whether the bundle is newer than `tkc` and every stdlib source (imports included).
    pub fn up_to_date(&self, tkc: &Path) -> bool {
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let Some(built) = mtime(&self.dir().join("manifest.json")) else { return false };
        let mut inputs = vec![tkc.to_path_buf()];
        if let Ok(entries) = std::fs::read_dir(repo_root().join("stdlib")) {
            inputs.extend(entries.flatten().map(|e| e.path()));
        }
        inputs.iter().all(|p| mtime(p).is_some_and(|t| t <= built))
    }

    /// Runs `tkc build`; its diagnostics are passed on when it fails.
    pub fn build(&self, tkc: &Path) -> Result<(), String> {
        let mut cmd = Command::new(tkc);
        cmd.arg("build")
            .arg(repo_root().join("stdlib").join(self.file))
            .args(["--target", "cpu", "--color", "never", "-o"])
            .arg(self.dir());
        for (k, v) in &self.defines {
            cmd.arg("-D").arg(format!("{k}={v}"));
        }
        let out = cmd.output().map_err(|e| format!("cannot run {}: {e}", tkc.display()))?;
        if !out.status.success() {
            return Err(format!(
                "`{}` failed:\n{}{}",
                self.command(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }
}

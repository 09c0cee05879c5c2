//! Runtime tests against a bundle made here: a tiny kernel written in C against the CPU ABI,
//! compiled with the system C compiler, plus a hand-written manifest. This checks the loader and
//! the argument checks independently of the compiler.

use std::path::Path;
use std::process::Command;
use tk_runtime::manifest::{
    FileEntry, KernelInfo, Manifest, ParamInfo, TargetInfo, FORMAT_VERSION,
};
use tk_runtime::{Arg, Device, Dtype, ParamKind, Runtime, RuntimeError, TargetKind};

/// `y[i] = x[i] * a` for the BLOCK = 4 elements of program `pid.x`, masked by `i < n`.
const KERNEL_C: &str = r#"
#include <stdint.h>
int32_t tk_scale(void *const *args, const int32_t *pid, const int32_t *npid) {
    const float *x = *(const float *const *)args[0];
    float *y = *(float *const *)args[1];
    float a = *(const float *)args[2];
    int64_t n = *(const int64_t *)args[3];
    (void)npid;
    if (a < 0.0f) return 1; /* stands in for a failing device_assert */
    for (int64_t i = (int64_t)pid[0] * 4; i < (int64_t)pid[0] * 4 + 4; i++)
        if (i < n) y[i] = x[i] * a;
    return 0;
}
"#;

fn make_bundle(dir: &Path, kind: TargetKind) {
    std::fs::write(dir.join("k.c"), KERNEL_C).unwrap();
    let st = Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(dir.join("libk.so"))
        .arg(dir.join("k.c"))
        .status()
        .unwrap();
    assert!(st.success());
    let lib = std::fs::read(dir.join("libk.so")).unwrap();
    let p = |name: &str, kind, dtype, written| ParamInfo {
        name: name.into(),
        kind,
        dtype,
        written,
        multiple_of: None,
    };
    let m = Manifest {
        format_version: FORMAT_VERSION,
        compiler_version: "test".into(),
        content_hash: "0".into(),
        target: TargetInfo {
            kind,
            triple: "x86_64-unknown-linux-gnu".into(),
            cpu: "x86-64".into(),
            features: "+sse4.1".into(),
        },
        kernels: vec![KernelInfo {
            name: "scale".into(),
            symbol: "tk_scale".into(),
            params: vec![
                p("x", ParamKind::Pointer, Dtype::F32, false),
                p("y", ParamKind::Pointer, Dtype::F32, true),
                p("a", ParamKind::Scalar, Dtype::F32, false),
                p("n", ParamKind::Scalar, Dtype::I64, false),
            ],
            constexprs: vec![("BLOCK".into(), "4".into())],
            launch: None,
            traps: vec!["device_assert failed: a must not be negative".into()],
            stack_bytes: 64,
        }],
        files: vec![FileEntry {
            path: "libk.so".into(),
            sha256: tk_runtime::manifest::sha256_hex(&lib),
        }],
    };
    std::fs::write(dir.join("manifest.json"), m.to_json()).unwrap();
}

fn runtime() -> Runtime {
    Runtime::with_threads(Device::Cpu, 2).unwrap()
}

#[test]
fn launches_over_the_grid_with_a_ragged_tail() {
    let dir = tempfile::tempdir().unwrap();
    make_bundle(dir.path(), TargetKind::Cpu);
    let b = runtime().load(dir.path()).unwrap();
    let k = b.kernel("scale").unwrap();
    let x: Vec<f32> = (0..10).map(|i| i as f32).collect();
    let mut y = vec![-1.0f32; 12];
    k.launch([3, 1, 1], &[Arg::slice(&x), Arg::slice_mut(&mut y), Arg::f32(2.0), Arg::i64(10)])
        .unwrap();
    let want: Vec<f32> = (0..10).map(|i| 2.0 * i as f32).chain([-1.0, -1.0]).collect();
    assert_eq!(y, want);
}

#[test]
fn kernels_launch_from_several_threads_at_once() {
    let dir = tempfile::tempdir().unwrap();
    make_bundle(dir.path(), TargetKind::Cpu);
    let b = runtime().load(dir.path()).unwrap();
    let k = b.kernel("scale").unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                let x: Vec<f32> = (0..1000).map(|i| i as f32).collect();
                let mut y = vec![0.0f32; 1000];
                k.launch(
                    [250, 1, 1],
                    &[Arg::slice(&x), Arg::slice_mut(&mut y), Arg::f32(t as f32), Arg::i64(1000)],
                )
                .unwrap();
                assert!(y.iter().enumerate().all(|(i, &v)| v == i as f32 * t as f32));
            });
        }
    });
}

#[test]
fn rejects_a_bundle_built_for_another_target() {
    let dir = tempfile::tempdir().unwrap();
    make_bundle(dir.path(), TargetKind::Ptx);
    let e = runtime().load(dir.path()).err().unwrap();
    assert!(matches!(e, RuntimeError::WrongTarget { .. }), "{e}");
    assert!(e.to_string().contains("--target cpu"), "{e}");
}

#[test]
fn rejects_corrupt_and_truncated_manifests() {
    let dir = tempfile::tempdir().unwrap();
    make_bundle(dir.path(), TargetKind::Cpu);
    let text = std::fs::read_to_string(dir.path().join("manifest.json")).unwrap();
    std::fs::write(dir.path().join("manifest.json"), &text[..text.len() / 2]).unwrap();
    let e = runtime().load(dir.path()).err().unwrap();
    assert!(matches!(e, RuntimeError::BadManifest { .. }), "{e}");
    std::fs::write(dir.path().join("manifest.json"), "{\"format_version\": 1}").unwrap();
    assert!(matches!(runtime().load(dir.path()).err().unwrap(), RuntimeError::BadManifest { .. }));
    std::fs::write(
        dir.path().join("manifest.json"),
        text.replace("\"format_version\": 1", "\"format_version\": 99"),
    )
    .unwrap();
    assert!(matches!(
        runtime().load(dir.path()).err().unwrap(),
        RuntimeError::FormatVersion { found: 99, .. }
    ));
}

#[test]
fn rejects_a_library_that_does_not_match_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    make_bundle(dir.path(), TargetKind::Cpu);
    let mut lib = std::fs::read(dir.path().join("libk.so")).unwrap();
    let n = lib.len();
    lib[n - 1] ^= 0xff;
    std::fs::write(dir.path().join("libk.so"), lib).unwrap();
    assert!(matches!(runtime().load(dir.path()).err().unwrap(), RuntimeError::CorruptFile { .. }));
}

#[test]
fn a_missing_folder_says_so() {
    let e = runtime().load("/nonexistent/bundle").err().unwrap();
    assert!(e.to_string().contains("manifest.json"), "{e}");
}

#[test]
fn checks_launch_arguments_against_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    make_bundle(dir.path(), TargetKind::Cpu);
    let b = runtime().load(dir.path()).unwrap();
    let k = b.kernel("scale").unwrap();
    let x = vec![0.0f32; 4];
    let mut y = vec![0.0f32; 4];
    let xi = vec![0i32; 4];
    let e =
        k.launch([1, 1, 1], &[Arg::slice(&x), Arg::slice_mut(&mut y), Arg::f32(1.0)]).unwrap_err();
    assert!(matches!(e, RuntimeError::ArgCount { expected: 4, found: 3, .. }), "{e}");
    let e = k
        .launch([1, 1, 1], &[Arg::slice(&xi), Arg::slice_mut(&mut y), Arg::f32(1.0), Arg::i64(4)])
        .unwrap_err();
    assert!(
        e.to_string().contains("`x` is a `*f32` buffer, but the argument is a `i32` buffer"),
        "{e}"
    );
    let e = k
        .launch([1, 1, 1], &[Arg::slice(&x), Arg::slice_mut(&mut y), Arg::f32(1.0), Arg::i32(4)])
        .unwrap_err();
    assert!(matches!(e, RuntimeError::ArgType { .. }), "{e}");
    let e = k
        .launch([1, 1, 1], &[Arg::f32(0.0), Arg::slice_mut(&mut y), Arg::f32(1.0), Arg::i64(4)])
        .unwrap_err();
    assert!(e.to_string().contains("scalar"), "{e}");
    let e = k
        .launch([1, 1, 1], &[Arg::slice(&x), Arg::slice(&x), Arg::f32(1.0), Arg::i64(4)])
        .unwrap_err();
    assert!(matches!(e, RuntimeError::ReadOnlyBuffer { .. }), "{e}");
    // SAFETY: a null pointer is never dereferenced: the launch is refused first.
    let null = unsafe { Arg::raw(std::ptr::null_mut(), 0, Dtype::F32, false) };
    let e = k
        .launch([1, 1, 1], &[null, Arg::slice_mut(&mut y), Arg::f32(1.0), Arg::i64(4)])
        .unwrap_err();
    assert!(matches!(e, RuntimeError::NullPointer { .. }), "{e}");
    let e = k
        .launch([0, 1, 1], &[Arg::slice(&x), Arg::slice_mut(&mut y), Arg::f32(1.0), Arg::i64(4)])
        .unwrap_err();
    assert!(matches!(e, RuntimeError::BadGrid { .. }), "{e}");
    assert!(matches!(b.kernel("nope").err().unwrap(), RuntimeError::KernelNotFound { .. }));
}

#[test]
fn a_trapping_program_is_reported_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    make_bundle(dir.path(), TargetKind::Cpu);
    let b = runtime().load(dir.path()).unwrap();
    let x = vec![1.0f32; 8];
    let mut y = vec![0.0f32; 8];
    let e = b
        .kernel("scale")
        .unwrap()
        .launch([2, 1, 1], &[Arg::slice(&x), Arg::slice_mut(&mut y), Arg::f32(-1.0), Arg::i64(8)])
        .unwrap_err();
    assert!(matches!(e, RuntimeError::KernelTrap { .. }), "{e}");
    assert!(e.to_string().contains("a must not be negative"), "{e}");
}

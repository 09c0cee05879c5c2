//! The simulation header catches what the hardware breaks silently: each case is a small
//! hand-written kernel that must fail with a clear message (recorded by `ICPU_RUN_KF`, not an
//! abort), plus one correct kernel that must pass and count its bytes exactly.

use std::process::Command;

/// Compiles `body` (a kernel `k(GM_ADDR x, GM_ADDR y)` body) with g++ -Wall -Werror against the
/// header, runs it on one block over 1 KiB buffers, returns (launch ok, output).
fn run(body: &str, defines: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let src = format!(
        r#"#include "kernel_operator.h"
#include <cstdio>
extern "C" __global__ __aicore__ void k(GM_ADDR x, GM_ADDR y)
{{
    AscendC::GlobalTensor<float> gx;
    gx.SetGlobalBuffer((__gm__ float*)x);
    AscendC::GlobalTensor<float> gy;
    gy.SetGlobalBuffer((__gm__ float*)y);
    {body}
}}
int main()
{{
    uint8_t* x = (uint8_t*)AscendC::GmAlloc(1024);
    uint8_t* y = (uint8_t*)AscendC::GmAlloc(1024);
    bool ok = ICPU_RUN_KF(k, 1, x, y);
    for (const auto& e : tk_sim::errors()) std::printf("%s\n", e.c_str());
    std::printf("ok=%d gm_to_ub=%llu ub_to_gm=%llu vector=%llu\n", ok ? 1 : 0,
                (unsigned long long)tk_sim::stats().gm_to_ub_bytes,
                (unsigned long long)tk_sim::stats().ub_to_gm_bytes,
                (unsigned long long)tk_sim::stats().vector_instrs);
    return 0;
}}
"#
    );
    let cpp = dir.path().join("t.cpp");
    std::fs::write(&cpp, src).unwrap();
    let exe = dir.path().join("t");
    let mut cmd = Command::new("g++");
    cmd.args(["-std=c++17", "-Wall", "-Werror", "-DASCENDC_CPU_DEBUG=1", "-I"])
        .arg(tk_backend_ascend::sim_include_dir());
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    let out = cmd.arg(&cpp).arg("-o").arg(&exe).output().unwrap();
    assert!(out.status.success(), "g++: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success(), "the simulation must report errors, not abort");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    (text.contains("ok=1"), text)
}

const PROLOGUE: &str = r#"
    AscendC::TPipe pipe;
    AscendC::TQue<AscendC::TPosition::VECIN, 1> qin;
    pipe.InitBuffer(qin, 2, 256);
"#;

#[test]
fn a_correct_kernel_passes_and_counts_bytes() {
    let body = format!(
        "{PROLOGUE}
    AscendC::LocalTensor<float> t = qin.AllocTensor<float>();
    AscendC::DataCopy(t, gx, 64);
    qin.EnQue(t);
    t = qin.DeQue<float>();
    AscendC::Muls(t, t, 2.0f, 64);
    AscendC::DataCopyPad(gy, t, AscendC::DataCopyExtParams(1, 60 * 4, 0, 0, 0));
    qin.FreeTensor(t);"
    );
    let (ok, out) = run(&body, &[]);
    assert!(ok, "{out}");
    assert!(out.contains("gm_to_ub=256 ub_to_gm=240 vector=1"), "{out}");
}

#[test]
fn misaligned_datacopy_is_caught() {
    let body = format!(
        "{PROLOGUE}
    AscendC::LocalTensor<float> t = qin.AllocTensor<float>();
    AscendC::DataCopy(t, gx, 10);
    qin.EnQue(t);
    t = qin.DeQue<float>();
    qin.FreeTensor(t);"
    );
    let (ok, out) = run(&body, &[]);
    assert!(!ok);
    assert!(
        out.contains("DataCopy GM->UB: 10 elements (40 bytes) is not a multiple of 32 bytes"),
        "{out}"
    );
}

#[test]
fn misaligned_ub_address_is_caught() {
    let body = format!(
        "{PROLOGUE}
    AscendC::LocalTensor<float> t = qin.AllocTensor<float>();
    AscendC::DataCopy(t[3], gx, 8);
    qin.EnQue(t);
    t = qin.DeQue<float>();
    qin.FreeTensor(t);"
    );
    let (ok, out) = run(&body, &[]);
    assert!(!ok);
    assert!(out.contains("UB address 12 is not 32-byte aligned"), "{out}");
}

#[test]
fn ub_overflow_is_caught() {
    let body = "
    AscendC::TPipe pipe;
    AscendC::TQue<AscendC::TPosition::VECIN, 1> qin;
    pipe.InitBuffer(qin, 2, 64 * 1024);
    AscendC::TBuf<AscendC::TPosition::VECCALC> calc;
    pipe.InitBuffer(calc, 64 * 1024);";
    let (ok, out) = run(body, &[]);
    assert!(!ok);
    assert!(out.contains("Unified Buffer overflow"), "{out}");
    assert!(out.contains("188416 usable bytes (192 KB Ascend910B UB)"), "{out}");
    // The same allocation fits the 310P's larger UB.
    let (ok, out) = run(body, &["TK_SIM_SOC_310P"]);
    assert!(ok, "{out}");
}

#[test]
fn deque_without_enque_is_caught() {
    let body = format!(
        "{PROLOGUE}
    AscendC::LocalTensor<float> t = qin.AllocTensor<float>();
    AscendC::DataCopy(t, gx, 64);
    t = qin.DeQue<float>();
    qin.FreeTensor(t);"
    );
    let (ok, out) = run(&body, &[]);
    assert!(!ok);
    assert!(out.contains("DeQue with no tensor EnQue'd"), "{out}");
}

#[test]
fn use_after_free_and_double_free_are_caught() {
    let body = format!(
        "{PROLOGUE}
    AscendC::LocalTensor<float> t = qin.AllocTensor<float>();
    qin.EnQue(t);
    t = qin.DeQue<float>();
    qin.FreeTensor(t);
    AscendC::Duplicate(t, 1.0f, 64);"
    );
    let (ok, out) = run(&body, &[]);
    assert!(!ok);
    assert!(out.contains("use of a LocalTensor after FreeTensor"), "{out}");
    let body = format!(
        "{PROLOGUE}
    AscendC::LocalTensor<float> t = qin.AllocTensor<float>();
    qin.EnQue(t);
    t = qin.DeQue<float>();
    qin.FreeTensor(t);
    qin.FreeTensor(t);"
    );
    let (ok, out) = run(&body, &[]);
    assert!(!ok);
    assert!(out.contains("double free"), "{out}");
}

#[test]
fn leaked_tensor_and_unpaired_flag_are_caught() {
    let body = format!(
        "{PROLOGUE}
    AscendC::LocalTensor<float> t = qin.AllocTensor<float>();
    (void)t;"
    );
    let (ok, out) = run(&body, &[]);
    assert!(!ok);
    assert!(out.contains("AllocTensor without FreeTensor"), "{out}");
    let (ok, out) = run("AscendC::WaitFlag<AscendC::HardEvent::V_S>(0);", &[]);
    assert!(!ok);
    assert!(out.contains("WaitFlag on (event 7, id 0) with no SetFlag before it"), "{out}");
}

#[test]
fn compare_count_and_gm_bounds_are_checked() {
    let body = "
    AscendC::TPipe pipe;
    AscendC::TBuf<AscendC::TPosition::VECCALC> calc;
    pipe.InitBuffer(calc, 4096);
    AscendC::LocalTensor<float> a = calc.Get<float>(256);
    AscendC::LocalTensor<uint8_t> m = calc.GetWithOffset<uint8_t>(256, 1024);
    AscendC::Compares(m, a, 0.0f, AscendC::CMPMODE::LT, 40);";
    let (ok, out) = run(body, &[]);
    assert!(!ok);
    assert!(out.contains("Compares: count 40 (160 bytes) is not a multiple of 256 bytes"), "{out}");
    let body = "
    AscendC::TPipe pipe;
    AscendC::TBuf<AscendC::TPosition::VECCALC> calc;
    pipe.InitBuffer(calc, 4096);
    AscendC::LocalTensor<float> a = calc.Get<float>(512);
    AscendC::DataCopy(a, gx[200], 64);";
    let (ok, out) = run(body, &[]);
    assert!(!ok);
    assert!(out.contains("run past the end of a GM buffer of 1024 bytes"), "{out}");
}

#[test]
fn datacopypad_is_rejected_on_310p() {
    let body = format!(
        "{PROLOGUE}
    AscendC::LocalTensor<float> t = qin.AllocTensor<float>();
    AscendC::DataCopyPad(t, gx, AscendC::DataCopyExtParams(1, 40, 0, 0, 0), AscendC::DataCopyPadExtParams<float>(false, 0, 0, 0.0f));
    qin.EnQue(t);
    t = qin.DeQue<float>();
    qin.FreeTensor(t);"
    );
    let (ok, out) = run(&body, &["TK_SIM_SOC_310P"]);
    assert!(!ok);
    assert!(out.contains("DataCopyPad is not supported on Ascend310P"), "{out}");
    let (ok, out) = run(&body, &[]);
    assert!(ok, "{out}");
}

#[test]
fn cube_reads_of_unwritten_data_and_wrong_memories_are_caught() {
    // Only 8 of the 16 rows of A are copied in: Mmad over m = 16 reads the other 8.
    let body = "
    KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIC_ONLY);
    AscendC::TPipe pipe;
    AscendC::TQue<AscendC::TPosition::A1, 1> qa1;
    pipe.InitBuffer(qa1, 1, 1024);
    AscendC::TQue<AscendC::TPosition::A2, 1> qa2;
    pipe.InitBuffer(qa2, 1, 1024);
    AscendC::TQue<AscendC::TPosition::B2, 1> qb2;
    pipe.InitBuffer(qb2, 1, 1024);
    AscendC::TQue<AscendC::TPosition::CO1, 1> qc;
    pipe.InitBuffer(qc, 1, 1024);
    AscendC::LocalTensor<float> a1 = qa1.AllocTensor<float>();
    AscendC::DataCopy(a1, gx, AscendC::Nd2NzParams(1, 8, 8, 0, 8, 16, 1, 0));
    AscendC::LocalTensor<float> a2 = qa2.AllocTensor<float>();
    AscendC::LoadData2DParams p;
    p.repeatTimes = 1;
    AscendC::LoadData(a2, a1, p);
    AscendC::LocalTensor<float> b2 = qb2.AllocTensor<float>();
    AscendC::InitConstValue(b2, AscendC::InitConstValueParams<float>(1, 1, 0, 1.0f));
    AscendC::LocalTensor<float> c = qc.AllocTensor<float>();
    AscendC::MmadParams mp;
    mp.m = 16;
    mp.n = 16;
    mp.k = 8;
    AscendC::Mmad(c, a2, b2, mp);
    qa1.FreeTensor(a1);
    qa2.FreeTensor(a2);
    qb2.FreeTensor(b2);
    qc.FreeTensor(c);";
    let (ok, out) = run(body, &[]);
    assert!(!ok);
    assert!(out.contains("Mmad reads A(8, 0) from L0A data that was never written"), "{out}");

    // The cube core has no Unified Buffer.
    let body = format!("KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIC_ONLY);{PROLOGUE}");
    let (ok, out) = run(&body, &[]);
    assert!(!ok && out.contains("an AIC-only kernel (cube core) has no Unified Buffer"), "{out}");

    // Vector APIs work on the UB only; L0A tensors start 512-byte aligned.
    let body = "
    AscendC::TPipe pipe;
    AscendC::TQue<AscendC::TPosition::A1, 1> qa1;
    pipe.InitBuffer(qa1, 1, 1024);
    AscendC::TQue<AscendC::TPosition::A2, 1> qa2;
    pipe.InitBuffer(qa2, 1, 2048);
    AscendC::LocalTensor<float> a1 = qa1.AllocTensor<float>();
    AscendC::LocalTensor<float> a2 = qa2.AllocTensor<float>();
    AscendC::LoadData2DParams p;
    p.repeatTimes = 1;
    AscendC::LoadData(a2[8], a1, p);
    qa1.FreeTensor(a1);
    qa2.FreeTensor(a2);";
    let (ok, out) = run(body, &[]);
    assert!(!ok && out.contains("L0A address 32 is not 512-byte aligned"), "{out}");
    let body = "
    AscendC::TPipe pipe;
    AscendC::TQue<AscendC::TPosition::A1, 1> qa1;
    pipe.InitBuffer(qa1, 1, 1024);
    AscendC::LocalTensor<float> a1 = qa1.AllocTensor<float>();
    AscendC::Muls(a1, a1, 2.0f, 64);
    qa1.FreeTensor(a1);";
    let (ok, out) = run(body, &[]);
    assert!(
        !ok && out.contains("operand in L1, but this API works on the Unified Buffer"),
        "{out}"
    );
}

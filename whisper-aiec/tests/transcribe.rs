//! whisper tiny.en on jfk.wav with every heavy op on aiec kernels in the emulator: the same words
//! as the CPU path, every op family through kernels, and a second run with the same cache
//! compiling nothing.

use std::path::Path;
use std::process::Command;

fn whisper_run(args: &[&str], cache: &Path) -> (String, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_whisper-run"))
        .current_dir(&root)
        .env("AIEC_CACHE_DIR", cache)
        .args(args)
        .output()
        .expect("whisper-run starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "whisper-run {args:?} failed:\n{stderr}");
    (stdout, stderr)
}

#[test]
fn tiny_en_on_jfk_through_the_emulator_says_what_the_cpu_path_says() {
    let cache = tempfile::tempdir().unwrap();
    let report = cache.path().join("report.json");
    let common = ["-m", "assets/whisper-tiny.en", "--beam", "1", "assets/jfk.wav"];
    // The kernels compute in bf16/f32: compare with the CPU's f32 path.
    let mut cpu: Vec<&str> = vec!["--compute-type", "f32"];
    cpu.extend(common);
    let (cpu_text, _) = whisper_run(&cpu, cache.path());
    let mut emulate: Vec<&str> = vec!["--backend", "emulate", "--report-json", report.to_str().unwrap()];
    emulate.extend(common);
    let (kernel_text, stderr) = whisper_run(&emulate, cache.path());
    assert!(cpu_text.contains("ask not what your country can do for you"), "CPU transcript: {cpu_text}");
    assert_eq!(kernel_text, cpu_text, "the kernels' transcript differs from the CPU's");
    assert!(stderr.contains("cost-model estimate, not a measurement"), "{stderr}");

    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for op in ["log_mel", "conv1d", "linear", "layer_norm", "gelu", "attention"] {
        let calls = json["ops"][op]["calls"].as_u64().unwrap_or(0);
        let kernels = json["ops"][op]["kernel_calls"].as_u64().unwrap_or(0);
        assert!(calls > 0 && kernels >= calls, "{op}: {calls} calls, {kernels} kernel runs");
        assert!(json["ops"][op]["estimated_seconds"].as_f64().unwrap_or(0.0) > 0.0, "{op} has no estimate");
    }
    let designs = json["designs"].as_array().map_or(0, |d| d.len());
    assert!(
        designs > 0 && json["compiled"].as_u64() == Some(designs as u64),
        "first run compiles every design: {json}"
    );
    assert!(json["audio_seconds"].as_f64().unwrap_or(0.0) > 10.9);

    // The second run finds every design in the cache.
    let (again, _) = whisper_run(&emulate, cache.path());
    assert_eq!(again, cpu_text);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["compiled"].as_u64(), Some(0), "the second run compiled designs: {json}");
    assert_eq!(json["designs"].as_array().map_or(0, |d| d.len()), designs);
}

#[test]
fn backend_npu_without_an_npu_names_what_is_missing() {
    if Path::new("/dev/accel/accel0").exists() {
        println!("skipped: this machine has an NPU node; the missing-NPU error cannot be provoked here");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_whisper-run"))
        .current_dir(&root)
        .args(["-m", "assets/whisper-tiny.en", "--backend", "npu", "assets/jfk.wav"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing is transcribed without the NPU");
    assert!(
        stderr.contains("--backend npu") && (stderr.contains("XRT not available") || stderr.contains("no NPU")),
        "{stderr}"
    );
}

//! The `aiec` binary: exit codes (0 ok, 1 compile/run error, 2 usage), artifacts, messages.

use std::path::{Path, PathBuf};
use std::process::Command;

fn aiec() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aiec"))
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dsl-examples").join(name)
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().expect("aiec runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn compile_writes_design_mlir_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(aiec().arg("compile").arg(example("matmul.tile")).arg("-o").arg(dir.path()));
    assert_eq!(code, 0, "{err}");
    let mlir = std::fs::read_to_string(dir.path().join("design.mlir")).unwrap();
    assert!(mlir.contains("aie.device(npu1)"));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("design.json")).unwrap()).unwrap();
    assert_eq!(json["kernel"], "matmul");
    assert_eq!(json["arguments"][0]["name"], "A");
    assert_eq!(json["arguments"][2]["direction"], "out");
}

#[test]
fn compile_default_directory_is_next_to_the_input_named_after_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("k.tile");
    std::fs::copy(example("gelu.tile"), &src).unwrap();
    let (code, _, err) = run(aiec().arg("compile").arg(&src));
    assert_eq!(code, 0, "{err}");
    assert!(dir.path().join("gelu/design.mlir").exists());
}

#[test]
fn emit_prints_one_artifact_for_each_device() {
    for (device, cols) in [("npu1", "aie.device(npu1)"), ("npu2", "aie.device(npu2)")] {
        let (code, out, err) = run(aiec().args(["compile", "--emit", "mlir", "--device", device]).arg(example("matmul.tile")));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(cols));
    }
    let (code, out, _) = run(aiec().args(["compile", "--emit", "generic"]).arg(example("softmax.tile")));
    assert_eq!(code, 0);
    assert!(out.contains("\"aie.objectfifo\""));
    let (code, out, _) = run(aiec().args(["compile", "--emit", "json"]).arg(example("softmax.tile")));
    assert_eq!(code, 0);
    assert!(out.contains("\"kernel\": \"softmax\""));
}

#[test]
fn compile_errors_exit_1_with_located_message_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("bad.tile");
    std::fs::write(
        &src,
        "kernel bad {\n  dim M = 64 tile 16\n  in x: f32[M]\n  out y: f32[M]\n  y[M] = exp(z[M])\n}\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let (code, _, err) = run(aiec().arg("compile").arg(&src).arg("-o").arg(&out_dir));
    assert_eq!(code, 1);
    assert!(err.contains("bad.tile:5:"), "{err}");
    assert!(err.contains('^'), "caret under the culprit: {err}");
    assert!(!out_dir.exists(), "nothing written on error");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(aiec().arg("compile")).0, 2);
    assert_eq!(run(aiec().arg("frobnicate")).0, 2);
    let (code, _, err) = run(aiec().args(["compile", "--device", "npu9"]).arg(example("matmul.tile")));
    assert_eq!(code, 2);
    assert!(err.contains("npu9"), "{err}");
    let (code, _, err) = run(aiec().arg("run").arg(example("matmul.tile")));
    assert_eq!(code, 2, "no backend chosen: {err}");
}

#[test]
fn missing_input_file_is_an_error_naming_it() {
    let (code, _, err) = run(aiec().args(["check", "no/such/file.tile"]));
    assert_eq!(code, 1);
    assert!(err.contains("no/such/file.tile"), "{err}");
}

#[test]
fn check_reports_ok() {
    let (code, out, err) = run(aiec().arg("check").arg(example("layernorm.tile")));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok for npu1"), "{out}");
}

#[test]
fn help_describes_every_command() {
    let (code, out, _) = run(aiec().arg("--help"));
    assert_eq!(code, 0);
    for cmd in ["compile", "check", "emulate", "run", "build", "doctor"] {
        assert!(out.contains(cmd), "{cmd} in --help");
    }
}

#[test]
fn run_emulate_compares_with_the_reference() {
    let (code, out, err) = run(aiec().args(["run", "--emulate", "--seed", "5"]).arg(example("matmul_i8_i16.tile")));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("bit-exact match"), "{out}");
    assert!(out.contains("estimate"), "the cost model's figure is labelled an estimate: {out}");
}

#[test]
fn run_auto_says_which_backend_it_chose() {
    let (code, out, err) = run(aiec().args(["run", "--backend", "auto"]).arg(example("rmsnorm.tile")));
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("backend: emulator") || err.contains("backend: npu"), "{err}");
}

#[test]
fn emulate_reads_and_writes_npy() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(aiec().arg("compile").arg(example("matmul_i16.tile")).arg("-o").arg(dir.path()));
    assert_eq!(code, 0, "{err}");
    // A = identity-like pattern, B = ones: every C element is the row's count of ones on A's diagonal.
    let n = 256usize;
    let mut a = vec![0i16; n * n];
    for i in 0..n {
        a[i * n + i] = 3;
    }
    let b = vec![2i16; n * n];
    write_npy_i16(&dir.path().join("a.npy"), &a, n);
    write_npy_i16(&dir.path().join("b.npy"), &b, n);
    let (code, out, err) = run(aiec()
        .arg("emulate")
        .arg(dir.path().join("design.mlir"))
        .arg("--arg")
        .arg(format!("A={}", dir.path().join("a.npy").display()))
        .arg("--arg")
        .arg(format!("1={}", dir.path().join("b.npy").display()))
        .arg("--out")
        .arg(format!("C={}", dir.path().join("c.npy").display())));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("cores"), "{out}");
    let bytes = std::fs::read(dir.path().join("c.npy")).unwrap();
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let data = &bytes[10 + header_len..];
    assert_eq!(data.len(), n * n * 4);
    for chunk in data.chunks(4) {
        assert_eq!(i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]), 6);
    }
    // A wrong dtype is an error naming the argument, exit 1.
    write_npy_i16(&dir.path().join("small.npy"), &[1, 2, 3, 4], 2);
    let (code, _, err) = run(aiec()
        .arg("emulate")
        .arg(dir.path().join("design.mlir"))
        .arg("--arg")
        .arg(format!("A={}", dir.path().join("small.npy").display())));
    assert_eq!(code, 1);
    assert!(err.contains("small.npy"), "{err}");
    // An input without --arg, or one given twice, is a usage error naming it.
    let (code, _, err) = run(aiec()
        .arg("emulate")
        .arg(dir.path().join("design.mlir"))
        .arg("--arg")
        .arg(format!("A={}", dir.path().join("a.npy").display())));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no --arg for input argument 1 (B)"), "{err}");
    let (code, _, err) = run(aiec()
        .arg("emulate")
        .arg(dir.path().join("design.mlir"))
        .arg("--arg")
        .arg(format!("A={}", dir.path().join("a.npy").display()))
        .arg("--arg")
        .arg(format!("0={}", dir.path().join("a.npy").display())));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("argument 0 (A) is already given"), "{err}");
}

fn write_npy_i16(path: &Path, data: &[i16], n: usize) {
    let rows = data.len() / n;
    let mut header = format!("{{'descr': '<i2', 'fortran_order': False, 'shape': ({rows}, {n}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn run_leaves_no_scratch_directory_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = run(aiec().env("TMPDIR", tmp.path()).args(["run", "--emulate"]).arg(example("rmsnorm.tile")));
    assert_eq!(code, 0, "{out}{err}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("aiec-run-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn default_device_comes_from_toolchain_toml() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("toolchain.toml"), "[device]\ndefault = \"npu2\"\n").unwrap();
    let (code, out, err) = run(aiec()
        .current_dir(dir.path())
        .env_remove("AIEC_DEVICE")
        .arg("check")
        .arg(example("matmul.tile")));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok for npu2"), "{out}");
    // A flag still wins over the file.
    let (_, out, _) = run(aiec()
        .current_dir(dir.path())
        .env_remove("AIEC_DEVICE")
        .args(["check", "--device", "npu1"])
        .arg(example("matmul.tile")));
    assert!(out.contains("ok for npu1"), "{out}");
}

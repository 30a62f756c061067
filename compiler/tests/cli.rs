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

/// `--dump-after PASS` prints the design after each pass asked for, in pass order, and writes
/// nothing; `all` dumps every pass.
#[test]
fn dump_after_every_pass() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("matmul.tile");
    std::fs::copy(example("matmul.tile"), &src).unwrap();
    let (code, out, err) = run(aiec().arg("compile").arg(&src).args(["--dump-after", "all"]));
    assert_eq!(code, 0, "{err}");
    let expect = [
        ("typecheck", "C[M, N] = sum[K]((A[M, K] * B[K, N]))"),
        ("place", "placement on npu1: 4 row(s) x 4 column(s) = 16 cores"),
        ("route", "fifo A_r0: (0, 1) -> (0, 2), (1, 2), (2, 2), (3, 2)"),
        ("sequence", "dma A (arg 0) via A_L2_r0"),
        ("check", "compute tile (0, 2): data"),
        ("lower", "aie.objectfifo.acquire"),
        ("emit", "aie.device(npu1)"),
    ];
    let mut last = 0;
    for (pass, text) in expect {
        let header = format!("// ----- after {pass} (npu1) -----");
        let at = out.find(&header).unwrap_or_else(|| panic!("no {header} in:\n{out}"));
        assert!(at >= last, "{pass} dumped out of order");
        let section = &out[at..];
        let end = section[header.len()..]
            .find("// ----- after")
            .map(|e| e + header.len())
            .unwrap_or(section.len());
        assert!(section[..end].contains(text), "{pass} dump lacks `{text}`:\n{}", &section[..end]);
        last = at;
    }
    assert!(!dir.path().join("matmul").exists(), "a dump writes no artifacts");

    // One pass alone; a failing kernel still dumps what ran before the failure.
    let (code, out, _) = run(aiec().arg("compile").arg(example("gelu.tile")).args(["--dump-after", "place"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("// ----- after place (npu1) -----") && !out.contains("after route"), "{out}");
    let bad = dir.path().join("bad.tile");
    std::fs::write(
        &bad,
        "kernel bad {\n  dim M = 64 tile 16\n  dim N = 64 tile 16\n  dim K = 64 tile 16\n  in A: bf16[M, K]\n  in B: bf16[K, N]\n  in c: f32[N]\n  in d: i8[N]\n  out C: f32[M, N]\n  spread M over rows, N over cols\n  C[M, N] = sum[K](A[M, K] * B[K, N]) + c[N] + cast<f32>(d[N])\n}\n",
    )
    .unwrap();
    let (code, out, err) = run(aiec().arg("compile").arg(&bad).args(["--dump-after", "typecheck", "--dump-after", "route"]));
    assert_eq!(code, 1);
    assert!(out.contains("C_sum[M, N] = sum[K]"), "the hoisted reduction shows: {out}");
    assert!(out.contains("fifo c_c0"), "the literal placement's routes show: {out}");
    assert!(err.contains("DMA input channels exceeded"), "{err}");

    let (code, _, err) = run(aiec().arg("compile").arg(example("gelu.tile")).args(["--dump-after", "optimize"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown pass `optimize`; the passes are typecheck, place, route, sequence, check, lower, emit"),
        "{err}"
    );
}

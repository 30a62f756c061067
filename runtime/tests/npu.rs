//! The NPU backend without an NPU: the instruction-stream reader, the mapping of design.json
//! arguments to kernel arguments, artifact checks, and honest "not available" answers.
//! (The end-to-end run on hardware lives in compiler/tests/toolchain.rs, behind AIEC_TEST_NPU=1.)

use aiec_runtime::artifact::{ArgDirection, ArgSpec, DesignJson, TileUse, DESIGN_JSON_FORMAT};
use aiec_runtime::insts::{self, InstsError};
use aiec_runtime::npu::{NpuArtifact, NpuBackend, NpuError};
use aiec_runtime::{DType, HostBuffer, RuntimeError};
use std::path::Path;

fn arg(name: &str, dtype: DType, shape: &[usize], direction: ArgDirection) -> ArgSpec {
    ArgSpec {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
        direction,
    }
}

fn design(args: Vec<ArgSpec>) -> DesignJson {
    DesignJson {
        format: DESIGN_JSON_FORMAT,
        kernel: "matmul".into(),
        device: "npu1".into(),
        source: None,
        arguments: args,
        tiles: vec![
            TileUse {
                col: 0,
                row: 2,
                kind: "compute".into(),
                data_bytes: 1024,
                data_limit: 65536,
                program_bytes_estimate: Some(2048),
                locks: 4,
                bds: 4,
            },
            TileUse {
                col: 0,
                row: 0,
                kind: "shim".into(),
                data_bytes: 0,
                data_limit: 0,
                program_bytes_estimate: None,
                locks: 0,
                bds: 3,
            },
        ],
        estimate: None,
    }
}

fn matmul_design() -> DesignJson {
    design(vec![
        arg("A", DType::I8, &[64, 32], ArgDirection::In),
        arg("B", DType::I8, &[32, 64], ArgDirection::In),
        arg("C", DType::I32, &[64, 64], ArgDirection::Out),
    ])
}

#[test]
fn reads_little_endian_words() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("insts.bin");
    std::fs::write(&path, [0x01, 0x02, 0x03, 0x04, 0xff, 0x00, 0x00, 0x80]).unwrap();
    let words = insts::read_insts(&path).unwrap();
    assert_eq!(words, vec![0x0403_0201, 0x8000_00ff]);
    assert_eq!(insts::insts_bytes(&words), std::fs::read(&path).unwrap(), "words go back to the same bytes");
}

#[test]
fn rejects_empty_and_ragged_instruction_streams() {
    let p = Path::new("out/insts.bin");
    match insts::parse_insts(&[], p) {
        Err(InstsError::Empty { path }) => assert_eq!(path, p),
        other => panic!("expected Empty, got {other:?}"),
    }
    let e = insts::parse_insts(&[1, 2, 3, 4, 5, 6], p).unwrap_err();
    assert!(matches!(e, InstsError::BadLength { len: 6, .. }));
    assert_eq!(e.to_string(), "out/insts.bin: 6 bytes is not a whole number of 32-bit instruction words");
    let missing = insts::read_insts(Path::new("/nonexistent/insts.bin")).unwrap_err();
    assert!(matches!(missing, InstsError::Io { .. }));
    // Into the runtime's error type: the file is named.
    let as_runtime: RuntimeError = e.into();
    assert!(matches!(as_runtime, RuntimeError::Insts(InstsError::BadLength { .. })));
    assert!(as_runtime.to_string().contains("out/insts.bin"));
}

#[test]
fn maps_runtime_sequence_arguments_to_kernel_arguments() {
    let call = insts::kernel_call(&matmul_design(), 42).unwrap();
    assert_eq!(call.opcode, 3);
    assert_eq!(call.instruction_words, 42);
    let mapped: Vec<(usize, &str, u32, usize, ArgDirection)> = call
        .buffers
        .iter()
        .map(|b| (b.sequence_index, b.name.as_str(), b.kernel_arg, b.bytes, b.direction))
        .collect();
    assert_eq!(
        mapped,
        vec![
            (0, "A", 3, 64 * 32, ArgDirection::In),
            (1, "B", 4, 32 * 64, ArgDirection::In),
            (2, "C", 5, 64 * 64 * 4, ArgDirection::Out),
        ]
    );
    assert_eq!((insts::ARG_OPCODE, insts::ARG_INSTRUCTIONS, insts::ARG_INSTRUCTION_COUNT), (0, 1, 2));
}

#[test]
fn kernel_call_limits() {
    let six: Vec<ArgSpec> = (0..6).map(|i| arg(&format!("x{i}"), DType::F32, &[16], ArgDirection::In)).collect();
    let e = insts::kernel_call(&design(six), 8).unwrap_err();
    assert!(
        e.to_string().contains("6 runtime-sequence arguments") && e.to_string().contains("at most 5"),
        "{e}"
    );
    let five: Vec<ArgSpec> = (0..5).map(|i| arg(&format!("x{i}"), DType::F32, &[16], ArgDirection::In)).collect();
    assert_eq!(insts::kernel_call(&design(five), 8).unwrap().buffers.last().unwrap().kernel_arg, 7);
    assert!(insts::kernel_call(&design(vec![]), 8).is_err());
    assert!(insts::kernel_call(&matmul_design(), 0).is_err(), "an empty instruction stream cannot run");
    let empty_shape = design(vec![arg("z", DType::I32, &[0, 4], ArgDirection::Out)]);
    match insts::kernel_call(&empty_shape, 4) {
        Err(RuntimeError::BadArgument { index: 0, name, .. }) => assert_eq!(name, "z"),
        other => panic!("expected BadArgument, got {other:?}"),
    }
}

#[test]
fn host_buffers_must_match_the_design() {
    let d = matmul_design();
    let mut bufs: Vec<HostBuffer> = d.arguments.iter().map(HostBuffer::for_arg).collect();
    insts::check_host_buffers(&d, &bufs).unwrap();

    assert!(insts::check_host_buffers(&d, &bufs[..2])
        .unwrap_err()
        .to_string()
        .contains("takes 3 runtime-sequence arguments, 2 buffers"));

    bufs[1] = HostBuffer::zeros(DType::I16, &[32, 64]);
    match insts::check_host_buffers(&d, &bufs).unwrap_err() {
        RuntimeError::BadArgument { index: 1, name, message } => {
            assert_eq!(name, "B");
            assert!(message.contains("i16") && message.contains("i8"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    bufs[1] = HostBuffer::zeros(DType::I8, &[64, 32]);
    assert!(insts::check_host_buffers(&d, &bufs).unwrap_err().to_string().contains("shape [64, 32] given"));
    bufs[1] = HostBuffer::zeros(DType::I8, &[32, 64]);
    bufs[2].bytes.pop();
    assert!(insts::check_host_buffers(&d, &bufs).unwrap_err().to_string().contains("bytes given"));
}

fn write_artifact(dir: &Path, insts: Option<&[u8]>, xclbin: bool) {
    std::fs::write(dir.join("design.json"), matmul_design().to_pretty_json()).unwrap();
    std::fs::write(dir.join("design.mlir"), "module {}\n").unwrap();
    if let Some(bytes) = insts {
        std::fs::write(dir.join("insts.bin"), bytes).unwrap();
    }
    if xclbin {
        std::fs::write(dir.join("final.xclbin"), b"xclbin2\0").unwrap();
    }
}

#[test]
fn artifact_is_read_and_checked_before_xrt() {
    let dir = tempfile::tempdir().unwrap();
    write_artifact(dir.path(), Some(&[7, 0, 0, 0, 9, 0, 0, 0]), true);
    let a = NpuArtifact::load(dir.path()).unwrap();
    assert_eq!(a.insts, vec![7, 9]);
    assert_eq!(a.call.instruction_words, 2);
    assert_eq!(a.call.buffers.len(), 3);
    assert_eq!(a.xclbin, dir.path().join("final.xclbin"));
}

#[test]
fn missing_build_outputs_say_to_run_aiec_build() {
    let dir = tempfile::tempdir().unwrap();
    write_artifact(dir.path(), None, false);
    let e = NpuArtifact::load(dir.path()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("final.xclbin") && msg.contains("aiec build"), "{msg}");

    std::fs::write(dir.path().join("final.xclbin"), b"x").unwrap();
    let msg = NpuArtifact::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("insts.bin") && msg.contains("aiec build"), "{msg}");

    std::fs::write(dir.path().join("insts.bin"), [1, 2, 3]).unwrap();
    let msg = NpuArtifact::load(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("3 bytes is not a whole number"), "{msg}");

    let nothing = tempfile::tempdir().unwrap();
    assert!(matches!(NpuArtifact::load(nothing.path()).unwrap_err(), RuntimeError::Io { .. }));
}

#[test]
fn probe_says_why_the_npu_cannot_be_used() {
    let no_node = Path::new("/nonexistent/accel/accel0");
    let e = NpuBackend::probe_at(no_node).unwrap_err();
    if aiec_runtime::npu::xrt::available() {
        // XRT is compiled in, so the missing device node is what is reported.
        assert!(
            matches!(&e, RuntimeError::Npu(NpuError::NoDevice { node }) if node == no_node)
                && e.to_string().contains("/nonexistent/accel/accel0")
                && e.to_string().contains("amdxdna"),
            "{e}"
        );
    } else {
        match &e {
            RuntimeError::XrtUnavailable(m) => {
                assert!(m.contains("2.17") && m.contains("install"), "{m}");
                assert!(!m.starts_with("XRT not available"), "the prefix is not doubled: {e}");
            }
            other => panic!("expected XrtUnavailable, got {other:?}"),
        }
        assert!(e.to_string().starts_with("XRT not available: "));
        // Opening the backend fails with the same explanation instead of panicking.
        let opened = NpuBackend::new();
        assert!(matches!(opened, Err(RuntimeError::XrtUnavailable(_))));
        assert!(NpuBackend::probe().is_err());
    }
}

#[test]
fn npu_errors_name_the_xrt_step_and_keep_xrt_error() {
    use aiec_runtime::npu::{xrt::XrtError, NpuBuffer};
    use std::error::Error;
    let failed = XrtError::RunFailed { state: 5, timed_out: true };
    let e = RuntimeError::from(NpuError::Run {
        kernel: "k".into(),
        source: failed.clone(),
    });
    assert_eq!(
        e.to_string(),
        "NPU: running kernel 'k': the run did not complete: XRT command state 5 (timed out)"
    );
    let npu = e.source().and_then(|s| s.downcast_ref::<NpuError>()).expect("the NPU error is the source");
    assert_eq!(npu.source().and_then(|s| s.downcast_ref::<XrtError>()), Some(&failed));
    let e = NpuError::SyncBo {
        buffer: NpuBuffer::Argument { index: 1, name: "b".into() },
        direction: aiec_runtime::npu::xrt::SyncDirection::FromDevice,
        source: XrtError::Call {
            call: "bo sync",
            message: "bad".into(),
        },
    };
    assert_eq!(e.to_string(), "syncing the buffer of argument 1 (b) from the device: XRT bo sync: bad");
}

#[test]
fn instruction_stream_errors_keep_their_source() {
    use std::error::Error;
    // A header whose size disagrees with the stream.
    let e = RuntimeError::from(insts::decode(&[0, 0, 1, 999]).unwrap_err());
    assert!(e.to_string().starts_with("insts.bin: "), "{e}");
    assert!(e.source().is_some_and(|s| s.is::<InstsError>()), "{e:?}");
}

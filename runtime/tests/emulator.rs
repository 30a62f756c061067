//! Emulator tests: hand-written mlir-aie designs run on the host, outputs checked exactly.

use aiec_runtime::emulator::{sequence_args, Emulator};
use aiec_runtime::{DType, HostBuffer, RuntimeError};
use std::path::PathBuf;

fn design(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/designs").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn i32_buf(v: &[i32]) -> HostBuffer {
    HostBuffer {
        dtype: DType::I32,
        shape: vec![v.len()],
        bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

fn i32s(b: &HostBuffer) -> Vec<i32> {
    b.bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn run(name: &str, args: &mut [HostBuffer]) -> Result<aiec_runtime::RunReport, RuntimeError> {
    Emulator::new().run_mlir(&design(name), name, args)
}

#[test]
fn add_one_through_memory_tile() {
    let input: Vec<i32> = (0..256).map(|i| i * 7 - 300).collect();
    let mut args = [i32_buf(&input), HostBuffer::zeros(DType::I32, &[256])];
    let report = run("add_one_link.mlir", &mut args).unwrap();
    let expected: Vec<i32> = input.iter().map(|v| v + 1).collect();
    assert_eq!(i32s(&args[1]), expected);
    assert_eq!(report.cores, 1);
    assert_eq!(report.dma_transfers, 2);
}

#[test]
fn split_to_two_cores_and_join() {
    let input: Vec<i32> = (0..256).map(|i| (i * 37) % 101 - 50).collect();
    let mut args = [i32_buf(&input), HostBuffer::zeros(DType::I32, &[256])];
    let report = run("split_join.mlir", &mut args).unwrap();
    let expected: Vec<i32> = input.iter().enumerate().map(|(i, v)| if i % 64 < 32 { v * 2 } else { v * 3 }).collect();
    assert_eq!(i32s(&args[1]), expected);
    assert_eq!(report.cores, 2);
}

#[test]
fn broadcast_to_two_cores() {
    let input: Vec<i32> = (0..64).map(|i| i * 3 - 90).collect();
    let mut args = [i32_buf(&input), HostBuffer::zeros(DType::I32, &[64]), HostBuffer::zeros(DType::I32, &[64])];
    run("broadcast.mlir", &mut args).unwrap();
    let plus: Vec<i32> = input.iter().map(|v| v + 10).collect();
    let square: Vec<i32> = input.iter().map(|v| v * v).collect();
    assert_eq!(i32s(&args[1]), plus);
    assert_eq!(i32s(&args[2]), square);
}

#[test]
fn strided_pattern_with_offset_and_repeat() {
    let input: Vec<i32> = (0..256).map(|i| i * 5 + 1).collect();
    let mut a = i32_buf(&input);
    a.shape = vec![16, 16];
    let mut args = [a, HostBuffer::zeros(DType::I32, &[16, 16])];
    run("strided.mlir", &mut args).unwrap();
    let mut expected = vec![0i32; 256];
    for rep in 0..2 {
        for r in 0..8 {
            for c in 0..8 {
                let v = input[(2 + r) * 16 + 4 + c];
                expected[(rep * 8 + r) * 16 + 8 + c] = if rep == 0 { -v } else { v + 1000 };
            }
        }
    }
    assert_eq!(i32s(&args[1]), expected);
}

#[test]
fn vector_contract_int8_blocks() {
    let a: Vec<i8> = (0..256).map(|i| ((i * 29) % 255 - 127) as i8).collect();
    let b: Vec<i8> = (0..256).map(|i| ((i * 53 + 7) % 255 - 127) as i8).collect();
    let mut args = [
        HostBuffer {
            dtype: DType::I8,
            shape: vec![2, 8, 16],
            bytes: a.iter().map(|&v| v as u8).collect(),
        },
        HostBuffer {
            dtype: DType::I8,
            shape: vec![2, 16, 8],
            bytes: b.iter().map(|&v| v as u8).collect(),
        },
        HostBuffer::zeros(DType::I32, &[2, 8, 8]),
    ];
    run("matmul_vector.mlir", &mut args).unwrap();
    let mut expected = vec![0i32; 128];
    for p in 0..2 {
        for m in 0..8 {
            for n in 0..8 {
                expected[p * 64 + m * 8 + n] = (0..16).map(|k| a[p * 128 + m * 16 + k] as i32 * b[p * 128 + k * 8 + n] as i32).sum();
            }
        }
    }
    assert_eq!(i32s(&args[2]), expected);
}

#[test]
fn deadlock_is_reported() {
    let mut args = [i32_buf(&[1; 16]), HostBuffer::zeros(DType::I32, &[16])];
    let e = run("deadlock.mlir", &mut args).unwrap_err();
    let RuntimeError::Deadlock(msg) = &e else {
        panic!("expected a deadlock, got {e}")
    };
    assert!(msg.contains("core (0, 2)") && msg.contains("@y(Consume, 1)"), "{msg}");
    assert!(msg.contains("core (0, 3)") && msg.contains("@x(Consume, 1)"), "{msg}");
    assert!(msg.contains("dma_wait {symbol = @out}"), "{msg}");
    let text = design("deadlock.mlir");
    let y_line = line_of(&text, "acquire @y(Consume, 1)");
    assert!(msg.contains(&format!("core (0, 2) waits at line {y_line} ")), "{msg}");
}

#[test]
fn repeated_run_uses_the_compiled_design() {
    let text = design("add_one_link.mlir");
    let mut emu = Emulator::new();
    for round in 0..3 {
        let input: Vec<i32> = (0..256).map(|i| i + round).collect();
        let mut args = [i32_buf(&input), HostBuffer::zeros(DType::I32, &[256])];
        emu.run_mlir(&text, "add_one_link.mlir", &mut args).unwrap();
        assert_eq!(i32s(&args[1]), input.iter().map(|v| v + 1).collect::<Vec<_>>());
    }
    assert!(emu.compiled <= 1, "compiled {} times", emu.compiled);
}

#[test]
fn sequence_args_come_from_memref_types() {
    let specs = sequence_args(&design("matmul_vector.mlir")).unwrap();
    let got: Vec<(String, DType, Vec<usize>, bool)> = specs
        .iter()
        .map(|s| (s.name.clone(), s.dtype, s.shape.clone(), s.direction == aiec_runtime::ArgDirection::Out))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a".to_string(), DType::I8, vec![2, 8, 16], false),
            ("b".to_string(), DType::I8, vec![2, 16, 8], false),
            ("c".to_string(), DType::I32, vec![2, 8, 8], true),
        ]
    );
}

/// Line number (1-based) of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("needle in design") + 1
}

fn design_error(text: &str, args: &mut [HostBuffer]) -> String {
    match Emulator::new().run_mlir(text, "broken.mlir", args) {
        Err(e @ (RuntimeError::Design { .. } | RuntimeError::Syntax { .. } | RuntimeError::Jit { .. } | RuntimeError::Fault(_))) => e.to_string(),
        other => panic!("expected a design error, got {other:?}"),
    }
}

fn add_one_args() -> [HostBuffer; 2] {
    [HostBuffer::zeros(DType::I32, &[256]), HostBuffer::zeros(DType::I32, &[256])]
}

#[test]
fn pattern_out_of_bounds_is_an_error() {
    let text = design("add_one_link.mlir").replace("%in[0, 0, 0, 0][1, 1, 1, 256]", "%in[0, 0, 0, 32][1, 1, 1, 256]");
    let m = design_error(&text, &mut add_one_args());
    let line = line_of(&text, "%in[0, 0, 0, 32]");
    assert!(m.starts_with(&format!("broken.mlir:{line}:")), "{m}");
    assert!(m.contains("dma_memcpy_nd") && m.contains("reaches element 287"), "{m}");
}

#[test]
fn partial_fifo_element_is_an_error() {
    let text = design("add_one_link.mlir").replace("%in[0, 0, 0, 0][1, 1, 1, 256]", "%in[0, 0, 0, 0][1, 1, 1, 250]");
    let m = design_error(&text, &mut add_one_args());
    let line = line_of(&text, "[1, 1, 1, 250]");
    assert!(m.starts_with(&format!("broken.mlir:{line}:")), "{m}");
    assert!(m.contains("not a whole number of @in0 elements"), "{m}");
}

#[test]
fn wait_on_unfilled_fifo_is_an_error() {
    let text = design("add_one_link.mlir").replace("aiex.npu.dma_wait {symbol = @out0}", "aiex.npu.dma_wait {symbol = @in1}");
    let m = design_error(&text, &mut add_one_args());
    let line = line_of(&text, "symbol = @in1");
    assert!(m.starts_with(&format!("broken.mlir:{line}:")), "{m}");
    assert!(m.contains("dma_wait on @in1"), "{m}");
}

#[test]
fn unknown_symbol_is_an_error() {
    let text = design("add_one_link.mlir").replace("metadata = @in0}", "metadata = @nowhere}");
    let m = design_error(&text, &mut add_one_args());
    let line = line_of(&text, "@nowhere");
    assert!(
        m.starts_with(&format!("broken.mlir:{line}:")) && m.contains("unknown object FIFO @nowhere"),
        "{m}"
    );
    let text = design("add_one_link.mlir").replace("acquire @in1(Consume", "acquire @missing(Consume");
    let m = design_error(&text, &mut add_one_args());
    let line = line_of(&text, "@missing");
    assert!(m.starts_with(&format!("broken.mlir:{line}:")) && m.contains("@missing"), "{m}");
}

#[test]
fn unsupported_op_is_named() {
    let text = design("add_one_link.mlir").replace("    %t02 = aie.tile(0, 2)\n", "    %t02 = aie.tile(0, 2)\n    aie.cascade_flow(%t02, %t02)\n");
    let m = design_error(&text, &mut add_one_args());
    let line = line_of(&text, "aie.cascade_flow");
    assert!(m.starts_with(&format!("broken.mlir:{line}:")), "{m}");
    assert!(m.contains("aie.cascade_flow") && m.contains("not modelled"), "{m}");
}

#[test]
fn design_errors_keep_their_line_and_source() {
    use aiec_runtime::aie_syntax::SyntaxError;
    use aiec_runtime::emulator::design::DesignError;
    use aiec_runtime::emulator::jit::JitError;
    use std::error::Error;
    let run = |text: &str| Emulator::new().run_mlir(text, "broken.mlir", &mut add_one_args()).unwrap_err();
    // A wrong symbol: the model's own error, as the source.
    let text = design("add_one_link.mlir").replace("metadata = @in0}", "metadata = @nowhere}");
    let e = run(&text);
    let RuntimeError::Design { file, source } = &e else {
        panic!("expected a design error, got {e:?}")
    };
    assert_eq!((file.as_str(), source.line), ("broken.mlir", line_of(&text, "@nowhere")));
    assert_eq!(e.source().and_then(|s| s.downcast_ref::<DesignError>()), Some(source));
    // An op the emulator does not read.
    let text = design("add_one_link.mlir").replace("    %t02 = aie.tile(0, 2)\n", "    %t02 = aie.tile(0, 2)\n    aie.cascade_flow(%t02, %t02)\n");
    let e = run(&text);
    assert!(
        matches!(&e, RuntimeError::Syntax { source: SyntaxError::Unsupported { op, .. }, .. } if op == "aie.cascade_flow"),
        "{e:?}"
    );
    assert!(e.source().is_some_and(|s| s.is::<SyntaxError>()));
    // Core code MLIR rejects.
    let text = design("add_one_link.mlir").replace("arith.addi %v, %one : i32", "arith.addi %v, %undefined : i32");
    let e = run(&text);
    let RuntimeError::Jit { source, .. } = &e else {
        panic!("expected a JIT error, got {e:?}")
    };
    assert_eq!(source.line, line_of(&text, "%undefined"));
    assert!(e.source().is_some_and(|s| s.is::<JitError>()));
}

#[test]
fn core_code_errors_point_at_the_design_line() {
    let text = design("add_one_link.mlir").replace("arith.addi %v, %one : i32", "arith.addi %v, %undefined : i32");
    let m = design_error(&text, &mut add_one_args());
    let line = line_of(&text, "%undefined");
    assert!(m.starts_with(&format!("broken.mlir:{line}:")), "{m}");
    assert!(m.contains("undeclared SSA value"), "{m}");
}

#[test]
fn wrong_port_is_an_error() {
    let text = design("add_one_link.mlir").replace("acquire @in1(Consume", "acquire @in1(Produce");
    let m = design_error(&text, &mut add_one_args());
    let line = line_of(&text, "acquire @in1(Produce");
    assert!(m.starts_with(&format!("broken.mlir:{line}:")) && m.contains("not its producer"), "{m}");
}

#[test]
fn bad_arguments_are_rejected() {
    let mut args = [HostBuffer::zeros(DType::I32, &[128]), HostBuffer::zeros(DType::I32, &[256])];
    let e = run("add_one_link.mlir", &mut args).unwrap_err();
    assert!(matches!(e, RuntimeError::BadArgument { index: 0, .. }), "{e}");
}

#[path = "common/matmul_design.rs"]
mod matmul_design;

#[test]
fn whole_array_int8_matmul_on_16_cores() {
    let (n, t) = (128, 16);
    let text = matmul_design::matmul_design(n, t);
    let (a, b) = matmul_design::matmul_operands(n);
    let mut args = matmul_design::matmul_buffers(&a, &b, n);
    let report = Emulator::new().run_mlir(&text, "matmul_128.mlir", &mut args).unwrap();
    assert_eq!(report.cores, 16);
    assert_eq!(i32s(&args[2]), matmul_design::matmul_reference(&a, &b, n));
}

#[test]
fn bf16_and_math_in_a_core() {
    use half::bf16;
    let x: Vec<bf16> = (0..64).map(|i| bf16::from_f32((i as f32 - 31.5) * 0.173)).collect();
    let mut args = [
        HostBuffer {
            dtype: DType::Bf16,
            shape: vec![64],
            bytes: x.iter().flat_map(|v| v.to_bits().to_le_bytes()).collect(),
        },
        HostBuffer::zeros(DType::Bf16, &[64]),
        HostBuffer::zeros(DType::F32, &[64]),
    ];
    run("bf16_scale_exp.mlir", &mut args).unwrap();
    let y: Vec<u16> = args[1].bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    let expected_y: Vec<u16> = x.iter().map(|v| bf16::from_f32(v.to_f32() * 1.5).to_bits()).collect();
    assert_eq!(y, expected_y);
    let z: Vec<f32> = args[2].bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    for (got, v) in z.iter().zip(&x) {
        let want = v.to_f32().exp();
        assert!((got - want).abs() <= want.abs() * 1e-6, "exp({}) = {got}, expected {want}", v.to_f32());
    }
}

#[test]
fn backend_runs_an_artifact_directory() {
    use aiec_runtime::artifact::{ArgDirection, ArgSpec, DesignJson, DESIGN_JSON_FORMAT};
    use aiec_runtime::Backend;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("design.mlir"), design("add_one_link.mlir")).unwrap();
    let arg = |name: &str, direction| ArgSpec {
        name: name.into(),
        dtype: DType::I32,
        shape: vec![256],
        direction,
    };
    let json = DesignJson {
        format: DESIGN_JSON_FORMAT,
        kernel: "add_one".into(),
        device: "npu1".into(),
        source: None,
        arguments: vec![arg("in", ArgDirection::In), arg("out", ArgDirection::Out)],
        tiles: vec![],
        estimate: None,
    };
    std::fs::write(dir.path().join("design.json"), json.to_pretty_json()).unwrap();
    let input: Vec<i32> = (0..256).map(|i| 1000 - i).collect();
    let mut args = [i32_buf(&input), HostBuffer::zeros(DType::I32, &[256])];
    let mut emu = Emulator::new();
    emu.run(dir.path(), &mut args).unwrap();
    assert_eq!(i32s(&args[1]), input.iter().map(|v| v + 1).collect::<Vec<_>>());
    let mut wrong = [i32_buf(&input), HostBuffer::zeros(DType::I32, &[16, 16])];
    let e = emu.run(dir.path(), &mut wrong).unwrap_err();
    assert!(matches!(e, RuntimeError::BadArgument { index: 1, .. }), "{e}");
}

#[test]
fn a_core_spinning_forever_is_reported() {
    let mut emu = Emulator::new();
    emu.stall_timeout = std::time::Duration::from_millis(300);
    let mut args = [HostBuffer::zeros(DType::I32, &[16])];
    let e = emu.run_mlir(&design("endless.mlir"), "endless.mlir", &mut args).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("no object FIFO or DMA activity") && msg.contains("core (0, 2)"), "{msg}");
}

#[test]
fn releasing_more_than_acquired_is_an_error() {
    let text = design("add_one_link.mlir").replace("release @in1(Consume, 1)", "release @in1(Consume, 2)");
    let input: Vec<i32> = (0..256).collect();
    let mut args = [i32_buf(&input), HostBuffer::zeros(DType::I32, &[256])];
    let m = design_error(&text, &mut args);
    let line = line_of(&text, "release @in1(Consume, 2)");
    assert!(m.starts_with(&format!("broken.mlir:{line}:")), "{m}");
    assert!(m.contains("holds only 1 element"), "{m}");
}

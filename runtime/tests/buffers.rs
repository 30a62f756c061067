//! Core-local buffers (`aie.buffer`): state a core keeps across its loop iterations, zeroed or with an
//! initial value, only on its own tile.

use aiec_runtime::aie_syntax::{custom_to_generic, generic_to_custom, parse_custom};
use aiec_runtime::emulator::design::Design;
use aiec_runtime::emulator::{jit, sequence_args, Emulator};
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

/// Line number (1-based) of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("needle in design") + 1
}

fn model(text: &str) -> (Vec<aiec_runtime::aie_syntax::Line>, Design) {
    let lines = parse_custom(text).unwrap();
    let design = Design::from_lines(&lines).unwrap_or_else(|e| panic!("line {}: {}", e.line, e.message));
    (lines, design)
}

/// Running sums of 16-element chunks, element by element.
fn running_sums(input: &[i32], start: &[i32], add: i32) -> Vec<i32> {
    let mut acc = start.to_vec();
    let mut out = Vec::new();
    for chunk in input.chunks(16) {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a += v + add;
        }
        out.extend_from_slice(&acc);
    }
    out
}

fn running_sum_args() -> ([HostBuffer; 4], Vec<i32>, Vec<i32>) {
    let a: Vec<i32> = (0..128).map(|i| i * 13 - 700).collect();
    let b: Vec<i32> = (0..128).map(|i| (i * 7919) % 1001 - 500).collect();
    let args = [
        i32_buf(&a),
        i32_buf(&b),
        HostBuffer::zeros(DType::I32, &[128]),
        HostBuffer::zeros(DType::I32, &[128]),
    ];
    (args, a, b)
}

#[test]
fn a_core_accumulates_into_its_buffer_across_fifo_elements() {
    let text = design("running_sum_buffer.mlir");
    let (mut args, a, b) = running_sum_args();
    let report = Emulator::new().run_mlir(&text, "running_sum_buffer.mlir", &mut args).unwrap();
    assert_eq!(report.cores, 2);
    assert_eq!(i32s(&args[2]), running_sums(&a, &[0; 16], 0));
    assert_eq!(i32s(&args[3]), running_sums(&b, &[0; 16], 0));
    // Spot check of the arithmetic above: the last element of core (0, 2)'s output is the column sum.
    assert_eq!(i32s(&args[2])[127], (0..8).map(|k| a[k * 16 + 15]).sum::<i32>());
}

#[test]
fn buffers_are_fresh_in_every_run() {
    let text = design("running_sum_buffer.mlir");
    let mut emu = Emulator::new();
    for _ in 0..3 {
        let (mut args, a, _) = running_sum_args();
        emu.run_mlir(&text, "running_sum_buffer.mlir", &mut args).unwrap();
        assert_eq!(i32s(&args[2]), running_sums(&a, &[0; 16], 0));
    }
    assert!(emu.compiled <= 1, "compiled {} times", emu.compiled);
}

#[test]
fn cores_with_the_same_code_on_their_own_buffers_share_one_function() {
    let text = design("running_sum_buffer.mlir");
    let (lines, d) = model(&text);
    assert_eq!(d.buffers.len(), 2);
    assert_eq!(d.cores[0].buffers, vec![0]);
    assert_eq!(d.cores[1].buffers, vec![1]);
    assert_eq!(d.buffers[1].name, "%acc_0_3");
    assert_eq!(d.buffers[1].sym_name.as_deref(), Some("acc_0_3"));
    let module = jit::core_module(&d, &lines).unwrap();
    assert_eq!(module.functions, 1, "{}", module.text);
    assert_eq!(module.function_of, vec![0, 0]);
    assert!(module.text.contains("%acc_0_2: memref<16xi32>"), "{}", module.text);
    // Buffers are not runtime-sequence arguments.
    assert_eq!(sequence_args(&text).unwrap().len(), 4);
}

#[test]
fn buffers_start_from_their_initial_values() {
    let text = design("buffer_initial_value.mlir");
    let x: Vec<i32> = (0..64).map(|i| i * i - 1000).collect();
    let mut args = [i32_buf(&x), HostBuffer::zeros(DType::I32, &[64])];
    Emulator::new().run_mlir(&text, "buffer_initial_value.mlir", &mut args).unwrap();
    let start = [100, -200, 300, -400, 500, -600, 700, -800, 1, 2, 3, 4, 5, 6, 7, 8];
    assert_eq!(i32s(&args[1]), running_sums(&x, &start, 3));
    assert_eq!(i32s(&args[1])[48], 100 + 4 * 3 + x[0] + x[16] + x[32] + x[48]);
}

#[test]
fn initial_values_are_read_by_mlir() {
    let text = "module {\n  aie.device(npu1) {\n    %t = aie.tile(0, 2)\n    \
                %a = aie.buffer(%t) : memref<4xi8> = dense<[1, -1, 127, -128]>\n    \
                %b = aie.buffer(%t) : memref<2xbf16> = dense<[1.5, -2.0]>\n    \
                %c = aie.buffer(%t) : memref<2x2xf32> = dense<2.500000e-01>\n    \
                %d = aie.buffer(%t) : memref<2xi32> = dense<\"0x0100000002000000\">\n    \
                %e = aie.buffer(%t) {sym_name = \"e\"} : memref<2xi16>\n    \
                aie.runtime_sequence() {\n    }\n  }\n}\n";
    let (_, d) = model(text);
    let got = jit::buffer_contents(&d).unwrap();
    assert_eq!(got[0].as_deref(), Some(&[1u8, 0xff, 127, 0x80][..]));
    let bf = |v: f32| half::bf16::from_f32(v).to_bits().to_le_bytes();
    assert_eq!(got[1].as_deref(), Some(&[bf(1.5), bf(-2.0)].concat()[..]));
    assert_eq!(got[2].as_deref(), Some(&0.25f32.to_le_bytes().repeat(4)[..]));
    assert_eq!(got[3].as_deref(), Some(&[1u8, 0, 0, 0, 2, 0, 0, 0][..]));
    assert_eq!(got[4], None);

    let bad = text.replace("dense<[1, -1, 127, -128]>", "dense<[1, 2, 3]>");
    let (_, d) = model(&bad);
    let e = jit::buffer_contents(&d).unwrap_err();
    assert_eq!(e.line, 4);
    assert!(e.message.contains("initial value of aie.buffer %a"), "{}", e.message);
}

fn design_error(text: &str, args: &mut [HostBuffer]) -> String {
    match Emulator::new().run_mlir(text, "broken.mlir", args) {
        Err(e @ (RuntimeError::Design { .. } | RuntimeError::Syntax { .. } | RuntimeError::Jit { .. } | RuntimeError::Fault(_))) => e.to_string(),
        other => panic!("expected a design error, got {other:?}"),
    }
}

#[test]
fn using_another_tiles_buffer_is_an_error() {
    let text = design("running_sum_buffer.mlir").replace("%a = memref.load %acc_0_3[%i]", "%a = memref.load %acc_0_2[%i]");
    let (mut args, _, _) = running_sum_args();
    let m = design_error(&text, &mut args);
    // The second core's copy of the line.
    let line = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("%a = memref.load %acc_0_2[%i]"))
        .nth(1)
        .unwrap()
        .0
        + 1;
    assert!(line > line_of(&text, "%core_0_3 = aie.core"));
    assert!(m.starts_with(&format!("broken.mlir:{line}:")), "{m}");
    assert!(m.contains("%acc_0_2") && m.contains("tile (0, 3)") && m.contains("tile (0, 2)"), "{m}");
    let decl = line_of(&text, "%acc_0_2 = aie.buffer");
    assert!(m.contains(&format!("line {decl}")), "{m}");
    // Reported when only the arguments are read, too.
    let e = sequence_args(&text).unwrap_err();
    assert!(e.to_string().contains("%acc_0_2"), "{e}");
}

#[test]
fn buffer_errors_name_the_line() {
    let base = design("running_sum_buffer.mlir");
    let (mut args, _, _) = running_sum_args();
    let cases = [
        (
            base.replace("%acc_0_3 = aie.buffer(%t03)", "%acc_0_3 = aie.buffer(%shim)"),
            "%acc_0_3 = aie.buffer(%shim)",
            "shim tile (0, 0)",
        ),
        (
            base.replace("{sym_name = \"acc_0_3\"}", "{sym_name = \"acc_0_2\"}"),
            "%acc_0_3 = aie.buffer",
            "defined twice",
        ),
        (
            base.replace("{sym_name = \"acc_0_3\"}", "{sym_name = \"in2\"}"),
            "%acc_0_3 = aie.buffer",
            "object FIFO @in2",
        ),
        (
            base.replace(
                "%acc_0_3 = aie.buffer(%t03) {sym_name = \"acc_0_3\"} : memref<16xi32>",
                "%acc_0_3 = aie.buffer(%t03) : memref<16xi64>",
            ),
            "memref<16xi64>",
            "memref<16xi64>",
        ),
        (
            base.replace(
                "      %c8 = arith.constant 8 : index\n",
                "      %c8 = arith.constant 8 : index\n      %x = aie.buffer(%t02) : memref<4xi32>\n",
            ),
            "%x = aie.buffer",
            "inside a core",
        ),
    ];
    for (text, needle, what) in cases {
        let m = design_error(&text, &mut args);
        let line = line_of(&text, needle);
        assert!(m.starts_with(&format!("broken.mlir:{line}:")) && m.contains(what), "{what}: {m}");
    }
}

#[test]
fn mlir_printed_generic_buffers_map_back_and_run() {
    use melior::dialect::DialectRegistry;
    use melior::ir::operation::OperationLike;
    use melior::ir::Module;
    use melior::utility::register_all_dialects;
    use melior::Context;
    let registry = DialectRegistry::new();
    register_all_dialects(&registry);
    let context = Context::new();
    context.append_dialect_registry(&registry);
    context.load_all_available_dialects();
    context.set_allow_unregistered_dialects(true);
    let text = design("buffer_initial_value.mlir");
    let module = Module::parse(&context, &custom_to_generic(&text).unwrap()).unwrap();
    assert!(module.as_operation().verify());
    let printed = module.as_operation().to_string();
    assert!(printed.contains("initial_value = dense<3> : tensor<16xi32>"), "{printed}");
    let custom = generic_to_custom(&printed).unwrap_or_else(|e| panic!("{e}\n{printed}"));
    assert!(custom.contains("{sym_name = \"step\"} : memref<16xi32> = dense<3>"), "{custom}");
    let x: Vec<i32> = (0..64).map(|i| 5 - i).collect();
    let mut got = [i32_buf(&x), HostBuffer::zeros(DType::I32, &[64])];
    let mut want = got.clone();
    Emulator::new()
        .run_mlir(&custom, "printed.mlir", &mut got)
        .unwrap_or_else(|e| panic!("{e}\n{custom}"));
    Emulator::new().run_mlir(&text, "buffer_initial_value.mlir", &mut want).unwrap();
    assert_eq!(i32s(&got[1]), i32s(&want[1]));
}

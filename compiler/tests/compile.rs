//! Compiler tests: snapshots of every example's MLIR, MLIR verification of the emitted module,
//! a negative test for every hardware check, and property tests over matmul tilings.

use aiec::{compile_source, CompileError, DeviceModel};
use proptest::prelude::*;
use std::path::PathBuf;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dsl-examples")
}

fn example(name: &str) -> (String, String) {
    let path = examples_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (format!("dsl-examples/{name}"), text)
}

fn compile_example(name: &str, device: &DeviceModel) -> aiec::Compiled {
    let (path, text) = example(name);
    match compile_source(&path, &text, device) {
        Ok(c) => c,
        Err(e) => panic!("{name} failed to compile:\n{e}"),
    }
}

const EXAMPLES: &[&str] = &[
    "matmul.tile",
    "matmul_i8_i16.tile",
    "matmul_i16.tile",
    "matmul_bf16_f32.tile",
    "matmul_bf16.tile",
    "gelu.tile",
    "softmax.tile",
    "layernorm.tile",
    "mel.tile",
    "attention.tile",
    "rmsnorm.tile",
    "relu.tile",
    "bias_relu.tile",
    "row_sum.tile",
    "transpose.tile",
    "quantize.tile",
    "dequantize.tile",
    "swiglu.tile",
    "conv2d.tile",
    "depthwise_conv1d.tile",
    "argmax.tile",
    "embedding.tile",
    "rope.tile",
    "linear_gelu.tile",
];

#[test]
fn every_example_snapshot_npu1() {
    for name in EXAMPLES {
        let c = compile_example(name, &DeviceModel::npu1());
        let snap = format!("{}_npu1", name.trim_end_matches(".tile"));
        insta::assert_snapshot!(snap, c.mlir);
    }
}

#[test]
fn matmul_snapshot_npu2_uses_32_tiles() {
    let c = compile_example("matmul.tile", &DeviceModel::npu2());
    assert_eq!(c.design.cores.len(), 32, "512x512 with 64x64 tiles spreads over 4 rows x 8 columns");
    insta::assert_snapshot!("matmul_npu2", c.mlir);
}

#[test]
fn matmul_uses_all_16_tiles_on_npu1() {
    let c = compile_example("matmul.tile", &DeviceModel::npu1());
    assert_eq!(c.design.cores.len(), 16);
    assert!(c.mlir.contains("aie.objectfifo.link"), "A and B are staged through memory tiles");
    assert!(c.mlir.contains("vector.contract"), "the contraction uses MAC-shaped vector ops");
    assert!(c.mlir.contains("vector<4x8xi8>") && c.mlir.contains("vector<8x8xi8>"), "int8 4x8x8 MAC shape");
}

#[test]
fn emitted_mlir_is_deterministic() {
    for name in ["matmul.tile", "softmax.tile"] {
        let a = compile_example(name, &DeviceModel::npu1());
        let b = compile_example(name, &DeviceModel::npu1());
        assert_eq!(a.mlir, b.mlir);
        assert_eq!(a.json.to_pretty_json(), b.json.to_pretty_json());
    }
}

#[test]
fn generic_form_parses_and_verifies_with_upstream_mlir() {
    for name in EXAMPLES {
        let c = compile_example(name, &DeviceModel::npu1());
        if let Err(e) = aiec::emit::verify_generic(&c.generic) {
            panic!("{name}: {e}");
        }
        // And the custom syntax converts back to the same generic module.
        let again = aiec_runtime::aie_syntax::custom_to_generic(&c.mlir).expect("bridge reads design.mlir");
        let printed = aiec::emit::verify_generic(&again).expect("design.mlir re-parses");
        assert_eq!(printed, c.generic, "{name}: custom -> generic round trip");
    }
}

#[test]
fn core_bodies_use_only_upstream_dialects_and_fifo_ops() {
    let allowed = [
        "arith.",
        "memref.",
        "scf.",
        "vector.",
        "aie.objectfifo.acquire",
        "aie.objectfifo.subview.access",
        "aie.objectfifo.release",
        "aie.end",
    ];
    for name in EXAMPLES {
        let c = compile_example(name, &DeviceModel::npu1());
        let mut in_core = false;
        for line in c.mlir.lines() {
            let l = line.trim();
            if l.contains("aie.core(") {
                in_core = true;
                continue;
            }
            if in_core && l.starts_with('}') && line.starts_with("    }") {
                in_core = false;
                continue;
            }
            if !in_core || l == "}" || l.is_empty() {
                continue;
            }
            let op = match l.split_once(" = ") {
                Some((lhs, rhs)) if lhs.starts_with('%') && !lhs.contains(' ') => rhs,
                _ => l,
            };
            let op = op.split([' ', '(']).next().unwrap_or(op);
            assert!(allowed.iter().any(|a| op.starts_with(a)), "{name}: op {op} in a core body: {l}");
            assert!(!op.starts_with("math."), "{name}: no libm on the core: {l}");
        }
    }
}

#[test]
fn design_json_describes_arguments_and_tiles() {
    let c = compile_example("matmul.tile", &DeviceModel::npu1());
    let j = &c.json;
    assert_eq!(j.kernel, "matmul");
    assert_eq!(j.device, "npu1");
    let names: Vec<&str> = j.arguments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["A", "B", "C"]);
    assert_eq!(j.arguments[2].shape, [512, 512]);
    assert_eq!(j.arguments[2].dtype, aiec_runtime::DType::I32);
    let compute: Vec<_> = j.tiles.iter().filter(|t| t.kind == "compute").collect();
    assert_eq!(compute.len(), 16);
    // 2 x (64x64 i8) for A and B, 2 x (64x64 i32) for C, 1 KiB stack.
    assert_eq!(compute[0].data_bytes, 2 * 4096 + 2 * 4096 + 2 * 16384 + 1024);
    assert!(j.estimate.as_ref().unwrap().note.contains("estimate"));
}

fn compile_err(text: &str) -> CompileError {
    match compile_source("test.tile", text, &DeviceModel::npu1()) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e,
    }
}

fn assert_limit(err: &CompileError, needle: &str, location: &str) {
    let msg = err.to_string();
    assert!(matches!(err, CompileError::Limit(_)), "expected a limit error, got: {msg}");
    assert!(msg.contains(needle), "message lacks {needle:?}:\n{msg}");
    assert!(msg.contains(location), "message lacks location {location:?}:\n{msg}");
}

#[test]
fn data_memory_limit_names_tile_amount_and_line() {
    let e = compile_err(
        "kernel big {\n  dim M = 512 tile 128\n  dim N = 512 tile 128\n  dim K = 512 tile 128\n  in A: i8[M, K]\n  in B: i8[K, N]\n  out C: i32[M, N]\n  spread M over rows, N over cols\n  C[M, N] = sum[K](A[M, K] * B[K, N])\n}\n",
    );
    // 2x16 KiB (A) + 2x16 KiB (B) + 2x64 KiB (C) + 1 KiB stack
    assert_limit(
        &e,
        "data memory exceeded on compute tile (0, 2): 197632 bytes needed, limit 65536",
        "test.tile:7:",
    );
}

/// The compiled design's `aie.objectfifo.link` lines with more than one input FIFO.
fn join_links(mlir: &str) -> Vec<&str> {
    mlir.lines()
        .filter(|l| l.contains("aie.objectfifo.link [@") && l.split(" -> ").next().unwrap().contains(','))
        .collect()
}

#[test]
fn three_inputs_join_two_streams_on_the_memory_tile() {
    // A core has two input channels: b and c travel as one stream, joined on the memory tile.
    let src = "kernel add3 {\n  dim M = 64 tile 16\n  dim N = 64\n  in a: f32[M, N]\n  in b: f32[M, N]\n  in c: f32[M, N]\n  out y: f32[M, N]\n  spread M over rows\n  y[M, N] = a[M, N] + b[M, N] + c[M, N]\n}\n";
    for device in [DeviceModel::npu1(), DeviceModel::npu2()] {
        let c = compile_source("add3.tile", src, &device).unwrap_or_else(|e| panic!("{e}"));
        let joins = join_links(&c.mlir);
        assert!(!joins.is_empty(), "{}: no join link", device.name);
        // a and b stack along the tile's first axis: b's tile starts 16 x 64 elements in.
        assert!(
            joins[0].contains("[@a_L2") && joins[0].contains(", @b_L2") && joins[0].contains("] -> [@a_b") && joins[0].ends_with("([0, 1024] [])"),
            "{}",
            joins[0]
        );
        assert!(c.mlir.contains("memref<32x64xf32>"), "the joined element holds both tiles");
        let checks = c.emulate_against_reference(3).unwrap();
        assert!(checks.iter().all(|k| k.comparison.exact), "{}: {:?}", device.name, checks[0].comparison);
    }
}

#[test]
fn a_bias_joins_the_weights_stream_once_per_reduction_tile() {
    // b is read once per output tile, w once per tile of K: b's tile travels with each of w's
    // and the core keeps the last one for the statement after the reduction loop.
    let src = "kernel linear {\n  dim M = 32 tile 16\n  dim K = 128 tile 32\n  dim N = 64 tile 32\n  in a: bf16[M, K]\n  in w: bf16[K, N]\n  in b: bf16[N]\n  out y: f32[M, N]\n  spread N over cols\n  y[M, N] = sum[K](a[M, K] * w[K, N]) + b[N]\n}\n";
    for device in [DeviceModel::npu1(), DeviceModel::npu2()] {
        let c = compile_source("linear.tile", src, &device).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            join_links(&c.mlir)
                .iter()
                .any(|l| l.contains("[@w_L2_c0, @b_L2_c0] -> [@w_b_c0] ([0, 1024] [])")),
            "{}",
            c.mlir
        );
        // w's 32 x 32 tile and one row of b.
        assert!(c.mlir.contains("!aie.objectfifo<memref<33x32xbf16>>"));
        assert!(c.mlir.contains("b_kept_0_2 = aie.buffer"));
        // b repeats (stride 0) once per tile of K: 4 tiles.
        assert!(
            c.mlir
                .lines()
                .any(|l| l.contains("metadata = @b_L2_c0") && l.contains("][4, 1, 1, 32][0, 0, 0, 1]")),
            "{}",
            c.mlir
        );
        let checks = c.emulate_against_reference(4).unwrap();
        assert!(checks.iter().all(|k| k.passed()), "{}: {:?}", device.name, checks[0].comparison);
        let budget = &c.budgets.iter().find(|b| b.kind == aiec::device::TileKind::Compute).unwrap().buffers;
        assert!(
            budget.iter().any(|(what, bytes)| what.starts_with("buffer b_kept") && *bytes == 64),
            "{budget:?}"
        );
    }
}

#[test]
fn joined_matrix_operands_keep_the_mac() {
    // A float32 bias cannot join the bfloat16 weights; on one core A and B join instead, B's
    // tile 16 rows into the element, and the product still runs on the MAC.
    let src = "kernel mm_f32_bias {\n  dim M = 64 tile 16\n  dim N = 64 tile 16\n  dim K = 64 tile 16\n  in A: bf16[M, K]\n  in B: bf16[K, N]\n  in c: f32[N]\n  out C: f32[M, N]\n  spread M over rows, N over cols\n  C[M, N] = sum[K](A[M, K] * B[K, N]) + c[N]\n}\n";
    let c = compile_source("mm.tile", src, &DeviceModel::npu1()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        join_links(&c.mlir).iter().any(|l| l.contains("[@A_L2, @B_L2] -> [@A_B] ([0, 256] [])")),
        "{}",
        c.mlir
    );
    assert!(c.mlir.contains("vector.contract"));
    let checks = c.emulate_against_reference(2).unwrap();
    assert!(checks.iter().all(|k| k.passed()), "{:?}", checks[0].comparison);
}

#[test]
fn dma_channel_limit_on_compute_tile_names_the_streams_when_nothing_joins() {
    // Three element types: no two inputs can share a stream.
    let e = compile_err(
        "kernel add3 {\n  dim M = 64 tile 16\n  dim N = 64\n  in a: f32[M, N]\n  in b: bf16[M, N]\n  in c: i8[M, N]\n  out y: f32[M, N]\n  spread M over rows\n  y[M, N] = a[M, N] + b[M, N] + cast<f32>(c[M, N])\n}\n",
    );
    assert_limit(
        &e,
        "DMA input channels exceeded on compute tile (0, 2): 3 streams arrive, limit 2",
        "test.tile:",
    );
    assert!(
        e.to_string().contains("Inputs join into one stream when they have the same element type"),
        "{e}"
    );
}

#[test]
fn runtime_sequence_argument_limit() {
    let e = compile_err(
        "kernel six {\n  dim M = 64 tile 16\n  in a: f32[M]\n  in b: f32[M]\n  in c: f32[M]\n  in d: f32[M]\n  in e: f32[M]\n  out y: f32[M]\n  spread M over rows\n  y[M] = a[M] + b[M] + c[M] + d[M] + e[M]\n}\n",
    );
    assert_limit(&e, "runtime sequence buffer arguments: 6 needed, limit 5", "test.tile:8:");
}

#[test]
fn non_contiguous_dma_pattern_is_rejected() {
    let e = compile_err("kernel strided {\n  dim M = 64 tile 16\n  in x: f32[128]\n  out y: f32[M]\n  spread M over rows\n  y[M] = x[2*M]\n}\n");
    assert_limit(&e, "the shim DMA cannot address tensor x", "test.tile:3:");
    assert!(e.to_string().contains("stride 2"), "{e}");
}

#[test]
fn program_memory_estimate_is_checked() {
    let mut expr = String::from("x[M]");
    for _ in 0..40 {
        expr = format!("tanh({expr})");
    }
    let e = compile_err(&format!(
        "kernel deep {{\n  dim M = 64 tile 16\n  in x: f32[M]\n  out y: f32[M]\n  spread M over rows\n  y[M] = {expr}\n}}\n"
    ));
    assert_limit(&e, "program memory exceeded on compute tiles", "test.tile:6:");
}

#[test]
fn split_dim_that_is_not_an_output_or_reduction_is_rejected() {
    let e = compile_err(
        "kernel sm {\n  dim M = 64 tile 16\n  dim N = 64 tile 16\n  in x: f32[M, N]\n  out y: f32[M]\n  spread M over rows\n  y[M] = x[M, 0] + max[N](x[M, N])\n}\n",
    );
    let msg = e.to_string();
    assert!(msg.contains("dim N") && msg.contains("split"), "{msg}");
}

#[test]
fn limits_without_a_dsl_path_are_still_checked() {
    // Locks, BDs and memory-tile size are not reachable through channel-limited designs on these
    // devices, so exercise the checker on a design whose FIFOs were made too deep and too large.
    let (path, text) = example("matmul.tile");
    let kernel = aiec::dsl::compile_source(&aiec::Source::new(path, text)).unwrap();
    let device = DeviceModel::npu1();
    let mut design = aiec::schedule::schedule(&kernel, &device).unwrap();
    for f in design.fifos.iter_mut() {
        f.depth = 9;
    }
    let e = aiec::check::check(&kernel, &design).unwrap_err().to_string();
    assert!(e.contains("exceeded"), "{e}");
    let mut design = aiec::schedule::schedule(&kernel, &device).unwrap();
    for f in design.fifos.iter_mut().filter(|f| f.level == aiec::schedule::FifoLevel::MemToHost) {
        f.shape = vec![300 * 1024];
    }
    let e = aiec::check::check(&kernel, &design).unwrap_err().to_string();
    assert!(e.contains("data memory exceeded on memory tile (0, 1)"), "{e}");
    let mut design = aiec::schedule::schedule(&kernel, &device).unwrap();
    for f in design.fifos.iter_mut().filter(|f| f.level == aiec::schedule::FifoLevel::MemToCore) {
        f.shape = vec![8];
        f.depth = 9;
    }
    let e = aiec::check::check(&kernel, &design).unwrap_err().to_string();
    assert!(
        e.contains("locks exceeded on compute tile") || e.contains("buffer descriptors exceeded on compute tile"),
        "{e}"
    );
}

#[allow(clippy::too_many_arguments)]
fn matmul_src(m: u64, n: u64, k: u64, tm: u64, tn: u64, tk: u64, dt: &str, out: &str) -> String {
    format!(
        "kernel mm {{\n  dim M = {m} tile {tm}\n  dim N = {n} tile {tn}\n  dim K = {k} tile {tk}\n  in A: {dt}[M, K]\n  in B: {dt}[K, N]\n  out C: {out}[M, N]\n  spread M over rows, N over cols\n  C[M, N] = sum[K](A[M, K] * B[K, N])\n}}\n"
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    #[test]
    fn matmul_tilings_compile_or_give_a_located_error(
        m in prop::sample::select(vec![32u64, 64, 96, 128, 256, 512]),
        n in prop::sample::select(vec![32u64, 64, 128, 256]),
        k in prop::sample::select(vec![32u64, 64, 128, 256]),
        tm in prop::sample::select(vec![16u64, 32, 48, 64]),
        tn in prop::sample::select(vec![16u64, 32, 64]),
        tk in prop::sample::select(vec![16u64, 32, 64]),
    ) {
        let src = matmul_src(m, n, k, tm, tn, tk, "i8", "i32");
        match compile_source("mm.tile", &src, &DeviceModel::npu1()) {
            Ok(c) => {
                prop_assert!(m % tm == 0 && n % tn == 0 && k % tk == 0);
                prop_assert!(c.mlir.contains("aie.runtime_sequence"));
                let cores = c.design.cores.len() as u64;
                prop_assert!((1..=16).contains(&cores));
            }
            Err(e) => {
                let msg = e.to_string();
                let divides = m % tm == 0 && n % tn == 0 && k % tk == 0;
                if !divides {
                    prop_assert!(msg.contains("does not divide") || msg.contains("is larger than dim"), "{}", msg);
                } else {
                    prop_assert!(matches!(e, CompileError::Limit(_)), "{}", msg);
                }
                prop_assert!(msg.contains("mm.tile:"), "{}", msg);
            }
        }
    }
}

#[test]
fn unbalanced_fifo_traffic_is_reported_as_a_deadlock() {
    let (path, text) = example("matmul.tile");
    let kernel = aiec::dsl::compile_source(&aiec::Source::new(path, text)).unwrap();
    let mut design = aiec::schedule::schedule(&kernel, &DeviceModel::npu1()).unwrap();
    aiec::check::check_balance(&kernel, &design).expect("the scheduler's own design is balanced");
    // Drop one input transfer: the cores fed by that FIFO would wait forever.
    let i = design
        .sequence
        .iter()
        .position(|op| matches!(op, aiec::schedule::SequenceOp::Dma(d) if !d.issue_token))
        .unwrap();
    design.sequence.remove(i);
    let e = aiec::check::check_balance(&kernel, &design).unwrap_err().to_string();
    assert!(e.contains("would deadlock"), "{e}");
    assert!(e.contains("dsl-examples/matmul.tile:"), "{e}");
}

#[test]
fn cost_model_counts_index_selects_as_scalar_code() {
    let src = |value: &str| {
        format!("kernel k {{\n  dim M = 64 tile 16\n  dim N = 64\n  in x: f32[M, N]\n  out y: f32[M, N]\n  spread M over rows\n  y[M, N] = {value}\n}}\n")
    };
    let cycles = |value: &str| {
        compile_source("k.tile", &src(value), &DeviceModel::npu1())
            .unwrap()
            .json
            .estimate
            .unwrap()
            .compute_cycles
    };
    let vector = cycles("x[M, N] * 2.0");
    let scalar = cycles("select(N <= M, x[M, N], 2.0)");
    assert!(scalar > 8 * vector, "select costed as scalar: {scalar} vs {vector} cycles");
}

#[test]
fn design_mlir_lines_map_back_to_kernel_lines() {
    let c = compile_example("softmax.tile", &DeviceModel::npu1());
    let (_, text) = example("softmax.tile");
    let stmt_line = text.lines().position(|l| l.trim_start().starts_with("mx[M] = max[N]")).unwrap() + 1;
    let max_line = c.mlir.lines().position(|l| l.contains("arith.maximumf")).expect("a max in the cores") + 1;
    assert_eq!(c.kernel_location(max_line), Some(format!("dsl-examples/softmax.tile:{stmt_line}:3").as_str()));
    // Device-level ops have no kernel line; the text printed is unchanged by the locations.
    let tile_line = c.mlir.lines().position(|l| l.contains("aie.tile(")).unwrap() + 1;
    assert_eq!(c.kernel_location(tile_line), None);
    assert!(!c.mlir.contains("loc("), "design.mlir is printed without locations");
}

#[test]
fn locals_are_buffers_in_each_cores_tile() {
    let c = compile_example("softmax.tile", &DeviceModel::npu1());
    assert!(
        c.mlir.contains("%mx_0_2 = aie.buffer(%tile_0_2) {sym_name = \"mx_0_2\"} : memref<4xf32>"),
        "{}",
        c.mlir
    );
    assert!(!c.mlir.contains("alloca"), "no stack allocations in cores");
    let b = c.budgets.iter().find(|b| b.tile == aiec::device::TileCoord::new(0, 2)).unwrap();
    assert!(
        b.buffers.iter().any(|(what, bytes)| what.starts_with("buffer mx") && *bytes == 16),
        "{:?}",
        b.buffers
    );
}

const MATMUL_I8: &str = "kernel mm {
  dim M = 64 tile TM
  dim N = 64 tile 16
  dim K = 64 tile 16
  in A: i8[M, K]
  in B: i8[K, N]
  out C: i32[M, N]
  C[M, N] = sum[K](A[M, K] * B[K, N])
}";

#[test]
fn contraction_uses_the_targets_mac_shape() {
    let text = MATMUL_I8.replace("TM", "8");
    let npu1 = compile_source("mm.tile", &text, &DeviceModel::npu1()).unwrap().mlir;
    let npu2 = compile_source("mm.tile", &text, &DeviceModel::npu2()).unwrap().mlir;
    assert!(npu1.contains("vector<4x8xi8>") && npu1.contains("into vector<4x8xi32>"), "aie2 i8 MAC is 4x8x8");
    assert!(
        npu2.contains("vector<8x8xi8>") && npu2.contains("into vector<8x8xi32>"),
        "aie2p i8 MAC is 8x8x8"
    );
}

#[test]
fn contraction_off_the_mac_shape_is_a_located_error() {
    // 4 rows fit aie2's 4x8x8 MAC but not aie2p's 8x8x8.
    let text = MATMUL_I8.replace("TM", "4");
    assert!(compile_source("mm.tile", &text, &DeviceModel::npu1()).is_ok());
    let err = match compile_source("mm.tile", &text, &DeviceModel::npu2()) {
        Err(e) => e,
        Ok(_) => panic!("an 8-row MAC cannot take 4-row tiles"),
    };
    let msg = err.to_string();
    assert!(matches!(err, CompileError::Target(_)), "{msg}");
    assert!(msg.contains("aie2p MAC shape 8x8x8") && msg.contains("M = 4"), "{msg}");
    assert!(msg.contains("mm.tile:8:3"), "points at the statement: {msg}");
}

#[test]
fn vector_ops_the_target_rejects_become_scalar_code_with_a_note() {
    // f32 vector multiply: aie2 has it, aie2p's conversion has no mul_elem.
    let text = "kernel scale {
  dim N = 1024 tile 256
  in x: f32[N]
  out y: f32[N]
  y[N] = x[N] * 3.0
}";
    let npu1 = compile_source("scale.tile", text, &DeviceModel::npu1()).unwrap();
    assert!(npu1.notes.is_empty(), "{:?}", npu1.notes);
    assert!(npu1.mlir.contains("arith.mulf") && npu1.mlir.contains("vector<16xf32>"));
    let npu2 = compile_source("scale.tile", text, &DeviceModel::npu2()).unwrap();
    assert_eq!(npu2.notes.len(), 1);
    let note = npu2.notes[0].render_note();
    assert!(
        note.starts_with("note: this statement runs as scalar code on aie2p: vector `arith.mulf`"),
        "{note}"
    );
    assert!(note.contains("scale.tile:5:3"), "{note}");
    assert!(!npu2.mlir.contains("vector<16xf32>"), "no vector left behind by the undone attempt");
}

#[test]
fn a_batched_bf16_product_runs_on_the_mac_per_batch_step() {
    let src = "kernel heads {\n  dim H = 6 tile 1\n  dim M = 256 tile 64\n  dim N = 256 tile 64\n  dim K = 64 tile 32\n  in  A: bf16[H, M, K]\n  in  B: bf16[H, K, N]\n  out C: f32[H, M, N]\n  spread M over rows, N over cols\n  C[H, M, N] = sum[K](A[H, M, K] * B[H, K, N])\n}\n";
    for device in [aiec::DeviceModel::npu1(), aiec::DeviceModel::npu2()] {
        let c = aiec::compile_source("heads.tile", src, &device).expect("compiles");
        assert!(c.mlir.contains("vector.contract"), "{}: no vector.contract", device.name);
        // The batch dim is indexed at 0 inside the tile-1 buffer: a 3-D transfer of a 2-D vector.
        assert!(
            c.mlir
                .lines()
                .any(|l| l.contains("vector.transfer_read") && l.contains("memref<1x64x32xbf16>") && l.contains("vector<4x8xbf16>")),
            "{}: no 2-D read from the 3-D A buffer",
            device.name
        );
    }
}

#[test]
fn placement_search_fits_two_per_core_inputs_on_fewer_rows_and_says_so() {
    let src = "kernel add2 {\n  dim N = 4096 tile 256\n  in  a: f32[N]\n  in  b: f32[N]\n  out c: f32[N]\n  spread N over cores\n  c[N] = a[N] + b[N]\n}\n";
    let c = aiec::compile_source("add2.tile", src, &aiec::DeviceModel::npu1()).expect("a smaller placement fits");
    assert_eq!((c.design.rows_used, c.design.cols_used), (2, 4));
    let note = c.notes.iter().find(|n| n.message.starts_with("placement:")).expect("a placement note");
    assert!(
        note.message.contains("9 streams leave, limit 6") && note.message.contains("8 cores"),
        "{}",
        note.message
    );
    // On both devices the smaller placement computes the sum bit-exactly on the emulator.
    for (device, cores) in [(aiec::DeviceModel::npu1(), 8), (aiec::DeviceModel::npu2(), 16)] {
        let c = aiec::compile_source("add2.tile", src, &device).expect("a smaller placement fits");
        assert_eq!(c.design.rows_used * c.design.cols_used, cores, "{}", device.name);
        let checks = c.emulate_against_reference(3).expect("emulated");
        assert!(checks.iter().all(|o| o.comparison.exact), "{}: {checks:?}", device.name);
    }
    // Where neither fewer cores nor a join can help (three element types), the error stands and
    // says so.
    let src = "kernel three {\n  dim M = 64 tile 16\n  dim N = 64\n  in  a: f32[M, N]\n  in  b: bf16[M, N]\n  in  c: i8[M, N]\n  out y: f32[M, N]\n  y[M, N] = a[M, N] + b[M, N] + cast<f32>(c[M, N])\n}\n";
    let err = aiec::compile_source("three.tile", src, &aiec::DeviceModel::npu1())
        .err()
        .expect("no placement fits")
        .to_string();
    assert!(
        err.contains("3 streams arrive, limit 2") && err.contains("no placement on fewer rows or columns fits"),
        "{err}"
    );
}

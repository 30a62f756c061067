//! Hardware-level designs (locks, DMAs, buffer descriptors, flows): hand-written designs run on the host and
//! checked against outputs computed here.

use aiec_runtime::emulator::Emulator;
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

fn run_text(text: &str, args: &mut [HostBuffer]) -> Result<aiec_runtime::RunReport, RuntimeError> {
    let mut e = Emulator::new();
    e.stall_timeout = std::time::Duration::from_secs(5);
    e.run_mlir(text, "design.mlir", args)
}

/// The 4x8 -> 8x4 transpose the memory tile's MM2S descriptor applies, then + 7 in the core.
fn pipeline_expected(input: &[i32]) -> Vec<i32> {
    (0..32).map(|k| input[(k % 4) * 8 + k / 4] + 7).collect()
}

#[test]
fn memtile_pipeline_with_locks_and_a_strided_descriptor() {
    let input: Vec<i32> = (0..32).map(|i| i * 3 - 5).collect();
    let mut args = [i32_buf(&input), HostBuffer::zeros(DType::I32, &[32])];
    let report = run_text(&design("hw_memtile_pipeline.mlir"), &mut args).unwrap();
    assert_eq!(i32s(&args[1]), pipeline_expected(&input));
    assert_eq!(report.cores, 1);
}

#[test]
fn runs_again_with_fresh_lock_state() {
    let text = design("hw_memtile_pipeline.mlir");
    for seed in 0..3 {
        let input: Vec<i32> = (0..32).map(|i| (i * 31 + seed * 17) % 97 - 40).collect();
        let mut args = [i32_buf(&input), HostBuffer::zeros(DType::I32, &[32])];
        run_text(&text, &mut args).unwrap();
        assert_eq!(i32s(&args[1]), pipeline_expected(&input));
    }
}

#[test]
fn a_lock_nobody_releases_is_a_deadlock_naming_the_lock() {
    let text = design("hw_memtile_pipeline.mlir").replace(
        "%in_free = aie.lock(%t02, 0) {init = 2 : i32, sym_name = \"in_free\"}",
        "%in_free = aie.lock(%t02, 0) {init = 0 : i32, sym_name = \"in_free\"}",
    );
    let mut args = [i32_buf(&[1; 32]), HostBuffer::zeros(DType::I32, &[32])];
    let e = run_text(&text, &mut args).unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, RuntimeError::Deadlock(_)), "{m}");
    assert!(m.contains("lock @in_free") && m.contains("(value 0)"), "{m}");
    assert!(m.contains("tile DMA (0, 2) S2MM:0"), "{m}");
    assert!(m.contains("aiex.npu.dma_wait"), "{m}");
}

#[test]
fn a_flow_to_nowhere_is_a_located_error() {
    let text = design("hw_memtile_pipeline.mlir").replace("    aie.flow(%t01, DMA : 0, %t02, DMA : 0)\n", "");
    let mut args = [i32_buf(&[1; 32]), HostBuffer::zeros(DType::I32, &[32])];
    let m = run_text(&text, &mut args).unwrap_err().to_string();
    assert!(m.contains("no aie.flow starts at (0, 1) DMA:0"), "{m}");
    assert!(m.contains("design.mlir:"), "{m}");
}

#[test]
fn a_descriptor_outside_its_buffer_is_rejected_before_running() {
    let text = design("hw_memtile_pipeline.mlir").replace("aie.dma_bd(%out : memref<8xi32>, 0, 8)", "aie.dma_bd(%out : memref<8xi32>, 4, 8)");
    let mut args = [i32_buf(&[1; 32]), HostBuffer::zeros(DType::I32, &[32])];
    let m = run_text(&text, &mut args).unwrap_err().to_string();
    assert!(m.contains("reaches element 11") && m.contains("%out"), "{m}");
}

#[test]
fn register_writes_by_buffer_symbol_raw_data_memory_and_queued_chains() {
    let a0: Vec<i32> = (0..8).map(|i| i * 5 - 3).collect();
    let b0: Vec<i32> = (0..16).map(|i| 100 + i * i).collect();
    let mut args = [
        i32_buf(&a0),
        HostBuffer::zeros(DType::I32, &[8]),
        i32_buf(&b0),
        HostBuffer::zeros(DType::I32, &[16]),
    ];
    run_text(&design("hw_registers_raw.mlir"), &mut args).unwrap();
    // blockwrite of 10..80, then word 2 = (30 & !0xF00) | (0x100 & 0xF00).
    let mut table = [10, 20, 30, 40, 50, 60, 70, 80];
    table[2] = (30 & !0xF00) | (0x100 & 0xF00);
    // The first chain on S2MM 0 fills `lo` (words 0..4), the second `hi` (words 4..8).
    let want: Vec<i32> = (0..8).map(|i| a0[i] + table[i]).collect();
    assert_eq!(i32s(&args[1]), want);
    // Received contiguously at byte 0 of the memory tile, sent as a 4x4 transpose.
    let want_b: Vec<i32> = (0..16).map(|k| b0[(k % 4) * 4 + k / 4]).collect();
    assert_eq!(i32s(&args[3]), want_b);
}

#[test]
fn configurations_run_in_order_and_memory_persists_between_them() {
    let input: Vec<i32> = (1..=16).collect();
    let mut args = [i32_buf(&input)];
    run_text(&design("hw_reconfigure.mlir"), &mut args).unwrap();
    let first = &input[0..4];
    let mut want: Vec<i32> = Vec::new();
    want.extend(first);
    want.extend(first);
    want.extend(first);
    want.extend(input[12..16].iter().map(|x| x + 100));
    assert_eq!(i32s(&args[0]), want);
    let specs = aiec_runtime::emulator::sequence_args(&design("hw_reconfigure.mlir")).unwrap();
    assert_eq!(specs.len(), 1);
    assert_eq!(specs[0].shape, vec![16]);
}

#[test]
fn one_device_of_several_is_chosen_by_name() {
    // The configurations' devices, each run on its own.
    let text = design("hw_reconfigure.mlir");
    let mut e = Emulator::new();
    let mut args = [i32_buf(&[1, 2, 3, 4])];
    let m = e
        .run_mlir(&text, "design.mlir", &mut [i32_buf(&[0; 4]), i32_buf(&[0; 4])])
        .unwrap_err()
        .to_string();
    assert!(m.contains("argument"), "{m}");
    e.device = Some("add_hundred".into());
    e.run_mlir(&text, "design.mlir", &mut args).unwrap();
    assert_eq!(i32s(&args[0]), vec![101, 102, 103, 104]);
    e.device = Some("nowhere".into());
    let m = e.run_mlir(&text, "design.mlir", &mut args).unwrap_err().to_string();
    assert!(m.contains("no aie.device @nowhere") && m.contains("@store"), "{m}");
}

#[test]
fn a_bad_configuring_sequence_is_a_located_error() {
    let text = design("hw_reconfigure.mlir").replace("aiex.run @recall_seq (%a2)", "aiex.run @missing_seq (%a2)");
    let mut args = [i32_buf(&[0; 16])];
    let m = run_text(&text, &mut args).unwrap_err().to_string();
    assert!(m.contains("design.mlir:20:") && m.contains("@missing_seq"), "{m}");
}

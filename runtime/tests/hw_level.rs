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

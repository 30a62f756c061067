//! Emulator tests: hand-written mlir-aie designs run on the host, outputs checked exactly.

use aiec_runtime::emulator::{sequence_args, Emulator};
use aiec_runtime::{DType, HostBuffer, RuntimeError};
use std::path::PathBuf;

fn design(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/designs").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn i32_buf(v: &[i32]) -> HostBuffer {
    HostBuffer { dtype: DType::I32, shape: vec![v.len()], bytes: v.iter().flat_map(|x| x.to_le_bytes()).collect() }
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

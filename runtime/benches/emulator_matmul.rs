//! Emulator throughput on a whole-array 512x512x512 int8 matmul (16 cores, 64x64 tiles, vector.contract on
//! 4x8x8 blocks): compile time, then the time of repeated runs of the cached design, checked against the
//! reference. Run with `cargo bench -p aiec-runtime --bench emulator_matmul`.

#[path = "../tests/common/matmul_design.rs"]
mod matmul_design;

use aiec_runtime::emulator::Emulator;
use std::time::Instant;

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(512);
    let t = n / 8;
    let text = matmul_design::matmul_design(n, t);
    let (a, b) = matmul_design::matmul_operands(n);
    let expected = matmul_design::matmul_reference(&a, &b, n);
    let mut emu = Emulator::new();
    for round in 0..4 {
        let mut args = matmul_design::matmul_buffers(&a, &b, n);
        let t0 = Instant::now();
        let report = emu.run_mlir(&text, "matmul.mlir", &mut args).expect("matmul runs");
        let total = t0.elapsed();
        let got: Vec<i32> = args[2].bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        assert!(got == expected, "result differs from the reference");
        println!(
            "matmul {n}^3 i8, {} cores, round {round}: prepare {:.3} s, run {:.3} s (total {:.3} s), {:.2} GMAC/s",
            report.cores,
            report.prepare.as_secs_f64(),
            report.run.as_secs_f64(),
            total.as_secs_f64(),
            (n * n * n) as f64 / report.run.as_secs_f64() / 1e9
        );
    }
}

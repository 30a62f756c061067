//! What the emulator's bounds checks cost: the same design run checked and unchecked, JIT and cached runs.
//! Ignored by default (it needs a design and takes a while):
//!
//! ```text
//! target/release/aiec compile dsl-examples/matmul.tile -o /tmp/mm
//! AIEC_COST_DESIGN=/tmp/mm/design.mlir cargo test --release -p aiec-runtime --test checks_cost -- --ignored --nocapture
//! ```
//!
//! Inputs are pseudo-random values in [-2, 2) (small integers for integer types), the same for every run.

use aiec_runtime::artifact::ArgSpec;
use aiec_runtime::emulator::{sequence_args, Emulator};
use aiec_runtime::npy::f32_to_bf16_bits;
use aiec_runtime::{DType, HostBuffer};
use std::time::Instant;

fn inputs(specs: &[ArgSpec]) -> Vec<HostBuffer> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
    };
    specs
        .iter()
        .map(|a| {
            let mut b = HostBuffer::for_arg(a);
            let n = b.elements();
            b.bytes = (0..n)
                .flat_map(|_| {
                    let v = next();
                    match a.dtype {
                        DType::I8 => vec![(v * 60.0) as i8 as u8],
                        DType::I16 => ((v * 1000.0) as i16).to_le_bytes().to_vec(),
                        DType::I32 => ((v * 1e5) as i32).to_le_bytes().to_vec(),
                        DType::Bf16 => f32_to_bf16_bits(v as f32).to_le_bytes().to_vec(),
                        DType::F32 => (v as f32).to_le_bytes().to_vec(),
                    }
                })
                .collect();
            b
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
#[ignore]
fn cost_of_bounds_checks() {
    let Ok(path) = std::env::var("AIEC_COST_DESIGN") else {
        eprintln!("set AIEC_COST_DESIGN to a design.mlir");
        return;
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let specs = sequence_args(&text).unwrap();
    let runs: usize = std::env::var("AIEC_COST_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(9);
    let mut results = Vec::new();
    for unchecked in [false, true] {
        let mut emu = Emulator::new();
        emu.unchecked = unchecked;
        let mut args = inputs(&specs);
        let t = Instant::now();
        let first = emu.run_mlir(&text, &path, &mut args).unwrap();
        let first_wall = t.elapsed().as_secs_f64();
        results.push((unchecked, first.prepare.as_secs_f64(), first_wall, Vec::new()));
    }
    // Cached runs, interleaved so that machine noise hits both alike.
    for _ in 0..runs {
        for r in results.iter_mut() {
            let mut emu = Emulator::new();
            emu.unchecked = r.0;
            let mut args = inputs(&specs);
            let t = Instant::now();
            emu.run_mlir(&text, &path, &mut args).unwrap();
            r.3.push(t.elapsed().as_secs_f64());
        }
    }
    println!("{path}");
    for (unchecked, prepare, first, cached) in &results {
        println!(
            "  {:9}  JIT {:7.1} ms   first run {:7.1} ms   cached run median of {} {:7.1} ms (min {:.1})",
            if *unchecked { "unchecked" } else { "checked" },
            prepare * 1e3,
            first * 1e3,
            cached.len(),
            median(cached.clone()) * 1e3,
            cached.iter().cloned().fold(f64::INFINITY, f64::min) * 1e3
        );
    }
    let ratio = median(results[0].3.clone()) / median(results[1].3.clone());
    println!("  checked / unchecked cached run: {ratio:.3}");
}

//! Emulates the npu1 512x512x512 int8 -> int32 matmul example end to end and compares with a
//! straightforward CPU matmul. Run with `cargo bench -p aiec --bench emulate_matmul`.
//!
//! Prints: compile time, the first emulated run (JIT included) and the cached runs, and the ratio
//! of a cached run to a plain triple-loop CPU matmul and to ndarray's (matrixmultiply) product.

use aiec::{compile_source, hostdata, DeviceModel};
use aiec_runtime::emulator::Emulator;
use aiec_runtime::{DType, HostBuffer};
use ndarray::Array2;
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dsl-examples/matmul.tile");
    let text = std::fs::read_to_string(path).expect("dsl-examples/matmul.tile");
    let t = Instant::now();
    let compiled = compile_source("dsl-examples/matmul.tile", &text, &DeviceModel::npu1()).expect("matmul compiles");
    let compile = t.elapsed().as_secs_f64();

    let mut rng = hostdata::rng(3);
    let a = hostdata::random(&[512, 512], DType::I8, &mut rng);
    let b = hostdata::random(&[512, 512], DType::I8, &mut rng);
    let mut bufs = vec![
        hostdata::to_buffer(&a, DType::I8),
        hostdata::to_buffer(&b, DType::I8),
        HostBuffer::zeros(DType::I32, &[512, 512]),
    ];

    let mut emu = Emulator::new();
    let t = Instant::now();
    let first = emu.run_mlir(&compiled.mlir, "matmul.tile", &mut bufs).expect("emulates");
    let first_wall = t.elapsed().as_secs_f64();
    let mut cached = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        emu.run_mlir(&compiled.mlir, "matmul.tile", &mut bufs).expect("emulates");
        cached.push(t.elapsed().as_secs_f64());
    }

    // The same product on the CPU: a plain i-k-j loop, and ndarray's general matmul on i32.
    let ai: Vec<i32> = a.iter().map(|&v| v as i32).collect();
    let bi: Vec<i32> = b.iter().map(|&v| v as i32).collect();
    let mut naive = Vec::new();
    let mut c = vec![0i32; 512 * 512];
    for _ in 0..3 {
        c.iter_mut().for_each(|v| *v = 0);
        let t = Instant::now();
        for i in 0..512 {
            for k in 0..512 {
                let av = ai[i * 512 + k];
                let row = &bi[k * 512..(k + 1) * 512];
                let out = &mut c[i * 512..(i + 1) * 512];
                for j in 0..512 {
                    out[j] = out[j].wrapping_add(av * row[j]);
                }
            }
        }
        naive.push(t.elapsed().as_secs_f64());
    }
    let af = Array2::from_shape_vec((512, 512), a.iter().map(|&v| v as f32).collect()).unwrap();
    let bf = Array2::from_shape_vec((512, 512), b.iter().map(|&v| v as f32).collect()).unwrap();
    let mut gemm = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let p = af.dot(&bf);
        std::hint::black_box(&p);
        gemm.push(t.elapsed().as_secs_f64());
    }
    let got = hostdata::from_buffer(&bufs[2]);
    let ok = got.iter().zip(c.iter()).all(|(g, w)| *g == *w as f64);

    let cached_med = median(cached.clone());
    println!("matmul 512x512x512 i8->i32 on npu1 (16 cores), emulated on the host");
    println!("  compile (.tile -> design.mlir):      {:8.1} ms", compile * 1e3);
    println!(
        "  first run (JIT + run):               {:8.1} ms (JIT/prepare {:.1} ms, run {:.1} ms)",
        first_wall * 1e3,
        first.prepare.as_secs_f64() * 1e3,
        first.run.as_secs_f64() * 1e3
    );
    println!("  cached run, median of {}:             {:8.1} ms", cached.len(), cached_med * 1e3);
    println!(
        "  CPU i-k-j loop (i32), median of 3:   {:8.1} ms  -> emulator / CPU loop = {:.2}",
        median(naive.clone()) * 1e3,
        cached_med / median(naive)
    );
    println!(
        "  CPU ndarray f32 GEMM, median of 3:   {:8.1} ms  -> emulator / GEMM = {:.2}",
        median(gemm.clone()) * 1e3,
        cached_med / median(gemm)
    );
    println!("  result equals the CPU loop: {ok}");
    assert!(ok, "emulated matmul differs from the CPU loop");
}

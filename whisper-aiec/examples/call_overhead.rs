//! Times repeated calls of one small design (a decoding-step linear layer) through KernelOps on the
//! emulator: `cargo run --release -p whisper-aiec --example call_overhead`.
use aiec::DeviceModel;
use ndarray::{Array1, Array2};
use whisper::ops::Ops;
use whisper_aiec::cache::KernelCache;
use whisper_aiec::ops::{KernelOps, Target};

fn main() {
    let dir = std::env::temp_dir().join("aiec-call-overhead");
    let ops = KernelOps::new(Target::Emulate, DeviceModel::npu1(), KernelCache::new(dir)).expect("emulator");
    let (rows, inputs, outputs): (usize, usize, usize) = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .map(|v: [usize; 3]| (v[0], v[1], v[2]))
        .unwrap_or((1, 384, 384));
    let x = Array2::from_shape_fn((rows, inputs), |(i, j)| ((i + j) % 7) as f32 / 7.0);
    let w = Array2::from_shape_fn((outputs, inputs), |(i, j)| ((i * 3 + j) % 5) as f32 / 5.0);
    let b = Array1::zeros(outputs);
    ops.linear(x.view(), w.view(), Some(b.view())).expect("first call");
    let n = 200;
    let t = std::time::Instant::now();
    for _ in 0..n {
        ops.linear(x.view(), w.view(), Some(b.view())).expect("call");
    }
    let per = t.elapsed().as_secs_f64() / n as f64;
    let r = ops.report();
    let s = &r.ops["linear"];
    println!(
        "{rows}x{inputs}x{outputs} linear: {:.3} ms per call ({:.3} ms in the backend)",
        per * 1e3,
        s.backend_seconds / s.calls as f64 * 1e3
    );
}

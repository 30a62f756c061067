//! The cost model's constants, each pinned by its effect on a known design (see `aiec::cost`).

use aiec::cost::{breakdown, Bound, CostBreakdown, CostConstants, StmtCode};
use aiec::{compile_source, Compiled, DeviceModel, Span};

/// A decoding-step GEMV: 4 rows against 43 MB of bf16 weights streamed once per call.
const GEMV: &str = "kernel gemv {
  dim M = 4 tile 4
  dim K = 416 tile 32
  dim N = 52224 tile 64
  in  A: bf16[M, K]
  in  B: bf16[K, N]
  out C: f32[M, N]
  spread M over rows, N over cols
  C[M, N] = sum[K](A[M, K] * B[K, N])
}
";

/// A large bf16 matmul on all 16 npu1 cores.
const BIG: &str = "kernel big {
  dim M = 1536 tile 64
  dim N = 1536 tile 64
  dim K = 384 tile 32
  in  A: bf16[M, K]
  in  B: bf16[K, N]
  out C: bf16[M, N]
  spread M over rows, N over cols
  C[M, N] = sum[K](A[M, K] * B[K, N])
}
";

/// An elementwise kernel streaming 64 MB through one shim channel in and one out per column.
const STREAM: &str = "kernel stream {
  dim M = 32768 tile 8
  dim N = 256
  in  x: f32[M, N]
  out y: f32[M, N]
  spread M over cores
  y[M, N] = x[M, N] + 1.0
}
";

const TINY: &str = "kernel tiny {
  dim M = 64 tile 16
  dim N = 64
  in  x: f32[M, N]
  out y: f32[M, N]
  spread M over rows
  y[M, N] = x[M, N] * 2.0
}
";

/// Whisper's batched matmul shape: `C[H, M, N] = sum[K](A[H, M, K] * B[H, K, N])`.
const BATCHED: &str = "kernel batched {
  dim H = 6 tile 1
  dim M = 64 tile 16
  dim N = 128 tile 64
  dim K = 64 tile 32
  in  A: bf16[H, M, K]
  in  B: bf16[H, K, N]
  out C: f32[H, M, N]
  spread H over cols
  C[H, M, N] = sum[K](A[H, M, K] * B[H, K, N])
}
";

/// The same product per head, one head: a plain 2-D contraction.
const UNBATCHED: &str = "kernel unbatched {
  dim M = 64 tile 16
  dim N = 128 tile 64
  dim K = 64 tile 32
  in  A: bf16[M, K]
  in  B: bf16[K, N]
  out C: f32[M, N]
  spread M over rows, N over cols
  C[M, N] = sum[K](A[M, K] * B[K, N])
}
";

fn compile(name: &str, text: &str, device: &DeviceModel) -> Compiled {
    compile_source(name, text, device).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn scalar_spans(c: &Compiled) -> Vec<Span> {
    c.notes.iter().filter_map(|n| n.span.clone()).collect()
}

fn cost(c: &Compiled, k: &CostConstants) -> CostBreakdown {
    breakdown(&c.kernel, &c.design, &scalar_spans(c), k)
}

fn npu1() -> (DeviceModel, CostConstants) {
    let d = DeviceModel::npu1();
    let k = CostConstants::for_device(&d);
    (d, k)
}

#[track_caller]
fn assert_close(got: f64, want: f64, rel: f64, what: &str) {
    assert!(
        (got - want).abs() <= rel * want.abs(),
        "{what}: got {got:e}, want {want:e} (within {}%)",
        rel * 100.0
    );
}

#[test]
fn design_json_carries_the_default_breakdown() {
    let (d, k) = npu1();
    let c = compile("gemv", GEMV, &d);
    let b = cost(&c, &k);
    let e = c.json.estimate.as_ref().unwrap();
    assert_eq!(e.estimated_seconds, b.total_s);
    assert_eq!(e.compute_cycles, b.compute_cycles);
    assert_eq!(e.dma_bytes, b.shim_bytes);
    assert_eq!(e.macs, 4 * 416 * 52224);
    assert!(e.note.contains("estimate") && e.note.contains("not a measurement"), "{}", e.note);
    assert!(e.note.contains(b.bound.phrase()), "{}", e.note);
}

#[test]
fn gemv_is_bound_by_its_busiest_shim_channel() {
    let (d, k) = npu1();
    let c = compile("gemv", GEMV, &d);
    let b = cost(&c, &k);
    assert_eq!(b.stmt_code, [StmtCode::Mac(aiec_runtime::DType::Bf16)]);
    assert!(b.data_s > 3.0 * b.compute_s, "data {} vs compute {}", b.data_s, b.compute_s);
    // B's 416 x 13056 bf16 column slice crosses one shim channel per column, 4 bytes a cycle.
    assert_eq!(b.shim_channel_max_bytes, 416 * 13056 * 2);
    assert_eq!(b.bound, Bound::Shim);
    assert!(b.shim_s > b.ddr_s, "one channel per column is slower than DDR: {} vs {}", b.shim_s, b.ddr_s);
    assert_close(b.total_s, k.launch_overhead_s + (416 * 13056 * 2) as f64 / (4.0 * 1.0e9), 0.01, "GEMV total");
    assert!(c.json.estimate.as_ref().unwrap().note.contains("shim-DMA-bound"));
}

#[test]
fn gemv_is_ddr_bound_when_ddr_is_slower_than_its_shim_channels_and_halves_with_twice_the_bandwidth() {
    let (d, k) = npu1();
    let c = compile("gemv", GEMV, &d);
    let slow = CostConstants { ddr_bytes_per_s: 5e9, ..k };
    let fast = CostConstants { ddr_bytes_per_s: 10e9, ..k };
    let (bs, bf) = (cost(&c, &slow), cost(&c, &fast));
    let b_bytes = (416 * 52224 * 2) as f64;
    for (b, bw) in [(&bs, 5e9), (&bf, 10e9)] {
        assert_eq!(b.bound, Bound::Ddr);
        assert!(b.data_s > b.compute_s);
        // Nearly all of the traffic is B, read once.
        assert_close(b.shim_bytes as f64, b_bytes, 0.04, "shim bytes vs B bytes");
        assert_close(b.total_s, k.launch_overhead_s + b.shim_bytes as f64 / bw, 1e-9, "DDR-bound total");
        assert_close(b.total_s, k.launch_overhead_s + b_bytes / bw, 0.04, "DDR-bound total vs B / DDR");
    }
    assert_close(bf.data_s, bs.data_s / 2.0, 1e-12, "data time at twice the DDR bandwidth");
    // At the default npu1 figure (30 GB/s), DDR time is all shim bytes over it.
    assert_close(cost(&c, &k).ddr_s, bs.shim_bytes as f64 / 30e9, 1e-12, "default DDR time");
}

#[test]
fn streaming_over_every_shim_channel_is_ddr_bound() {
    let (d, k) = npu1();
    let c = compile("stream", STREAM, &d);
    let b = cost(&c, &k);
    let bytes = 2 * 32768 * 256 * 4;
    assert_eq!(b.shim_bytes, bytes);
    // One channel in and one out per column, evenly loaded.
    assert_eq!(b.shim_channel_max_bytes, bytes / 8);
    assert_eq!(b.bound, Bound::Ddr);
    assert_close(b.total_s, k.launch_overhead_s + bytes as f64 / k.ddr_bytes_per_s, 1e-9, "streaming total");
    assert!(c.json.estimate.as_ref().unwrap().note.contains("DDR-bound"));
}

#[test]
fn big_bf16_matmul_is_compute_bound_at_peak_times_efficiency() {
    let (d, k) = npu1();
    let c = compile("big", BIG, &d);
    let b = cost(&c, &k);
    let macs = 1536u64 * 1536 * 384;
    assert_eq!(b.macs, macs);
    assert_eq!(c.design.rows_used * c.design.cols_used, 16);
    assert_eq!(b.bound, Bound::Compute);
    assert!(b.compute_s > 2.0 * b.data_s, "compute {} vs data {}", b.compute_s, b.data_s);
    // 128 bf16 MACs per cycle per tile (the 4x8x4 MAC), 16 tiles, 1 GHz.
    let want = k.launch_overhead_s + macs as f64 / (128.0 * k.mac_efficiency * 16.0 * 1.0e9);
    assert_close(b.total_s, want, 0.01, "big matmul total");
    let twice = cost(
        &c,
        &CostConstants {
            mac_efficiency: 2.0 * k.mac_efficiency,
            ..k
        },
    );
    assert_close(twice.compute_s, b.compute_s / 2.0, 1e-6, "compute time at twice the efficiency");
    assert!(c.json.estimate.as_ref().unwrap().note.contains("compute-bound"));
}

#[test]
fn tiny_kernel_is_launch_bound() {
    let (d, k) = npu1();
    let c = compile("tiny", TINY, &d);
    let b = cost(&c, &k);
    assert_eq!(b.bound, Bound::Launch);
    assert!(b.launch_s > 5.0 * b.compute_s.max(b.data_s), "{b:?}");
    assert!(b.total_s < 1.2 * k.launch_overhead_s, "{b:?}");
    let free = cost(&c, &CostConstants { launch_overhead_s: 0.0, ..k });
    assert_close(b.total_s - free.total_s, k.launch_overhead_s, 1e-9, "launch share");
    assert!(c.json.estimate.as_ref().unwrap().note.contains("launch-overhead-bound"));
}

#[test]
fn memory_tile_channels_bound_when_slower_than_the_shim() {
    let (d, k) = npu1();
    let c = compile("gemv", GEMV, &d);
    let b = cost(&c, &k);
    // A memory tile forwards B as it arrives: its busiest channel carries what the shim's does.
    assert_eq!(b.memtile_channel_max_bytes, b.shim_channel_max_bytes);
    assert_eq!(b.memtile_s, b.shim_s);
    let slow = cost(
        &c,
        &CostConstants {
            memtile_channel_bytes_per_cycle: 1.0,
            ..k
        },
    );
    assert_eq!(slow.bound, Bound::MemoryTile);
    assert_close(slow.data_s, 4.0 * b.shim_s, 1e-12, "memory-tile time at 1 byte per cycle");
}

#[test]
fn shim_channel_rate_sets_the_gemv_time() {
    let (d, k) = npu1();
    let c = compile("gemv", GEMV, &d);
    let b = cost(&c, &k);
    let wide = cost(
        &c,
        &CostConstants {
            shim_channel_bytes_per_cycle: 8.0,
            memtile_channel_bytes_per_cycle: 8.0,
            ..k
        },
    );
    assert_close(wide.shim_s, b.shim_s / 2.0, 1e-12, "shim time at twice the channel rate");
    // Twice as fast channels leave DDR (1.5 ms at 30 GB/s) as the limit.
    assert_eq!(wide.bound, Bound::Ddr);
}

#[test]
fn only_contractions_the_lowering_puts_on_the_mac_run_at_the_mac_rate() {
    let (d, k) = npu1();
    for (name, text) in [("batched", BATCHED), ("unbatched", UNBATCHED)] {
        let c = compile(name, text, &d);
        let b = cost(&c, &k);
        let cores = (c.design.rows_used * c.design.cols_used) as f64;
        let on_mac = c.mlir.contains("vector.contract");
        assert_eq!(matches!(b.stmt_code[0], StmtCode::Mac(_)), on_mac, "{name}: {:?}", b.stmt_code);
        let mac_cycles = (b.macs as f64 / (128.0 * k.mac_efficiency) / cores).ceil() as u64;
        if on_mac {
            assert_eq!(b.compute_cycles, mac_cycles, "{name}");
        } else {
            // Scalar code: at least one cycle per multiply-accumulate on each core.
            assert_eq!(b.stmt_code, [StmtCode::Scalar], "{name}");
            assert!(b.compute_cycles as f64 >= b.macs as f64 / cores, "{name}: {b:?}");
            assert!(b.compute_cycles > 10 * mac_cycles, "{name}: {b:?}");
        }
    }
    // The 2-D product is a contraction on the bf16 MAC.
    assert!(compile("unbatched", UNBATCHED, &d).mlir.contains("vector.contract"));
}

#[test]
fn mac_peak_is_capped_by_the_mac_shape_the_lowering_uses() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../dsl-examples/matmul_i16.tile")).unwrap();
    // i16 x i16 runs on the 4x2x8 MAC on npu1 (64 MACs a cycle), 8x2x8 on npu2 (128); bf16 on the
    // 4x8x4 MAC (128) on both, below npu2's 256 bf16 MACs a cycle.
    for (device, src, peak) in [
        (DeviceModel::npu1(), text.as_str(), 64.0),
        (DeviceModel::npu2(), text.as_str(), 128.0),
        (DeviceModel::npu2(), BIG, 128.0),
    ] {
        let c = compile("k", src, &device);
        let k = CostConstants::for_device(&device);
        let b = cost(&c, &k);
        assert!(matches!(b.stmt_code[0], StmtCode::Mac(_)), "{:?}", b.stmt_code);
        let cores = (c.design.rows_used * c.design.cols_used) as f64;
        assert_eq!(
            b.compute_cycles,
            (b.macs as f64 / (peak * k.mac_efficiency) / cores).ceil() as u64,
            "{}",
            device.name
        );
    }
}

#[test]
fn defaults_are_the_documented_figures() {
    let k1 = CostConstants::for_device(&DeviceModel::npu1());
    assert_eq!(
        k1,
        CostConstants {
            clock_hz: 1.0e9,
            mac_efficiency: 0.3,
            launch_overhead_s: 45e-6,
            ddr_bytes_per_s: 30e9,
            shim_channel_bytes_per_cycle: 4.0,
            memtile_channel_bytes_per_cycle: 4.0,
        }
    );
    let k2 = CostConstants::for_device(&DeviceModel::npu2());
    assert_eq!(
        k2,
        CostConstants {
            clock_hz: 1.5e9,
            ddr_bytes_per_s: 60e9,
            ..k1
        }
    );
    // The headline figures these give (seconds per call, npu1).
    let (d, _) = npu1();
    let gemv = compile("gemv", GEMV, &d).json.estimate.unwrap().estimated_seconds;
    let big = compile("big", BIG, &d).json.estimate.unwrap().estimated_seconds;
    assert_close(gemv, 45e-6 + 10_862_592.0 / 4e9, 1e-9, "GEMV estimate");
    assert_close(big, 45e-6 + 1_474_560.0 / 1e9, 1e-9, "big matmul estimate");
}

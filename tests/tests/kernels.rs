//! Every example kernel, compiled for npu1 (and matmul for npu2), run on the emulator with seeded
//! random inputs and compared with its reference element by element against the error bound the
//! reference computes with each value (`aiec::reference::run_reference_with_bounds`, rules in
//! `aiec::reference::bound`; `aiec::hostdata::compare_bounded`): integer outputs bit-exact, float
//! outputs within the bound (summation order, the core's arith-only exp/tanh/rsqrt/recip/log
//! within their stated accuracy, bf16 rounding of values that straddle a rounding boundary).

use aiec::{compile_source, hostdata, DeviceModel};
use aiec_runtime::artifact::ArgDirection;
use aiec_runtime::emulator::Emulator;
use aiec_runtime::{DType, HostBuffer};
use std::path::PathBuf;

fn example(name: &str) -> (String, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dsl-examples").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (format!("dsl-examples/{name}"), text)
}

/// Compiles, emulates and compares; returns (output dtype, comparison) per output.
fn check_kernel(name: &str, device: DeviceModel, seed: u64) -> Vec<(DType, hostdata::Comparison)> {
    let (path, text) = example(name);
    check_source(name, &path, &text, device, seed)
}

fn check_source(name: &str, path: &str, text: &str, device: DeviceModel, seed: u64) -> Vec<(DType, hostdata::Comparison)> {
    let (path, text) = (path.to_string(), text.to_string());
    let compiled = compile_source(&path, &text, &device).unwrap_or_else(|e| panic!("{name}:\n{e}"));
    let (inputs, mut bufs) = hostdata::random_arguments(&compiled.json.arguments, seed, |arg, v| {
        if name == "mel.tile" && arg == "basis" {
            // Mel filterbank weights (columns 800..880) are non-negative, as Whisper's are.
            // With signed random weights the sum over frequencies cancels catastrophically
            // and amplifies the (legitimate) difference in f32 summation order between the
            // vectorized cores and the one-by-one reference.
            v.slice_mut(ndarray::s![.., 800..]).mapv_inplace(f64::abs);
        }
    });
    let expected = aiec::reference::run_reference_with_bounds(&compiled.kernel, &inputs).unwrap_or_else(|e| panic!("{name} reference: {e}"));
    let mut emu = Emulator::new();
    emu.run_mlir(&compiled.mlir, &path, &mut bufs)
        .unwrap_or_else(|e| panic!("{name} emulation: {e}"));
    let mut out = Vec::new();
    let mut k = 0;
    for (i, arg) in compiled.json.arguments.iter().enumerate() {
        if arg.direction == ArgDirection::Out {
            let got = hostdata::from_buffer(&bufs[i]);
            let (want, bound) = &expected[k];
            out.push((arg.dtype, hostdata::compare_bounded(&got, want, bound, arg.dtype)));
            k += 1;
        }
    }
    out
}

fn assert_matches(name: &str, device: DeviceModel) {
    assert_all_within(name, check_kernel(name, device, 7));
}

fn assert_all_within(name: &str, results: Vec<(DType, hostdata::Comparison)>) {
    for (dtype, c) in results {
        match dtype {
            DType::I8 | DType::I16 | DType::I32 => assert!(c.exact, "{name}: integer output must be bit-exact: {c:?}"),
            _ => assert!(c.passed(), "{name}: {c:?}"),
        }
    }
}

#[test]
fn matmul_i8_i32_npu1() {
    assert_matches("matmul.tile", DeviceModel::npu1());
}

#[test]
fn matmul_i8_i32_npu2() {
    assert_matches("matmul.tile", DeviceModel::npu2());
}

#[test]
fn matmul_i8_i16() {
    assert_matches("matmul_i8_i16.tile", DeviceModel::npu1());
}

#[test]
fn matmul_i16_i32() {
    assert_matches("matmul_i16.tile", DeviceModel::npu1());
}

#[test]
fn matmul_bf16_f32() {
    assert_matches("matmul_bf16_f32.tile", DeviceModel::npu1());
}

#[test]
fn matmul_bf16_bf16() {
    assert_matches("matmul_bf16.tile", DeviceModel::npu1());
}

#[test]
fn gelu() {
    assert_matches("gelu.tile", DeviceModel::npu1());
}

#[test]
fn softmax() {
    assert_matches("softmax.tile", DeviceModel::npu1());
}

#[test]
fn layernorm() {
    assert_matches("layernorm.tile", DeviceModel::npu1());
}

#[test]
fn rmsnorm() {
    assert_matches("rmsnorm.tile", DeviceModel::npu1());
}

#[test]
fn attention() {
    assert_matches("attention.tile", DeviceModel::npu1());
}

#[test]
fn mel() {
    assert_matches("mel.tile", DeviceModel::npu1());
}

/// What `aiec run EXAMPLE --emulate --seed N` checks, for every example and N in 1..=20: the same
/// signed random inputs the CLI draws (no shaping), the same comparison. Prints, per example, the
/// worst error as a fraction of its bound over the seeds (`--nocapture` shows it).
#[test]
fn every_example_passes_its_own_run_for_seeds_1_to_20() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dsl-examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tile"))
        .collect();
    names.sort();
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    let mut emu = Emulator::new();
    for name in &names {
        let (path, text) = example(name);
        let compiled = compile_source(&path, &text, &DeviceModel::npu1()).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        // Per output: (worst fraction of its bound, seed, index, bit-exact so far), unbounded
        // elements, elements.
        let mut worst: Vec<(f64, u64, Vec<usize>, bool)> = Vec::new();
        let (mut unbounded, mut elements) = (0usize, 0usize);
        for seed in 1..=20u64 {
            let (inputs, mut bufs) = hostdata::random_arguments(&compiled.json.arguments, seed, |_, _| {});
            let expected = aiec::reference::run_reference_with_bounds(&compiled.kernel, &inputs).unwrap();
            emu.run_mlir(&compiled.mlir, &path, &mut bufs)
                .unwrap_or_else(|e| panic!("{name} seed {seed}: {e}"));
            let outs = compiled.json.arguments.iter().enumerate().filter(|(_, a)| a.direction == ArgDirection::Out);
            for (k, (i, arg)) in outs.enumerate() {
                let (want, bound) = &expected[k];
                let c = hostdata::compare_bounded(&hostdata::from_buffer(&bufs[i]), want, bound, arg.dtype);
                if !c.passed() {
                    failures.push(format!("{name} seed {seed}: {} {:?} {c:?}", arg.name, c.worst));
                }
                if worst.len() <= k {
                    worst.push((0.0, seed, Vec::new(), true));
                }
                worst[k].3 &= c.exact;
                if let Some(w) = c.worst.as_ref().filter(|w| w.fraction > worst[k].0 || worst[k].2.is_empty()) {
                    (worst[k].0, worst[k].1, worst[k].2) = (w.fraction, seed, w.index.clone());
                }
                unbounded += c.unbounded;
                elements += want.len();
            }
        }
        for (fraction, seed, index, exact) in worst {
            summary.push(if exact {
                format!("{name:<22} bit-exact for every seed")
            } else {
                format!("{name:<22} worst {fraction:.3} of its bound (seed {seed}, at {index:?}); {unbounded} of {elements} elements unbounded")
            });
        }
    }
    println!("{}", summary.join("\n"));
    assert!(names.len() >= 11, "{names:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The bounds catch a real fault: one element of the emulator's output moved by 10 times its
/// bound is reported, and only that one.
#[test]
fn a_fault_of_ten_bounds_in_one_element_is_reported_exactly_there() {
    for (name, at) in [("matmul_bf16_f32.tile", [17usize, 42]), ("softmax.tile", [3, 17])] {
        let (path, text) = example(name);
        let compiled = compile_source(&path, &text, &DeviceModel::npu1()).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        let (inputs, mut bufs) = hostdata::random_arguments(&compiled.json.arguments, 3, |_, _| {});
        let expected = aiec::reference::run_reference_with_bounds(&compiled.kernel, &inputs).unwrap();
        Emulator::new().run_mlir(&compiled.mlir, &path, &mut bufs).unwrap();
        let out = compiled.json.arguments.iter().position(|a| a.direction == ArgDirection::Out).unwrap();
        let dtype = compiled.json.arguments[out].dtype;
        let (want, bound) = &expected[0];
        let mut got = hostdata::from_buffer(&bufs[out]);
        assert!(
            hostdata::compare_bounded(&got, want, bound, dtype).passed(),
            "{name}: the emulator's own output passes"
        );
        let b = bound[&at[..]];
        assert!(b > 0.0 && b.is_finite(), "{name}: bound {b} at {at:?}");
        // The faulty value as the output type holds it.
        got[&at[..]] += 10.0 * b;
        let got = hostdata::from_buffer(&hostdata::to_buffer(&got, dtype));
        let c = hostdata::compare_bounded(&got, want, bound, dtype);
        assert_eq!(c.mismatches, 1, "{name}: {c:?}");
        let worst = c.worst.as_ref().unwrap();
        assert_eq!(worst.index, at.to_vec(), "{name}: {c:?}");
        assert!(worst.fraction >= 8.0, "{name}: {c:?}");
        let flat = at[0] * want.shape()[1] + at[1];
        assert_eq!(c.first_mismatch.map(|m| m.0), Some(flat), "{name}: {c:?}");
    }
}

/// A bf16 target of a matmul with a split K is rounded after every K tile on the cores, once in
/// the reference: the bound counts the intermediate roundings, and stays tight.
#[test]
fn bf16_partial_sums_across_k_tiles_stay_within_their_bound() {
    let src = "kernel mm {\n  dim M = 64 tile 32\n  dim N = 64 tile 32\n  dim K = 256 tile 32\n  in A: bf16[M, K]\n  in B: bf16[K, N]\n  out C: bf16[M, N]\n  spread M over rows, N over cols\n  C[M, N] = sum[K](A[M, K] * B[K, N])\n}\n";
    let compiled = compile_source("mm.tile", src, &DeviceModel::npu1()).unwrap_or_else(|e| panic!("{e}"));
    let mut worst = 0.0f64;
    for seed in 1..=5 {
        let (inputs, mut bufs) = hostdata::random_arguments(&compiled.json.arguments, seed, |_, _| {});
        let expected = aiec::reference::run_reference_with_bounds(&compiled.kernel, &inputs).unwrap();
        Emulator::new().run_mlir(&compiled.mlir, "mm.tile", &mut bufs).unwrap();
        let c = hostdata::compare_bounded(&hostdata::from_buffer(&bufs[2]), &expected[0].0, &expected[0].1, DType::Bf16);
        assert!(c.passed() && c.unbounded == 0, "seed {seed}: {c:?}");
        worst = worst.max(c.worst_fraction());
    }
    // The 7 intermediate roundings do show (a single rounding would leave the bound exceeded).
    assert!(worst > 0.1, "worst {worst}");
}

/// The kernels a kernel author writes first, each on both devices, without host-side packing:
/// integer outputs bit-exact, float outputs within their error bounds.
#[test]
fn common_kernels_on_npu1_and_npu2() {
    for name in [
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
    ] {
        assert_matches(name, DeviceModel::npu1());
        assert_matches(name, DeviceModel::npu2());
    }
}

/// Statements after a tiled reduction work on its result: `sum[K](..) * 0.5 + 1.0` in one
/// statement (K split over 4 tiles), and a max across the tiles of N plus a constant.
#[test]
fn expressions_around_a_reduction_across_tiles() {
    let matmul_epilogue = "kernel mm_epilogue {\n  dim M = 128 tile 32\n  dim N = 128 tile 32\n  dim K = 256 tile 64\n  in A: bf16[M, K]\n  in B: bf16[K, N]\n  out C: f32[M, N]\n  spread M over rows, N over cols\n  C[M, N] = sum[K](A[M, K] * B[K, N]) * 0.5 + 1.0\n}\n";
    let max_plus = "kernel max_plus {\n  dim M = 64 tile 16\n  dim N = 256 tile 64\n  in x: f32[M, N]\n  out y: f32[M]\n  spread M over rows\n  y[M] = 1.0 + max[N](x[M, N])\n}\n";
    for (name, src) in [("mm_epilogue", matmul_epilogue), ("max_plus", max_plus)] {
        let compiled = compile_source("t.tile", src, &DeviceModel::npu1()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(compiled.design.reduce_loops.len() == 1, "{name}: the reduction runs across tiles");
        assert_all_within(name, check_source(name, "t.tile", src, DeviceModel::npu1(), 3));
        assert_all_within(name, check_source(name, "t.tile", src, DeviceModel::npu2(), 4));
    }
}

/// Dynamic quantisation in one kernel: outputs of different shapes (`q[M, N]` and `s[M]`), the
/// scale read back by the next statement; every |q| <= 127 and the row maximum maps to +-127.
#[test]
fn quantize_writes_values_and_their_row_scales() {
    let (path, text) = example("quantize.tile");
    let compiled = compile_source(&path, &text, &DeviceModel::npu1()).unwrap();
    let (_, mut bufs) = hostdata::random_arguments(&compiled.json.arguments, 11, |_, _| {});
    Emulator::new().run_mlir(&compiled.mlir, &path, &mut bufs).unwrap();
    let x = hostdata::from_buffer(&bufs[0]);
    let q = hostdata::from_buffer(&bufs[1]);
    let s = hostdata::from_buffer(&bufs[2]);
    for m in 0..256 {
        let row_max = (0..512).map(|n| x[[m, n]].abs()).fold(0.0, f64::max);
        assert!(
            (s[[m]] - row_max / 127.0).abs() <= 1e-6 * row_max,
            "row {m}: scale {} for max {row_max}",
            s[[m]]
        );
        let top = (0..512).map(|n| q[[m, n]].abs()).fold(0.0, f64::max);
        assert_eq!(top, 127.0, "row {m}");
    }
}

/// A gather reads the rows its ids name; ids outside the table are clamped to the first or last
/// row, on the cores as in the reference.
#[test]
fn embedding_gathers_rows_and_clamps_ids() {
    let (path, text) = example("embedding.tile");
    for device in [DeviceModel::npu1(), DeviceModel::npu2()] {
        let compiled = compile_source(&path, &text, &device).unwrap();
        let ids: Vec<f64> = (0..64)
            .map(|t| match t {
                5 => -5.0,
                6 => 1000.0,
                7 => 99.0,
                t => ((t * 37) % 100) as f64,
            })
            .collect();
        let table = ndarray::ArrayD::from_shape_fn(vec![100, 64], |ix| (ix[0] as f64) + (ix[1] as f64) / 64.0);
        let ids_arr = ndarray::ArrayD::from_shape_vec(vec![64], ids.clone()).unwrap();
        let mut bufs = vec![
            hostdata::to_buffer(&ids_arr, DType::I32),
            hostdata::to_buffer(&table, DType::Bf16),
            HostBuffer::zeros(DType::Bf16, &[64, 64]),
        ];
        Emulator::new().run_mlir(&compiled.mlir, &path, &mut bufs).unwrap();
        let y = hostdata::from_buffer(&bufs[2]);
        let expected = aiec::reference::run_reference(&compiled.kernel, &[ids_arr, hostdata::from_buffer(&bufs[1])]).unwrap();
        for t in 0..64 {
            let row = (ids[t] as i64).clamp(0, 99) as usize;
            for d in 0..64 {
                let want = hostdata::from_buffer(&bufs[1])[[row, d]];
                assert_eq!(y[[t, d]], want, "{} t={t} d={d}", device.name);
                assert_eq!(expected[0][[t, d]], want);
            }
        }
    }
}

/// Runs a one-input f32 kernel `y[M] = f(x[M])` on the emulator over `xs`.
fn emulate_unary(func: &str, xs: &[f32]) -> Vec<f32> {
    let n = xs.len();
    let src = format!(
        "kernel f {{\n  dim M = {n} tile {}\n  in x: f32[M]\n  out y: f32[M]\n  spread M over rows\n  y[M] = {func}(x[M])\n}}\n",
        n / 4
    );
    let compiled = compile_source("f.tile", &src, &DeviceModel::npu1()).unwrap_or_else(|e| panic!("{e}"));
    let input = ndarray::ArrayD::from_shape_vec(vec![n], xs.iter().map(|&v| v as f64).collect()).unwrap();
    let mut bufs = vec![hostdata::to_buffer(&input, DType::F32), HostBuffer::zeros(DType::F32, &[n])];
    Emulator::new().run_mlir(&compiled.mlir, "f.tile", &mut bufs).unwrap_or_else(|e| panic!("{e}"));
    hostdata::from_buffer(&bufs[1]).iter().map(|&v| v as f32).collect()
}

fn sweep(lo: f64, hi: f64, n: usize, log: bool) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = i as f64 / (n - 1) as f64;
            if log {
                (lo.ln() + t * (hi.ln() - lo.ln())).exp() as f32
            } else {
                (lo + t * (hi - lo)) as f32
            }
        })
        .collect()
}

/// The arith-only expansions the core uses instead of libm, against f64 libm: error at most
/// `tol * max(|exact|, 1)` (relative for large values, absolute near zero).
fn assert_accuracy(func: &str, xs: &[f32], exact: fn(f64) -> f64, tol: f64) {
    let got = emulate_unary(func, xs);
    let mut worst = (0.0, 0.0f32);
    for (&x, &g) in xs.iter().zip(&got) {
        let want = exact(x as f64);
        let err = (g as f64 - want).abs() / want.abs().max(1.0);
        if err > worst.0 {
            worst = (err, x);
        }
    }
    assert!(worst.0 <= tol, "{func}: worst error {:.3e} at x = {} (tolerance {tol:.0e})", worst.0, worst.1);
}

#[test]
fn transcendental_accuracy() {
    assert_accuracy("exp", &sweep(-80.0, 80.0, 4096, false), f64::exp, 1e-6);
    assert_accuracy("tanh", &sweep(-12.0, 12.0, 4096, false), f64::tanh, 1e-6);
    assert_accuracy("recip", &sweep(1e-30, 1e30, 4096, true), |x| 1.0 / x, 1e-6);
    assert_accuracy(
        "recip",
        &sweep(-1e30, -1e-30, 4096, false).iter().map(|v| -v.abs().max(1e-30)).collect::<Vec<_>>(),
        |x| 1.0 / x,
        1e-6,
    );
    assert_accuracy("rsqrt", &sweep(1e-30, 1e30, 4096, true), |x| 1.0 / x.sqrt(), 1e-6);
    assert_accuracy("sqrt", &sweep(1e-30, 1e30, 4096, true), f64::sqrt, 1e-6);
    assert_accuracy("ln", &sweep(1e-30, 1e30, 4096, true), f64::ln, 1e-6);
    assert_accuracy("log10", &sweep(1e-30, 1e30, 4096, true), f64::log10, 1e-6);
}

/// Every math function over the whole f32 range: the emulator (the core code's arith-only
/// expansions) and the reference interpreter follow one semantics (`aiec::reference::math`):
/// special values agree exactly, finite results within the expansions' stated accuracy.
#[test]
fn math_functions_agree_with_the_reference_on_the_whole_range() {
    use aiec::reference::math;
    let specials: Vec<f32> = vec![
        0.0,
        -0.0,
        1e-40,
        -1e-40,
        1e-30,
        -1e-30,
        1.0,
        -1.0,
        0.5,
        -0.5,
        11.0,
        -11.0,
        44.0,
        -44.0,
        88.0,
        88.8,
        -87.0,
        -87.5,
        -100.0,
        100.0,
        1e30,
        -1e30,
        1e38,
        -1e38,
        3.4e38,
        -3.4e38,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        2.0,
        1e-20,
        1.7e38,
    ];
    let funcs: [(&str, fn(f32) -> f32); 7] = [
        ("exp", math::exp),
        ("tanh", math::tanh),
        ("recip", math::recip),
        ("rsqrt", math::rsqrt),
        ("sqrt", math::sqrt),
        ("ln", math::ln),
        ("log10", math::log10),
    ];
    let mut wrong = Vec::new();
    for (name, f) in funcs {
        let got = emulate_unary(name, &specials);
        for (&x, &g) in specials.iter().zip(&got) {
            let want = f(x);
            let ok = if want.is_nan() {
                g.is_nan()
            } else if want.is_infinite() || want == 0.0 {
                g == want
            } else {
                ((g - want).abs() as f64) <= 1e-6 * want.abs().max(1.0) as f64 || ((g - want).abs() as f64) <= 1e-6 * want.abs() as f64
            };
            if !ok {
                wrong.push(format!("{name}({x:e}) = {g:e} on the emulator, {want:e} in the reference"));
            }
        }
    }
    // The shapes that used to break: tanh saturates, recip of huge values is 0, exp saturates.
    let t = emulate_unary("tanh", &[44.0, -44.0, 1e30, -1e30]);
    assert_eq!(t, vec![1.0, -1.0, 1.0, -1.0]);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn division_by_huge_values_is_right() {
    let xs: Vec<f32> = [1e38f32, -1e38, 3e38, 2e37, 1.0, -4.0, 1e-30, 8.6e37]
        .iter()
        .copied()
        .cycle()
        .take(32)
        .collect();
    let n = xs.len();
    let src = format!(
        "kernel d {{\n  dim M = {n} tile {}\n  in x: f32[M]\n  out y: f32[M]\n  spread M over rows\n  y[M] = 1e38 / x[M]\n}}\n",
        n / 4
    );
    let compiled = compile_source("d.tile", &src, &DeviceModel::npu1()).unwrap_or_else(|e| panic!("{e}"));
    let input = ndarray::ArrayD::from_shape_vec(vec![n], xs.iter().map(|&v| v as f64).collect()).unwrap();
    let mut bufs = vec![hostdata::to_buffer(&input, DType::F32), HostBuffer::zeros(DType::F32, &[n])];
    Emulator::new().run_mlir(&compiled.mlir, "d.tile", &mut bufs).unwrap_or_else(|e| panic!("{e}"));
    for (&x, &g) in xs.iter().zip(hostdata::from_buffer(&bufs[1]).iter()) {
        let want = 1e38f64 / x as f64;
        let want = if want.abs() > f32::MAX as f64 { f64::INFINITY.copysign(want) } else { want };
        let ok = if want.is_infinite() {
            g == want
        } else {
            (g - want).abs() <= 1e-6 * want.abs()
        };
        assert!(ok, "1e38 / {x:e} = {g:e}, want {want:e}");
    }
}

#[test]
fn gelu_is_finite_for_large_inputs() {
    let (path, src) = example("gelu.tile");
    let compiled = compile_source(&path, &src, &DeviceModel::npu1()).unwrap();
    let n: usize = compiled.json.arguments[0].shape.iter().product();
    let big = [11.0f64, -11.0, 20.0, -20.0, 1e4, -1e4, 1e30, -1e30];
    let input: Vec<f64> = (0..n).map(|i| big[i % big.len()]).collect();
    let shape = compiled.json.arguments[0].shape.clone();
    let x = ndarray::ArrayD::from_shape_vec(shape.clone(), input).unwrap();
    let dtype = compiled.json.arguments[0].dtype;
    let mut bufs = vec![
        hostdata::to_buffer(&x, dtype),
        HostBuffer::zeros(compiled.json.arguments[1].dtype, &compiled.json.arguments[1].shape),
    ];
    Emulator::new().run_mlir(&compiled.mlir, "gelu.tile", &mut bufs).unwrap();
    let y = hostdata::from_buffer(&bufs[1]);
    for (i, (&xi, &yi)) in x.iter().zip(y.iter()).enumerate() {
        assert!(yi.is_finite(), "gelu({xi}) = {yi} at {i}");
        // gelu(x) -> x for large positive x, -> 0 for large negative x.
        let want = if xi > 0.0 { xi } else { 0.0 };
        assert!((yi - want).abs() <= 1e-2 * xi.abs().max(1.0), "gelu({xi}) = {yi}");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn matmul(m: u64, n: u64, k: u64, t: (u64, u64, u64), dt: &str, out: &str) -> String {
        format!(
            "kernel mm {{\n  dim M = {m} tile {}\n  dim N = {n} tile {}\n  dim K = {k} tile {}\n  in A: {dt}[M, K]\n  in B: {dt}[K, N]\n  out C: {out}[M, N]\n  spread M over rows, N over cols\n  C[M, N] = sum[K](A[M, K] * B[K, N])\n}}\n",
            t.0, t.1, t.2
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 8, .. ProptestConfig::default() })]
        #[test]
        fn matmul_emulator_matches_reference(
            mt in 1u64..5, nt in 1u64..5, kt in 1u64..4,
            tile in prop::sample::select(vec![(16u64, 16u64, 16u64), (32, 32, 32), (16, 32, 64)]),
            // bf16 out: the partial sums are rounded to bf16 after every K tile (the bound counts it).
            dts in prop::sample::select(vec![("i8", "i32"), ("i16", "i32"), ("bf16", "f32"), ("bf16", "bf16")]),
            seed in 0u64..1000,
        ) {
            let src = matmul(mt * tile.0, nt * tile.1, kt * tile.2, tile, dts.0, dts.1);
            let compiled = compile_source("mm.tile", &src, &DeviceModel::npu1()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (inputs, mut bufs) = hostdata::random_arguments(&compiled.json.arguments, seed, |_, _| {});
            let expected = aiec::reference::run_reference_with_bounds(&compiled.kernel, &inputs).map_err(|e| TestCaseError::fail(e.to_string()))?;
            Emulator::new().run_mlir(&compiled.mlir, "mm.tile", &mut bufs).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = hostdata::from_buffer(&bufs[2]);
            let dtype = compiled.json.arguments[2].dtype;
            let c = hostdata::compare_bounded(&got, &expected[0].0, &expected[0].1, dtype);
            if dtype == DType::I32 {
                prop_assert!(c.exact, "{:?}", c);
            } else {
                prop_assert!(c.passed(), "{:?}", c);
            }
        }
    }
}

/// `floor` and `round` (ties to even) on the cores are exact: bit for bit Rust's `f32::floor`
/// and `f32::round_ties_even`, signed zeros and specials included.
#[test]
fn floor_and_round_are_exact_on_the_whole_range() {
    let mut xs: Vec<f32> = vec![
        0.0,
        -0.0,
        0.5,
        -0.5,
        1.5,
        -1.5,
        2.5,
        -2.5,
        3.5,
        -3.5,
        0.49999997,
        -0.49999997,
        0.3,
        -0.3,
        1e-40,
        -1e-40,
        8388607.5,
        -8388607.5,
        8388608.0,
        -8388609.0,
        16777217.0,
        1e30,
        -1e30,
        3.4e38,
        -3.4e38,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        2147483520.0,
        -2147483648.0,
        4e9,
        -4e9,
        7.0,
        -7.0,
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    while xs.len() < 256 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Quarter steps in +-1000 hit every tie.
        xs.push(((state % 8001) as f32 - 4000.0) / 4.0 + if state & (1 << 40) != 0 { 0.125 } else { 0.0 });
    }
    for (name, exact) in [("floor", f32::floor as fn(f32) -> f32), ("round", f32::round_ties_even)] {
        let got = emulate_unary(name, &xs);
        for (&x, &g) in xs.iter().zip(&got) {
            let want = exact(x);
            let same = if want.is_nan() { g.is_nan() } else { g.to_bits() == want.to_bits() };
            assert!(same, "{name}({x:e}) = {g:e} on the emulator, want {want:e}");
        }
    }
}

/// `sigmoid` saturates to 0 and 1 (no NaN at the far ends) and is within 1e-6 elsewhere.
#[test]
fn sigmoid_holds_over_the_whole_range() {
    let xs = [
        -1e30f32,
        -1000.0,
        -100.0,
        -88.0,
        -20.0,
        -1.0,
        0.0,
        1.0,
        20.0,
        88.0,
        100.0,
        1e30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -3.4e38,
        3.4e38,
    ];
    let got = emulate_unary("sigmoid", &xs);
    for (&x, &g) in xs.iter().zip(&got) {
        let want = 1.0 / (1.0 + (-(x as f64)).exp());
        assert!((g as f64 - want).abs() <= 1e-6, "sigmoid({x:e}) = {g:e}, want {want:e}");
    }
    assert!(emulate_unary("sigmoid", &[f32::NAN, 0.0, 0.0, 0.0])[0].is_nan());
    assert_accuracy("sigmoid", &sweep(-30.0, 30.0, 4096, false), |x| 1.0 / (1.0 + (-x).exp()), 2e-6);
}

//! Every Whisper kernel, through `KernelOps` on the emulator, against an f64 ndarray reference at
//! the real shapes of whisper tiny and base, each element within a bound derived from the
//! arithmetic the kernel does:
//!
//! * bf16 has an 8-bit significand: rounding an f32 to it changes it by at most `U = 2^-8` of its
//!   magnitude, so a product of two rounded operands is off by at most `(2U + U²)·|x·w|`;
//! * f32 accumulation of `K` terms adds at most `K·2^-24·Σ|terms|`;
//! * the core math sequences have the accuracies the compiler states (exp 1e-6, recip and rsqrt
//!   3e-7, log10 3e-7 relative).
//!
//! So a bound is a few units of `Σ|x|·|w|`, never a fixed guess; a kernel that used the wrong
//! operand, dropped a bias or a mask, or mis-padded a shape is off by far more.

use std::sync::OnceLock;

use aiec::DeviceModel;
use half::f16;
use ndarray::{Array1, Array2, Array3, ArrayView2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use whisper::ops::Ops;
use whisper_aiec::cache::KernelCache;
use whisper_aiec::ops::{KernelOps, Target};

const U: f64 = 1.0 / 256.0; // bf16 unit roundoff
const F32_EPS: f64 = 1.0 / 16_777_216.0; // 2^-24

/// Whisper model shapes: (name, d_model, heads, mlp width, vocabulary).
const MODELS: [(&str, usize, usize, usize, usize); 2] = [("tiny", 384, 6, 1536, 51864), ("base", 512, 8, 2048, 51865)];

fn ops() -> &'static KernelOps {
    static OPS: OnceLock<KernelOps> = OnceLock::new();
    OPS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("whisper-aiec-kernel-tests-{}", std::process::id()));
        KernelOps::new(Target::Emulate, DeviceModel::npu1(), KernelCache::new(dir)).expect("emulator backend")
    })
}

fn random(rng: &mut StdRng, shape: (usize, usize), scale: f32) -> Array2<f32> {
    Array2::from_shape_fn(shape, |_| rng.gen_range(-scale..scale))
}

/// Asserts `|got - want| <= bound` everywhere; reports the worst element relative to its bound.
fn assert_within(what: &str, got: ArrayView2<f32>, want: &Array2<f64>, bound: &Array2<f64>) {
    assert_eq!(got.dim(), want.dim(), "{what}: shape");
    let mut worst = (0.0f64, (0, 0));
    for ((i, j), &g) in got.indexed_iter() {
        let err = (g as f64 - want[[i, j]]).abs();
        let ratio = err / bound[[i, j]];
        assert!(
            err <= bound[[i, j]],
            "{what}: element ({i}, {j}) is {g}, reference {}, error {err:e} > bound {:e}",
            want[[i, j]],
            bound[[i, j]]
        );
        if ratio > worst.0 {
            worst = (ratio, (i, j));
        }
    }
    eprintln!("{what}: every element within its bound (worst at {:?}: {:.3} of it)", worst.1, worst.0);
}

/// Reference `x · wᵀ + b` in f64 and its bound for bf16 operands (bias as a bf16 row) and f32
/// accumulation over `k` terms.
fn linear_reference(x: &Array2<f32>, w: &Array2<f32>, b: Option<&Array1<f32>>) -> (Array2<f64>, Array2<f64>) {
    let xd = x.mapv(|v| v as f64);
    let wd = w.mapv(|v| v as f64);
    let mut want = xd.dot(&wd.t());
    let mut abs = xd.mapv(f64::abs).dot(&wd.mapv(f64::abs).t());
    let k = x.ncols() as f64 + 1.0;
    if let Some(b) = b {
        want += &b.mapv(|v| v as f64);
        abs += &b.mapv(|v| (v as f64).abs());
    }
    let bound = abs.mapv(|a| (2.0 * U + U * U + k * F32_EPS) * a + 1e-30);
    (want, bound)
}

#[test]
fn linear_layers_match_the_reference_within_the_bf16_bound() {
    let mut rng = StdRng::seed_from_u64(1);
    for (model, d, _, mlp, vocab) in MODELS {
        // Encoder: fused QKV, MLP in and out, over 1500 positions.
        for (rows, inp, out) in [(1500, d, 3 * d), (1500, d, mlp), (1500, mlp, d), (3, d, d)] {
            let x = random(&mut rng, (rows, inp), 1.0);
            let w = random(&mut rng, (out, inp), 0.1);
            let b = Array1::from_shape_fn(out, |_| rng.gen_range(-1.0..1.0f32));
            let got = ops().linear(x.view(), w.view(), Some(b.view())).expect("linear runs");
            let (want, bound) = linear_reference(&x, &w, Some(&b));
            assert_within(&format!("{model} linear {rows}x{inp} -> {out}"), got.view(), &want, &bound);
        }
        // Decoding one token: the logits projection against the f16 token embedding, no bias.
        let x = random(&mut rng, (1, d), 1.0);
        let w16 = Array2::from_shape_fn((vocab, d), |_| f16::from_f32(rng.gen_range(-0.1..0.1f32)));
        let got = ops().linear_f16(x.view(), w16.view(), None).expect("logits run");
        let (want, bound) = linear_reference(&x, &w16.mapv(f16::to_f32), None);
        assert_within(&format!("{model} logits 1x{d} -> {vocab}"), got.view(), &want, &bound);
    }
}

#[test]
fn both_conv1d_layers_match_the_reference() {
    let mut rng = StdRng::seed_from_u64(2);
    for (model, d, ..) in MODELS {
        for (t, c_in, stride) in [(3000, 80, 1), (3000, d, 2)] {
            let x = random(&mut rng, (t, c_in), 1.0);
            let w = Array3::from_shape_fn((d, c_in, 3), |_| rng.gen_range(-0.1..0.1f32));
            let b = Array1::from_shape_fn(d, |_| rng.gen_range(-1.0..1.0f32));
            let got = ops().conv1d(x.view(), w.view(), b.view(), stride, 1).expect("conv1d runs");
            // Reference: the same im2col, in f64.
            let t_out = (t + 2 - 3) / stride + 1;
            let cols = Array2::from_shape_fn((t_out, 3 * c_in), |(r, i)| {
                let (j, c) = (i / c_in, i % c_in);
                let at = (r * stride + j) as isize - 1;
                if at < 0 || at as usize >= t {
                    0.0
                } else {
                    x[[at as usize, c]]
                }
            });
            let wm = Array2::from_shape_fn((d, 3 * c_in), |(o, i)| w[[o, i % c_in, i / c_in]]);
            let (want, bound) = linear_reference(&cols, &wm, Some(&b));
            assert_within(&format!("{model} conv1d {t}x{c_in} stride {stride}"), got.view(), &want, &bound);
        }
    }
}

#[test]
fn layer_norm_matches_the_reference() {
    let mut rng = StdRng::seed_from_u64(3);
    for (model, d, ..) in MODELS {
        for rows in [1500, 1, 5] {
            let x = random(&mut rng, (rows, d), 3.0) + 0.5;
            let gamma = Array1::from_shape_fn(d, |_| rng.gen_range(0.5..1.5f32));
            let beta = Array1::from_shape_fn(d, |_| rng.gen_range(-0.5..0.5f32));
            let got = ops().layer_norm(x.view(), gamma.view(), beta.view(), 1e-5).expect("layer_norm runs");
            let xd = x.mapv(|v| v as f64);
            let mean = xd.mean_axis(Axis(1)).unwrap();
            let centred = &xd - &mean.view().insert_axis(Axis(1));
            let var = centred.mapv(|v| v * v).mean_axis(Axis(1)).unwrap();
            let rstd = var.mapv(|v| 1.0 / (v + 1e-5).sqrt());
            let norm = &centred * &rstd.view().insert_axis(Axis(1));
            let want = &norm * &gamma.mapv(|v| v as f64) + &beta.mapv(|v| v as f64);
            // f32 sums over d terms for the mean and the variance (relative d·2^-24 each, the
            // variance's error doubled through the square root's derivative... halved), rsqrt 3e-7,
            // and the few f32 operations after it: relative (2d·2^-24 + 3e-7 + 8·2^-24) on |norm·γ|,
            // plus the mean's error times rstd·γ.
            let rel = 2.0 * d as f64 * F32_EPS + 3e-7 + 8.0 * F32_EPS;
            let bound = Array2::from_shape_fn(want.dim(), |(i, j)| {
                let g = gamma[j].abs() as f64;
                rel * (norm[[i, j]].abs() * g + rstd[i] * g * mean[i].abs() * 4.0) + 2.0 * F32_EPS * want[[i, j]].abs() + 1e-30
            });
            assert_within(&format!("{model} layer_norm {rows}x{d}"), got.view(), &want, &bound);
        }
    }
}

/// erf in f64: the Taylor series below 3 (terms up to e^9, so ~1e-12 absolute), and above it
/// 1 - erfc with erfc's continued fraction (60 levels: far below f32 resolution from 3 on).
fn erf(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 3.0 {
        let (mut term, mut sum, mut n) = (a, a, 0.0);
        while term.abs() > 1e-18 {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        let mut f = a;
        for n in (1..=60).rev() {
            f = a + (n as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
    };
    r.copysign(x)
}

#[test]
fn reference_erf_has_known_values() {
    for (x, want) in [
        (0.5, 0.520_499_877_813_046_5),
        (1.0, 0.842_700_792_949_714_9),
        (2.9, 0.999_958_902_121_900_2),
        (3.1, 0.999_988_351_342_632_8),
        (4.0, 0.999_999_984_582_742_1),
    ] {
        assert!((erf(x) - want).abs() < 1e-12, "erf({x}) = {} want {want}", erf(x));
        assert!((erf(-x) + want).abs() < 1e-12);
    }
}

#[test]
fn gelu_matches_the_exact_erf_form() {
    let mut rng = StdRng::seed_from_u64(4);
    for (model, d, _, mlp, _) in MODELS {
        for (rows, cols) in [(1500, mlp), (3000, d), (1, mlp)] {
            // Whisper's pre-activations, and the far tails (|x| up to 60) the old tanh form broke on.
            let mut x = random(&mut rng, (rows, cols), 6.0);
            x[[0, 0]] = 60.0;
            x[[0, 1]] = -60.0;
            x[[0, 2]] = 0.0;
            let mut got = x.clone();
            ops().gelu(got.view_mut()).expect("gelu runs");
            let want = x.mapv(|v| {
                let v = v as f64;
                0.5 * v * (1.0 + erf(v * std::f64::consts::FRAC_1_SQRT_2))
            });
            // A&S 7.1.26 erf: 1.5e-7. Its polynomial P(t), t = recip(..) off by 3e-7 relative, moves
            // by at most Σ k|a_k| = 16.2 times that, times e^(-x²/2) (exp off by 1e-6), and ~16 f32
            // roundings: |Δgelu| <= |x|/2 · (1.5e-7 + (16.2·3e-7 + 1e-6)·e^(-x²/2) + 16·2^-24).
            let bound = x.mapv(|v| {
                let v = v as f64;
                0.5 * v.abs() * (1.5e-7 + (16.2 * 3e-7 + 1e-6) * (-0.5 * v * v).exp() + 16.0 * F32_EPS) + 1e-30
            });
            assert_within(&format!("{model} gelu {rows}x{cols}"), got.view(), &want, &bound);
        }
    }
}

/// Reference attention in f64 and its bound: scores from bf16 q and k (error δ per score), the
/// softmax's exp/recip/sum and its bf16 output, then bf16 v and f32 accumulation.
fn attention_reference(q: &Array2<f32>, k: &Array2<f32>, v: &Array2<f32>, heads: usize, causal: bool) -> (Array2<f64>, Array2<f64>) {
    let (nq, d) = q.dim();
    let nk = k.nrows();
    let hd = d / heads;
    let scale = 1.0 / (hd as f64).sqrt();
    let mut want = Array2::<f64>::zeros((nq, d));
    let mut bound = Array2::<f64>::zeros((nq, d));
    let n_pad = nk.div_ceil(64) * 64;
    let eps = 1e-6 + 3e-7 + n_pad as f64 * F32_EPS;
    for h in 0..heads {
        let cols = h * hd..(h + 1) * hd;
        for i in 0..nq {
            let visible = |j: usize| !causal || j <= i + (nk - nq);
            let mut logits = vec![f64::NEG_INFINITY; nk];
            let mut delta: f64 = 0.0;
            for j in (0..nk).filter(|&j| visible(j)) {
                let (mut s, mut a) = (0.0, 0.0);
                for e in cols.clone() {
                    s += q[[i, e]] as f64 * k[[j, e]] as f64;
                    a += (q[[i, e]] as f64 * k[[j, e]] as f64).abs();
                }
                logits[j] = s * scale;
                delta = delta.max((2.0 * U + U * U + hd as f64 * F32_EPS) * a * scale);
            }
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let w: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
            let total: f64 = w.iter().sum();
            let rho = (2.0 * delta).exp() * (1.0 + eps) * (1.0 + U) - 1.0;
            for e in cols.clone() {
                let (mut o, mut a) = (0.0, 0.0);
                for j in 0..nk {
                    let p = w[j] / total;
                    o += p * v[[j, e]] as f64;
                    a += p * (v[[j, e]] as f64).abs();
                }
                want[[i, e]] = o;
                bound[[i, e]] = (rho + (1.0 + rho) * (U + n_pad as f64 * F32_EPS)) * a + 1e-30;
            }
        }
    }
    (want, bound)
}

#[test]
fn attention_matches_the_reference_encoder_self_cross_and_causal() {
    let mut rng = StdRng::seed_from_u64(5);
    for (model, d, heads, ..) in MODELS {
        // Encoder self-attention; decoder cross-attention on 1500 positions (one token, and a
        // 3-token prompt); causal self-attention over the cache (prompt step, then later tokens).
        for (nq, nk, causal) in [
            (1500, 1500, false),
            (1, 1500, false),
            (3, 1500, false),
            (4, 4, true),
            (1, 37, true),
            (2, 130, true),
        ] {
            let q = random(&mut rng, (nq, d), 1.0);
            let k = random(&mut rng, (nk, d), 1.0);
            let v = random(&mut rng, (nk, d), 1.0);
            let got = ops().attention(q.view(), k.view(), v.view(), heads, causal).expect("attention runs");
            let (want, bound) = attention_reference(&q, &k, &v, heads, causal);
            assert_within(&format!("{model} attention {nq}x{nk} causal {causal}"), got.view(), &want, &bound);
        }
    }
}

#[test]
fn log_mel_of_speech_lies_in_the_interval_the_bf16_basis_allows() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/jfk.wav");
    let samples = match whisper::audio::load_audio(&path) {
        Ok(s) => s,
        Err(e) => panic!("{}: {e} (run scripts/fetch-assets.sh)", path.display()),
    };
    let n_mels = 80;
    let got = ops().log_mel(&samples, n_mels).expect("log_mel runs");
    let (padded, frames) = whisper::mel::padded_signal(&samples);
    assert_eq!(got.dim(), (n_mels, frames));
    let window = whisper::mel::periodic_hann(400);
    let filters = whisper::mel::mel_filterbank(n_mels, 400, whisper::audio::SAMPLE_RATE);
    let (cos, sin): (Vec<f64>, Vec<f64>) = (0..400)
        .map(|i| {
            let a = 2.0 * std::f64::consts::PI * i as f64 / 400.0;
            (a.cos(), a.sin())
        })
        .unzip();
    // Per frame and mel band, the interval of log10(power) reachable when every basis value is
    // off by up to U (bf16), the 400-term f32 sums add 400·2^-24 of Σ|terms|, and the filterbank
    // weights are off by U, with log10 off by 3e-7 relative.
    let mut lo = Array2::<f64>::zeros((n_mels, frames));
    let mut hi = Array2::<f64>::zeros((n_mels, frames));
    for t in 0..frames {
        let frame = &padded[t * 160..t * 160 + 400];
        let mut p_lo = vec![0.0; 201];
        let mut p_hi = vec![0.0; 201];
        let abs_sum: f64 = frame.iter().zip(&window).map(|(x, w)| (*x as f64 * *w as f64).abs()).sum();
        let e = (U + 400.0 * F32_EPS) * abs_sum;
        for f in 0..201 {
            let (mut re, mut im) = (0.0, 0.0);
            for s in 0..400 {
                let xw = frame[s] as f64 * window[s] as f64;
                re += xw * cos[(f * s) % 400];
                im += xw * sin[(f * s) % 400];
            }
            let lo_c = |c: f64| (c.abs() - e).max(0.0);
            p_lo[f] = lo_c(re).powi(2) + lo_c(im).powi(2);
            p_hi[f] = (re.abs() + e).powi(2) + (im.abs() + e).powi(2);
        }
        for b in 0..n_mels {
            let (mut l, mut h) = (0.0, 0.0);
            for f in 0..201 {
                let w = filters[[b, f]] as f64;
                l += w * (1.0 - U) * p_lo[f];
                h += w * (1.0 + U) * p_hi[f];
            }
            let fs = 1.0 + 208.0 * F32_EPS;
            lo[[b, t]] = (l / fs).max(1e-10).log10();
            hi[[b, t]] = (h * fs).max(1e-10).log10();
        }
    }
    // Whisper's clamp at (global max - 8) and (x + 4) / 4 are monotone: the kernel's global max
    // lies between the intervals' maxima, so each result lies in the transformed interval.
    let (max_lo, max_hi) = (lo.fold(f64::MIN, |a, &b| a.max(b)), hi.fold(f64::MIN, |a, &b| a.max(b)));
    let mut worst = 0.0f64;
    for ((b, t), &g) in got.indexed_iter() {
        let slack = 1e-6 * (1.0 + lo[[b, t]].abs());
        let low = (lo[[b, t]].max(max_lo - 8.0) + 4.0) / 4.0 - slack;
        let high = (hi[[b, t]].max(max_hi - 8.0) + 4.0) / 4.0 + slack;
        assert!((low..=high).contains(&(g as f64)), "log-mel band {b} frame {t}: {g} outside [{low}, {high}]");
        worst = worst.max(high - low);
    }
    eprintln!("log-mel of jfk.wav: every value within its interval (widest interval {worst:.4})");
}

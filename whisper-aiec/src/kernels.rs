//! The Whisper kernels, written with aiec's Rust builder. Each [`KernelSpec`] is one shape class:
//! its dims are bound when the kernel is generated, so every shape the model calls an op at maps
//! to one design (the caller pads to the class, see [`crate::shapes`]).
//!
//! Five kernels carry every heavy op of the model:
//! * [`KernelSpec::Matmul`]: `C[H, M, N] = Σ_K A[H, M, K] · B[H, K, N]`, bfloat16 operands on the
//!   target's bf16 MAC shape, f32 accumulation and result. Linear layers (the bias travels as one
//!   more row of B, matched by a column of ones in A: a compute tile has two input channels, so a
//!   third operand would not fit), both conv1d layers (as im2col + matmul), the attention scores
//!   `Q·Kᵀ` and `P·V` (all heads in one call, `H` = heads) and the logits projection.
//! * [`KernelSpec::Softmax`]: `P = softmax_N(S · scale + mask)` per row, as bf16 (the next matmul's
//!   operand); the additive mask (0 or -inf, exact in bf16) carries causality and key padding.
//! * [`KernelSpec::LayerNorm`], f32 in and out.
//! * [`KernelSpec::Gelu`], the exact erf form through Abramowitz & Stegun 7.1.26 (|erf error| ≤
//!   1.5e-7, so the GELU error is at most 0.75e-7·|x| plus f32 rounding of exp and recip).
//! * [`KernelSpec::LogMel`]: Whisper's log-mel for 3000 frames: the DFT as a matmul against a
//!   Hann-windowed cos/sin basis, power, the mel filterbank and `log10(max(x, 1e-10))` (Whisper's
//!   dynamic-range clamp and scaling need the whole clip's maximum and stay on the host).
//!
//! The compiler knows none of these by name: they are ordinary kernels.

use aiec::dsl::builder::{abs, exp, log10, max2, maxr, recip, rsqrt, sum, Ext, Kernel};
use aiec::ir;
use aiec::CompileError;
use aiec_runtime::DType;

/// Reduction tile of every matmul (a multiple of the bf16 MAC shape's K = 8 on both targets).
pub const MATMUL_TILE_K: usize = 32;
/// Column tile of every matmul (a multiple of the bf16 MAC shape's N = 4 on both targets).
pub const MATMUL_TILE_N: usize = 64;
/// Layer-norm epsilon of every Whisper checkpoint.
pub const LN_EPS: f32 = 1e-5;
/// Frames per log-mel call: one 30 s window.
pub const MEL_FRAMES: usize = 3000;
/// Samples in one STFT frame and the hop between frames (Whisper's n_fft and hop length).
pub const MEL_N_FFT: usize = 400;
pub const MEL_HOP: usize = 160;
/// DFT bins kept (n_fft / 2 + 1), padded to the frequency tile.
pub const MEL_BINS: usize = MEL_N_FFT / 2 + 1;
pub const MEL_BINS_PADDED: usize = 208;
/// Padded audio samples one log-mel call reads: frame `t` is `audio[160 t .. 160 t + 400]`.
pub const MEL_AUDIO: usize = MEL_FRAMES * MEL_HOP + MEL_N_FFT;

/// One kernel at one shape class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelSpec {
    /// `C[batch, m, n] = Σ_k A[batch, m, k] · B[batch, k, n]`, bf16 x bf16 -> f32.
    Matmul { batch: usize, m: usize, k: usize, n: usize },
    /// `P[batch, m, n] = softmax_n(S[batch, m, n] / sqrt(head_dim) + mask[m, n])`, f32 -> bf16.
    Softmax { batch: usize, m: usize, n: usize, head_dim: usize },
    /// Layer normalisation of `x[m, d]` with `gb[0]` = scale, `gb[1]` = shift, eps [`LN_EPS`].
    LayerNorm { m: usize, d: usize },
    /// Exact GELU of `x[m, n]`, f32.
    Gelu { m: usize, n: usize },
    /// `logmel[3000, n_mels] = log10(max(mel power, 1e-10))` from 3000 frames of padded audio.
    LogMel { n_mels: usize },
}

impl KernelSpec {
    /// The op family, as the report names it.
    pub fn family(&self) -> &'static str {
        match self {
            KernelSpec::Matmul { .. } => "matmul",
            KernelSpec::Softmax { .. } => "softmax",
            KernelSpec::LayerNorm { .. } => "layernorm",
            KernelSpec::Gelu { .. } => "gelu",
            KernelSpec::LogMel { .. } => "logmel",
        }
    }

    /// A short shape description, e.g. `6x1536x64x1536`.
    pub fn shape(&self) -> String {
        match *self {
            KernelSpec::Matmul { batch, m, k, n } => format!("{batch}x{m}x{k}x{n}"),
            KernelSpec::Softmax { batch, m, n, .. } => format!("{batch}x{m}x{n}"),
            KernelSpec::LayerNorm { m, d } => format!("{m}x{d}"),
            KernelSpec::Gelu { m, n } => format!("{m}x{n}"),
            KernelSpec::LogMel { n_mels } => format!("{MEL_FRAMES}x{n_mels}"),
        }
    }

    /// A file-name-safe identity of the kernel and its shape.
    pub fn name(&self) -> String {
        format!("{}_{}", self.family(), self.shape())
    }

    /// The kernel, dims bound to this shape class.
    pub fn kernel(&self) -> Result<ir::Kernel, CompileError> {
        match *self {
            KernelSpec::Matmul { batch, m, k, n } => matmul(batch, m, k, n),
            KernelSpec::Softmax { batch, m, n, head_dim } => softmax(batch, m, n, head_dim),
            KernelSpec::LayerNorm { m, d } => layer_norm(m, d),
            KernelSpec::Gelu { m, n } => gelu(m, n),
            KernelSpec::LogMel { n_mels } => log_mel(n_mels),
        }
    }
}

/// The row tile of a matmul with `m` rows: 64 where it divides, else 16, else the bf16 MAC's 4.
pub fn matmul_row_tile(m: usize) -> usize {
    [64, 16, 4].into_iter().find(|&t| m.is_multiple_of(t)).unwrap_or(4)
}

fn matmul(batch: usize, m: usize, k: usize, n: usize) -> Result<ir::Kernel, CompileError> {
    let row_tile = matmul_row_tile(m);
    let mut kn = Kernel::new("matmul");
    let h = kn.dim("H", batch as u64).tile(1);
    let md = kn.dim("M", m as u64).tile(row_tile as u64);
    let nd = kn.dim("N", n as u64).tile(MATMUL_TILE_N as u64);
    let kd = kn.dim("K", k as u64).tile(MATMUL_TILE_K as u64);
    let a = kn.input("A", DType::Bf16, [h, md, kd]);
    let b = kn.input("B", DType::Bf16, [h, kd, nd]);
    let c = kn.output("C", DType::F32, [h, md, nd]);
    // Row tiles over the array's rows and column tiles over its columns; with a few rows (decoding)
    // and several heads, one head per column instead (heads over rows would need 7 streams out of a
    // memory tile, which has 6).
    if m / row_tile >= 4 || batch == 1 {
        kn.spread_rows(md);
        kn.spread_cols(nd);
    } else {
        kn.spread_cols(h);
    }
    kn.assign(c.at([h, md, nd]), sum([kd], a.at([h, md, kd]) * b.at([h, kd, nd])));
    kn.build()
}

fn softmax(batch: usize, m: usize, n: usize, head_dim: usize) -> Result<ir::Kernel, CompileError> {
    let scale = 1.0 / (head_dim as f64).sqrt();
    let mut kn = Kernel::new("softmax");
    let h = kn.dim("H", batch as u64).tile(1);
    let md = kn.dim("M", m as u64).tile(2);
    let nd = kn.dim("N", n as u64).whole();
    let s = kn.input("S", DType::F32, [h, md, nd]);
    let mask = kn.input("mask", DType::Bf16, [md, nd]);
    let p = kn.output("P", DType::Bf16, [h, md, nd]);
    let mx = kn.local("mx", DType::F32, [h, md]);
    let inv = kn.local("inv", DType::F32, [h, md]);
    // S and mask both arrive per row: over all 16 cores, 9 streams would leave a memory tile (6
    // can), so the compiler's placement search settles on 2 rows x 4 columns (8 cores).
    kn.spread_cores(md);
    let logit = || s.at([h, md, nd]) * scale + mask.at([md, nd]);
    kn.assign(mx.at([h, md]), maxr([nd], logit()));
    kn.assign(inv.at([h, md]), recip(sum([nd], exp(logit() - mx.at([h, md])))));
    kn.assign(p.at([h, md, nd]), exp(logit() - mx.at([h, md])) * inv.at([h, md]));
    kn.build()
}

fn layer_norm(m: usize, d: usize) -> Result<ir::Kernel, CompileError> {
    let inv_d = 1.0 / d as f64;
    let mut kn = Kernel::new("layernorm");
    let md = kn.dim("M", m as u64).tile(4);
    let dd = kn.dim("D", d as u64).whole();
    let x = kn.input("x", DType::F32, [md, dd]);
    let gb = kn.input("gb", DType::F32, [Ext::from(2u64), Ext::from(dd)]);
    let y = kn.output("y", DType::F32, [md, dd]);
    let mean = kn.local("mean", DType::F32, [md]);
    let rstd = kn.local("rstd", DType::F32, [md]);
    kn.spread_cores(md);
    kn.assign(mean.at([md]), sum([dd], x.at([md, dd])) * inv_d);
    let centred = || x.at([md, dd]) - mean.at([md]);
    kn.assign(rstd.at([md]), rsqrt(sum([dd], centred() * centred()) * inv_d + LN_EPS as f64));
    kn.assign(y.at([md, dd]), centred() * rstd.at([md]) * gb.at((0, dd)) + gb.at((1, dd)));
    kn.build()
}

/// The column tile of the GELU kernel: the largest multiple of 16 up to 512 dividing `n`.
pub fn gelu_col_tile(n: usize) -> usize {
    (1..=32).rev().map(|k| 16 * k).find(|&t| n.is_multiple_of(t)).unwrap_or(n)
}

fn gelu(m: usize, n: usize) -> Result<ir::Kernel, CompileError> {
    // A&S 7.1.26: erf(u) = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e^(-u²), t = 1 / (1 + p u), u ≥ 0.
    const P: f64 = 0.327_591_1;
    const A: [f64; 5] = [0.254_829_592, -0.284_496_736, 1.421_413_741, -1.453_152_027, 1.061_405_429];
    let mut kn = Kernel::new("gelu");
    let md = kn.dim("M", m as u64).tile(4);
    let nd = kn.dim("N", n as u64).tile(gelu_col_tile(n) as u64);
    let x = kn.input("x", DType::F32, [md, nd]);
    let y = kn.output("y", DType::F32, [md, nd]);
    kn.spread_cores(md);
    let xv = || x.at([md, nd]);
    // u = |x| / √2; gelu(x) = x/2 (1 + erf(x/√2)) = (x + |x| erf(u)) / 2, since erf is odd.
    let t = || recip(1.0 + (P * std::f64::consts::FRAC_1_SQRT_2) * abs(xv()));
    let poly = t() * (A[0] + t() * (A[1] + t() * (A[2] + t() * (A[3] + t() * A[4]))));
    let erf_u = 1.0 - poly * exp(-0.5 * xv() * xv());
    kn.assign(y.at([md, nd]), 0.5 * (xv() + abs(xv()) * erf_u));
    kn.build()
}

fn log_mel(n_mels: usize) -> Result<ir::Kernel, CompileError> {
    let mut kn = Kernel::new("logmel");
    let t = kn.dim("T", MEL_FRAMES as u64).tile(5);
    let s = kn.dim("S", MEL_N_FFT as u64).whole();
    let f = kn.dim("F", MEL_BINS_PADDED as u64).tile(8);
    let b = kn.dim("B", n_mels as u64).whole();
    let audio = kn.input("audio", DType::F32, [MEL_AUDIO as u64]);
    let basis = kn.input("basis", DType::Bf16, [Ext::from(f), Ext::from((2 * MEL_N_FFT + n_mels) as u64)]);
    let logmel = kn.output("logmel", DType::F32, [t, b]);
    let re = kn.local("re", DType::F32, [t, f]);
    let im = kn.local("im", DType::F32, [t, f]);
    let power = kn.local("power", DType::F32, [t, b]);
    kn.spread_cores(t);
    let frame = || audio.at([MEL_HOP as i64 * t + s]);
    kn.assign(re.at([t, f]), sum([s], frame() * basis.at([f, s])));
    kn.assign(im.at([t, f]), sum([s], frame() * basis.at((f, MEL_N_FFT as i64 + s))));
    let pw = re.at([t, f]) * re.at([t, f]) + im.at([t, f]) * im.at([t, f]);
    kn.assign(power.at([t, b]), sum([f], pw * basis.at((f, 2 * MEL_N_FFT as i64 + b))));
    kn.assign(logmel.at([t, b]), log10(max2(power.at([t, b]), 1e-10)));
    kn.build()
}

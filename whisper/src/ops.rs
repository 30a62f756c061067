//! The one boundary every heavy op of the model goes through.
//!
//! Nothing in the model multiplies matrices or computes the log-mel spectrogram itself: it
//! calls [`Ops`]. The boundary is
//!
//! * **fallible**: every op returns `Result<_, OpsError>`, so a backend that can fail (a device
//!   that is gone, a kernel that does not fit, a shape it does not support) reports an error
//!   instead of panicking; the model passes it on as [`crate::model::ModelError::Ops`];
//! * **injectable**: [`crate::transcribe::Transcriber`] takes its ops as an `Arc<dyn Ops>` from
//!   the caller, so another implementation (for example one on compiled NPU kernels, in another
//!   crate) can take over every heavy op, the log-mel front end included.
//!
//! [`CpuOps`] is the reference implementation (matrixmultiply sgemm and rustfft, parallel with
//! rayon; int8 products in [`crate::quant`] and, on CPUs with AVX-512, fused attention for
//! 64-wide heads); other implementations are checked against it.
//!
//! Layout conventions: activations are row-major `[rows, features]` (time-major for the
//! encoder), weights are stored as the checkpoints store them, `[out_features, in_features]`.

use half::f16;
use ndarray::{s, Array2, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut2, Axis};
use rayon::prelude::*;

use crate::quant::QuantWeights;

/// Failure of one op: which op, and why (a backend's own error, boxed).
#[derive(Debug, thiserror::Error)]
#[error("{op}: {source}")]
pub struct OpsError {
    /// Name of the [`Ops`] method that failed (`"linear"`, `"attention"`, `"log_mel"`, ...).
    pub op: &'static str,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl OpsError {
    /// `source` may be any error type or a message (`&str`, `String`).
    pub fn new(op: &'static str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { op, source: source.into() }
    }
}

/// Heavy ops used by the Whisper front end, encoder and decoder.
pub trait Ops: Send + Sync {
    /// Whisper's log-mel spectrogram `[n_mels, frames]` of 16 kHz mono `samples`, with 30 s of
    /// silence appended: exactly what [`crate::mel::log_mel_spectrogram`] returns, so
    /// `frames = (samples.len() + N_SAMPLES) / HOP_LENGTH`. [`crate::mel`] exposes the pieces
    /// (padding and framing, window, filterbank, dynamic-range step) to build it from.
    fn log_mel(&self, samples: &[f32], n_mels: usize) -> Result<Array2<f32>, OpsError>;

    /// `x[n, in] · w[out, in]ᵀ + b` -> `[n, out]`.
    fn linear(&self, x: ArrayView2<f32>, w: ArrayView2<f32>, bias: Option<ArrayView1<f32>>) -> Result<Array2<f32>, OpsError>;

    /// [`Ops::linear`] with half-precision weights (the decoder's storage: decoding one token
    /// is bound by memory traffic, which f16 halves). Accumulates in f32.
    fn linear_f16(&self, x: ArrayView2<f32>, w: ArrayView2<f16>, bias: Option<ArrayView1<f32>>) -> Result<Array2<f32>, OpsError>;

    /// 1-D convolution over time. `x` is time-major `[t, c_in]`, `w` is `[c_out, c_in, k]`;
    /// zero padding `pad` on both sides. Returns time-major `[t_out, c_out]`.
    fn conv1d(&self, x: ArrayView2<f32>, w: ArrayView3<f32>, bias: ArrayView1<f32>, stride: usize, pad: usize) -> Result<Array2<f32>, OpsError>;

    /// Layer normalisation of every row with the learned scale and shift.
    fn layer_norm(&self, x: ArrayView2<f32>, gamma: ArrayView1<f32>, beta: ArrayView1<f32>, eps: f32) -> Result<Array2<f32>, OpsError>;

    /// Exact (erf) GELU, in place.
    fn gelu(&self, x: ArrayViewMut2<f32>) -> Result<(), OpsError>;

    /// Scaled dot-product multi-head attention. `q` is `[n_q, d]`, `k` and `v` are `[n_k, d]`,
    /// `d = heads * head_dim`. With `causal`, query `i` sees keys `0 ..= i + (n_k - n_q)` (the
    /// queries are the last `n_q` positions of the sequence). Returns `[n_q, d]`.
    fn attention(&self, q: ArrayView2<f32>, k: ArrayView2<f32>, v: ArrayView2<f32>, heads: usize, causal: bool) -> Result<Array2<f32>, OpsError>;

    /// [`Ops::linear`] with int8 weights quantised per output channel (the `int8` compute
    /// type). The default widens the weights and calls [`Ops::linear`]; [`CpuOps`] quantises
    /// the activations per row too and multiplies in integers.
    fn linear_i8(&self, x: ArrayView2<f32>, w: &QuantWeights, bias: Option<ArrayView1<f32>>) -> Result<Array2<f32>, OpsError> {
        self.linear(x, w.dequantize().view(), bias)
    }

    /// [`Ops::linear_i8`] followed by [`Ops::gelu`] (the MLP's first layer), which a backend
    /// may fuse.
    fn linear_i8_gelu(&self, x: ArrayView2<f32>, w: &QuantWeights, bias: Option<ArrayView1<f32>>) -> Result<Array2<f32>, OpsError> {
        let mut y = self.linear_i8(x, w, bias)?;
        self.gelu(y.view_mut())?;
        Ok(y)
    }

    /// [`Ops::conv1d`] with int8 weights: `w` is the `[c_out, c_in, k]` kernel flattened to
    /// `[c_out, c_in * k]` and quantised; with `gelu`, GELU follows (the encoder's convolutions).
    #[allow(clippy::too_many_arguments)]
    fn conv1d_i8(
        &self,
        x: ArrayView2<f32>,
        w: &QuantWeights,
        k: usize,
        bias: ArrayView1<f32>,
        stride: usize,
        pad: usize,
        gelu: bool,
    ) -> Result<Array2<f32>, OpsError> {
        let (c_out, cols) = w.dim();
        if k == 0 || cols % k != 0 {
            return Err(shape_error("conv1d_i8", format!("weight [{c_out}, {cols}] is not [c_out, c_in * {k}]")));
        }
        let w3 = w.dequantize().into_shape_with_order((c_out, cols / k, k)).expect("same length");
        let mut y = self.conv1d(x, w3.view(), bias, stride, pad)?;
        if gelu {
            self.gelu(y.view_mut())?;
        }
        Ok(y)
    }

    /// Runs `f`, which makes many calls to these ops, where they start their parallel work
    /// most cheaply. The default runs it on the calling thread; [`CpuOps`] runs it on one of its
    /// pool's threads, so that each of the many small calls of decoding a token runs there
    /// directly instead of handing its work to the pool and waiting for it.
    fn run(&self, f: &mut (dyn FnMut() + Send)) {
        f()
    }

    /// Keys and values `[n_k, d]` that many [`Ops::attention_prepared`] calls will attend to
    /// (a window's cross-attention), converted once into this backend's own form; `None` (the
    /// default) when the backend has none, and then [`Ops::attention`] is used.
    fn prepare_kv(&self, k: ArrayView2<f32>, v: ArrayView2<f32>, heads: usize) -> Result<Option<PreparedKv>, OpsError> {
        let _ = (k, v, heads);
        Ok(None)
    }

    /// [`Ops::attention`] without a mask against keys and values from [`Ops::prepare_kv`].
    fn attention_prepared(&self, q: ArrayView2<f32>, kv: &PreparedKv) -> Result<Array2<f32>, OpsError> {
        let _ = (q, kv);
        Err(OpsError::new("attention_prepared", "this backend prepares no keys and values"))
    }
}

/// Keys and values prepared by [`CpuOps::prepare_kv`]: per head, the keys in blocks of 32
/// positions and the values, both f16 (half the memory traffic of every decoding step).
pub struct PreparedKv(crate::attn::PackedKv<f16>);

impl std::fmt::Debug for PreparedKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreparedKv({} keys, {} heads, f16)", self.0.keys(), self.0.heads())
    }
}

/// CPU reference implementation: f32 sgemm from matrixmultiply, parallel over rows/heads with
/// rayon; the log-mel is [`crate::mel::log_mel_spectrogram`] (rustfft) on the same thread pool.
pub struct CpuOps {
    pool: rayon::ThreadPool,
    threads: usize,
}

/// Failure to build the CPU thread pool.
#[derive(Debug, thiserror::Error)]
#[error("cannot create a thread pool with {threads} threads: {source}")]
pub struct ThreadPoolError {
    pub threads: usize,
    #[source]
    pub source: rayon::ThreadPoolBuildError,
}

/// Cores this process may run on ([`std::thread::available_parallelism`]; 1 if unknown).
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The worker threads used for a request of `requested`: 0 means every available core, and
/// more than [`available_threads`] is capped to it. The work is CPU-bound, so extra threads only
/// add start-up and synchronisation: 1000 threads made a 0.8 s transcription take 67 s.
pub fn effective_threads(requested: usize) -> usize {
    let available = available_threads();
    if requested == 0 {
        available
    } else {
        requested.min(available)
    }
}

impl CpuOps {
    /// `threads = 0` uses every available core; more threads than cores are capped
    /// ([`effective_threads`]).
    pub fn new(threads: usize) -> Result<Self, ThreadPoolError> {
        let threads = effective_threads(threads);
        single_threaded_sgemm();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|source| ThreadPoolError { threads, source })?;
        Ok(Self { pool, threads })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Row-block size that gives every thread about one block.
    fn block(&self, n: usize, min: usize) -> usize {
        n.div_ceil(self.threads).max(min).max(1)
    }
}

/// Keeps matrixmultiply from starting its own threads inside each of ours: the row/head split
/// of [`CpuOps`] is the only parallelism, so that its thread count really bounds the cores used.
/// matrixmultiply reads `MATMUL_NUM_THREADS` once, at its first large product in the process,
/// so call this before any ndarray `dot` (loading a model does). An explicit setting wins.
pub fn single_threaded_sgemm() {
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
}

/// `c[m, n] = a[m, k] · b[k, n]` (overwrite), any strides, one thread.
fn sgemm_into(a: ArrayView2<f32>, b: ArrayView2<f32>, c: ArrayViewMut2<f32>) {
    sgemm_scaled_into(a, b, c, 1.0)
}

/// `c[m, n] = alpha · a[m, k] · b[k, n]` (overwrite), any strides, one thread.
fn sgemm_scaled_into(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>, alpha: f32) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "sgemm inner dimensions");
    assert_eq!(c.dim(), (m, n), "sgemm output shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let (rsa, csa) = (a.strides()[0], a.strides()[1]);
    let (rsb, csb) = (b.strides()[0], b.strides()[1]);
    let (rsc, csc) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the pointers and strides come from live ndarray views whose shapes were checked
    // above; matrixmultiply reads a/b and writes c only within those bounds.
    unsafe {
        matrixmultiply::sgemm(m, k, n, alpha, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, 0.0, c.as_mut_ptr(), rsc, csc);
    }
}

/// True when the CPU has AVX2 and FMA (checked once, cached by std).
#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Dot product with several independent accumulators so the compiler vectorises it.
#[inline(always)]
fn dot_body(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 32];
    let mut ca = a.chunks_exact(32);
    let mut cb = b.chunks_exact(32);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..32 {
            acc[i] = x[i].mul_add(y[i], acc[i]);
        }
    }
    let mut sum = 0.0;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sum += x * y;
    }
    sum + acc.iter().sum::<f32>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    dot_body(a, b)
}

/// Dot product of two slices (the shorter length wins).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports the enabled features (checked above).
        return unsafe { dot_avx2(a, b) };
    }
    let n = a.len().min(b.len());
    let mut acc = [0.0f32; 8];
    let mut ca = a[..n].chunks_exact(8);
    let mut cb = b[..n].chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    tail + acc.iter().sum::<f32>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_f16_avx2(a: &[f32], b: &[f16]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 32 <= n {
        for (u, acc) in acc.iter_mut().enumerate() {
            let j = i + 8 * u;
            // SAFETY: j + 8 <= n for both slices.
            let w = _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().add(j) as *const __m128i));
            let x = _mm256_loadu_ps(a.as_ptr().add(j));
            *acc = _mm256_fmadd_ps(x, w, *acc);
        }
        i += 32;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut lanes = [0.0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
    let mut total: f32 = lanes.iter().sum();
    while i < n {
        total += a[i] * b[i].to_f32();
        i += 1;
    }
    total
}

/// Dot product of f32 activations with f16 weights.
#[inline]
pub fn dot_f16(a: &[f32], b: &[f16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() && is_x86_feature_detected!("f16c") {
        // SAFETY: the CPU supports the enabled features (checked above).
        return unsafe { dot_f16_avx2(a, b) };
    }
    a.iter().zip(b).map(|(x, w)| x * w.to_f32()).sum()
}

/// `y += alpha * x`.
#[inline(always)]
fn axpy_body(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = alpha.mul_add(*x, *y);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(alpha: f32, x: &[f32], y: &mut [f32]) {
    axpy_body(alpha, x, y)
}

#[inline]
fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports the enabled features (checked above).
        return unsafe { axpy_avx2(alpha, x, y) };
    }
    axpy_body(alpha, x, y)
}

/// e^x in f32 without libm calls so that loops over it vectorise: range reduction to
/// x = n·ln2 + r, |r| <= ln2/2, and a degree-6 polynomial for e^r (relative error ~1e-7).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    // ln2 split in two parts so that n·ln2 is exact enough.
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let er = (p * r).mul_add(r, r) + 1.0;
    er * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Error function, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / a.mul_add(0.327_591_1, 1.0);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp_f32(-a * a);
    if x < 0.0 {
        -y
    } else {
        y
    }
}

/// Exact GELU: x · Φ(x) = x/2 · (1 + erf(x/√2)).
#[inline(always)]
pub fn gelu_scalar(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_body(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu_scalar(*v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(x: &mut [f32]) {
    gelu_body(x)
}

pub(crate) fn gelu_slice(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::attn::available() {
        // SAFETY: the CPU has AVX-512F (checked).
        return unsafe { crate::attn::avx512::gelu(x) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports the enabled features (checked above).
        return unsafe { gelu_avx2(x) };
    }
    gelu_body(x)
}

#[inline(always)]
fn softmax_body(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        // Every entry masked: keep a defined result instead of NaN.
        row.fill(0.0);
        return;
    }
    for v in row.iter_mut() {
        *v = exp_f32(*v - max);
    }
    // Masked entries come out as e^-87 ≈ 1.6e-38, not 0; clear them so masks are exact.
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        if *v < 1e-37 {
            *v = 0.0;
        }
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_avx2(row: &mut [f32]) {
    softmax_body(row)
}

fn softmax_in_place(row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports the enabled features (checked above).
        return unsafe { softmax_avx2(row) };
    }
    softmax_body(row)
}

/// The error of an op called with operands that do not fit together.
fn shape_error(op: &'static str, problem: String) -> OpsError {
    OpsError::new(op, problem)
}

/// Checks that an optional bias has one entry per output feature.
fn check_bias(op: &'static str, bias: Option<ArrayView1<f32>>, d_out: usize) -> Result<(), OpsError> {
    match bias {
        Some(b) if b.len() != d_out => Err(shape_error(op, format!("bias of {} values for {d_out} output features", b.len()))),
        _ => Ok(()),
    }
}

impl CpuOps {
    /// im2col of time-major `x[t, c_in]` for a kernel of width `k`: row `to` holds input
    /// `c` at time `to * stride + j - pad` in column `c * k + j` (zero outside the input), the
    /// memory order of a `[c_out, c_in, k]` weight.
    fn im2col(&self, x: ArrayView2<f32>, k: usize, stride: usize, pad: usize) -> Array2<f32> {
        let (t, c_in) = x.dim();
        let t_out = (t + 2 * pad).saturating_sub(k) / stride + 1;
        let mut cols = Array2::<f32>::zeros((t_out, c_in * k));
        // Rows as slices: the log-mel arrives transposed, and indexed views cost a stride
        // multiply and a bounds check per element.
        let x = x.as_standard_layout();
        let xs = x.as_slice().expect("standard layout");
        let rows = self.block(t_out, 64);
        self.pool.install(|| {
            cols.axis_chunks_iter_mut(Axis(0), rows)
                .into_par_iter()
                .enumerate()
                .for_each(|(bi, mut chunk)| {
                    let dst = chunk.as_slice_mut().expect("standard layout");
                    for (r, row) in dst.chunks_exact_mut(c_in * k).enumerate() {
                        let to = bi * rows + r;
                        for j in 0..k {
                            let ti = (to * stride + j) as isize - pad as isize;
                            if ti < 0 || ti as usize >= t {
                                continue;
                            }
                            let src = &xs[ti as usize * c_in..(ti as usize + 1) * c_in];
                            for (d, &v) in row[j..].iter_mut().step_by(k).zip(src) {
                                *d = v;
                            }
                        }
                    }
                });
        });
        cols
    }
}

impl Ops for CpuOps {
    fn conv1d_i8(
        &self,
        x: ArrayView2<f32>,
        w: &QuantWeights,
        k: usize,
        bias: ArrayView1<f32>,
        stride: usize,
        pad: usize,
        gelu: bool,
    ) -> Result<Array2<f32>, OpsError> {
        let (c_out, width) = w.dim();
        if k == 0 || width != x.ncols() * k {
            return Err(shape_error(
                "conv1d_i8",
                format!("input channels {} vs weight [{c_out}, {width}] of width {k}", x.ncols()),
            ));
        }
        if stride == 0 {
            return Err(shape_error("conv1d_i8", "stride 0".into()));
        }
        check_bias("conv1d_i8", Some(bias), c_out)?;
        let cols = self.im2col(x, k, stride, pad);
        Ok(self.pool.install(|| crate::quant::linear(cols.view(), w, Some(bias), gelu, self.threads)))
    }

    fn run(&self, f: &mut (dyn FnMut() + Send)) {
        self.pool.install(f)
    }

    fn prepare_kv(&self, k: ArrayView2<f32>, v: ArrayView2<f32>, heads: usize) -> Result<Option<PreparedKv>, OpsError> {
        let (n_k, d) = k.dim();
        if heads == 0 || d != heads * crate::attn::HEAD_DIM || v.dim() != (n_k, d) || n_k == 0 || !crate::attn::available() {
            return Ok(None);
        }
        let packed = self.pool.install(|| crate::attn::PackedKv::pack(k, v, heads, self.threads > 1, f16::from_f32));
        Ok(Some(PreparedKv(packed)))
    }

    fn attention_prepared(&self, q: ArrayView2<f32>, kv: &PreparedKv) -> Result<Array2<f32>, OpsError> {
        if q.ncols() != kv.0.heads() * crate::attn::HEAD_DIM {
            return Err(shape_error(
                "attention_prepared",
                format!("queries of {} features for {} heads", q.ncols(), kv.0.heads()),
            ));
        }
        let parallel = self.threads > 1 && 2 * q.nrows() * kv.0.keys() * q.ncols() >= crate::quant::SERIAL_WORK;
        Ok(self.pool.install(|| crate::attn::attention_packed_f16(q, &kv.0, parallel)))
    }

    fn linear_i8(&self, x: ArrayView2<f32>, w: &QuantWeights, bias: Option<ArrayView1<f32>>) -> Result<Array2<f32>, OpsError> {
        let (d_out, w_in) = w.dim();
        if x.ncols() != w_in {
            return Err(shape_error("linear_i8", format!("input features {} vs weight [{d_out}, {w_in}]", x.ncols())));
        }
        check_bias("linear_i8", bias, d_out)?;
        Ok(self.pool.install(|| crate::quant::linear(x, w, bias, false, self.threads)))
    }

    fn linear_i8_gelu(&self, x: ArrayView2<f32>, w: &QuantWeights, bias: Option<ArrayView1<f32>>) -> Result<Array2<f32>, OpsError> {
        let (d_out, w_in) = w.dim();
        if x.ncols() != w_in {
            return Err(shape_error(
                "linear_i8_gelu",
                format!("input features {} vs weight [{d_out}, {w_in}]", x.ncols()),
            ));
        }
        check_bias("linear_i8_gelu", bias, d_out)?;
        Ok(self.pool.install(|| crate::quant::linear(x, w, bias, true, self.threads)))
    }

    /// [`crate::mel::log_mel_spectrogram`], run on this instance's thread pool.
    fn log_mel(&self, samples: &[f32], n_mels: usize) -> Result<Array2<f32>, OpsError> {
        self.pool
            .install(|| crate::mel::log_mel_spectrogram(samples, n_mels))
            .map_err(|e| OpsError::new("log_mel", e))
    }

    fn linear(&self, x: ArrayView2<f32>, w: ArrayView2<f32>, bias: Option<ArrayView1<f32>>) -> Result<Array2<f32>, OpsError> {
        let (n, d_in) = x.dim();
        let (d_out, w_in) = w.dim();
        if d_in != w_in {
            return Err(shape_error("linear", format!("input features {d_in} vs weight [{d_out}, {w_in}]")));
        }
        check_bias("linear", bias, d_out)?;
        let mut y = Array2::<f32>::zeros((n, d_out));
        if n <= 8 && w.is_standard_layout() {
            // Few rows (decoding one token per beam): memory-bound, stream every weight row
            // once and dot it with all input rows; split the output features across threads.
            let x = x.as_standard_layout();
            let w_rows = w.as_slice().expect("standard layout");
            let block = self.block(d_out, 256);
            let mut yt = Array2::<f32>::zeros((d_out, n));
            self.pool.install(|| {
                yt.axis_chunks_iter_mut(Axis(0), block).into_par_iter().enumerate().for_each(|(bi, mut out)| {
                    for (r, mut out_row) in out.outer_iter_mut().enumerate() {
                        let o = bi * block + r;
                        let wr = &w_rows[o * d_in..(o + 1) * d_in];
                        for (i, xr) in x.outer_iter().enumerate() {
                            out_row[i] = dot(xr.as_slice().expect("standard layout"), wr);
                        }
                    }
                });
            });
            y.assign(&yt.t());
        } else {
            let wt = w.t();
            let block = self.block(n, 32);
            self.pool.install(|| {
                y.axis_chunks_iter_mut(Axis(0), block)
                    .into_par_iter()
                    .zip(x.axis_chunks_iter(Axis(0), block).into_par_iter())
                    .for_each(|(c, a)| sgemm_into(a, wt, c));
            });
        }
        if let Some(b) = bias {
            y += &b;
        }
        Ok(y)
    }

    fn linear_f16(&self, x: ArrayView2<f32>, w: ArrayView2<f16>, bias: Option<ArrayView1<f32>>) -> Result<Array2<f32>, OpsError> {
        let (n, d_in) = x.dim();
        let (d_out, w_in) = w.dim();
        if d_in != w_in {
            return Err(shape_error("linear_f16", format!("input features {d_in} vs weight [{d_out}, {w_in}]")));
        }
        check_bias("linear_f16", bias, d_out)?;
        if n > 8 || !w.is_standard_layout() {
            // Many rows: widen the weights once and use the f32 matrix product.
            use half::slice::HalfFloatSliceExt;
            let mut wf = Array2::<f32>::zeros((d_out, d_in));
            let block = self.block(d_out, 256);
            self.pool.install(|| {
                wf.axis_chunks_iter_mut(Axis(0), block)
                    .into_par_iter()
                    .zip(w.axis_chunks_iter(Axis(0), block).into_par_iter())
                    .for_each(|(mut dst, src)| match (dst.as_slice_mut(), src.as_slice()) {
                        (Some(d), Some(s)) => s.convert_to_f32_slice(d),
                        (_, _) => dst.zip_mut_with(&src, |d, s| *d = s.to_f32()),
                    });
            });
            return self.linear(x, wf.view(), bias);
        }
        let x = x.as_standard_layout();
        let w_rows = w.as_slice().expect("standard layout");
        let block = self.block(d_out, 256);
        let mut yt = Array2::<f32>::zeros((d_out, n));
        self.pool.install(|| {
            yt.axis_chunks_iter_mut(Axis(0), block).into_par_iter().enumerate().for_each(|(bi, mut out)| {
                for (r, mut out_row) in out.outer_iter_mut().enumerate() {
                    let o = bi * block + r;
                    let wr = &w_rows[o * d_in..(o + 1) * d_in];
                    for (i, xr) in x.outer_iter().enumerate() {
                        out_row[i] = dot_f16(xr.as_slice().expect("standard layout"), wr);
                    }
                }
            });
        });
        let mut y = yt.t().as_standard_layout().into_owned();
        if let Some(b) = bias {
            y += &b;
        }
        Ok(y)
    }

    fn conv1d(&self, x: ArrayView2<f32>, w: ArrayView3<f32>, bias: ArrayView1<f32>, stride: usize, pad: usize) -> Result<Array2<f32>, OpsError> {
        let c_in = x.ncols();
        let (c_out, w_in, k) = w.dim();
        if c_in != w_in {
            return Err(shape_error("conv1d", format!("input channels {c_in} vs weight [{c_out}, {w_in}, {k}]")));
        }
        if stride == 0 {
            return Err(shape_error("conv1d", "stride 0".into()));
        }
        if bias.len() != c_out {
            return Err(shape_error("conv1d", format!("bias of {} values for {c_out} output channels", bias.len())));
        }
        let cols = self.im2col(x, k, stride, pad);
        let w2 = w.as_standard_layout();
        let w2 = w2.view().into_shape_with_order((c_out, c_in * k)).expect("contiguous weight");
        self.linear(cols.view(), w2, Some(bias))
    }

    fn layer_norm(&self, x: ArrayView2<f32>, gamma: ArrayView1<f32>, beta: ArrayView1<f32>, eps: f32) -> Result<Array2<f32>, OpsError> {
        let d = x.ncols();
        if gamma.len() != d || beta.len() != d {
            return Err(shape_error(
                "layer_norm",
                format!("{d} features with gamma of {} and beta of {} values", gamma.len(), beta.len()),
            ));
        }
        let mut y = x.to_owned();
        let inv_d = 1.0 / d as f32;
        let work = |mut row: ndarray::ArrayViewMut1<f32>| {
            let mean = row.sum() * inv_d;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() * inv_d;
            let inv_std = 1.0 / (var + eps).sqrt();
            for ((v, g), b) in row.iter_mut().zip(gamma.iter()).zip(beta.iter()) {
                *v = (*v - mean) * inv_std * g + b;
            }
        };
        if y.nrows() >= 64 {
            self.pool.install(|| y.axis_iter_mut(Axis(0)).into_par_iter().for_each(work));
        } else {
            y.axis_iter_mut(Axis(0)).for_each(work);
        }
        Ok(y)
    }

    fn gelu(&self, mut x: ArrayViewMut2<f32>) -> Result<(), OpsError> {
        let block = self.block(x.nrows(), 16);
        self.pool.install(|| {
            x.axis_chunks_iter_mut(Axis(0), block)
                .into_par_iter()
                .for_each(|mut rows| match rows.as_slice_mut() {
                    Some(s) => gelu_slice(s),
                    None => rows.map_inplace(|v| *v = gelu_scalar(*v)),
                });
        });
        Ok(())
    }

    fn attention(&self, q: ArrayView2<f32>, k: ArrayView2<f32>, v: ArrayView2<f32>, heads: usize, causal: bool) -> Result<Array2<f32>, OpsError> {
        let (n_q, d) = q.dim();
        let n_k = k.nrows();
        if k.dim() != (n_k, d) || v.dim() != (n_k, d) {
            return Err(shape_error(
                "attention",
                format!("queries {:?}, keys {:?} and values {:?} do not fit", q.shape(), k.shape(), v.shape()),
            ));
        }
        if heads == 0 || d % heads != 0 {
            return Err(shape_error("attention", format!("{d} features are not divisible into {heads} heads")));
        }
        if causal && n_k < n_q {
            return Err(shape_error("attention", format!("causal with fewer keys ({n_k}) than queries ({n_q})")));
        }
        let dh = d / heads;
        if dh == crate::attn::HEAD_DIM && n_k > 0 && crate::attn::available() {
            let parallel = self.threads > 1 && 2 * n_q * n_k * d >= crate::quant::SERIAL_WORK;
            return Ok(self.pool.install(|| crate::attn::attention(q, k, v, heads, causal, parallel)));
        }
        let scale = 1.0 / (dh as f32).sqrt();
        let offset = n_k - n_q.min(n_k);
        let contiguous = k.row(0).as_slice().is_some() && v.row(0).as_slice().is_some() && q.is_standard_layout();
        if n_q <= 4 && contiguous && n_k > 0 {
            // Decoding: one query per head; stream the keys and values once with dot/axpy
            // instead of packing them for a matrix product.
            let mut out = Array2::<f32>::zeros((n_q, d));
            let heads_out: Vec<Vec<f32>> = self.pool.install(|| {
                (0..heads * n_q)
                    .into_par_iter()
                    .map(|job| {
                        let (i, h) = (job / heads, job % heads);
                        let visible = if causal { (i + offset + 1).min(n_k) } else { n_k };
                        let qh = &q.row(i).to_slice().expect("standard layout")[h * dh..(h + 1) * dh];
                        let mut scores: Vec<f32> = (0..visible)
                            .map(|j| dot(qh, &k.row(j).to_slice().expect("contiguous rows")[h * dh..(h + 1) * dh]) * scale)
                            .collect();
                        softmax_in_place(&mut scores);
                        let mut o = vec![0.0f32; dh];
                        for (j, &p) in scores.iter().enumerate() {
                            axpy(p, &v.row(j).to_slice().expect("contiguous rows")[h * dh..(h + 1) * dh], &mut o);
                        }
                        o
                    })
                    .collect()
            });
            for (job, o) in heads_out.into_iter().enumerate() {
                let (i, h) = (job / heads, job % heads);
                out.slice_mut(s![i, h * dh..(h + 1) * dh]).assign(&ArrayView1::from(&o[..]));
            }
            return Ok(out);
        }
        // Queries in blocks: the scores of one block stay in cache and the buffer is reused
        // instead of allocating (and page-faulting) n_q x n_k floats per head.
        const BLOCK: usize = 128;
        let per_head: Vec<Array2<f32>> = self.pool.install(|| {
            (0..heads)
                .into_par_iter()
                .map(|h| {
                    let cols = s![.., h * dh..(h + 1) * dh];
                    let (qh, kh, vh) = (q.slice(cols), k.slice(cols), v.slice(cols));
                    let mut out = Array2::<f32>::zeros((n_q, dh));
                    let mut buffer = Array2::<f32>::zeros((BLOCK.min(n_q), n_k));
                    for q0 in (0..n_q).step_by(BLOCK) {
                        let rows = BLOCK.min(n_q - q0);
                        let mut scores = buffer.slice_mut(s![..rows, ..]);
                        sgemm_scaled_into(qh.slice(s![q0..q0 + rows, ..]), kh.t(), scores.view_mut(), scale);
                        for (r, mut row) in scores.outer_iter_mut().enumerate() {
                            if causal {
                                row.slice_mut(s![(q0 + r + offset + 1).min(n_k)..]).fill(f32::NEG_INFINITY);
                            }
                            softmax_in_place(row.as_slice_mut().expect("rows of a standard array"));
                        }
                        sgemm_into(scores.view(), vh, out.slice_mut(s![q0..q0 + rows, ..]));
                    }
                    out
                })
                .collect()
        });
        let mut out = Array2::<f32>::zeros((n_q, d));
        for (h, oh) in per_head.into_iter().enumerate() {
            out.slice_mut(s![.., h * dh..(h + 1) * dh]).assign(&oh);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // erf(0.5), erf(1), erf(2) to 7 digits.
        for (x, want) in [
            (0.0f32, 0.0f32),
            (0.5, 0.520_499_9),
            (1.0, 0.842_700_8),
            (2.0, 0.995_322_3),
            (-1.0, -0.842_700_8),
        ] {
            assert!((erf(x) - want).abs() < 5e-7, "erf({x}) = {} want {want}", erf(x));
        }
    }

    #[test]
    fn softmax_matches_naive_and_masks_exactly() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut row: Vec<f32> = (0..300)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 40.0
            })
            .collect();
        row[5] = f32::NEG_INFINITY;
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        let want: Vec<f32> = row.iter().map(|&v| ((v as f64 - max).exp() / sum) as f32).collect();
        softmax_in_place(&mut row);
        let worst = row.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-6, "max difference {worst}");
        assert_eq!(row[5], 0.0, "a masked entry gets exactly zero weight");
        // A row with every entry masked stays defined.
        let mut masked = vec![f32::NEG_INFINITY; 4];
        softmax_in_place(&mut masked);
        assert_eq!(masked, [0.0; 4]);
    }
}

#[cfg(test)]
mod speed {
    #[test]
    #[ignore]
    fn gelu_speed() {
        let mut x: Vec<f32> = (0..3_072_000).map(|i| ((i % 1000) as f32 - 500.0) / 100.0).collect();
        for _ in 0..3 {
            let t = std::time::Instant::now();
            super::gelu_slice(&mut x);
            eprintln!("gelu 3M: {:.2} ms", t.elapsed().as_secs_f64() * 1e3);
        }
    }
}

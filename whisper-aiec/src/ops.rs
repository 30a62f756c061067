//! [`KernelOps`]: whisper's `Ops` on compiled aiec designs.
//!
//! Every call maps to designs of [`KernelSpec`] shape classes ([`crate::shapes`]). Padding is
//! zeros where zeros change nothing (extra rows and reduction terms) and masked where they would
//! (keys beyond the real ones get -inf before the softmax).
//!
//! Weights (and the conv kernels as im2col matrices, the bias as one more row, the mel basis) are
//! converted to bf16 and laid out once, then kept in the loaded design
//! ([`aiec_runtime::LoadedKernel::keep`]); a call copies only activations. A weight is recognised
//! by its address and shape: the model owns its weights, unmoved, for as long as it runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use half::{bf16, f16};
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut2};

use aiec::DeviceModel;
use aiec_runtime::emulator::Emulator;
use aiec_runtime::npu::{NpuBackend, NpuKernel};
use aiec_runtime::{ArgData, LoadedKernel, ResidentId, RuntimeError};
use whisper::ops::{Ops, OpsError};

use crate::cache::{CacheError, KernelCache};
use crate::kernels::{KernelSpec, MEL_AUDIO, MEL_BINS, MEL_BINS_PADDED, MEL_FRAMES, MEL_HOP, MEL_N_FFT};
use crate::report::Report;
use crate::shapes;

/// Where the designs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// aiec's emulator on the host (bit-exact with the NPU's arithmetic as the design states it).
    Emulate,
    /// A Ryzen AI NPU through XRT; needs the full toolchain (Peano) to build each design.
    Npu,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Emulate => "emulate",
            Target::Npu => "npu",
        }
    }
}

/// Why a kernel op failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelOpsError {
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("building {kernel} for the NPU: {source}")]
    Build {
        kernel: String,
        #[source]
        source: aiec::toolchain::driver::BuildError,
    },
    #[error("{0}")]
    Toolchain(String),
    #[error("{what}: {problem}")]
    Shape { what: &'static str, problem: String },
}

/// One design loaded for repeated calls, with the weights stored in it.
struct LoadedDesign {
    kernel: Box<dyn LoadedKernel>,
    /// The cost model's estimate of one run on the device (seconds).
    estimate: f64,
    resident: Mutex<HashMap<WeightKey, ResidentId>>,
}

/// A weight by identity: kind, data address, shape, and the bias's address.
type WeightKey = (u8, usize, [usize; 3], usize);

/// whisper's heavy ops as aiec kernels.
pub struct KernelOps {
    target: Target,
    device: DeviceModel,
    cache: KernelCache,
    emulator: Mutex<Emulator>,
    loaded: Mutex<HashMap<KernelSpec, Arc<LoadedDesign>>>,
    report: Mutex<Report>,
}

/// The time spent in backend runs and the estimate of those runs, for one op call.
#[derive(Default)]
struct Spent {
    backend: Duration,
    estimate: f64,
    kernels: u64,
}

impl KernelOps {
    /// Kernels compiled for `device` (or taken from `cache`) and run on `target`. For the NPU the
    /// NPU and XRT must be there: otherwise this fails, naming what is missing.
    pub fn new(target: Target, device: DeviceModel, cache: KernelCache) -> Result<KernelOps, KernelOpsError> {
        if target == Target::Npu {
            NpuBackend::probe()?;
        }
        let report = Report::new(target.name(), device.name, &cache.dir().display().to_string());
        Ok(KernelOps {
            target,
            device,
            cache,
            emulator: Mutex::new(Emulator::new()),
            loaded: Mutex::new(HashMap::new()),
            report: Mutex::new(report),
        })
    }

    pub fn target(&self) -> Target {
        self.target
    }

    pub fn cache_dir(&self) -> &std::path::Path {
        self.cache.dir()
    }

    /// What ran so far.
    pub fn report(&self) -> Report {
        lock(&self.report).clone()
    }

    /// Sets the audio length the report's realtime factor refers to.
    pub fn set_audio_seconds(&self, seconds: f64) {
        lock(&self.report).audio_seconds = seconds;
    }

    /// The design for `spec`, loaded once.
    fn design(&self, spec: KernelSpec) -> Result<Arc<LoadedDesign>, KernelOpsError> {
        if let Some(d) = lock(&self.loaded).get(&spec) {
            return Ok(d.clone());
        }
        let cached = self.cache.get_or_compile(&spec, &self.device)?;
        let kernel: Box<dyn LoadedKernel> = match self.target {
            Target::Emulate => {
                let text = std::fs::read_to_string(cached.dir.join("design.mlir")).map_err(|source| CacheError::Io {
                    path: cached.dir.join("design.mlir"),
                    source,
                })?;
                let file = cached.dir.join("design.mlir").display().to_string();
                Box::new(lock(&self.emulator).load_mlir(&text, &file)?)
            }
            Target::Npu => {
                if !cached.dir.join("final.xclbin").is_file() {
                    build_for_npu(&spec, &cached.dir, self.device.name)?;
                }
                Box::new(NpuKernel::load(&cached.dir)?)
            }
        };
        let estimate = cached.json.estimate.as_ref().map_or(0.0, |e| e.estimated_seconds);
        let design = Arc::new(LoadedDesign {
            kernel,
            estimate,
            resident: Mutex::new(HashMap::new()),
        });
        {
            let mut report = lock(&self.report);
            report.designs.insert(spec.name());
            report.compiled += cached.compiled as usize;
        }
        lock(&self.loaded).insert(spec, design.clone());
        Ok(design)
    }

    /// Runs `spec` once.
    fn run(&self, spec: KernelSpec, args: &mut [ArgData<'_>], spent: &mut Spent) -> Result<(), KernelOpsError> {
        let design = self.design(spec)?;
        let report = design.kernel.run(args)?;
        spent.backend += report.run;
        spent.estimate += design.estimate;
        spent.kernels += 1;
        Ok(())
    }

    /// The stored copy of a constant operand (argument `argument` of `spec`), made by `layout` the
    /// first time `key` is seen.
    fn resident(&self, spec: KernelSpec, argument: usize, key: WeightKey, layout: impl FnOnce() -> Vec<u8>) -> Result<ResidentId, KernelOpsError> {
        let design = self.design(spec)?;
        let mut resident = lock(&design.resident);
        if let Some(id) = resident.get(&key) {
            return Ok(*id);
        }
        let id = design.kernel.keep(argument, layout())?;
        resident.insert(key, id);
        Ok(id)
    }

    fn record(&self, op: &str, shape: String, started: Instant, spent: Spent) {
        lock(&self.report).record(op, shape, started.elapsed(), spent.backend, spent.kernels, spent.estimate);
    }

    /// `x[n, in] · w[out, in]ᵀ + bias` through the matmul kernel; `w(o, i)` reads the weight.
    fn linear_with(&self, x: ArrayView2<f32>, weight: &Weight<'_>, bias: Option<ArrayView1<f32>>, spent: &mut Spent) -> Result<Array2<f32>, KernelOpsError> {
        let (n, inputs) = x.dim();
        let (outputs, w_inputs) = weight.dim();
        if inputs != w_inputs || bias.is_some_and(|b| b.len() != outputs) {
            return Err(KernelOpsError::Shape {
                what: "linear",
                problem: format!("x is {n}x{inputs}, the weight {outputs}x{w_inputs}, the bias {:?}", bias.map(|b| b.len())),
            });
        }
        let spec = shapes::linear(n, inputs, outputs, bias.is_some());
        let KernelSpec::Matmul { m, k, n: np, .. } = spec else {
            unreachable!("a linear layer is a matmul")
        };
        let key = (weight.kind(), weight.address(), weight.shape3(), bias.map_or(0, |b| b.as_ptr() as usize));
        let b_id = self.resident(spec, 1, key, || {
            let mut b = vec![bf16::ZERO; k * np];
            for o in 0..outputs {
                for i in 0..inputs {
                    b[i * np + o] = bf16::from_f32(weight.at(o, i));
                }
                if let Some(bias) = bias {
                    b[inputs * np + o] = bf16::from_f32(bias[o]);
                }
            }
            bf16_bytes(&b)
        })?;
        let mut a = vec![bf16::ZERO; m * k];
        for (r, row) in x.outer_iter().enumerate() {
            let dst = &mut a[r * k..r * k + inputs];
            for (d, &v) in dst.iter_mut().zip(row.iter()) {
                *d = bf16::from_f32(v);
            }
            if bias.is_some() {
                a[r * k + inputs] = bf16::ONE;
            }
        }
        let a = bf16_bytes(&a);
        let mut c = vec![0u8; m * np * 4];
        self.run(spec, &mut [ArgData::Input(&a), ArgData::Resident(b_id), ArgData::Output(&mut c)], spent)?;
        let c = f32s(&c);
        Ok(Array2::from_shape_fn((n, outputs), |(r, o)| c[r * np + o]))
    }
}

/// A weight matrix `[out, in]` as the model stores it.
enum Weight<'a> {
    F32(ArrayView2<'a, f32>),
    F16(ArrayView2<'a, f16>),
    /// A conv1d kernel `[out, in_channels, taps]` read as the im2col matrix `[out, taps * in_channels]`
    /// (column `j * in_channels + c` is tap `j` of channel `c`).
    Conv(ArrayView3<'a, f32>),
}

impl Weight<'_> {
    fn dim(&self) -> (usize, usize) {
        match self {
            Weight::F32(w) => w.dim(),
            Weight::F16(w) => w.dim(),
            Weight::Conv(w) => (w.dim().0, w.dim().1 * w.dim().2),
        }
    }
    fn at(&self, o: usize, i: usize) -> f32 {
        match self {
            Weight::F32(w) => w[[o, i]],
            Weight::F16(w) => w[[o, i]].to_f32(),
            Weight::Conv(w) => {
                let c_in = w.dim().1;
                w[[o, i % c_in, i / c_in]]
            }
        }
    }
    fn kind(&self) -> u8 {
        match self {
            Weight::F32(_) => 0,
            Weight::F16(_) => 1,
            Weight::Conv(_) => 2,
        }
    }
    fn address(&self) -> usize {
        match self {
            Weight::F32(w) => w.as_ptr() as usize,
            Weight::F16(w) => w.as_ptr() as usize,
            Weight::Conv(w) => w.as_ptr() as usize,
        }
    }
    fn shape3(&self) -> [usize; 3] {
        match self {
            Weight::F32(w) => [w.dim().0, w.dim().1, 0],
            Weight::F16(w) => [w.dim().0, w.dim().1, 0],
            Weight::Conv(w) => [w.dim().0, w.dim().1, w.dim().2],
        }
    }
}

impl Ops for KernelOps {
    fn log_mel(&self, samples: &[f32], n_mels: usize) -> Result<Array2<f32>, OpsError> {
        let started = Instant::now();
        let mut spent = Spent::default();
        let mel = self.log_mel_kernels(samples, n_mels, &mut spent).map_err(|e| OpsError::new("log_mel", e))?;
        self.record("log_mel", format!("{} samples", samples.len()), started, spent);
        Ok(mel)
    }

    fn linear(&self, x: ArrayView2<f32>, w: ArrayView2<f32>, bias: Option<ArrayView1<f32>>) -> Result<Array2<f32>, OpsError> {
        let started = Instant::now();
        let mut spent = Spent::default();
        let shape = format!("{}x{}x{}", x.nrows(), x.ncols(), w.nrows());
        let y = self.linear_with(x, &Weight::F32(w), bias, &mut spent).map_err(|e| OpsError::new("linear", e))?;
        self.record("linear", shape, started, spent);
        Ok(y)
    }

    fn linear_f16(&self, x: ArrayView2<f32>, w: ArrayView2<f16>, bias: Option<ArrayView1<f32>>) -> Result<Array2<f32>, OpsError> {
        let started = Instant::now();
        let mut spent = Spent::default();
        let shape = format!("{}x{}x{}", x.nrows(), x.ncols(), w.nrows());
        let y = self.linear_with(x, &Weight::F16(w), bias, &mut spent).map_err(|e| OpsError::new("linear", e))?;
        self.record("linear", shape, started, spent);
        Ok(y)
    }

    fn conv1d(&self, x: ArrayView2<f32>, w: ArrayView3<f32>, bias: ArrayView1<f32>, stride: usize, pad: usize) -> Result<Array2<f32>, OpsError> {
        let started = Instant::now();
        let mut spent = Spent::default();
        let (t, c_in) = x.dim();
        let (c_out, w_in, taps) = w.dim();
        let shape = format!("{t}x{c_in} k{taps} s{stride} -> {c_out}");
        let result = (|| {
            if w_in != c_in || stride == 0 || t + 2 * pad < taps {
                return Err(KernelOpsError::Shape {
                    what: "conv1d",
                    problem: format!("input {t}x{c_in}, kernel {c_out}x{w_in}x{taps}, stride {stride}, padding {pad}"),
                });
            }
            let t_out = (t + 2 * pad - taps) / stride + 1;
            // im2col: row r holds taps j = 0..taps of input time r * stride + j - pad, channel-minor.
            let cols = Array2::from_shape_fn((t_out, taps * c_in), |(r, i)| {
                let (j, c) = (i / c_in, i % c_in);
                let at = (r * stride + j) as isize - pad as isize;
                if at < 0 || at as usize >= t {
                    0.0
                } else {
                    x[[at as usize, c]]
                }
            });
            self.linear_with(cols.view(), &Weight::Conv(w), Some(bias), &mut spent)
        })();
        let y = result.map_err(|e| OpsError::new("conv1d", e))?;
        self.record("conv1d", shape, started, spent);
        Ok(y)
    }

    fn layer_norm(&self, x: ArrayView2<f32>, gamma: ArrayView1<f32>, beta: ArrayView1<f32>, eps: f32) -> Result<Array2<f32>, OpsError> {
        let started = Instant::now();
        let mut spent = Spent::default();
        let (n, d) = x.dim();
        let result = (|| {
            if gamma.len() != d || beta.len() != d || eps != crate::kernels::LN_EPS {
                return Err(KernelOpsError::Shape {
                    what: "layer_norm",
                    problem: format!("x {n}x{d}, gamma {}, beta {}, eps {eps} (the kernel has eps 1e-5)", gamma.len(), beta.len()),
                });
            }
            let spec = shapes::layer_norm(n, d);
            let m = shapes::pad_rows(n);
            let key = (3, gamma.as_ptr() as usize, [d, 0, 0], beta.as_ptr() as usize);
            let gb = self.resident(spec, 1, key, || f32_bytes(gamma.iter().chain(beta.iter()).copied()))?;
            let xin = f32_bytes(padded_rows(x, m));
            let mut y = vec![0u8; m * d * 4];
            self.run(spec, &mut [ArgData::Input(&xin), ArgData::Resident(gb), ArgData::Output(&mut y)], &mut spent)?;
            let y = f32s(&y);
            Ok(Array2::from_shape_fn((n, d), |(r, c)| y[r * d + c]))
        })();
        let y = result.map_err(|e| OpsError::new("layer_norm", e))?;
        self.record("layer_norm", format!("{n}x{d}"), started, spent);
        Ok(y)
    }

    fn gelu(&self, mut x: ArrayViewMut2<f32>) -> Result<(), OpsError> {
        let started = Instant::now();
        let mut spent = Spent::default();
        let (n, f) = x.dim();
        let result = (|| {
            let spec = shapes::gelu(n, f);
            let m = shapes::pad_rows(n);
            let xin = f32_bytes(padded_rows(x.view(), m));
            let mut y = vec![0u8; m * f * 4];
            self.run(spec, &mut [ArgData::Input(&xin), ArgData::Output(&mut y)], &mut spent)?;
            let y = f32s(&y);
            for ((r, c), v) in x.indexed_iter_mut() {
                *v = y[r * f + c];
            }
            Ok::<(), KernelOpsError>(())
        })();
        result.map_err(|e| OpsError::new("gelu", e))?;
        self.record("gelu", format!("{n}x{f}"), started, spent);
        Ok(())
    }

    fn attention(&self, q: ArrayView2<f32>, k: ArrayView2<f32>, v: ArrayView2<f32>, heads: usize, causal: bool) -> Result<Array2<f32>, OpsError> {
        let started = Instant::now();
        let mut spent = Spent::default();
        let (nq, d) = q.dim();
        let nk = k.nrows();
        let shape = format!("{nq}x{nk}x{d} h{heads}{}", if causal { " causal" } else { "" });
        let y = self
            .attention_kernels(q, k, v, heads, causal, &mut spent)
            .map_err(|e| OpsError::new("attention", e))?;
        self.record("attention", shape, started, spent);
        Ok(y)
    }
}

impl KernelOps {
    /// softmax(Q Kᵀ / √hd + mask) V per head: scores, softmax and the weighted sum as three kernel
    /// calls, every head in each.
    fn attention_kernels(
        &self,
        q: ArrayView2<f32>,
        k: ArrayView2<f32>,
        v: ArrayView2<f32>,
        heads: usize,
        causal: bool,
        spent: &mut Spent,
    ) -> Result<Array2<f32>, KernelOpsError> {
        let (nq, d) = q.dim();
        let nk = k.nrows();
        if heads == 0 || d % heads != 0 || k.dim() != (nk, d) || v.dim() != (nk, d) || nk == 0 || (causal && nq > nk) {
            return Err(KernelOpsError::Shape {
                what: "attention",
                problem: format!("q {nq}x{d}, k {:?}, v {:?}, {heads} heads, causal {causal}", k.dim(), v.dim()),
            });
        }
        let hd = d / heads;
        let [scores_spec, softmax_spec, pv_spec] = shapes::attention(nq, nk, d, heads);
        let KernelSpec::Matmul { m, k: hdp, n: np, .. } = scores_spec else {
            unreachable!("attention scores are a matmul")
        };
        // Q as [H, m, hdp], Kᵀ as [H, hdp, np], V as [H, np, hdp]; zeros elsewhere.
        let mut qh = vec![bf16::ZERO; heads * m * hdp];
        let mut kt = vec![bf16::ZERO; heads * hdp * np];
        let mut vh = vec![bf16::ZERO; heads * np * hdp];
        for h in 0..heads {
            for r in 0..nq {
                for e in 0..hd {
                    qh[(h * m + r) * hdp + e] = bf16::from_f32(q[[r, h * hd + e]]);
                }
            }
            for j in 0..nk {
                for e in 0..hd {
                    kt[(h * hdp + e) * np + j] = bf16::from_f32(k[[j, h * hd + e]]);
                    vh[(h * np + j) * hdp + e] = bf16::from_f32(v[[j, h * hd + e]]);
                }
            }
        }
        // Query i sees keys 0 ..= i + (nk - nq) when causal; padded keys never.
        let neg = bf16::NEG_INFINITY;
        let mask: Vec<bf16> = (0..m * np)
            .map(|at| {
                let (i, j) = (at / np, at % np);
                let visible = j < nk && (!causal || i >= nq || j <= i + (nk - nq));
                if visible {
                    bf16::ZERO
                } else {
                    neg
                }
            })
            .collect();
        let mut scores = vec![0u8; heads * m * np * 4];
        self.run(
            scores_spec,
            &mut [ArgData::Input(&bf16_bytes(&qh)), ArgData::Input(&bf16_bytes(&kt)), ArgData::Output(&mut scores)],
            spent,
        )?;
        let mut probs = vec![0u8; heads * m * np * 2];
        self.run(
            softmax_spec,
            &mut [ArgData::Input(&scores), ArgData::Input(&bf16_bytes(&mask)), ArgData::Output(&mut probs)],
            spent,
        )?;
        let mut out = vec![0u8; heads * m * hdp * 4];
        self.run(
            pv_spec,
            &mut [ArgData::Input(&probs), ArgData::Input(&bf16_bytes(&vh)), ArgData::Output(&mut out)],
            spent,
        )?;
        let out = f32s(&out);
        Ok(Array2::from_shape_fn((nq, d), |(r, c)| {
            let (h, e) = (c / hd, c % hd);
            out[(h * m + r) * hdp + e]
        }))
    }

    /// Whisper's log-mel: frames of the reflect-padded signal, 3000 per kernel call, then the
    /// dynamic-range clamp and scaling over the whole clip on the host.
    fn log_mel_kernels(&self, samples: &[f32], n_mels: usize, spent: &mut Spent) -> Result<Array2<f32>, KernelOpsError> {
        whisper::mel::check_input(samples, n_mels).map_err(|e| KernelOpsError::Shape {
            what: "log_mel",
            problem: e.to_string(),
        })?;
        let (padded, frames) = whisper::mel::padded_signal(samples);
        let spec = KernelSpec::LogMel { n_mels };
        let basis = self.resident(spec, 1, (4, 0, [n_mels, 0, 0], 0), || mel_basis(n_mels))?;
        let mut log_mel = Array2::<f32>::zeros((n_mels, frames));
        let mut start = 0;
        while start < frames {
            let mut audio = vec![0f32; MEL_AUDIO];
            let from = start * MEL_HOP;
            let take = padded.len().saturating_sub(from).min(MEL_AUDIO);
            audio[..take].copy_from_slice(&padded[from..from + take]);
            let audio = f32_bytes(audio);
            let mut out = vec![0u8; MEL_FRAMES * n_mels * 4];
            self.run(spec, &mut [ArgData::Input(&audio), ArgData::Resident(basis), ArgData::Output(&mut out)], spent)?;
            let out = f32s(&out);
            let count = MEL_FRAMES.min(frames - start);
            for t in 0..count {
                for b in 0..n_mels {
                    log_mel[[b, start + t]] = out[t * n_mels + b];
                }
            }
            start += MEL_FRAMES;
        }
        whisper::mel::scale_log_mel(log_mel.view_mut());
        Ok(log_mel)
    }
}

/// The log-mel kernel's constant operand, `[208, 800 + n_mels]` bf16: row `f` holds the
/// Hann-windowed cosine and sine of DFT bin `f`, then the mel filterbank's weights for bin `f`;
/// rows past the 201 bins are zero.
fn mel_basis(n_mels: usize) -> Vec<u8> {
    let width = 2 * MEL_N_FFT + n_mels;
    let window = whisper::mel::periodic_hann(MEL_N_FFT);
    let filters = whisper::mel::mel_filterbank(n_mels, MEL_N_FFT, whisper::audio::SAMPLE_RATE);
    let mut basis = vec![bf16::ZERO; MEL_BINS_PADDED * width];
    for f in 0..MEL_BINS {
        for s in 0..MEL_N_FFT {
            let angle = 2.0 * std::f64::consts::PI * (f * s % MEL_N_FFT) as f64 / MEL_N_FFT as f64;
            basis[f * width + s] = bf16::from_f64(window[s] as f64 * angle.cos());
            basis[f * width + MEL_N_FFT + s] = bf16::from_f64(-(window[s] as f64) * angle.sin());
        }
        for b in 0..n_mels {
            basis[f * width + 2 * MEL_N_FFT + b] = bf16::from_f32(filters[[b, f]]);
        }
    }
    bf16_bytes(&basis)
}

/// Builds one design for the NPU (the five mlir-aie steps, then Peano and aiecc); fails naming
/// what is missing when the toolchain is not complete.
fn build_for_npu(spec: &KernelSpec, dir: &std::path::Path, device: &str) -> Result<(), KernelOpsError> {
    use aiec::toolchain::config::{Overrides, Toolchain};
    let env = |k: &str| std::env::var(k).ok();
    let file = std::env::current_dir().ok().and_then(|d| Toolchain::find_file(&d));
    let tc = Toolchain::resolve(file.as_deref(), &env, &Overrides::default()).map_err(|e| KernelOpsError::Toolchain(e.to_string()))?;
    let mut log = std::io::sink();
    aiec::toolchain::driver::build(&dir.join("design.mlir"), dir, device, &tc, &mut log)
        .map_err(|source| KernelOpsError::Build { kernel: spec.name(), source })?;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `x` with zero rows appended up to `m` rows, row-major.
fn padded_rows(x: ArrayView2<'_, f32>, m: usize) -> impl Iterator<Item = f32> + '_ {
    let f = x.ncols();
    x.into_iter().copied().chain(std::iter::repeat_n(0.0, (m - x.nrows()) * f))
}

fn bf16_bytes(v: &[bf16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect()
}

fn f32_bytes(v: impl IntoIterator<Item = f32>) -> Vec<u8> {
    v.into_iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

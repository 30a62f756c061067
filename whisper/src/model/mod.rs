//! The Whisper encoder-decoder transformer.
//!
//! Encoder: two 1-D convolutions with GELU (the second halves the frame rate), sinusoidal
//! positions, pre-norm residual blocks (self-attention, MLP), final layer norm.
//! Decoder: token embedding plus learned positions, pre-norm residual blocks (masked
//! self-attention with a growing KV cache, cross-attention on the encoder output whose K/V are
//! computed once per 30 s window, MLP), final layer norm, logits against the token embedding.
//!
//! Every heavy op goes through [`crate::ops::Ops`]; an op's failure comes back as
//! [`ModelError::Ops`].
//!
//! Precision ([`ComputeType`], chosen at load): with `F32`, checkpoints are converted to f32.
//! The encoder (compute-bound matrix products over 1500 positions) keeps f32; the decoder's
//! projections and the token embedding are stored as f16 and widened inside the dot products,
//! because decoding a token reads every decoder weight once and is bound by memory traffic.
//! The CTranslate2 files are f16 already, so this loses nothing for them. With `Int8`, every
//! linear layer, the encoder's second convolution and the logits use int8 weights per output
//! channel and int8 activations per row (the first convolution reads the log-mel spectrum and
//! stays f32) ([`crate::quant`]); attention and normalisation stay f32, and the
//! cross-attention keys and values are kept in the backend's prepared form
//! ([`Ops::prepare_kv`]: f16 on the CPU).
//!
//! Head counts come from the file (`*/num_heads`), else `config.json`, else Whisper's rule of
//! 64-wide heads (`d_model / 64`).

mod load;

use std::ops::Range;
use std::path::{Path, PathBuf};

use half::f16;
use ndarray::{s, Array1, Array2, Array3, ArrayView2};

use crate::ops::{Ops, OpsError, ThreadPoolError};
use crate::quant::QuantWeights;
use load::Halves;
pub use load::{read_ctranslate2, read_safetensors, HfConfig, Tensor, TensorMap};

/// Layer-norm epsilon used by every Whisper checkpoint.
const LN_EPS: f32 = 1e-5;

/// Everything that can go wrong loading or running the model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: file ends at byte {offset} while reading {what} (truncated download?)")]
    Truncated { path: PathBuf, offset: u64, what: String },
    #[error("{path}: at byte {offset}: {problem}")]
    Format { path: PathBuf, offset: u64, problem: String },
    #[error("{path}: tensor {name} is missing")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor {name} has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: not a valid safetensors file: {problem}")]
    Safetensors { path: PathBuf, problem: String },
    #[error("{path}: invalid config: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{dir}: no Whisper model here (expected model.bin, or model.safetensors with config.json)")]
    NoModel { dir: PathBuf },
    #[error("{dir}: no such model directory")]
    NoModelDir { dir: PathBuf },
    #[error("{dir}: not a directory (a model directory holds model.bin or model.safetensors, and tokenizer.json)")]
    NotAModelDir { dir: PathBuf },
    #[error("{path}: missing ({needed})")]
    MissingFile { path: PathBuf, needed: &'static str },
    #[error("{path}: {problem}")]
    Tokenizer { path: PathBuf, problem: String },
    #[error("{path}: the vocabulary has no {token} token")]
    MissingToken { path: PathBuf, token: String },
    #[error("model and tokenizer disagree: {problem}")]
    VocabMismatch { problem: String },
    #[error("{what}: expected {expected}, got {found}")]
    InputShape { what: &'static str, expected: String, found: String },
    #[error("token id {token} is outside the vocabulary of {vocab} tokens")]
    TokenOutOfRange { token: u32, vocab: usize },
    #[error("the decoder context holds {max} tokens, {needed} needed")]
    ContextOverflow { needed: usize, max: usize },
    #[error("unknown language {code:?} (known: {known})")]
    UnknownLanguage { code: String, known: String },
    #[error("this model is English-only; {what} is not available")]
    EnglishOnly { what: String },
    /// [`crate::ops::CpuOps::new`] failed (lets `CpuOps::new(threads)?` build the ops passed to
    /// [`crate::transcribe::Transcriber::load`] in a function returning `ModelError`).
    #[error(transparent)]
    ThreadPool(#[from] ThreadPoolError),
    /// A heavy op failed (see [`crate::ops::Ops`]).
    #[error(transparent)]
    Ops(#[from] OpsError),
}

/// Sizes of a checkpoint, all read from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub n_mels: usize,
    /// Encoder positions (1500 = 30 s at 50 frames/s after the stride-2 convolution).
    pub n_audio_ctx: usize,
    pub d_model: usize,
    pub encoder_heads: usize,
    pub encoder_layers: usize,
    pub n_vocab: usize,
    /// Decoder positions (448).
    pub n_text_ctx: usize,
    pub decoder_heads: usize,
    pub decoder_layers: usize,
}

impl Dims {
    /// Multilingual checkpoints have the 51865-entry vocabulary (or larger); `.en` ones 51864.
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }
    /// Mel frames in one window (the encoder input): two per encoder position.
    pub fn n_frames(&self) -> usize {
        self.n_audio_ctx * 2
    }
}

/// Weight storage: f32, or f16 where decoding is bound by reading the weights once per token.
#[derive(Debug)]
pub enum Weights {
    F32(Array2<f32>),
    F16(Array2<f16>),
    /// Int8 per output channel ([`ComputeType::Int8`]).
    I8(QuantWeights),
}

impl Weights {
    pub fn dim(&self) -> (usize, usize) {
        match self {
            Weights::F32(w) => w.dim(),
            Weights::F16(w) => w.dim(),
            Weights::I8(w) => w.dim(),
        }
    }

    /// Quantises to int8 (no-op when already int8).
    #[allow(clippy::wrong_self_convention)]
    fn to_int8(&mut self) {
        let q = match self {
            Weights::F32(w) => QuantWeights::quantize(w.view()),
            Weights::F16(w) => QuantWeights::quantize(w.mapv(f16::to_f32).view()),
            Weights::I8(_) => return,
        };
        *self = Weights::I8(q);
    }
}

/// Precision of the model's matrix products, chosen at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeType {
    /// f32 encoder, f16 decoder weights, f32 arithmetic.
    #[default]
    F32,
    /// Int8 weights per output channel and int8 activations per row for every linear layer, the
    /// encoder's second convolution and the logits (the first convolution, attention and
    /// normalisation stay f32).
    Int8,
}

/// `y = x · Wᵀ + b`.
#[derive(Debug)]
pub struct Linear {
    pub weight: Weights,
    pub bias: Option<Array1<f32>>,
}

impl Linear {
    pub fn forward(&self, ops: &dyn Ops, x: ArrayView2<f32>) -> Result<Array2<f32>, OpsError> {
        let bias = self.bias.as_ref().map(|b| b.view());
        match &self.weight {
            Weights::F32(w) => ops.linear(x, w.view(), bias),
            Weights::F16(w) => ops.linear_f16(x, w.view(), bias),
            Weights::I8(w) => ops.linear_i8(x, w, bias),
        }
    }
}

#[derive(Debug)]
pub struct LayerNorm {
    pub gamma: Array1<f32>,
    pub beta: Array1<f32>,
}

impl LayerNorm {
    pub fn forward(&self, ops: &dyn Ops, x: ArrayView2<f32>) -> Result<Array2<f32>, OpsError> {
        ops.layer_norm(x, self.gamma.view(), self.beta.view(), LN_EPS)
    }
}

/// Pre-norm self-attention with fused Q/K/V projection.
#[derive(Debug)]
pub struct SelfAttention {
    pub norm: LayerNorm,
    pub qkv: Linear,
    pub out: Linear,
    pub heads: usize,
}

/// Pre-norm cross-attention: Q from the text, fused K/V from the audio.
#[derive(Debug)]
pub struct CrossAttention {
    pub norm: LayerNorm,
    pub query: Linear,
    pub kv: Linear,
    pub out: Linear,
    pub heads: usize,
}

/// Pre-norm MLP `d -> 4d -> d` with GELU.
#[derive(Debug)]
pub struct Mlp {
    pub norm: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
}

impl Mlp {
    /// Returns the residual to add.
    pub fn forward(&self, ops: &dyn Ops, x: ArrayView2<f32>) -> Result<Array2<f32>, OpsError> {
        let h = self.norm.forward(ops, x)?;
        let h = match &self.fc1.weight {
            Weights::I8(w) => ops.linear_i8_gelu(h.view(), w, self.fc1.bias.as_ref().map(|b| b.view()))?,
            _ => {
                let mut h = self.fc1.forward(ops, h.view())?;
                ops.gelu(h.view_mut())?;
                h
            }
        };
        self.fc2.forward(ops, h.view())
    }
}

#[derive(Debug)]
pub struct EncoderBlock {
    pub attn: SelfAttention,
    pub mlp: Mlp,
}

impl EncoderBlock {
    pub fn forward(&self, ops: &dyn Ops, x: &mut Array2<f32>) -> Result<(), OpsError> {
        let d = x.ncols();
        let h = self.attn.norm.forward(ops, x.view())?;
        let qkv = self.attn.qkv.forward(ops, h.view())?;
        let (q, k, v) = (qkv.slice(s![.., ..d]), qkv.slice(s![.., d..2 * d]), qkv.slice(s![.., 2 * d..]));
        let a = ops.attention(q, k, v, self.attn.heads, false)?;
        *x += &self.attn.out.forward(ops, a.view())?;
        *x += &self.mlp.forward(ops, x.view())?;
        Ok(())
    }
}

/// Audio encoder.
#[derive(Debug)]
pub struct Encoder {
    pub conv1_weight: Array3<f32>,
    pub conv1_bias: Array1<f32>,
    pub conv2_weight: Array3<f32>,
    pub conv2_bias: Array1<f32>,
    /// The second kernel flattened to `[c_out, c_in * 3]` and quantised ([`ComputeType::Int8`]).
    /// The first stays f32: its input is the log-mel spectrum itself, where an 8-bit code per
    /// frame erases the small differences between phonemes (greedy decoding of a long clip lost
    /// three words to it), and it is under 1 % of the encoder's multiply-adds.
    pub conv2_i8: Option<QuantWeights>,
    /// Sinusoidal positions `[n_audio_ctx, d]`, as stored in the checkpoint.
    pub positions: Array2<f32>,
    pub blocks: Vec<EncoderBlock>,
    pub norm: LayerNorm,
}

impl Encoder {
    fn quantize_conv2(&mut self) {
        let (c_out, c_in, k) = self.conv2_weight.dim();
        let flat = self.conv2_weight.as_standard_layout();
        self.conv2_i8 = Some(QuantWeights::quantize(
            flat.view().into_shape_with_order((c_out, c_in * k)).expect("contiguous"),
        ));
    }

    /// `mel` is one window `[n_mels, 2 * n_audio_ctx]`; returns `[n_audio_ctx, d]`.
    pub fn forward(&self, ops: &dyn Ops, mel: ArrayView2<f32>) -> Result<Array2<f32>, ModelError> {
        let n_mels = self.conv1_weight.dim().1;
        let frames = self.positions.nrows() * 2;
        if mel.dim() != (n_mels, frames) {
            return Err(ModelError::InputShape {
                what: "encoder input (log-mel window)",
                expected: format!("[{n_mels}, {frames}]"),
                found: format!("{:?}", mel.shape()),
            });
        }
        let mut x = ops.conv1d(mel.t(), self.conv1_weight.view(), self.conv1_bias.view(), 1, 1)?;
        ops.gelu(x.view_mut())?;
        let mut x = match &self.conv2_i8 {
            Some(c2) => ops.conv1d_i8(x.view(), c2, self.conv2_weight.dim().2, self.conv2_bias.view(), 2, 1, true)?,
            None => {
                let mut x = ops.conv1d(x.view(), self.conv2_weight.view(), self.conv2_bias.view(), 2, 1)?;
                ops.gelu(x.view_mut())?;
                x
            }
        };
        if x.dim() != self.positions.dim() {
            return Err(ModelError::InputShape {
                what: "encoder convolution output",
                expected: format!("{:?}", self.positions.shape()),
                found: format!("{:?}", x.shape()),
            });
        }
        x += &self.positions;
        for block in &self.blocks {
            block.forward(ops, &mut x)?;
        }
        Ok(self.norm.forward(ops, x.view())?)
    }
}

#[derive(Debug)]
pub struct DecoderBlock {
    pub self_attn: SelfAttention,
    pub cross_attn: CrossAttention,
    pub mlp: Mlp,
}

/// Cross-attention keys and values of one window, per decoder layer: `[n_audio_ctx, d]` each.
#[derive(Debug)]
pub struct CrossKv {
    pub k: Vec<Array2<f32>>,
    pub v: Vec<Array2<f32>>,
    /// Per layer, the backend's own form of `k` and `v` ([`Ops::prepare_kv`], int8 compute
    /// type only); when present it is used instead, and `k`, `v` are empty.
    pub prepared: Vec<Option<crate::ops::PreparedKv>>,
}

/// Self-attention keys/values of every sequence in the batch, `[batch, n_text_ctx, d]` per
/// layer, preallocated so that decoding a token allocates nothing for the cache.
#[derive(Debug, Clone)]
pub struct KvCache {
    pub k: Vec<Array3<f32>>,
    pub v: Vec<Array3<f32>>,
    /// Positions filled so far (equal for every sequence in the batch).
    pub len: usize,
}

impl KvCache {
    pub fn new(dims: &Dims, batch: usize) -> Self {
        let shape = (batch, dims.n_text_ctx, dims.d_model);
        Self {
            k: (0..dims.decoder_layers).map(|_| Array3::zeros(shape)).collect(),
            v: (0..dims.decoder_layers).map(|_| Array3::zeros(shape)).collect(),
            len: 0,
        }
    }

    pub fn batch(&self) -> usize {
        self.k.first().map_or(0, |k| k.dim().0)
    }

    /// Sequence `b` continues from old sequence `sources[b]` (beam search reordering; also
    /// used to grow a batch-1 prompt cache into `n` beams with `sources = [0; n]`).
    pub fn reorder(&mut self, sources: &[usize]) {
        self.reorder_keeping(sources, &vec![0; sources.len()]);
    }

    /// [`Self::reorder`] where sequence `b`'s first `same[b]` positions already hold what
    /// `sources[b]`'s do (the beams share those tokens, and a position's keys and values depend
    /// only on the tokens up to it): only the rest is copied.
    pub fn reorder_keeping(&mut self, sources: &[usize], same: &[usize]) {
        let len = self.len;
        for cache in self.k.iter_mut().chain(self.v.iter_mut()) {
            let (batch, n_ctx, d) = cache.dim();
            if batch != sources.len() {
                let old = cache.slice(s![.., ..len, ..]).to_owned();
                *cache = Array3::zeros((sources.len(), n_ctx, d));
                for (b, &src) in sources.iter().enumerate() {
                    cache.slice_mut(s![b, ..len, ..]).assign(&old.slice(s![src, .., ..]));
                }
                continue;
            }
            // Copy only the positions that differ, from copies of just the rows they need.
            let from = |b: usize| same.get(b).copied().unwrap_or(0).min(len);
            let moved: Vec<usize> = (0..batch).filter(|&b| sources[b] != b && from(b) < len).collect();
            if moved.is_empty() {
                continue;
            }
            let mut needed: Vec<(usize, usize)> = Vec::new();
            for &b in &moved {
                match needed.iter_mut().find(|(src, _)| *src == sources[b]) {
                    Some((_, start)) => *start = (*start).min(from(b)),
                    None => needed.push((sources[b], from(b))),
                }
            }
            let saved: Vec<Array2<f32>> = needed.iter().map(|&(src, start)| cache.slice(s![src, start..len, ..]).to_owned()).collect();
            for &b in &moved {
                let i = needed.iter().position(|&(src, _)| src == sources[b]).expect("collected above");
                let start = needed[i].1;
                let rows = saved[i].slice(s![from(b) - start.., ..]);
                cache.slice_mut(s![b, from(b)..len, ..]).assign(&rows);
            }
        }
    }
}

/// Text decoder.
#[derive(Debug)]
pub struct Decoder {
    /// Token embedding `[n_vocab, d]`; also the output projection (tied weights). Kept in f16:
    /// the logits read all of it for every token.
    pub embedding: Array2<f16>,
    /// The embedding as int8 for the logits ([`ComputeType::Int8`]).
    pub embedding_i8: Option<QuantWeights>,
    /// Learned positions `[n_text_ctx, d]`.
    pub positions: Array2<f32>,
    pub blocks: Vec<DecoderBlock>,
    pub norm: LayerNorm,
}

impl Decoder {
    /// Cross-attention K/V for one window of encoder output, computed once per window.
    pub fn cross_kv(&self, ops: &dyn Ops, audio: ArrayView2<f32>) -> Result<CrossKv, ModelError> {
        let d = audio.ncols();
        let (mut k, mut v, mut prepared) = (Vec::new(), Vec::new(), Vec::new());
        for block in &self.blocks {
            let kv = block.cross_attn.kv.forward(ops, audio)?;
            if self.embedding_i8.is_some() {
                if let Some(p) = ops.prepare_kv(kv.slice(s![.., ..d]), kv.slice(s![.., d..]), block.cross_attn.heads)? {
                    prepared.push(Some(p));
                    k.push(Array2::zeros((0, d)));
                    v.push(Array2::zeros((0, d)));
                    continue;
                }
            }
            prepared.push(None);
            // Keys stored transposed (`[n_audio_ctx, d]` with strides `[1, n_audio_ctx]`):
            // each decoding step reads them contiguously along the audio positions.
            k.push(kv.slice(s![.., ..d]).t().as_standard_layout().into_owned().reversed_axes());
            v.push(kv.slice(s![.., d..]).to_owned());
        }
        Ok(CrossKv { k, v, prepared })
    }

    /// Runs `tokens` (`[batch, t]`, the next `t` tokens of every sequence) through the
    /// decoder, appending to `cache`. Returns the final-norm hidden states `[batch * t, d]`.
    pub fn forward(&self, ops: &dyn Ops, tokens: ArrayView2<u32>, cache: &mut KvCache, cross: &CrossKv) -> Result<Array2<f32>, ModelError> {
        let (batch, t) = tokens.dim();
        let (n_vocab, d) = self.embedding.dim();
        let offset = cache.len;
        if cache.batch() != batch {
            return Err(ModelError::InputShape {
                what: "decoder batch",
                expected: format!("{} sequences (the cache's)", cache.batch()),
                found: format!("{batch}"),
            });
        }
        if offset + t > self.positions.nrows() {
            return Err(ModelError::ContextOverflow {
                needed: offset + t,
                max: self.positions.nrows(),
            });
        }
        let mut x = Array2::<f32>::zeros((batch * t, d));
        for ((b, i), &tok) in tokens.indexed_iter() {
            if tok as usize >= n_vocab {
                return Err(ModelError::TokenOutOfRange { token: tok, vocab: n_vocab });
            }
            let mut row = x.row_mut(b * t + i);
            row.zip_mut_with(&self.embedding.row(tok as usize), |x, e| *x = e.to_f32());
            row += &self.positions.row(offset + i);
        }
        for (layer, block) in self.blocks.iter().enumerate() {
            // Masked self-attention over the cache plus the new tokens.
            let h = block.self_attn.norm.forward(ops, x.view())?;
            let qkv = block.self_attn.qkv.forward(ops, h.view())?;
            let mut attn = Array2::<f32>::zeros((batch * t, d));
            for b in 0..batch {
                let rows = s![b * t..(b + 1) * t, ..];
                let qkv_b = qkv.slice(rows);
                cache.k[layer].slice_mut(s![b, offset..offset + t, ..]).assign(&qkv_b.slice(s![.., d..2 * d]));
                cache.v[layer].slice_mut(s![b, offset..offset + t, ..]).assign(&qkv_b.slice(s![.., 2 * d..]));
                let k = cache.k[layer].slice(s![b, ..offset + t, ..]);
                let v = cache.v[layer].slice(s![b, ..offset + t, ..]);
                let a = ops.attention(qkv_b.slice(s![.., ..d]), k, v, block.self_attn.heads, true)?;
                attn.slice_mut(rows).assign(&a);
            }
            x += &block.self_attn.out.forward(ops, attn.view())?;

            // Cross-attention on the window's audio.
            let h = block.cross_attn.norm.forward(ops, x.view())?;
            let q = block.cross_attn.query.forward(ops, h.view())?;
            // Every sequence attends to the same audio without a mask: one call for all rows
            // reads the window's keys and values once instead of once per beam.
            let attn = match cross.prepared.get(layer) {
                Some(Some(p)) => ops.attention_prepared(q.view(), p)?,
                _ => ops.attention(q.view(), cross.k[layer].view(), cross.v[layer].view(), block.cross_attn.heads, false)?,
            };
            x += &block.cross_attn.out.forward(ops, attn.view())?;

            x += &block.mlp.forward(ops, x.view())?;
        }
        cache.len = offset + t;
        Ok(self.norm.forward(ops, x.view())?)
    }

    /// Logits over the vocabulary for hidden states `[n, d]`: `x · embeddingᵀ`.
    ///
    /// With int8 logits, the [`EXACT_TOP`] largest of each row within each of `exact_top`'s
    /// token ranges are computed again from the f16 embedding: the choice between close
    /// candidates (a comma or a timestamp, one word or its neighbour) is then made at f32
    /// precision, while the rest of the vocabulary, which only feeds the normaliser, keeps
    /// the int8 product. Ranges are clamped to the vocabulary.
    pub fn logits(&self, ops: &dyn Ops, hidden: ArrayView2<f32>, exact_top: &[Range<usize>]) -> Result<Array2<f32>, ModelError> {
        let Some(w) = &self.embedding_i8 else {
            return Ok(ops.linear_f16(hidden, self.embedding.view(), None)?);
        };
        let mut logits = ops.linear_i8(hidden, w, None)?;
        let n_vocab = logits.ncols();
        for (mut row, h) in logits.outer_iter_mut().zip(hidden.outer_iter()) {
            let h = h.as_standard_layout();
            let h = h.as_slice().expect("standard layout");
            let row = row.as_slice_mut().expect("fresh array");
            for range in exact_top {
                let range = range.start.min(n_vocab)..range.end.min(n_vocab);
                for i in top_indices(&row[range.clone()], EXACT_TOP) {
                    let token = range.start + i;
                    row[token] = crate::ops::dot_f16(h, self.embedding.row(token).as_slice().expect("standard layout"));
                }
            }
        }
        Ok(logits)
    }
}

/// Logits per row and token range recomputed exactly by [`Decoder::logits`] under int8.
pub const EXACT_TOP: usize = 16;

/// Indices of the `k` largest values of `x` (fewer if `x` is shorter), in one pass.
fn top_indices(x: &[f32], k: usize) -> Vec<usize> {
    // (value, index), largest first.
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    for (i, &v) in x.iter().enumerate() {
        if best.len() == k && best.last().is_none_or(|&(floor, _)| v <= floor || v.is_nan()) {
            continue;
        }
        let at = best.partition_point(|&(b, _)| b >= v);
        best.insert(at, (v, i));
        best.truncate(k);
    }
    best.into_iter().map(|(_, i)| i).collect()
}

/// A loaded Whisper checkpoint.
#[derive(Debug)]
pub struct Model {
    pub dims: Dims,
    pub encoder: Encoder,
    pub decoder: Decoder,
}

impl Model {
    /// Loads `dir/model.bin` (CTranslate2) or `dir/model.safetensors` + `dir/config.json`
    /// (Hugging Face).
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let ct2 = dir.join("model.bin");
        let hf = dir.join("model.safetensors");
        let config_path = dir.join("config.json");
        if ct2.is_file() {
            Self::from_tensors(read_ctranslate2_with_heads(&ct2, &config_path, false)?)
        } else if hf.is_file() {
            let text = std::fs::read_to_string(&config_path).map_err(|source| ModelError::Io {
                path: config_path.clone(),
                source,
            })?;
            let config: HfConfig = serde_json::from_str(&text).map_err(|source| ModelError::Config {
                path: config_path.clone(),
                source,
            })?;
            Self::from_tensors(read_safetensors(&hf, &config)?)
        } else {
            Err(ModelError::NoModel { dir: dir.to_path_buf() })
        }
    }

    /// [`Self::load`], then converts to `compute`.
    pub fn load_with(dir: &Path, compute: ComputeType) -> Result<Self, ModelError> {
        let ct2 = dir.join("model.bin");
        if compute == ComputeType::F32 || !ct2.is_file() {
            let mut model = Self::load(dir)?;
            if compute == ComputeType::Int8 {
                model.to_int8();
            }
            return Ok(model);
        }
        // Quantised straight from the f32 tensors, without f16 copies in between.
        Self::from_tensors_with(read_ctranslate2_with_heads(&ct2, &dir.join("config.json"), true)?, compute)
    }

    /// Quantises every linear layer and the logits projection to int8 ([`ComputeType::Int8`]).
    pub fn to_int8(&mut self) {
        let mut linears: Vec<&mut Linear> = Vec::new();
        for b in &mut self.encoder.blocks {
            linears.extend([&mut b.attn.qkv, &mut b.attn.out, &mut b.mlp.fc1, &mut b.mlp.fc2]);
        }
        for b in &mut self.decoder.blocks {
            linears.extend([&mut b.self_attn.qkv, &mut b.self_attn.out, &mut b.mlp.fc1, &mut b.mlp.fc2]);
            linears.extend([&mut b.cross_attn.query, &mut b.cross_attn.kv, &mut b.cross_attn.out]);
        }
        for l in linears {
            l.weight.to_int8();
        }
        if self.encoder.conv2_i8.is_none() {
            self.encoder.quantize_conv2();
        }
        if self.decoder.embedding_i8.is_none() {
            self.decoder.embedding_i8 = Some(QuantWeights::quantize(self.decoder.embedding.mapv(f16::to_f32).view()));
        }
    }

    /// Builds the model from tensors in CTranslate2 naming, checking every shape.
    pub fn from_tensors(map: TensorMap) -> Result<Self, ModelError> {
        Self::from_tensors_with(map, ComputeType::F32)
    }

    /// [`Self::from_tensors`] for the given compute type.
    pub fn from_tensors_with(mut map: TensorMap, compute: ComputeType) -> Result<Self, ModelError> {
        let int8 = compute == ComputeType::Int8;
        // The encoder's weights are f32 and the decoder's f16 (see the module notes), or all int8.
        let (enc, dec) = if int8 { (I8, I8) } else { (Precision::F32, Precision::F16) };
        let conv1 = map.shape("encoder/conv1/weight")?.to_vec();
        if conv1.len() != 3 || conv1[2] != 3 {
            return Err(ModelError::ShapeMismatch {
                path: map.source.clone(),
                name: "encoder/conv1/weight".into(),
                expected: vec![0, 0, 3],
                found: conv1,
            });
        }
        let (d, n_mels) = (conv1[0], conv1[1]);
        let n_audio_ctx = first_dim(&map, "encoder/position_encodings/encodings")?;
        let n_vocab = first_dim(&map, "decoder/embeddings/weight")?;
        let n_text_ctx = first_dim(&map, "decoder/position_encodings/encodings")?;
        let count = |stack: &str| (0..).take_while(|i| map.contains(&format!("{stack}/layer_{i}/ffn/linear_0/weight"))).count();
        // Whisper's heads are 64 wide; used only when neither the file nor config.json says.
        let heads = |key: &str| map.ints.get(key).map(|&h| h as usize).unwrap_or(d / 64);
        let dims = Dims {
            n_mels,
            n_audio_ctx,
            d_model: d,
            encoder_heads: heads("encoder/num_heads"),
            encoder_layers: count("encoder"),
            n_vocab,
            n_text_ctx,
            decoder_heads: heads("decoder/num_heads"),
            decoder_layers: count("decoder"),
        };
        for (what, h) in [("encoder/num_heads", dims.encoder_heads), ("decoder/num_heads", dims.decoder_heads)] {
            if h == 0 || d % h != 0 {
                return Err(ModelError::Format {
                    path: map.source.clone(),
                    offset: 0,
                    problem: format!("{what} = {h} does not divide d_model = {d}"),
                });
            }
        }
        if dims.encoder_layers == 0 || dims.decoder_layers == 0 {
            return Err(ModelError::MissingTensor {
                path: map.source.clone(),
                name: "encoder/layer_0 or decoder/layer_0".into(),
            });
        }

        let mut encoder = Encoder {
            conv1_weight: arr3(&mut map, "encoder/conv1/weight", [d, n_mels, 3])?,
            conv1_bias: arr1(&mut map, "encoder/conv1/bias", d)?,
            conv2_weight: arr3(&mut map, "encoder/conv2/weight", [d, d, 3])?,
            conv2_bias: arr1(&mut map, "encoder/conv2/bias", d)?,
            conv2_i8: None,
            positions: arr2(&mut map, "encoder/position_encodings/encodings", [n_audio_ctx, d])?,
            blocks: (0..dims.encoder_layers)
                .map(|i| {
                    let p = format!("encoder/layer_{i}");
                    Ok(EncoderBlock {
                        attn: self_attention(&mut map, &format!("{p}/self_attention"), d, dims.encoder_heads, enc)?,
                        mlp: mlp(&mut map, &format!("{p}/ffn"), d, enc)?,
                    })
                })
                .collect::<Result<_, ModelError>>()?,
            norm: layer_norm(&mut map, "encoder/layer_norm", d)?,
        };
        if int8 {
            encoder.quantize_conv2();
        }
        let mut embedding_i8 = None;
        let decoder = Decoder {
            embedding: {
                let e = arr2_f16(&mut map, "decoder/embeddings/weight", [n_vocab, d])?;
                if int8 {
                    embedding_i8 = Some(QuantWeights::quantize_f16(e.view()));
                }
                e
            },
            embedding_i8,
            positions: arr2(&mut map, "decoder/position_encodings/encodings", [n_text_ctx, d])?,
            blocks: (0..dims.decoder_layers)
                .map(|i| {
                    let p = format!("decoder/layer_{i}");
                    Ok(DecoderBlock {
                        self_attn: self_attention(&mut map, &format!("{p}/self_attention"), d, dims.decoder_heads, dec)?,
                        cross_attn: CrossAttention {
                            norm: layer_norm(&mut map, &format!("{p}/attention/layer_norm"), d)?,
                            query: linear(&mut map, &format!("{p}/attention/linear_0"), d, d, dec)?,
                            // Applied to a whole window of audio once: f32 for the matrix product.
                            kv: linear(&mut map, &format!("{p}/attention/linear_1"), 2 * d, d, enc)?,
                            out: linear(&mut map, &format!("{p}/attention/linear_2"), d, d, dec)?,
                            heads: dims.decoder_heads,
                        },
                        mlp: mlp(&mut map, &format!("{p}/ffn"), d, dec)?,
                    })
                })
                .collect::<Result<_, ModelError>>()?,
            norm: layer_norm(&mut map, "decoder/layer_norm", d)?,
        };
        Ok(Self { dims, encoder, decoder })
    }
}

/// A CTranslate2 file's tensors; files carry */num_heads, older ones may not, then
/// config.json may.
fn read_ctranslate2_with_heads(ct2: &Path, config_path: &Path, compact: bool) -> Result<TensorMap, ModelError> {
    let mut map = if compact {
        load::read_ctranslate2_compact(ct2)?
    } else {
        read_ctranslate2(ct2)?
    };
    if !map.ints.contains_key("encoder/num_heads") {
        if let Some(h) = read_config_value(config_path, &["num_heads", "encoder_attention_heads"])? {
            map.ints.insert("encoder/num_heads".into(), h);
            map.ints.entry("decoder/num_heads".into()).or_insert(h);
        }
    }
    Ok(map)
}

fn read_config_value(path: &Path, keys: &[&str]) -> Result<Option<i64>, ModelError> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(None) };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|source| ModelError::Config {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(keys.iter().find_map(|k| v.get(*k).and_then(|x| x.as_i64())))
}

fn first_dim(map: &TensorMap, name: &str) -> Result<usize, ModelError> {
    let shape = map.shape(name)?;
    match shape {
        [n, _] => Ok(*n),
        _ => Err(ModelError::ShapeMismatch {
            path: map.source.clone(),
            name: name.into(),
            expected: vec![0, 0],
            found: shape.to_vec(),
        }),
    }
}

fn data_error(map: &TensorMap, name: &str, t: &Tensor) -> ModelError {
    ModelError::Format {
        path: map.source.clone(),
        offset: 0,
        problem: format!("tensor {name} {:?} holds {} values", t.shape, t.data.len()),
    }
}

fn arr1(map: &mut TensorMap, name: &str, n: usize) -> Result<Array1<f32>, ModelError> {
    let t = map.take(name, &[n])?;
    if t.data.len() != n {
        return Err(data_error(map, name, &t));
    }
    Ok(Array1::from_vec(t.data))
}

fn arr2(map: &mut TensorMap, name: &str, shape: [usize; 2]) -> Result<Array2<f32>, ModelError> {
    let t = map.take(name, &shape)?;
    if t.data.len() != shape[0] * shape[1] {
        return Err(data_error(map, name, &t));
    }
    Ok(Array2::from_shape_vec(shape, t.data).expect("length checked"))
}

fn arr3(map: &mut TensorMap, name: &str, shape: [usize; 3]) -> Result<Array3<f32>, ModelError> {
    let t = map.take(name, &shape)?;
    if t.data.len() != shape.iter().product::<usize>() {
        return Err(data_error(map, name, &t));
    }
    Ok(Array3::from_shape_vec(shape, t.data).expect("length checked"))
}

/// A matrix as f16: the file's halves as they are, or f32 tensors narrowed.
fn arr2_f16(map: &mut TensorMap, name: &str, shape: [usize; 2]) -> Result<Array2<f16>, ModelError> {
    match map.take_half(name, &shape)? {
        Some(halves) => Ok(Array2::from_shape_vec(shape, halves.to_vec()).expect("shape checked")),
        None => Ok(to_f16(arr2(map, name, shape)?)),
    }
}

/// Storage precision of a weight.
#[derive(Clone, Copy)]
enum Precision {
    F32,
    F16,
    I8,
}
use Precision::I8;

/// f32 -> f16 with the slice conversion (F16C when the CPU has it).
fn to_f16(a: Array2<f32>) -> Array2<f16> {
    use half::slice::HalfFloatSliceExt;
    let a = if a.is_standard_layout() { a } else { a.as_standard_layout().into_owned() };
    let mut out = vec![f16::ZERO; a.len()];
    out.convert_from_f32_slice(a.as_slice().expect("standard layout"));
    Array2::from_shape_vec(a.dim(), out).expect("same length")
}

fn linear(map: &mut TensorMap, prefix: &str, out: usize, inp: usize, precision: Precision) -> Result<Linear, ModelError> {
    let name = format!("{prefix}/weight");
    Ok(Linear {
        weight: match precision {
            Precision::F32 => Weights::F32(arr2(map, &name, [out, inp])?),
            Precision::F16 => Weights::F16(arr2_f16(map, &name, [out, inp])?),
            Precision::I8 => Weights::I8(match map.take_half(&name, &[out, inp])? {
                Some(halves) => {
                    let elements = ArrayView2::from_shape((out, inp), halves.elements()).expect("shape checked");
                    QuantWeights::quantize_rows(elements, Halves::widen)
                }
                None => QuantWeights::quantize(arr2(map, &name, [out, inp])?.view()),
            }),
        },
        bias: Some(arr1(map, &format!("{prefix}/bias"), out)?),
    })
}

fn layer_norm(map: &mut TensorMap, prefix: &str, d: usize) -> Result<LayerNorm, ModelError> {
    Ok(LayerNorm {
        gamma: arr1(map, &format!("{prefix}/gamma"), d)?,
        beta: arr1(map, &format!("{prefix}/beta"), d)?,
    })
}

fn self_attention(map: &mut TensorMap, prefix: &str, d: usize, heads: usize, precision: Precision) -> Result<SelfAttention, ModelError> {
    Ok(SelfAttention {
        norm: layer_norm(map, &format!("{prefix}/layer_norm"), d)?,
        qkv: linear(map, &format!("{prefix}/linear_0"), 3 * d, d, precision)?,
        out: linear(map, &format!("{prefix}/linear_1"), d, d, precision)?,
        heads,
    })
}

fn mlp(map: &mut TensorMap, prefix: &str, d: usize, precision: Precision) -> Result<Mlp, ModelError> {
    let hidden = map.shape(&format!("{prefix}/linear_0/weight"))?.first().copied().unwrap_or(0);
    Ok(Mlp {
        norm: layer_norm(map, &format!("{prefix}/layer_norm"), d)?,
        fc1: linear(map, &format!("{prefix}/linear_0"), hidden, d, precision)?,
        fc2: linear(map, &format!("{prefix}/linear_1"), d, hidden, precision)?,
    })
}

#[cfg(test)]
mod tests {
    use super::top_indices;

    #[test]
    fn top_indices_are_the_k_largest_largest_first() {
        let x = [0.5, -1.0, 3.0, f32::NAN, 2.0, 3.0, f32::NEG_INFINITY, 7.0];
        assert_eq!(top_indices(&x, 3), vec![7, 2, 5]);
        assert_eq!(top_indices(&x, 0), Vec::<usize>::new());
        assert_eq!(top_indices(&x[..2], 5), vec![0, 1]);
        // Against a sort, on values with many ties.
        let y: Vec<f32> = (0..1000u32).map(|i| ((i * 7919) % 113) as f32).collect();
        let mut sorted: Vec<usize> = (0..y.len()).collect();
        sorted.sort_by(|&a, &b| y[b].total_cmp(&y[a]));
        let top: Vec<f32> = top_indices(&y, 16).iter().map(|&i| y[i]).collect();
        assert_eq!(top, sorted[..16].iter().map(|&i| y[i]).collect::<Vec<_>>());
    }
}

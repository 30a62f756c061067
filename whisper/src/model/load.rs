//! Readers for the two checkpoint formats. Both produce a [`TensorMap`] keyed by the
//! CTranslate2 names (fused Q/K/V), so the model is built by one piece of code.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use half::{bf16, f16};

use super::ModelError;

/// A float tensor converted to f32 at load time.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Every tensor of a checkpoint by its CTranslate2 name, plus its integer scalars.
#[derive(Debug, Default)]
pub struct TensorMap {
    pub source: PathBuf,
    pub floats: HashMap<String, Tensor>,
    pub ints: HashMap<String, i64>,
    /// f16 tensors left in the mapped file (shape, bytes), widened by [`Self::take`] one at a
    /// time or quantised straight from the file: quantising loads then copy nothing whole.
    pub(crate) halves: HashMap<String, (Vec<usize>, Halves)>,
}

/// The little-endian f16 elements of one tensor inside a mapped checkpoint, at any alignment
/// (CTranslate2 files put half their tensors at odd offsets).
#[derive(Debug, Clone)]
pub(crate) struct Halves {
    file: Arc<memmap2::Mmap>,
    at: usize,
    len: usize,
}

impl Halves {
    pub(crate) fn elements(&self) -> &[[u8; 2]] {
        self.file[self.at..self.at + 2 * self.len].as_chunks::<2>().0
    }

    /// Widens `src` into `out` (same length) through an aligned buffer, so that the slice
    /// conversion (F16C when the CPU has it) does the work.
    pub(crate) fn widen(src: &[[u8; 2]], out: &mut [f32]) {
        use half::slice::HalfFloatSliceExt;
        let mut buf = [f16::ZERO; 64];
        for (s, o) in src.chunks(64).zip(out.chunks_mut(64)) {
            for (b, e) in buf.iter_mut().zip(s) {
                *b = f16::from_le_bytes(*e);
            }
            buf[..s.len()].convert_to_f32_slice(o);
        }
    }

    pub(crate) fn to_vec(&self) -> Vec<f16> {
        self.elements().iter().map(|&e| f16::from_le_bytes(e)).collect()
    }
}

impl Drop for Halves {
    /// Gives the tensor's whole pages back once it has been converted, so that the mapped file
    /// and the model built from it are not resident at once (the peak memory of a load).
    fn drop(&mut self) {
        let page = 4096;
        let start = self.at.next_multiple_of(page);
        let end = (self.at + 2 * self.len) / page * page;
        if end > start {
            // SAFETY: the mapping is private and read-only, so dropped pages are read back from
            // the file if anything touches them again (only an alias of the same tensor could).
            // Failure only leaves the pages resident.
            let _ = unsafe { self.file.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
        }
    }
}

impl TensorMap {
    /// Removes a tensor after checking its shape.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError> {
        if let Some((found, halves)) = self.halves.remove(name) {
            if found != shape {
                return Err(ModelError::ShapeMismatch {
                    path: self.source.clone(),
                    name: name.to_string(),
                    expected: shape.to_vec(),
                    found,
                });
            }
            let mut data = vec![0.0f32; halves.len];
            Halves::widen(halves.elements(), &mut data);
            return Ok(Tensor { shape: found, data });
        }
        let t = self.floats.remove(name).ok_or_else(|| ModelError::MissingTensor {
            path: self.source.clone(),
            name: name.to_string(),
        })?;
        if t.shape != shape {
            return Err(ModelError::ShapeMismatch {
                path: self.source.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                found: t.shape,
            });
        }
        Ok(t)
    }

    /// Removes an f16 tensor as it is in the file, without widening; `None` when the tensor was
    /// read as f32 (then [`Self::take`] has it). Checks the shape.
    pub(crate) fn take_half(&mut self, name: &str, shape: &[usize]) -> Result<Option<Halves>, ModelError> {
        match self.halves.remove(name) {
            None => Ok(None),
            Some((found, _)) if found != shape => Err(ModelError::ShapeMismatch {
                path: self.source.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                found,
            }),
            Some((_, halves)) => Ok(Some(halves)),
        }
    }

    /// Whether the checkpoint has a tensor of this name.
    pub fn contains(&self, name: &str) -> bool {
        self.floats.contains_key(name) || self.halves.contains_key(name)
    }

    /// The shape of a tensor, for reading sizes off the checkpoint.
    pub fn shape(&self, name: &str) -> Result<&[usize], ModelError> {
        if let Some((shape, _)) = self.halves.get(name) {
            return Ok(shape);
        }
        self.floats.get(name).map(|t| t.shape.as_slice()).ok_or_else(|| ModelError::MissingTensor {
            path: self.source.clone(),
            name: name.to_string(),
        })
    }
}

/// Where a checkpoint's bytes come from: streamed through a buffer, or mapped whole.
enum Input {
    Stream(BufReader<std::fs::File>),
    Mapped(Arc<memmap2::Mmap>),
}

/// A reader that knows its byte offset, so errors can say where the file went wrong.
struct Cursor {
    input: Input,
    offset: u64,
    /// The file's length: a header's byte count is checked against it before anything is
    /// allocated for the data.
    len: u64,
    path: PathBuf,
}

impl Cursor {
    /// Fails unless `n` more bytes are left in the file.
    fn require(&self, n: usize, what: &str) -> Result<(), ModelError> {
        if self.offset.saturating_add(n as u64) > self.len {
            return Err(self.truncated(what));
        }
        Ok(())
    }

    fn truncated(&self, what: &str) -> ModelError {
        ModelError::Truncated {
            path: self.path.clone(),
            offset: self.offset,
            what: what.to_string(),
        }
    }

    fn bytes(&mut self, buf: &mut [u8], what: &str) -> Result<(), ModelError> {
        match &mut self.input {
            Input::Stream(r) => r.read_exact(buf).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    self.truncated(what)
                } else {
                    ModelError::Io {
                        path: self.path.clone(),
                        source: e,
                    }
                }
            })?,
            Input::Mapped(m) => {
                let at = self.offset as usize;
                match m.get(at..at + buf.len()) {
                    Some(src) => buf.copy_from_slice(src),
                    None => return Err(self.truncated(what)),
                }
            }
        }
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// The next `len` f16 elements left where they are in a mapped file (`None` when streaming).
    fn halves(&mut self, len: usize, what: &str) -> Result<Option<Halves>, ModelError> {
        let Input::Mapped(m) = &self.input else { return Ok(None) };
        self.require(2 * len, what)?;
        let halves = Halves {
            file: m.clone(),
            at: self.offset as usize,
            len,
        };
        self.offset += 2 * len as u64;
        Ok(Some(halves))
    }
    fn u8(&mut self, what: &str) -> Result<u8, ModelError> {
        let mut b = [0u8; 1];
        self.bytes(&mut b, what)?;
        Ok(b[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, ModelError> {
        let mut b = [0u8; 2];
        self.bytes(&mut b, what)?;
        Ok(u16::from_le_bytes(b))
    }
    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        let mut b = [0u8; 4];
        self.bytes(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }
    /// u16 length (including a trailing NUL), then the bytes.
    fn string(&mut self, what: &str) -> Result<String, ModelError> {
        let at = self.offset;
        let len = self.u16(what)? as usize;
        let mut buf = vec![0u8; len];
        self.bytes(&mut buf, what)?;
        if buf.last() == Some(&0) {
            buf.pop();
        }
        String::from_utf8(buf).map_err(|_| ModelError::Format {
            path: self.path.clone(),
            offset: at,
            problem: format!("{what} is not UTF-8"),
        })
    }
}

const CT2_VERSION: u32 = 6;
/// Element dtypes of the CTranslate2 format, by their code.
const CT2_DTYPES: [(&str, usize); 6] = [("f32", 4), ("i8", 1), ("i16", 2), ("i32", 4), ("f16", 2), ("bf16", 2)];

/// Reads a CTranslate2 `model.bin` (format version 6), streaming tensor by tensor so that
/// only the f32 copy is held in memory.
pub fn read_ctranslate2(path: &Path) -> Result<TensorMap, ModelError> {
    read_ctranslate2_with(path, false)
}

/// [`read_ctranslate2`] mapping the file and leaving f16 tensors in it until they are taken.
pub(crate) fn read_ctranslate2_compact(path: &Path) -> Result<TensorMap, ModelError> {
    read_ctranslate2_with(path, true)
}

fn read_ctranslate2_with(path: &Path, mapped: bool) -> Result<TensorMap, ModelError> {
    let io_error = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    let input = if mapped {
        // Populated up front: the pages come from the page cache in one pass. SAFETY: the
        // mapping is read-only and lives until the model is built from it; a checkpoint being
        // rewritten while it loads is outside what a loader can defend against.
        Input::Mapped(Arc::new(unsafe { memmap2::MmapOptions::new().populate().map(&file) }.map_err(io_error)?))
    } else {
        Input::Stream(BufReader::with_capacity(1 << 20, file))
    };
    let mut r = Cursor {
        input,
        offset: 0,
        len,
        path: path.to_path_buf(),
    };
    let version = r.u32("format version")?;
    if version != CT2_VERSION {
        return Err(ModelError::Format {
            path: path.to_path_buf(),
            offset: 0,
            problem: format!("CTranslate2 format version {version}, only version {CT2_VERSION} is supported"),
        });
    }
    let spec = r.string("model spec name")?;
    if spec != "WhisperSpec" {
        return Err(ModelError::Format {
            path: path.to_path_buf(),
            offset: 4,
            problem: format!("model spec is {spec:?}, expected \"WhisperSpec\""),
        });
    }
    let _revision = r.u32("spec revision")?;
    let count = r.u32("variable count")?;
    let mut map = TensorMap {
        source: path.to_path_buf(),
        ..Default::default()
    };
    let mut raw = Vec::new();
    for index in 0..count {
        let header_at = r.offset;
        let name = r.string(&format!("name of variable {index}"))?;
        let rank = r.u8(&format!("rank of {name}"))? as usize;
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            shape.push(r.u32(&format!("shape of {name}"))? as usize);
        }
        let dtype = r.u8(&format!("dtype of {name}"))? as usize;
        let nbytes = r.u32(&format!("byte count of {name}"))? as usize;
        let (dtype_name, elem) = *CT2_DTYPES.get(dtype).ok_or_else(|| ModelError::Format {
            path: path.to_path_buf(),
            offset: header_at,
            problem: format!("tensor {name} has unknown dtype code {dtype}"),
        })?;
        let size = shape.iter().try_fold(elem, |n, &d| n.checked_mul(d));
        if size != Some(nbytes) {
            let should = size.map_or("more than 2^64".to_string(), |b| b.to_string());
            return Err(ModelError::Format {
                path: path.to_path_buf(),
                offset: header_at,
                problem: format!("tensor {name} {shape:?} of {dtype_name} should hold {should} bytes, header says {nbytes}"),
            });
        }
        let numel = nbytes / elem;
        r.require(nbytes, &format!("data of {name} ({nbytes} bytes)"))?;
        if dtype_name == "f16" {
            if let Some(halves) = r.halves(numel, &format!("data of {name} ({nbytes} bytes)"))? {
                map.halves.insert(name, (shape, halves));
                continue;
            }
            if cfg!(target_endian = "little") {
                // Read the halves in place and widen them with the slice conversion (F16C when
                // the CPU has it): a third of the load time otherwise.
                use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
                let mut bits = vec![0u16; numel];
                // SAFETY: the byte view covers exactly the u16 vector; every bit pattern is a u16.
                let bytes = unsafe { std::slice::from_raw_parts_mut(bits.as_mut_ptr() as *mut u8, numel * 2) };
                r.bytes(bytes, &format!("data of {name} ({nbytes} bytes)"))?;
                let mut data = vec![0.0f32; numel];
                let halves: &[f16] = bits.reinterpret_cast();
                halves.convert_to_f32_slice(&mut data);
                map.floats.insert(name, Tensor { shape, data });
                continue;
            }
        }
        raw.resize(nbytes, 0);
        r.bytes(&mut raw, &format!("data of {name} ({nbytes} bytes)"))?;
        match dtype_name {
            "f32" | "f16" | "bf16" => {
                let data = convert_floats(&raw, dtype_name);
                map.floats.insert(name, Tensor { shape, data });
            }
            _ => {
                // Integer flags (num_heads, activation, ...): keep scalars only.
                if numel == 1 {
                    let v = match dtype_name {
                        "i8" => raw[0] as i8 as i64,
                        "i16" => i16::from_le_bytes([raw[0], raw[1]]) as i64,
                        _ => i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]) as i64,
                    };
                    map.ints.insert(name, v);
                }
            }
        }
    }
    let aliases = r.u32("alias count")?;
    for _ in 0..aliases {
        let alias = r.string("alias name")?;
        let target = r.string(&format!("target of alias {alias}"))?;
        if let Some(t) = map.floats.get(&target) {
            // The only alias in Whisper files is the tied output projection; share by copying
            // only when something actually asks for it under the alias name.
            if alias != "decoder/projection/weight" {
                let t = t.clone();
                map.floats.insert(alias, t);
            }
        } else if let Some(t) = map.halves.get(&target) {
            if alias != "decoder/projection/weight" {
                let t = t.clone();
                map.halves.insert(alias, t);
            }
        } else if !map.ints.contains_key(&target) {
            return Err(ModelError::MissingTensor {
                path: path.to_path_buf(),
                name: format!("{target} (alias {alias})"),
            });
        }
    }
    Ok(map)
}

fn convert_floats(raw: &[u8], dtype: &str) -> Vec<f32> {
    match dtype {
        "f32" => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        "f16" => raw.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        "bf16" => raw.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        other => unreachable!("convert_floats called with {other}"),
    }
}

/// Sizes from a Hugging Face `config.json`.
#[derive(Debug, serde::Deserialize)]
pub struct HfConfig {
    pub d_model: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_attention_heads: usize,
    pub num_mel_bins: usize,
    pub vocab_size: usize,
}

/// Reads a Hugging Face Whisper checkpoint (`model.safetensors`) and renames/fuses its tensors
/// into the CTranslate2 layout. Head counts come from the config and are stored as the
/// `*/num_heads` scalars the CTranslate2 files carry.
pub fn read_safetensors(path: &Path, config: &HfConfig) -> Result<TensorMap, ModelError> {
    use safetensors::{Dtype, SafeTensors};
    let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Mapped rather than read so that the file's bytes are not held in memory next to their
    // f32 copy. SAFETY: the mapping is read-only and dropped before returning; a checkpoint
    // being rewritten while it loads is outside what a loader can defend against.
    let bytes = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Safetensors {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    let mut hf: HashMap<String, Tensor> = HashMap::new();
    for (name, view) in st.tensors() {
        let dtype = match view.dtype() {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::BF16 => "bf16",
            // Integer buffers are not weights.
            _ => continue,
        };
        hf.insert(
            name,
            Tensor {
                shape: view.shape().to_vec(),
                data: convert_floats(view.data(), dtype),
            },
        );
    }
    drop(st);
    drop(bytes);

    let mut map = TensorMap {
        source: path.to_path_buf(),
        ..Default::default()
    };
    let mut src = HfTensors {
        tensors: hf,
        path: path.to_path_buf(),
        out: Vec::new(),
    };
    let d = config.d_model;
    // Fused [q; k; v] (self-attention) or [k; v] (cross-attention).
    let fuse = |parts: Vec<Tensor>| -> Tensor {
        let mut w = Vec::new();
        let mut rows = 0;
        for p in &parts {
            rows += p.shape.first().copied().unwrap_or(0);
            w.extend_from_slice(&p.data);
        }
        let cols = parts.first().and_then(|p| p.shape.get(1)).copied().unwrap_or(0);
        Tensor {
            shape: vec![rows, cols],
            data: w,
        }
    };
    // HF's k_proj has no bias: its slice of the fused bias is zero.
    let fuse_bias = |biases: Vec<Option<Tensor>>| -> Tensor {
        let mut b = Vec::new();
        for bias in biases {
            match bias {
                Some(t) => b.extend_from_slice(&t.data),
                None => b.extend(std::iter::repeat_n(0.0, d)),
            }
        }
        Tensor { shape: vec![b.len()], data: b }
    };
    let src = &mut src;

    src.copy("model.encoder.conv1.weight", "encoder/conv1/weight")?;
    src.copy("model.encoder.conv1.bias", "encoder/conv1/bias")?;
    src.copy("model.encoder.conv2.weight", "encoder/conv2/weight")?;
    src.copy("model.encoder.conv2.bias", "encoder/conv2/bias")?;
    src.copy("model.encoder.embed_positions.weight", "encoder/position_encodings/encodings")?;
    src.copy("model.encoder.layer_norm.weight", "encoder/layer_norm/gamma")?;
    src.copy("model.encoder.layer_norm.bias", "encoder/layer_norm/beta")?;
    src.copy("model.decoder.embed_tokens.weight", "decoder/embeddings/weight")?;
    src.copy("model.decoder.embed_positions.weight", "decoder/position_encodings/encodings")?;
    src.copy("model.decoder.layer_norm.weight", "decoder/layer_norm/gamma")?;
    src.copy("model.decoder.layer_norm.bias", "decoder/layer_norm/beta")?;

    let stacks = [("encoder", config.encoder_layers), ("decoder", config.decoder_layers)];
    for (stack, layers) in stacks {
        for i in 0..layers {
            let hf_l = format!("model.{stack}.layers.{i}");
            let ct_l = format!("{stack}/layer_{i}");
            // Self-attention.
            let q = src.take(&format!("{hf_l}.self_attn.q_proj.weight"))?;
            let k = src.take(&format!("{hf_l}.self_attn.k_proj.weight"))?;
            let v = src.take(&format!("{hf_l}.self_attn.v_proj.weight"))?;
            let qb = src.take(&format!("{hf_l}.self_attn.q_proj.bias"))?;
            let kb = src.tensors.remove(&format!("{hf_l}.self_attn.k_proj.bias"));
            let vb = src.take(&format!("{hf_l}.self_attn.v_proj.bias"))?;
            src.out.push((format!("{ct_l}/self_attention/linear_0/weight"), fuse(vec![q, k, v])));
            src.out
                .push((format!("{ct_l}/self_attention/linear_0/bias"), fuse_bias(vec![Some(qb), kb, Some(vb)])));
            src.copy(&format!("{hf_l}.self_attn.out_proj.weight"), &format!("{ct_l}/self_attention/linear_1/weight"))?;
            src.copy(&format!("{hf_l}.self_attn.out_proj.bias"), &format!("{ct_l}/self_attention/linear_1/bias"))?;
            src.copy(
                &format!("{hf_l}.self_attn_layer_norm.weight"),
                &format!("{ct_l}/self_attention/layer_norm/gamma"),
            )?;
            src.copy(&format!("{hf_l}.self_attn_layer_norm.bias"), &format!("{ct_l}/self_attention/layer_norm/beta"))?;
            if stack == "decoder" {
                // Cross-attention: Q alone, K and V fused.
                src.copy(&format!("{hf_l}.encoder_attn.q_proj.weight"), &format!("{ct_l}/attention/linear_0/weight"))?;
                src.copy(&format!("{hf_l}.encoder_attn.q_proj.bias"), &format!("{ct_l}/attention/linear_0/bias"))?;
                let k = src.take(&format!("{hf_l}.encoder_attn.k_proj.weight"))?;
                let v = src.take(&format!("{hf_l}.encoder_attn.v_proj.weight"))?;
                let kb = src.tensors.remove(&format!("{hf_l}.encoder_attn.k_proj.bias"));
                let vb = src.take(&format!("{hf_l}.encoder_attn.v_proj.bias"))?;
                src.out.push((format!("{ct_l}/attention/linear_1/weight"), fuse(vec![k, v])));
                src.out.push((format!("{ct_l}/attention/linear_1/bias"), fuse_bias(vec![kb, Some(vb)])));
                src.copy(&format!("{hf_l}.encoder_attn.out_proj.weight"), &format!("{ct_l}/attention/linear_2/weight"))?;
                src.copy(&format!("{hf_l}.encoder_attn.out_proj.bias"), &format!("{ct_l}/attention/linear_2/bias"))?;
                src.copy(&format!("{hf_l}.encoder_attn_layer_norm.weight"), &format!("{ct_l}/attention/layer_norm/gamma"))?;
                src.copy(&format!("{hf_l}.encoder_attn_layer_norm.bias"), &format!("{ct_l}/attention/layer_norm/beta"))?;
            }
            src.copy(&format!("{hf_l}.fc1.weight"), &format!("{ct_l}/ffn/linear_0/weight"))?;
            src.copy(&format!("{hf_l}.fc1.bias"), &format!("{ct_l}/ffn/linear_0/bias"))?;
            src.copy(&format!("{hf_l}.fc2.weight"), &format!("{ct_l}/ffn/linear_1/weight"))?;
            src.copy(&format!("{hf_l}.fc2.bias"), &format!("{ct_l}/ffn/linear_1/bias"))?;
            src.copy(&format!("{hf_l}.final_layer_norm.weight"), &format!("{ct_l}/ffn/layer_norm/gamma"))?;
            src.copy(&format!("{hf_l}.final_layer_norm.bias"), &format!("{ct_l}/ffn/layer_norm/beta"))?;
        }
    }
    map.floats.extend(std::mem::take(&mut src.out));
    map.ints.insert("encoder/num_heads".into(), config.encoder_attention_heads as i64);
    map.ints.insert("decoder/num_heads".into(), config.decoder_attention_heads as i64);
    Ok(map)
}

/// Hugging Face tensors being renamed into CTranslate2 names.
struct HfTensors {
    tensors: HashMap<String, Tensor>,
    path: PathBuf,
    out: Vec<(String, Tensor)>,
}

impl HfTensors {
    fn take(&mut self, name: &str) -> Result<Tensor, ModelError> {
        self.tensors.remove(name).ok_or_else(|| ModelError::MissingTensor {
            path: self.path.clone(),
            name: name.to_string(),
        })
    }
    fn copy(&mut self, from: &str, to: &str) -> Result<(), ModelError> {
        let t = self.take(from)?;
        self.out.push((to.to_string(), t));
        Ok(())
    }
}

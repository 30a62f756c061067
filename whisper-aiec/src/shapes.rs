//! Shape classes: which design serves an op call of a given shape. [`crate::ops::KernelOps`] asks
//! these functions, and [`model_design_classes`] enumerates them for a whole model, so the bound on
//! distinct designs and the designs actually used cannot drift apart.
//!
//! Rows are padded to 4, 16, 64, then a multiple of 256; output columns to a multiple of 64 (of
//! 256 above 4096, so the logits projection's column tiles spread evenly over the array's
//! columns); attention keys to a multiple of 64; head width to a multiple of 64.

use std::collections::BTreeSet;

use whisper::model::{Linear, Model};

use crate::kernels::{KernelSpec, MATMUL_TILE_K};

/// Rows of a kernel call: 4, 16, 64, then multiples of 256.
pub fn pad_rows(n: usize) -> usize {
    match n {
        0..=4 => 4,
        5..=16 => 16,
        17..=64 => 64,
        _ => round_up(n, 256),
    }
}

/// Output columns of a linear layer.
pub fn pad_cols(n: usize) -> usize {
    if n > 4096 {
        round_up(n, 256)
    } else {
        round_up(n, 64)
    }
}

/// Attention keys.
pub fn pad_keys(n: usize) -> usize {
    round_up(n, 64)
}

pub(crate) fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to).max(1) * to
}

/// `x[rows, inputs] · w[outputs, inputs]ᵀ (+ bias)`: the bias is one more reduction row.
pub fn linear(rows: usize, inputs: usize, outputs: usize, bias: bool) -> KernelSpec {
    KernelSpec::Matmul {
        batch: 1,
        m: pad_rows(rows),
        k: round_up(inputs + bias as usize, MATMUL_TILE_K),
        n: pad_cols(outputs),
    }
}

/// conv1d as im2col + linear: `t_out` rows of `taps * c_in` inputs.
pub fn conv1d(t_out: usize, c_in: usize, taps: usize, c_out: usize) -> KernelSpec {
    linear(t_out, taps * c_in, c_out, true)
}

/// The three kernels of one attention call: scores, softmax, weighted sum.
pub fn attention(nq: usize, nk: usize, d: usize, heads: usize) -> [KernelSpec; 3] {
    let hd = d / heads.max(1);
    let (m, np, hdp) = (pad_rows(nq), pad_keys(nk), round_up(hd, 64));
    [
        KernelSpec::Matmul {
            batch: heads,
            m,
            k: hdp,
            n: np,
        },
        KernelSpec::Softmax {
            batch: heads,
            m,
            n: np,
            head_dim: hd,
        },
        KernelSpec::Matmul {
            batch: heads,
            m,
            k: np,
            n: hdp,
        },
    ]
}

pub fn layer_norm(rows: usize, d: usize) -> KernelSpec {
    KernelSpec::LayerNorm { m: pad_rows(rows), d }
}

pub fn gelu(rows: usize, cols: usize) -> KernelSpec {
    KernelSpec::Gelu { m: pad_rows(rows), n: cols }
}

/// The design of a model's linear layer at `rows` rows.
fn linear_of(l: &Linear, rows: usize) -> KernelSpec {
    let (outputs, inputs) = l.weight.dim();
    linear(rows, inputs, outputs, l.bias.is_some())
}

/// Every design `model` can use when decoding at most `beam` sequences of at most
/// `n_text_ctx` tokens: the bound on distinct designs for the model.
pub fn model_design_classes(model: &Model, beam: usize) -> BTreeSet<KernelSpec> {
    let dims = &model.dims;
    let mut specs = BTreeSet::new();
    let d = dims.d_model;
    let (frames, audio) = (dims.n_frames(), dims.n_audio_ctx);
    let enc = &model.encoder;
    specs.insert(KernelSpec::LogMel { n_mels: dims.n_mels });
    specs.insert(conv1d(frames, dims.n_mels, enc.conv1_weight.dim().2, d));
    specs.insert(gelu(frames, d));
    specs.insert(conv1d(audio, d, enc.conv2_weight.dim().2, d));
    specs.insert(gelu(audio, d));
    specs.insert(layer_norm(audio, d));
    for block in &enc.blocks {
        specs.insert(linear_of(&block.attn.qkv, audio));
        specs.insert(linear_of(&block.attn.out, audio));
        specs.insert(linear_of(&block.mlp.fc1, audio));
        specs.insert(gelu(audio, block.mlp.fc1.weight.dim().0));
        specs.insert(linear_of(&block.mlp.fc2, audio));
        specs.extend(attention(audio, audio, d, block.attn.heads));
    }
    let max_rows = beam.max(1) * dims.n_text_ctx;
    let row_classes: BTreeSet<usize> = (1..=max_rows).map(pad_rows).collect();
    let query_classes: BTreeSet<usize> = (1..=dims.n_text_ctx).map(pad_rows).collect();
    for block in &model.decoder.blocks {
        // Cross-attention keys and values, once per window.
        specs.insert(linear_of(&block.cross_attn.kv, audio));
        for &rows in &row_classes {
            specs.insert(layer_norm(rows, d));
            for l in [
                &block.self_attn.qkv,
                &block.self_attn.out,
                &block.cross_attn.query,
                &block.cross_attn.out,
                &block.mlp.fc1,
                &block.mlp.fc2,
            ] {
                specs.insert(linear_of(l, rows));
            }
            specs.insert(gelu(rows, block.mlp.fc1.weight.dim().0));
            specs.insert(linear(rows, d, model.decoder.embedding.nrows(), false));
        }
        // Queries per attention call are one sequence's new tokens; keys grow to n_text_ctx.
        for &nq in &query_classes {
            for nk in (1..=dims.n_text_ctx).map(pad_keys).collect::<BTreeSet<_>>() {
                if nk >= nq.min(dims.n_text_ctx) {
                    specs.extend(attention(nq, nk, d, block.self_attn.heads));
                }
            }
            specs.extend(attention(nq, audio, d, block.cross_attn.heads));
        }
    }
    specs
}

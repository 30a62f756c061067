//! Decoding one 30 s window: greedy, sampling and beam search, with Whisper's logit rules
//! (blank and non-speech suppression, timestamp pairing and monotonicity), language detection
//! and the no-speech probability.

use std::io::Write;

use ndarray::{Array2, Axis};

use crate::model::{CrossKv, KvCache, Model, ModelError};
use crate::ops::Ops;
use crate::tokenizer::{Task, WhisperTokenizer, TIME_PRECISION};

/// How to decode one window.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    pub task: Task,
    /// Language token; `None` for English-only models.
    pub language: Option<u32>,
    /// 0 = deterministic (greedy or beam search); above 0 = sampling at this temperature.
    pub temperature: f32,
    /// Beams at temperature 0 (1 = greedy).
    pub beam_size: usize,
    /// Independent samples at temperature > 0; the best by average log-probability wins.
    pub best_of: usize,
    /// Predict timestamp tokens (needed for long-form seeking and segment times).
    pub timestamps: bool,
    /// Latest allowed first timestamp, seconds.
    pub max_initial_timestamp: f64,
    /// Maximum sampled tokens per window.
    pub sample_len: usize,
    /// Previous text for conditioning (placed after `<|startofprev|>`).
    pub prompt: Vec<u32>,
    /// Forbid a blank or end-of-text as the first sampled token.
    pub suppress_blank: bool,
    /// Seed of the sampler.
    pub seed: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            task: Task::Transcribe,
            language: None,
            temperature: 0.0,
            beam_size: 5,
            best_of: 5,
            timestamps: true,
            max_initial_timestamp: 1.0,
            sample_len: 224,
            prompt: Vec::new(),
            suppress_blank: true,
            seed: 0x5eed,
        }
    }
}

/// The decoded text of one window and the statistics the fallback rules look at.
#[derive(Debug, Clone)]
pub struct DecodeResult {
    /// Sampled tokens (text and timestamps), without the final end-of-text.
    pub tokens: Vec<u32>,
    pub text: String,
    pub sum_logprob: f64,
    /// `sum_logprob / (tokens + 1)`: the end-of-text token counts too.
    pub avg_logprob: f64,
    /// Probability of the no-speech token at the start-of-transcript position.
    pub no_speech_prob: f64,
    pub temperature: f32,
    /// Text bytes over zlib-compressed bytes; repetition loops compress very well.
    pub compression_ratio: f64,
}

/// Model, ops and tokenizer plus the precomputed suppression lists.
pub struct Decoder<'a> {
    pub model: &'a Model,
    pub ops: &'a dyn Ops,
    pub tokenizer: &'a WhisperTokenizer,
    suppress: Vec<u32>,
    blank: Vec<u32>,
}

impl<'a> Decoder<'a> {
    pub fn new(model: &'a Model, ops: &'a dyn Ops, tokenizer: &'a WhisperTokenizer) -> Result<Self, ModelError> {
        let suppress = tokenizer
            .non_speech_tokens()?
            .into_iter()
            .filter(|&t| (t as usize) < model.dims.n_vocab)
            .collect();
        let mut blank = tokenizer.encode(" ")?;
        blank.push(tokenizer.eot);
        Ok(Self {
            model,
            ops,
            tokenizer,
            suppress,
            blank,
        })
    }

    /// `f()` run through [`Ops::run`] of these ops.
    fn on_ops<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let mut f = Some(f);
        let mut out = None;
        self.ops.run(&mut || out = f.take().map(|f| f()));
        out.expect("Ops::run calls its function once")
    }

    /// Cross-attention K/V of one window of log-mel `[n_mels, n_frames]`.
    pub fn encode(&self, mel: ndarray::ArrayView2<f32>) -> Result<CrossKv, ModelError> {
        self.on_ops(|| {
            let audio = self.model.encoder.forward(self.ops, mel)?;
            self.model.decoder.cross_kv(self.ops, audio.view())
        })
    }

    /// Language of the window: the most likely language token right after
    /// `<|startoftranscript|>`. Returns the token and its probability among languages.
    pub fn detect_language(&self, cross: &CrossKv) -> Result<(u32, f64), ModelError> {
        self.on_ops(|| self.detect_language_here(cross))
    }

    fn detect_language_here(&self, cross: &CrossKv) -> Result<(u32, f64), ModelError> {
        if !self.tokenizer.is_multilingual() {
            return Err(ModelError::EnglishOnly {
                what: "language detection".into(),
            });
        }
        let mut cache = KvCache::new(&self.model.dims, 1);
        let tokens = Array2::from_elem((1, 1), self.tokenizer.sot);
        let hidden = self.model.decoder.forward(self.ops, tokens.view(), &mut cache, cross)?;
        let logits = self.model.decoder.logits(self.ops, hidden.view(), std::slice::from_ref(&(0..usize::MAX)))?;
        let row = logits.row(0);
        let langs: Vec<(u32, f32)> = self
            .tokenizer
            .languages
            .iter()
            .filter(|(_, id)| (*id as usize) < row.len())
            .map(|(_, id)| (*id, row[*id as usize]))
            .collect();
        let max = langs.iter().map(|l| l.1).fold(f32::NEG_INFINITY, f32::max);
        let total: f64 = langs.iter().map(|l| ((l.1 - max) as f64).exp()).sum();
        let (best, best_logit) = langs
            .iter()
            .copied()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .ok_or_else(|| ModelError::EnglishOnly {
                what: "language detection (no language tokens)".into(),
            })?;
        Ok((best, ((best_logit - max) as f64).exp() / total))
    }

    /// Decodes one window whose cross-attention K/V are `cross`.
    pub fn decode(&self, cross: &CrossKv, opts: &DecodeOptions) -> Result<DecodeResult, ModelError> {
        self.on_ops(|| self.decode_here(cross, opts))
    }

    fn decode_here(&self, cross: &CrossKv, opts: &DecodeOptions) -> Result<DecodeResult, ModelError> {
        let tok = self.tokenizer;
        let n_ctx = self.model.dims.n_text_ctx;
        let mut prompt = Vec::new();
        if !opts.prompt.is_empty() {
            // At most half the context for previous text, its most recent tokens.
            let keep = (n_ctx / 2).saturating_sub(1);
            prompt.push(tok.sot_prev);
            prompt.extend_from_slice(&opts.prompt[opts.prompt.len().saturating_sub(keep)..]);
        }
        let sot_index = prompt.len();
        prompt.extend(tok.sot_sequence(opts.language, opts.task));
        if !opts.timestamps {
            prompt.push(tok.no_timestamps);
        }
        let max_tokens = opts.sample_len.min(n_ctx.saturating_sub(prompt.len()));

        let mut cache = KvCache::new(&self.model.dims, 1);
        let prompt_arr = Array2::from_shape_vec((1, prompt.len()), prompt.clone()).expect("1 x len");
        let hidden = self.model.decoder.forward(self.ops, prompt_arr.view(), &mut cache, cross)?;
        let rows = hidden.select(Axis(0), &[sot_index, prompt.len() - 1]);
        // Text and timestamps apart: the timestamp rule weighs the best of each.
        let exact_top = [0..tok.timestamp_begin as usize, tok.timestamp_begin as usize..usize::MAX];
        let first = self.model.decoder.logits(self.ops, rows.view(), &exact_top)?;
        let no_speech_prob = match tok.no_speech {
            Some(ns) if (ns as usize) < first.ncols() => {
                let mut p = first.row(0).to_vec();
                softmax(&mut p);
                p[ns as usize] as f64
            }
            _ => 0.0,
        };

        let n = if opts.temperature > 0.0 { opts.best_of.max(1) } else { opts.beam_size.max(1) };
        let beam = opts.temperature == 0.0 && n > 1;
        cache.reorder(&vec![0; n]);
        let vocab = first.ncols();
        let mut logits = Array2::<f32>::zeros((n, vocab));
        for mut row in logits.outer_iter_mut() {
            row.assign(&first.row(1));
        }

        let mut seqs: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut sums = vec![0.0f64; n];
        let mut finished: Vec<(Vec<u32>, f64)> = Vec::new();
        let mut rng = XorShift::new(opts.seed);
        let mut logprobs = vec![0.0f32; vocab];
        let mut next = Array2::<u32>::zeros((n, 1));

        for _step in 0..max_tokens {
            if beam {
                let mut candidates: Vec<(f64, usize, u32)> = Vec::new();
                for b in 0..n {
                    let row = logits.row_mut(b);
                    let row = row.into_slice().expect("standard layout");
                    self.apply_rules(row, &seqs[b], opts);
                    log_softmax(row, &mut logprobs);
                    for (t, lp) in top_k(&logprobs, n + 1) {
                        // Identical beams (all of them at the first step) give identical candidates.
                        let dup = candidates.iter().any(|&(_, s, tt)| tt == t && seqs[s] == seqs[b]);
                        if !dup && lp.is_finite() {
                            candidates.push((sums[b] + lp as f64, b, t));
                        }
                    }
                }
                candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
                let mut new_seqs = Vec::with_capacity(n);
                let mut new_sums = Vec::with_capacity(n);
                let mut sources = Vec::with_capacity(n);
                let mut newly_finished = Vec::new();
                for &(score, src, t) in &candidates {
                    if t == tok.eot {
                        newly_finished.push((seqs[src].clone(), score));
                    } else {
                        let mut s = seqs[src].clone();
                        s.push(t);
                        new_seqs.push(s);
                        new_sums.push(score);
                        sources.push(src);
                        if new_seqs.len() == n {
                            break;
                        }
                    }
                }
                for f in newly_finished {
                    if finished.len() >= n {
                        break;
                    }
                    finished.push(f);
                }
                if finished.len() >= n || new_seqs.is_empty() {
                    break;
                }
                // Fewer live candidates than beams only happens with tiny vocabularies; repeat the best.
                while new_seqs.len() < n {
                    new_seqs.push(new_seqs[0].clone());
                    new_sums.push(new_sums[0]);
                    sources.push(sources[0]);
                }
                // The prompt and the tokens two beams share hold the same keys and values.
                let same: Vec<usize> = (0..n)
                    .map(|b| {
                        let (old, src) = (&seqs[b], &seqs[sources[b]]);
                        prompt.len() + old.iter().zip(src.iter()).take_while(|(x, y)| x == y).count()
                    })
                    .collect();
                cache.reorder_keeping(&sources, &same);
                seqs = new_seqs;
                sums = new_sums;
            } else {
                let mut all_done = true;
                for b in 0..n {
                    if seqs[b].last() == Some(&tok.eot) {
                        continue;
                    }
                    let row = logits.row_mut(b);
                    let row = row.into_slice().expect("standard layout");
                    self.apply_rules(row, &seqs[b], opts);
                    log_softmax(row, &mut logprobs);
                    let t = if opts.temperature > 0.0 {
                        sample(row, opts.temperature, &mut rng)
                    } else {
                        argmax(row)
                    };
                    sums[b] += logprobs[t as usize] as f64;
                    seqs[b].push(t);
                    all_done &= t == tok.eot;
                }
                if all_done {
                    break;
                }
            }
            if cache.len + 1 > n_ctx {
                break;
            }
            for (b, s) in seqs.iter().enumerate() {
                // Finished sequences keep feeding end-of-text; their output is ignored.
                next[[b, 0]] = s.last().copied().unwrap_or(tok.eot);
            }
            let hidden = self.model.decoder.forward(self.ops, next.view(), &mut cache, cross)?;
            logits = self.model.decoder.logits(self.ops, hidden.view(), &exact_top)?;
        }

        // Candidates: finished beams, topped up with the live ones; or every sample.
        let mut pool: Vec<(Vec<u32>, f64)> = if beam {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| sums[b].total_cmp(&sums[a]));
            for b in order {
                if finished.len() >= n {
                    break;
                }
                finished.push((seqs[b].clone(), sums[b]));
            }
            finished
        } else {
            seqs.into_iter().zip(sums).collect()
        };
        for (s, _) in pool.iter_mut() {
            if let Some(end) = s.iter().position(|&t| t == tok.eot) {
                s.truncate(end);
            }
        }
        // Rank by log-probability per token (the reference length penalty).
        let (tokens, sum_logprob) = pool
            .into_iter()
            .max_by(|a, b| (a.1 / a.0.len().max(1) as f64).total_cmp(&(b.1 / b.0.len().max(1) as f64)))
            .expect("at least one candidate");
        let text = tok.decode(&tokens)?;
        Ok(DecodeResult {
            avg_logprob: sum_logprob / (tokens.len() + 1) as f64,
            compression_ratio: compression_ratio(&text),
            tokens,
            text,
            sum_logprob,
            no_speech_prob,
            temperature: opts.temperature,
        })
    }

    /// Sets forbidden tokens of one sequence's next-token logits to -inf.
    fn apply_rules(&self, logits: &mut [f32], seq: &[u32], opts: &DecodeOptions) {
        let tok = self.tokenizer;
        let ninf = f32::NEG_INFINITY;
        if opts.suppress_blank && seq.is_empty() {
            for &t in &self.blank {
                logits[t as usize] = ninf;
            }
        }
        for &t in &self.suppress {
            logits[t as usize] = ninf;
        }
        let rules = TimestampRules {
            eot: tok.eot,
            no_timestamps: tok.no_timestamps,
            timestamp_begin: tok.timestamp_begin,
            max_initial: (opts.max_initial_timestamp / TIME_PRECISION).round() as u32,
        };
        if opts.timestamps {
            rules.apply(logits, seq);
        } else {
            let n = logits.len();
            logits[(tok.timestamp_begin as usize).min(n)..].fill(ninf);
        }
    }
}

/// Whisper's timestamp grammar, applied to next-token logits: a window starts with a timestamp
/// no later than `max_initial` steps, timestamps come in pairs (end of one segment, start of
/// the next) and never decrease, a segment has non-zero length, and when the timestamps
/// together are likelier than any text token a timestamp must come.
#[derive(Debug, Clone, Copy)]
pub struct TimestampRules {
    pub eot: u32,
    pub no_timestamps: u32,
    pub timestamp_begin: u32,
    /// Latest first timestamp, in timestamp steps.
    pub max_initial: u32,
}

impl TimestampRules {
    /// Sets forbidden entries of `logits` to -inf; `seq` is what was sampled so far.
    pub fn apply(&self, logits: &mut [f32], seq: &[u32]) {
        let ninf = f32::NEG_INFINITY;
        let n = logits.len();
        let ts = (self.timestamp_begin as usize).min(n);
        let eot = self.eot as usize;
        logits[self.no_timestamps as usize] = ninf;
        let is_ts = |t: u32| t >= self.timestamp_begin;
        let last_ts = seq.last().is_some_and(|&t| is_ts(t));
        let penultimate_ts = seq.len() < 2 || is_ts(seq[seq.len() - 2]);
        if last_ts {
            if penultimate_ts {
                // A closed pair (or the opening timestamp): text must come next.
                logits[ts..].fill(ninf);
            } else {
                // An open segment: close it with a timestamp, or end.
                logits[..eot].fill(ninf);
            }
        }
        if let Some(&last) = seq.iter().rev().find(|&&t| is_ts(t)) {
            // Monotonic; a closing timestamp may repeat as the next opening one, but a segment
            // that was just opened must have non-zero length.
            let upto = if last_ts && !penultimate_ts { last } else { last + 1 } as usize;
            logits[ts..upto.min(n)].fill(ninf);
        }
        if seq.is_empty() {
            logits[..ts].fill(ninf);
            let last_allowed = ts + self.max_initial as usize;
            if last_allowed + 1 < n {
                logits[last_allowed + 1..].fill(ninf);
            }
        }
        // Total probability of the timestamps against the best single text token.
        let ts_part = &logits[ts..];
        let ts_max = ts_part.iter().copied().fold(ninf, f32::max);
        if ts_max == ninf {
            return;
        }
        let ts_lse = ts_max + ts_part.iter().map(|&x| (x - ts_max).exp()).sum::<f32>().ln();
        let text_max = max_of(&logits[..ts]);
        if ts_lse > text_max {
            logits[..ts].fill(ninf);
        }
    }
}

fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = x
        .iter_mut()
        .map(|v| {
            *v = (*v - max).exp();
            *v
        })
        .sum();
    x.iter_mut().for_each(|v| *v /= sum);
}

fn log_softmax(x: &[f32], out: &mut [f32]) {
    let max = max_of(x);
    if max == f32::NEG_INFINITY {
        out.fill(f32::NEG_INFINITY);
        return;
    }
    let lse = max + sum_exp(x, max).ln();
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v - lse;
    }
}

/// The largest entry (-inf for none), in a form that vectorises.
fn max_of(x: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = if v > *l { v } else { *l };
        }
    }
    let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    lanes.iter().copied().fold(tail, f32::max)
}

/// Σ e^(x - max) over the vocabulary, once per step and beam: the polynomial exp, vectorised
/// (-inf entries clamp to e^-87, far below the sum's rounding), instead of libm's.
#[inline(always)]
fn sum_exp_body(x: &[f32], max: f32) -> f32 {
    let mut lanes = [0.0f32; 16];
    let mut chunks = x.chunks_exact(16);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += crate::ops::exp_f32(v - max);
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().map(|&v| crate::ops::exp_f32(v - max)).sum::<f32>()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sum_exp_avx2(x: &[f32], max: f32) -> f32 {
    sum_exp_body(x, max)
}

fn sum_exp(x: &[f32], max: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the enabled features.
        return unsafe { sum_exp_avx2(x, max) };
    }
    sum_exp_body(x, max)
}

fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

/// The `k` largest entries, largest first.
fn top_k(x: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut best: Vec<(u32, f32)> = Vec::with_capacity(k + 1);
    for (i, &v) in x.iter().enumerate() {
        if best.len() < k || v > best[best.len() - 1].1 {
            let pos = best.iter().position(|b| v > b.1).unwrap_or(best.len());
            best.insert(pos, (i as u32, v));
            best.truncate(k);
        }
    }
    best
}

/// Samples from `softmax(logits / temperature)`.
fn sample(logits: &[f32], temperature: f32, rng: &mut XorShift) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f64 = logits.iter().map(|&v| (((v - max) / temperature) as f64).exp()).sum();
    let mut r = rng.next_f64() * total;
    for (i, &v) in logits.iter().enumerate() {
        let p = (((v - max) / temperature) as f64).exp();
        if r < p && p > 0.0 {
            return i as u32;
        }
        r -= p;
    }
    argmax(logits)
}

/// Small deterministic generator for sampling (xorshift64*).
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The longest prefix of `tokens` whose text is not a repetition loop (compression ratio at
/// most `threshold`): the last resort when every fallback temperature still loops. The ratio
/// grows with each repetition, so a binary search over the prefix length finds the cut.
pub fn cut_repetition(tok: &WhisperTokenizer, tokens: &[u32], threshold: f64) -> Result<usize, ModelError> {
    let (mut lo, mut hi) = (0usize, tokens.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if compression_ratio(&tok.decode(&tokens[..mid])?) <= threshold {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo)
}

/// Bytes of `text` over its zlib-compressed size.
pub fn compression_ratio(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = z.write_all(text.as_bytes());
    let compressed = z.finish().map(|v| v.len()).unwrap_or(text.len());
    text.len() as f64 / compressed.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    // A toy vocabulary: text 0..10, end-of-text 10, no-timestamps 12, timestamps 13..40.
    const RULES: TimestampRules = TimestampRules {
        eot: 10,
        no_timestamps: 12,
        timestamp_begin: 13,
        max_initial: 5,
    };

    fn allowed(seq: &[u32], logits: &[f32]) -> Vec<u32> {
        let mut l = logits.to_vec();
        RULES.apply(&mut l, seq);
        (0..l.len() as u32).filter(|&i| l[i as usize] > f32::NEG_INFINITY).collect()
    }

    #[test]
    fn window_starts_with_an_early_timestamp() {
        let flat = vec![0.0f32; 40];
        assert_eq!(allowed(&[], &flat), (13..=18).collect::<Vec<_>>());
    }

    #[test]
    fn timestamps_pair_up_and_never_decrease() {
        // Text much likelier than timestamps, so the forcing rule stays out of the way.
        let flat: Vec<f32> = (0..40).map(|t| if t < 13 { 10.0 } else { 0.0 }).collect();
        // After the opening timestamp: text (or end) only, never another timestamp.
        let a = allowed(&[15], &flat);
        assert!(a.iter().all(|&t| t < 13) && a.contains(&3) && !a.contains(&12));
        // Text after an opening <|15|>: text, end, or a later timestamp (non-zero length).
        let a = allowed(&[15, 4], &flat);
        assert!(a.contains(&4) && a.contains(&10) && a.contains(&16) && !a.contains(&15) && !a.contains(&14));
        // An open segment after text+timestamp: only a timestamp >= the last one, or end.
        let a = allowed(&[15, 4, 20], &flat);
        // (11 stands for the special tokens between end-of-text and the timestamps, which the
        // suppression list removes.)
        assert_eq!(a, [10, 11].into_iter().chain(20..40).collect::<Vec<_>>());
        // A closed pair: text must follow.
        let a = allowed(&[15, 4, 20, 20], &flat);
        assert!(a.iter().all(|&t| t < 13));
    }

    #[test]
    fn likely_timestamps_force_a_timestamp() {
        // 24 allowed timestamps (16..40) at logit 0 outweigh a text token at 3: 24 > e^3 = 20.1.
        let mut logits = vec![-10.0f32; 40];
        logits[5] = 3.0;
        logits[13..].fill(0.0);
        let a = allowed(&[15, 4], &logits);
        assert_eq!(a, (16..40).collect::<Vec<_>>());
        logits[5] = 4.0; // e^4 = 54.6 > 24 timestamps: text stays allowed.
        assert!(allowed(&[15, 4], &logits).contains(&5));
    }

    #[test]
    fn top_k_is_sorted_and_complete() {
        let x = [0.1, 5.0, -1.0, 3.0, 5.5, 2.0];
        assert_eq!(top_k(&x, 3), vec![(4, 5.5), (1, 5.0), (3, 3.0)]);
    }

    #[test]
    fn repetition_compresses_well() {
        let loop_text = "I'm going to go. ".repeat(20);
        assert!(compression_ratio(&loop_text) > 2.4);
        assert!(compression_ratio("And so my fellow Americans, ask not what your country can do for you.") < 2.4);
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let mut rng = XorShift::new(7);
        let logits = [0.0f32, (3.0f32).ln()];
        let ones = (0..4000).filter(|_| sample(&logits, 1.0, &mut rng) == 1).count();
        // p(1) = 0.75
        assert!((2800..3200).contains(&ones), "{ones}");
    }
}

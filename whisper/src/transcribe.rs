//! Long-form transcription: 30 s windows that seek by the last timestamp the model predicted,
//! with temperature fallback against repetition loops and the no-speech skip.
//!
//! A [`Transcriber`] runs every heavy op through the [`Ops`] it was given at construction: the
//! caller picks the implementation ([`crate::ops::CpuOps`] with its thread count, or another
//! backend) and computes the log-mel with the same ops ([`Ops::log_mel`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::{s, Array2};

use crate::decode::{compression_ratio, cut_repetition, DecodeOptions, DecodeResult, Decoder};
use crate::model::{Model, ModelError};
use crate::ops::Ops;
use crate::tokenizer::{Task, WhisperTokenizer, TIME_PRECISION};
use crate::{Segment, Transcript};

/// Mel frames per second (hop 160 at 16 kHz).
pub const FRAMES_PER_SECOND: usize = 100;

/// How to transcribe a file.
#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    /// Language code or name; `None` detects it from the first window (multilingual models).
    pub language: Option<String>,
    pub task: Task,
    /// Beams at temperature 0 (1 = greedy).
    pub beam_size: usize,
    /// Samples per window when falling back to temperature > 0.
    pub best_of: usize,
    /// Temperatures tried in order until a window decodes without looking like a loop.
    pub temperatures: Vec<f32>,
    /// Above this gzip-style compression ratio the text is a repetition loop.
    pub compression_ratio_threshold: f64,
    /// Below this average log-probability the text is unreliable.
    pub logprob_threshold: f64,
    /// A window with no-speech probability above this (and low log-probability) is silence.
    pub no_speech_threshold: f64,
    /// Give the previous window's text as a prompt.
    pub condition_on_previous_text: bool,
    /// Predict timestamps (segment times and precise seeking).
    pub timestamps: bool,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            language: None,
            task: Task::Transcribe,
            beam_size: 5,
            best_of: 5,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            compression_ratio_threshold: 2.4,
            logprob_threshold: -1.0,
            no_speech_threshold: 0.6,
            condition_on_previous_text: true,
            timestamps: true,
        }
    }
}

/// A loaded model with its tokenizer and the ops that run it.
pub struct Transcriber {
    pub model: Model,
    pub tokenizer: WhisperTokenizer,
    ops: Arc<dyn Ops>,
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber")
            .field("model", &self.model)
            .field("tokenizer", &self.tokenizer)
            .finish_non_exhaustive()
    }
}

impl Transcriber {
    /// A transcriber for `model` and `tokenizer` whose heavy ops (log-mel included) run on
    /// `ops`, e.g. `Arc::new(CpuOps::new(threads)?)`. Fails when the tokenizer's vocabulary
    /// does not fit the model's.
    pub fn new(model: Model, tokenizer: WhisperTokenizer, ops: Arc<dyn Ops>) -> Result<Self, ModelError> {
        let dims = &model.dims;
        if dims.is_multilingual() != tokenizer.is_multilingual() {
            return Err(ModelError::VocabMismatch {
                problem: format!(
                    "model vocabulary of {} tokens is {}, tokenizer is {}",
                    dims.n_vocab,
                    if dims.is_multilingual() { "multilingual" } else { "English-only" },
                    if tokenizer.is_multilingual() { "multilingual" } else { "English-only" },
                ),
            });
        }
        if (tokenizer.timestamp_begin as usize) >= dims.n_vocab {
            return Err(ModelError::VocabMismatch {
                problem: format!(
                    "model vocabulary of {} tokens has no timestamp tokens (they start at {})",
                    dims.n_vocab, tokenizer.timestamp_begin
                ),
            });
        }
        Ok(Self { model, tokenizer, ops })
    }

    /// The ops every heavy computation of this transcriber goes through; compute the log-mel
    /// to transcribe with `ops().log_mel(&samples, model.dims.n_mels)`.
    pub fn ops(&self) -> &Arc<dyn Ops> {
        &self.ops
    }

    /// Checks, without loading anything, that `model_dir` is a directory holding the files
    /// [`Self::load`] reads and that they can be opened. Loading takes seconds; this takes
    /// microseconds, so a program can report a wrong `model_dir` before other slow work.
    pub fn check_dir(model_dir: &Path) -> Result<(), ModelError> {
        let dir = model_dir.to_path_buf();
        match std::fs::metadata(model_dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ModelError::NoModelDir { dir }),
            Err(source) => return Err(ModelError::Io { path: dir, source }),
            Ok(meta) if !meta.is_dir() => return Err(ModelError::NotAModelDir { dir }),
            Ok(_) => {}
        }
        // A regular file that opens for reading (metadata first: opening a FIFO would block).
        let readable = |path: PathBuf| match std::fs::metadata(&path) {
            Ok(meta) if !meta.is_file() => Err(ModelError::Io {
                path,
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
            }),
            Ok(_) => std::fs::File::open(&path).map(drop).map_err(|source| ModelError::Io { path, source }),
            Err(source) => Err(ModelError::Io { path, source }),
        };
        let (ct2, hf, config) = (model_dir.join("model.bin"), model_dir.join("model.safetensors"), model_dir.join("config.json"));
        if ct2.exists() {
            readable(ct2)?;
        } else if hf.exists() {
            readable(hf)?;
            if !config.exists() {
                return Err(ModelError::MissingFile {
                    path: config,
                    needed: "model.safetensors needs its config.json",
                });
            }
            readable(config)?;
        } else {
            return Err(ModelError::NoModel { dir });
        }
        let tokenizer = model_dir.join("tokenizer.json");
        if !tokenizer.exists() {
            return Err(ModelError::MissingFile {
                path: tokenizer,
                needed: "the model directory needs its tokenizer.json",
            });
        }
        readable(tokenizer)
    }

    /// Loads `model_dir/{model.bin | model.safetensors + config.json}` and
    /// `model_dir/tokenizer.json`; the model runs on `ops` ([`Self::new`]).
    pub fn load(model_dir: &Path, ops: Arc<dyn Ops>) -> Result<Self, ModelError> {
        Self::load_with(model_dir, ops, crate::model::ComputeType::F32)
    }

    /// [`Self::load`] with the model converted to `compute`.
    pub fn load_with(model_dir: &Path, ops: Arc<dyn Ops>, compute: crate::model::ComputeType) -> Result<Self, ModelError> {
        crate::ops::single_threaded_sgemm();
        Self::check_dir(model_dir)?;
        let model = Model::load_with(model_dir, compute)?;
        let tokenizer = WhisperTokenizer::from_file(&model_dir.join("tokenizer.json"))?;
        Self::new(model, tokenizer, ops)
    }

    /// Transcribes `mel` (`[n_mels, frames]`, the audio's log-mel followed by 30 s of padding, as
    /// [`Ops::log_mel`] of [`Self::ops`] computes it);
    /// `n_audio_frames` of it are real audio. `progress` receives the seconds done.
    /// Windows whose log-mel is flat (digital silence) are skipped; prefer
    /// [`Self::transcribe_with_signal`] when the samples are at hand, which skips near-silence too.
    pub fn transcribe(
        &self,
        mel: &Array2<f32>,
        n_audio_frames: usize,
        opts: &TranscribeOptions,
        progress: &mut dyn FnMut(f64),
    ) -> Result<Transcript, ModelError> {
        self.transcribe_gated(mel, n_audio_frames, None, opts, progress)
    }

    /// [`Self::transcribe`], also skipping every 30 s window in which no frame has signal:
    /// `signal[i]` says whether mel frame `i` rises above [`crate::mel::SILENCE_RMS`]
    /// ([`crate::mel::frames_with_signal`] of the same samples). So near-silence (dither, codec
    /// noise) gives an empty transcript instead of a hallucinated word. Frames past the end of
    /// `signal` count as having signal.
    pub fn transcribe_with_signal(
        &self,
        mel: &Array2<f32>,
        n_audio_frames: usize,
        signal: &[bool],
        opts: &TranscribeOptions,
        progress: &mut dyn FnMut(f64),
    ) -> Result<Transcript, ModelError> {
        self.transcribe_gated(mel, n_audio_frames, Some(signal), opts, progress)
    }

    fn transcribe_gated(
        &self,
        mel: &Array2<f32>,
        n_audio_frames: usize,
        signal: Option<&[bool]>,
        opts: &TranscribeOptions,
        progress: &mut dyn FnMut(f64),
    ) -> Result<Transcript, ModelError> {
        let dims = self.model.dims;
        let tok = &self.tokenizer;
        if mel.nrows() != dims.n_mels {
            return Err(ModelError::InputShape {
                what: "log-mel spectrogram",
                expected: format!("{} mel bins", dims.n_mels),
                found: format!("{} rows", mel.nrows()),
            });
        }
        let content = n_audio_frames.min(mel.ncols());
        let window = dims.n_frames();
        let decoder = Decoder::new(&self.model, self.ops.as_ref(), tok)?;
        let duration = n_audio_frames as f64 / FRAMES_PER_SECOND as f64;

        if !tok.is_multilingual() {
            if let Some(lang) = opts.language.as_deref().filter(|l| !matches!(l.to_lowercase().as_str(), "en" | "english")) {
                return Err(ModelError::EnglishOnly {
                    what: format!("language {lang:?}"),
                });
            }
            if opts.task == Task::Translate {
                return Err(ModelError::EnglishOnly {
                    what: "the translate task".into(),
                });
            }
        }
        let mut language = match (&opts.language, tok.is_multilingual()) {
            (Some(l), true) => Some(tok.language_token(l)?),
            _ => None,
        };

        let mut segments = Vec::new();
        let mut all_tokens: Vec<u32> = Vec::new();
        let mut prompt_reset_since = 0;
        let mut seek = 0usize;
        while seek < content {
            let segment_frames = window.min(content - seek);
            // The window is the real frames followed by zeros, as the model was trained.
            let mut mel_window = Array2::<f32>::zeros((dims.n_mels, window));
            mel_window
                .slice_mut(s![.., ..segment_frames])
                .assign(&mel.slice(s![.., seek..seek + segment_frames]));
            let time_offset = seek as f64 / FRAMES_PER_SECOND as f64;
            let segment_duration = segment_frames as f64 / FRAMES_PER_SECOND as f64;

            // A window without any signal (digital silence gives a flat log-mel; near-silence has
            // no frame above the silence level) holds no speech; decoding it anyway lets the model
            // hallucinate a word such as "You".
            let real = mel.slice(s![.., seek..seek + segment_frames]);
            let (lo, hi) = real.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
            let below_silence = signal.is_some_and(|signal| {
                let end = seek + segment_frames;
                end <= signal.len() && !signal[seek..end].iter().any(|&s| s)
            });
            if hi - lo < 1e-3 || below_silence {
                seek += segment_frames;
                progress(seek.min(content) as f64 / FRAMES_PER_SECOND as f64);
                continue;
            }

            let cross = decoder.encode(mel_window.view())?;
            if tok.is_multilingual() && language.is_none() {
                language = Some(decoder.detect_language(&cross)?.0);
            }
            let prompt = if opts.condition_on_previous_text {
                all_tokens[prompt_reset_since..].to_vec()
            } else {
                Vec::new()
            };
            let base = DecodeOptions {
                task: opts.task,
                language,
                beam_size: opts.beam_size,
                best_of: opts.best_of,
                timestamps: opts.timestamps,
                prompt,
                seed: 0x5eed ^ seek as u64,
                ..DecodeOptions::default()
            };
            let mut result = self.decode_with_fallback(&decoder, &cross, &base, opts)?;
            if result.compression_ratio > opts.compression_ratio_threshold {
                // Still a loop at the highest temperature: keep the text before it starts
                // repeating; seeking then continues from the last complete segment.
                let keep = cut_repetition(tok, &result.tokens, opts.compression_ratio_threshold)?;
                result.tokens.truncate(keep);
                result.text = tok.decode(&result.tokens)?;
                result.compression_ratio = compression_ratio(&result.text);
            }

            let silent = result.no_speech_prob > opts.no_speech_threshold && result.avg_logprob < opts.logprob_threshold;
            if silent {
                seek += segment_frames;
                progress(seek.min(content) as f64 / FRAMES_PER_SECOND as f64);
                continue;
            }

            let tokens = &result.tokens;
            let is_ts: Vec<bool> = tokens.iter().map(|&t| tok.is_timestamp(t)).collect();
            let single_timestamp_ending = is_ts.len() >= 2 && !is_ts[is_ts.len() - 2] && is_ts[is_ts.len() - 1];
            // Indices that start a new segment: after a pair of consecutive timestamps.
            let consecutive: Vec<usize> = (1..tokens.len()).filter(|&i| is_ts[i] && is_ts[i - 1]).collect();
            let mut new_segments = Vec::new();
            if !consecutive.is_empty() {
                let mut slices = consecutive.clone();
                if single_timestamp_ending {
                    slices.push(tokens.len());
                }
                let mut last = 0;
                for &cur in &slices {
                    let part = &tokens[last..cur];
                    let start = time_offset + tok.timestamp_seconds(part[0].max(tok.timestamp_begin));
                    let end = time_offset + tok.timestamp_seconds(part[part.len() - 1].max(tok.timestamp_begin));
                    new_segments.push((self.segment(start, end, part)?, part.to_vec()));
                    last = cur;
                }
                if single_timestamp_ending {
                    seek += segment_frames;
                } else {
                    // Continue from the last complete segment's end timestamp.
                    let last_ts = tok.timestamp_seconds(tokens[last - 1]);
                    let advance = (last_ts / TIME_PRECISION).round() as usize * 2;
                    seek += advance.max(1);
                }
            } else {
                let mut end = segment_duration;
                if let Some(&last) = tokens.iter().rev().find(|&&t| tok.is_timestamp(t)) {
                    if last != tok.timestamp_begin {
                        end = tok.timestamp_seconds(last);
                    }
                }
                new_segments.push((self.segment(time_offset, time_offset + end, tokens)?, tokens.clone()));
                seek += segment_frames;
            }
            for (seg, raw) in new_segments {
                if seg.text.trim().is_empty() || seg.end <= seg.start {
                    continue;
                }
                // The prompt keeps the timestamps: a text-only prompt makes the model drop them.
                all_tokens.extend(raw);
                segments.push(seg);
            }
            if !opts.condition_on_previous_text || result.temperature > 0.5 {
                // A window that needed high temperature is a bad prompt for the next one.
                prompt_reset_since = all_tokens.len();
            }
            progress(seek.min(content) as f64 / FRAMES_PER_SECOND as f64);
        }

        let language = match language {
            Some(t) => tok.language_code(t).unwrap_or("en").to_string(),
            None => "en".to_string(),
        };
        Ok(Transcript { language, segments, duration })
    }

    fn segment(&self, start: f64, end: f64, tokens: &[u32]) -> Result<Segment, ModelError> {
        let text_tokens: Vec<u32> = tokens.iter().copied().filter(|&t| t < self.tokenizer.eot).collect();
        Ok(Segment {
            start,
            end,
            text: self.tokenizer.decode(&text_tokens)?,
            tokens: text_tokens,
        })
    }

    /// Decodes at increasing temperatures until the text is neither a repetition loop nor
    /// improbable; silence (high no-speech probability) needs no retry.
    fn decode_with_fallback(
        &self,
        decoder: &Decoder,
        cross: &crate::model::CrossKv,
        base: &DecodeOptions,
        opts: &TranscribeOptions,
    ) -> Result<DecodeResult, ModelError> {
        let temps = if opts.temperatures.is_empty() { vec![0.0] } else { opts.temperatures.clone() };
        let mut result = None;
        for &t in &temps {
            let mut o = base.clone();
            o.temperature = t;
            let r = decoder.decode(cross, &o)?;
            let looped = r.compression_ratio > opts.compression_ratio_threshold;
            let unlikely = r.avg_logprob < opts.logprob_threshold;
            let silence = r.no_speech_prob > opts.no_speech_threshold && unlikely;
            let done = silence || (!looped && !unlikely);
            result = Some(r);
            if done {
                break;
            }
        }
        Ok(result.expect("at least one temperature"))
    }
}

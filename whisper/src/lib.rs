//! Whisper speech recognition: audio -> log-mel -> encoder -> decoder (KV cache) -> tokens -> text.
//!
//! * [`audio`] decodes wav/flac/mp3/ogg to 16 kHz mono f32.
//! * [`mel`] computes Whisper's 80/128-bin log-mel spectrogram.
//! * [`model`] loads CTranslate2 `model.bin` or Hugging Face safetensors and runs encoder/decoder.
//! * [`ops`] is the one boundary every heavy op goes through (the CPU reference implements it).
//! * [`tokenizer`] wraps `tokenizer.json` with Whisper's special, language and timestamp tokens.
//! * [`decode`] greedy/beam search with timestamp rules; [`transcribe`] long-form windows.
//! * [`quant`] int8 weights and the int8 matrix-product kernels (AVX-512 VNNI, AVX2, scalar).
//! * [`output`] txt/srt/vtt/json writers; [`assets`] where the default model and samples live.

pub mod assets;
mod attn;
pub mod audio;
pub mod decode;
pub mod mel;
pub mod model;
pub mod ops;
pub mod output;
pub mod quant;
pub mod tokenizer;
pub mod transcribe;

/// A transcribed span of audio.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Segment {
    /// Seconds from the start of the audio.
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub tokens: Vec<u32>,
}

/// The result of transcribing one audio file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Transcript {
    pub language: String,
    pub segments: Vec<Segment>,
    /// Duration of the audio in seconds.
    pub duration: f64,
}

impl Transcript {
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

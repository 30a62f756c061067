//! Whisper's log-mel spectrogram front end.
//!
//! Matches the reference pipeline: 30 s of zeros appended, 400-point STFT with a periodic Hann
//! window and hop 160, centred frames with reflect padding, power spectrum, last frame dropped,
//! Slaney mel filterbank, log10 with a floor, dynamic range clamped to 8 (log10 units) below the
//! maximum, then scaled with (x + 4) / 4.
//!
//! [`log_mel_spectrogram`] is the reference. It is assembled from public pieces that another
//! implementation (for example the DFT as a matrix product on an accelerator) uses to compute
//! the same thing:
//!
//! 1. [`check_input`]: the same input errors;
//! 2. [`padded_signal`]: the signal with its 30 s of zeros and the centring reflect padding,
//!    and the number of frames kept; frame `i` is `padded[i * HOP_LENGTH..][..N_FFT]`;
//! 3. [`periodic_hann`]: the window each frame is multiplied with before its `N_FFT`-point DFT;
//! 4. power `|X[k]|²` of the first [`N_FREQ`] bins, mel energies with [`mel_filterbank`]
//!    (`filters[n_mels, N_FREQ] · power`), then `log10(max(energy, LOG_FLOOR))`;
//! 5. [`scale_log_mel`]: the dynamic-range clamp and scaling of the whole spectrogram.

use std::sync::Arc;

use ndarray::{s, Array2, ArrayBase, ArrayViewMut2, Data, Ix2};
use rayon::prelude::*;
use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

use crate::audio::SAMPLE_RATE;

/// FFT size of Whisper's STFT (25 ms at 16 kHz).
pub const N_FFT: usize = 400;
/// Hop between frames (10 ms at 16 kHz).
pub const HOP_LENGTH: usize = 160;
/// Samples in one 30 s window.
pub const N_SAMPLES: usize = 30 * SAMPLE_RATE as usize;
/// Mel frames in one 30 s window.
pub const N_FRAMES: usize = N_SAMPLES / HOP_LENGTH;
/// Frequency bins of the one-sided spectrum the mel filters read: `N_FFT / 2 + 1` (201).
pub const N_FREQ: usize = N_FFT / 2 + 1;
/// Floor applied to mel energies before `log10`: `log10(max(energy, LOG_FLOOR))`.
pub const LOG_FLOOR: f32 = 1e-10;
/// Dynamic range kept below the spectrogram's maximum, in log10 units (80 dB).
pub const DYNAMIC_RANGE: f32 = 8.0;

#[derive(Debug, thiserror::Error)]
pub enum MelError {
    #[error("the number of mel bins must be positive")]
    ZeroMelBins,
    #[error("sample {index} is not a finite number ({value})")]
    NonFiniteSample { index: usize, value: f32 },
}

/// Hertz to mel on the Slaney scale: linear below 1 kHz, logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let log_step = 6.4f64.ln() / 27.0;
    if hz >= MIN_LOG_HZ {
        min_log_mel + (hz / MIN_LOG_HZ).ln() / log_step
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    let min_log_mel = MIN_LOG_HZ / F_SP;
    let log_step = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        MIN_LOG_HZ * (log_step * (mel - min_log_mel)).exp()
    } else {
        F_SP * mel
    }
}

/// Triangular mel filters `[n_mels, n_fft / 2 + 1]` spanning 0 Hz to Nyquist, Slaney mel scale,
/// each filter scaled to unit area (Slaney normalisation). Computed in f64, returned as f32.
pub fn mel_filterbank(n_mels: usize, n_fft: usize, sample_rate: u32) -> Array2<f32> {
    let n_bins = n_fft / 2 + 1;
    let nyquist = sample_rate as f64 / 2.0;
    let bin_hz: Vec<f64> = (0..n_bins).map(|k| k as f64 * sample_rate as f64 / n_fft as f64).collect();
    // n_mels + 2 edges evenly spaced in mel: filter i rises from edge i to i+1 and falls to i+2.
    let (mel_lo, mel_hi) = (hz_to_mel(0.0), hz_to_mel(nyquist));
    let edges: Vec<f64> = (0..n_mels + 2)
        .map(|i| {
            let t = if n_mels + 1 == 0 { 0.0 } else { i as f64 / (n_mels + 1) as f64 };
            mel_to_hz(mel_lo + (mel_hi - mel_lo) * t)
        })
        .collect();
    let mut filters = Array2::<f32>::zeros((n_mels, n_bins));
    for i in 0..n_mels {
        let (left, centre, right) = (edges[i], edges[i + 1], edges[i + 2]);
        let area_norm = 2.0 / (right - left);
        for (k, &f) in bin_hz.iter().enumerate() {
            let rising = (f - left) / (centre - left);
            let falling = (right - f) / (right - centre);
            let weight = rising.min(falling).max(0.0);
            filters[[i, k]] = (weight * area_norm) as f32;
        }
    }
    filters
}

/// Periodic Hann window of length `n`: `w[i] = 0.5 - 0.5 cos(2π i / n)`, computed in f64 and
/// rounded to f32 (the DFT-even form used for spectral analysis; `torch.hann_window(n)`).
/// [`log_mel_spectrogram`] multiplies every frame of `N_FFT` samples by `periodic_hann(N_FFT)`.
pub fn periodic_hann(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos()) as f32)
        .collect()
}

/// Checks the input exactly as [`log_mel_spectrogram`] does: `n_mels` must be positive and
/// every sample finite (the first offending sample is reported).
pub fn check_input(samples: &[f32], n_mels: usize) -> Result<(), MelError> {
    if n_mels == 0 {
        return Err(MelError::ZeroMelBins);
    }
    if let Some((index, &value)) = samples.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(MelError::NonFiniteSample { index, value });
    }
    Ok(())
}

/// The signal exactly as [`log_mel_spectrogram`] frames it, and the number of frames it keeps.
///
/// `samples` is followed by `N_SAMPLES` zeros (30 s of silence, as the reference transcription
/// appends) and that signal of length `L = samples.len() + N_SAMPLES` is extended by
/// `N_FFT / 2` samples of reflection at each end (the edge sample is not repeated, as
/// `torch.stft(center=True, pad_mode="reflect")`): `padded.len() == L + N_FFT`.
/// Frame `i` is `padded[i * HOP_LENGTH .. i * HOP_LENGTH + N_FFT]`, centred on sample
/// `i * HOP_LENGTH` of the signal. The centred STFT has `1 + L / HOP_LENGTH` frames; Whisper
/// drops the last one, so `frames = L / HOP_LENGTH`.
pub fn padded_signal(samples: &[f32]) -> (Vec<f32>, usize) {
    let len = samples.len() + N_SAMPLES;
    let half = N_FFT / 2;
    // Sample `i` of the signal with its zeros appended. `len > N_FFT`, so a reflection never
    // runs past the other end.
    let at = |i: usize| samples.get(i).copied().unwrap_or(0.0);
    let mut padded = Vec::with_capacity(len + N_FFT);
    padded.extend((0..half).map(|j| at(half - j))); // x[200], x[199], ..., x[1]
    padded.extend_from_slice(samples);
    padded.resize(half + len, 0.0);
    padded.extend((0..half).map(|j| at(len - 2 - j))); // x[L-2], x[L-3], ..., x[L-201]
    (padded, len / HOP_LENGTH)
}

/// Whisper's final dynamic-range step, in place, on a spectrogram that already holds
/// `log10(max(energy, LOG_FLOOR))`: every value is clamped from below at the global maximum
/// minus [`DYNAMIC_RANGE`] (8), then scaled to `(x + 4) / 4`.
pub fn scale_log_mel(mut log_mel: ArrayViewMut2<f32>) {
    let max = log_mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let floor = max - DYNAMIC_RANGE;
    log_mel.par_mapv_inplace(|x| (x.max(floor) + 4.0) / 4.0);
}

/// Log-mel spectrogram `[n_mels, frames]` of 16 kHz mono `samples`, with 30 s of silence appended
/// as the reference transcription does: `frames = (samples.len() + 480000) / 160`.
pub fn log_mel_spectrogram(samples: &[f32], n_mels: usize) -> Result<Array2<f32>, MelError> {
    check_input(samples, n_mels)?;
    let (padded, n_frames) = padded_signal(samples);
    let window = periodic_hann(N_FFT);
    let fft: Arc<dyn Fft<f32>> = FftPlanner::new().plan_fft_forward(N_FFT);

    // Each filter is non-zero over a short run of bins: keep only that run.
    let filters = mel_filterbank(n_mels, N_FFT, SAMPLE_RATE);
    let bands: Vec<(usize, Vec<f32>)> = filters
        .rows()
        .into_iter()
        .map(|row| {
            let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
            let last = row.iter().rposition(|&w| w != 0.0).map_or(first, |i| i + 1);
            (first, row.slice(s![first..last]).to_vec())
        })
        .collect();

    // Frames are computed in parallel straight into mel energies (frame-major), so the power
    // spectrum is never held for the whole signal.
    let mut by_frame = Array2::<f32>::zeros((n_frames, n_mels));
    const FRAMES_PER_TASK: usize = 64;
    by_frame
        .as_slice_mut()
        .expect("freshly allocated array is contiguous")
        .par_chunks_mut(n_mels * FRAMES_PER_TASK)
        .enumerate()
        .for_each(|(task, rows)| {
            let mut buf = vec![Complex32::new(0.0, 0.0); N_FFT];
            let mut scratch = vec![Complex32::new(0.0, 0.0); fft.get_inplace_scratch_len()];
            let mut power = vec![0.0f32; N_FREQ];
            for (r, row) in rows.chunks_exact_mut(n_mels).enumerate() {
                let start = (task * FRAMES_PER_TASK + r) * HOP_LENGTH;
                for ((slot, &x), &w) in buf.iter_mut().zip(&padded[start..start + N_FFT]).zip(&window) {
                    *slot = Complex32::new(x * w, 0.0);
                }
                fft.process_with_scratch(&mut buf, &mut scratch);
                for (p, c) in power.iter_mut().zip(&buf[..N_FREQ]) {
                    *p = c.norm_sqr();
                }
                for (out, (first, weights)) in row.iter_mut().zip(&bands) {
                    *out = weights.iter().zip(&power[*first..]).map(|(w, p)| w * p).sum();
                }
            }
        });
    let mut mel = by_frame.reversed_axes().as_standard_layout().into_owned();
    mel.par_mapv_inplace(|x| x.max(LOG_FLOOR).log10());
    scale_log_mel(mel.view_mut());
    Ok(mel)
}

/// Level at or below which audio counts as silence: an RMS of 10^(-70/20) ≈ 3.2e-4 full scale
/// (-70 dBFS, about 10 steps of a 16-bit sample). Whisper hallucinates on near-silence and its
/// no-speech probability does not catch it: a 30 s window of ±1-bit dither (-92 dBFS) or of the
/// faint noise a lossy codec leaves in encoded silence (-100 dBFS) makes tiny.en say "you", so
/// such windows are not decoded at all. The threshold sits 20 dB above the noise floor
/// of dithered 16-bit audio (about -92 dBFS) and 20-30 dB below quiet speech (-40 to -50 dBFS
/// RMS over a 25 ms frame); one frame above it anywhere in a 30 s window is enough to decode it.
pub const SILENCE_RMS: f32 = 3.162_277_7e-4;

/// For each of the `samples.len() / HOP_LENGTH` mel frames of the audio (the frames
/// [`log_mel_spectrogram`] computes before its padding): whether the `N_FFT` samples that frame
/// analyses (centred on it) have an RMS above [`SILENCE_RMS`]. Samples beyond the ends count as 0.
pub fn frames_with_signal(samples: &[f32]) -> Vec<bool> {
    let mut prefix = Vec::with_capacity(samples.len() + 1);
    let mut sum = 0.0f64;
    prefix.push(sum);
    for &x in samples {
        sum += f64::from(x) * f64::from(x);
        prefix.push(sum);
    }
    let threshold = f64::from(SILENCE_RMS) * f64::from(SILENCE_RMS) * N_FFT as f64;
    (0..samples.len() / HOP_LENGTH)
        .map(|frame| {
            let centre = frame * HOP_LENGTH;
            let lo = centre.saturating_sub(N_FFT / 2);
            let hi = (centre + N_FFT / 2).min(samples.len());
            prefix[hi] - prefix[lo] > threshold
        })
        .collect()
}

/// Cuts or zero-pads the frame axis of a `[n_mels, frames]` spectrogram to exactly `frames`.
pub fn pad_or_trim<S: Data<Elem = f32>>(mel: &ArrayBase<S, Ix2>, frames: usize) -> Array2<f32> {
    let (n_mels, have) = mel.dim();
    let mut out = Array2::<f32>::zeros((n_mels, frames));
    let keep = have.min(frames);
    out.slice_mut(s![.., ..keep]).assign(&mel.slice(s![.., ..keep]));
    out
}

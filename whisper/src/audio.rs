//! Audio input: decode wav/flac/mp3/ogg with symphonia, downmix to mono, resample to 16 kHz.

use std::fs::File;
use std::path::{Path, PathBuf};

use rubato::{calculate_cutoff, Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Sample rate Whisper's front end expects.
pub const SAMPLE_RATE: u32 = 16_000;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{path}: no such file")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a supported audio file (wav, flac, mp3, ogg/vorbis): {reason}")]
    UnsupportedFormat { path: PathBuf, reason: String },
    #[error("{path}: contains no audio track")]
    NoAudioTrack { path: PathBuf },
    #[error("{path}: corrupt audio data: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: contains no audio samples (zero length)")]
    Empty { path: PathBuf },
    #[error("{path}: sample rate changes inside the stream ({first} Hz, then {later} Hz)")]
    SampleRateChange { path: PathBuf, first: u32, later: u32 },
    #[error("{path}: cannot resample from {from} Hz to {to} Hz: {reason}")]
    Resample { path: PathBuf, from: u32, to: u32, reason: String },
}

/// Decodes `path` and returns its audio as 16 kHz mono samples in [-1, 1].
pub fn load_audio(path: &Path) -> Result<Vec<f32>, AudioError> {
    let (samples, rate) = decode_mono(path)?;
    if rate == SAMPLE_RATE {
        return Ok(samples);
    }
    resample(&samples, rate, SAMPLE_RATE).map_err(|reason| AudioError::Resample {
        path: path.to_path_buf(),
        from: rate,
        to: SAMPLE_RATE,
        reason,
    })
}

/// Decodes every packet of the first audio track and averages its channels.
/// Returns the mono samples and their sample rate.
pub fn decode_mono(path: &Path) -> Result<(Vec<f32>, u32), AudioError> {
    let file = File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => AudioError::NotFound { path: path.to_path_buf() },
        _ => AudioError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let len = file
        .metadata()
        .map_err(|source| AudioError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    if len == 0 {
        return Err(AudioError::Empty { path: path.to_path_buf() });
    }

    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    // Gapless mode trims the encoder delay and padding of mp3/vorbis so durations are exact.
    let format_opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &format_opts, &MetadataOptions::default())
        .map_err(|e| AudioError::UnsupportedFormat {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let mut format = probed.format;

    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::NoAudioTrack { path: path.to_path_buf() })?;
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| AudioError::UnsupportedFormat {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;

    let corrupt = |reason: String| AudioError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let mut mono: Vec<f32> = Vec::new();
    let mut rate: Option<u32> = None;
    let mut buffer: Option<(SampleBuffer<f32>, u64, symphonia::core::audio::SignalSpec)> = None;
    let mut bad_packets = 0usize;
    let mut last_decode_error = String::new();
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            // A chained stream would need a new decoder; the first stream is all we read.
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(corrupt(e.to_string())),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            // Damaged packets are skipped, as players do; a file where nothing decodes is corrupt.
            Err(SymphoniaError::DecodeError(msg)) => {
                bad_packets += 1;
                last_decode_error = msg.to_string();
                continue;
            }
            Err(SymphoniaError::IoError(e)) => {
                bad_packets += 1;
                last_decode_error = e.to_string();
                continue;
            }
            Err(e) => return Err(corrupt(e.to_string())),
        };
        let spec = *decoded.spec();
        match rate {
            None => rate = Some(spec.rate),
            Some(first) if first != spec.rate => {
                return Err(AudioError::SampleRateChange {
                    path: path.to_path_buf(),
                    first,
                    later: spec.rate,
                })
            }
            Some(_) => {}
        }
        let frames = decoded.frames();
        if frames == 0 {
            continue;
        }
        // Reuse the conversion buffer unless this packet needs a bigger or different one.
        let needed = decoded.capacity() as u64;
        let buf = match &mut buffer {
            Some((buf, cap, old_spec)) if *cap >= needed && *old_spec == spec => buf,
            _ => &mut buffer.insert((SampleBuffer::new(needed, spec), needed, spec)).0,
        };
        buf.copy_interleaved_ref(decoded);
        let channels = spec.channels.count().max(1);
        let scale = 1.0 / channels as f32;
        mono.extend(buf.samples().chunks_exact(channels).map(|frame| frame.iter().sum::<f32>() * scale));
    }

    match rate {
        Some(rate) if !mono.is_empty() => Ok((mono, rate)),
        _ if bad_packets > 0 => Err(corrupt(format!("no packet could be decoded ({bad_packets} failed; last: {last_decode_error})"))),
        _ => Err(AudioError::Empty { path: path.to_path_buf() }),
    }
}

/// Band-limited (windowed sinc) resampling of a mono signal. The output has
/// `round(len * to / from)` samples, aligned with the input (the filter delay is removed).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, String> {
    if from == 0 || to == 0 {
        return Err("sample rate is zero".to_string());
    }
    if from == to {
        return Ok(samples.to_vec());
    }
    let expected = ((samples.len() as u64 * to as u64 + from as u64 / 2) / from as u64) as usize;
    let sinc_len = 256;
    let window = WindowFunction::BlackmanHarris2;
    let params = SincInterpolationParameters {
        sinc_len,
        f_cutoff: calculate_cutoff(sinc_len, window),
        interpolation: SincInterpolationType::Linear,
        // The sinc table's step (1/oversampling of an input sample) is also the residual timing
        // error; 1024 keeps it near 0.001 samples for a 1 MB table.
        oversampling_factor: 1024,
        window,
    };
    let chunk = 4096;
    let mut resampler = SincFixedIn::<f32>::new(to as f64 / from as f64, 1.0, params, chunk, 1).map_err(|e| e.to_string())?;
    // Measured property of this resampler: output sample i is taken at input position
    // (i + 1) * from / to - 1, a fractional offset. Prepending `lead` zeros and dropping `skip`
    // outputs with lead = from/g - 1 and skip = to/g - 1 (g = gcd) makes output j fall exactly on
    // input position j * from / to. The tone test in tests/io.rs checks this alignment.
    let g = gcd(from, to);
    let (lead, skip) = ((from / g - 1) as usize, (to / g - 1) as usize);
    let mut input = Vec::with_capacity(lead + samples.len());
    input.resize(lead, 0.0f32);
    input.extend_from_slice(samples);
    let samples = &input[..];
    let mut out: Vec<f32> = Vec::with_capacity(expected + skip + chunk);
    let mut pos = 0;
    while samples.len() - pos >= resampler.input_frames_next() {
        let n = resampler.input_frames_next();
        let block = resampler.process(&[&samples[pos..pos + n]], None).map_err(|e| e.to_string())?;
        out.extend_from_slice(&block[0]);
        pos += n;
    }
    if pos < samples.len() {
        let block = resampler.process_partial(Some(&[&samples[pos..]]), None).map_err(|e| e.to_string())?;
        out.extend_from_slice(&block[0]);
    }
    // Flush the filter's tail until the output covers the whole signal.
    while out.len() < skip + expected {
        let block = resampler.process_partial::<&[f32]>(None, None).map_err(|e| e.to_string())?;
        if block[0].is_empty() {
            break;
        }
        out.extend_from_slice(&block[0]);
    }
    let mut aligned: Vec<f32> = out.into_iter().skip(skip).take(expected).collect();
    aligned.resize(expected, 0.0);
    Ok(aligned)
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

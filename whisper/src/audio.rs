//! Audio input: decode wav/flac/mp3/ogg with symphonia, downmix to mono, resample to 16 kHz.
//!
//! Untrusted files meet the decoder only after checks of our own: the path is a readable,
//! non-empty regular file; a WAV header's sample rate, channel count, block size and data length
//! are sane; the probed track's rate and channels are in range. Symphonia can still panic on
//! malformed input (an AIFF header with sample rate 0 does, for one), so every decoder call runs
//! under [`std::panic::catch_unwind`] and a panic becomes [`AudioError::DecoderPanic`] naming the
//! file. [`in_guarded_decode`] lets a program's panic hook stay quiet about those.

use std::cell::Cell;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use rubato::{calculate_cutoff, Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CodecParameters, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Sample rate Whisper's front end expects.
pub const SAMPLE_RATE: u32 = 16_000;

/// Lowest input sample rate accepted. Rates below it are not audio anyone records speech at, and
/// resampling to 16 kHz multiplies the sample count by `16_000 / rate`: a header claiming 1 Hz
/// would turn a few megabytes into tens of gigabytes.
pub const MIN_SAMPLE_RATE: u32 = 1_000;
/// Highest input sample rate accepted (768 kHz, the highest rate audio converters offer).
pub const MAX_SAMPLE_RATE: u32 = 768_000;
/// Most channels a stream may have: symphonia's channel map holds 26 positions.
pub const MAX_CHANNELS: u32 = 26;

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{path}: no such file")]
    NotFound { path: PathBuf },
    #[error("{path}: is a directory, not an audio file")]
    IsDirectory { path: PathBuf },
    #[error("{path}: not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path}: invalid audio header: {reason}")]
    BadHeader { path: PathBuf, reason: String },
    #[error("{path}: the audio decoder failed on this file ({reason}); it is corrupt or not supported")]
    DecoderPanic { path: PathBuf, reason: String },
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
    check_rate(path, STREAM, rate)?;
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

/// Checks what can be checked without decoding: the path is a readable, non-empty file, a WAV
/// header is sane, and the format is recognised with an audio track of usable rate and channels.
/// Cheap (headers only), so a program can report bad inputs before slower work.
pub fn check_audio_file(path: &Path) -> Result<(), AudioError> {
    let file = open_input(path)?;
    guarded(path, || open_track(path, file).map(|_| ()))
}

thread_local! {
    /// Depth of [`guarded`] calls on this thread.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
}

/// Whether this thread is inside a decoder call whose panic is caught and reported as
/// [`AudioError::DecoderPanic`]. A panic hook can use it to leave such panics unprinted.
pub fn in_guarded_decode() -> bool {
    GUARDED.with(|g| g.get() > 0)
}

/// Runs `f` (which drives symphonia) so that a panic inside it becomes an error naming `path`.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, AudioError>) -> Result<T, AudioError> {
    GUARDED.with(|g| g.set(g.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    result.unwrap_or_else(|payload| {
        let reason = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic without a message".to_string());
        Err(AudioError::DecoderPanic {
            path: path.to_path_buf(),
            reason,
        })
    })
}

/// Opens `path` for reading: it must exist, be a regular file and not be empty.
fn open_input(path: &Path) -> Result<File, AudioError> {
    let io = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::NotFound => AudioError::NotFound { path: path.to_path_buf() },
        _ => AudioError::Io {
            path: path.to_path_buf(),
            source,
        },
    };
    // Metadata first: opening a directory succeeds on Unix and only reading it fails.
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(AudioError::IsDirectory { path: path.to_path_buf() });
    }
    if !meta.is_file() {
        // A FIFO or device cannot be checked first and decoded afterwards (and opening a FIFO
        // blocks until someone writes to it).
        return Err(AudioError::NotAFile { path: path.to_path_buf() });
    }
    let file = File::open(path).map_err(io)?;
    if meta.len() == 0 {
        return Err(AudioError::Empty { path: path.to_path_buf() });
    }
    Ok(file)
}

/// Where a checked value comes from, for the message.
const WAV_HEADER: &str = "WAV header says";
const STREAM: &str = "the stream has";

fn check_rate(path: &Path, source: &str, rate: u32) -> Result<(), AudioError> {
    if (MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        return Ok(());
    }
    Err(AudioError::BadHeader {
        path: path.to_path_buf(),
        reason: format!("{source} sample rate {rate} Hz (supported: {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz)"),
    })
}

fn check_channels(path: &Path, source: &str, channels: u32) -> Result<(), AudioError> {
    if (1..=MAX_CHANNELS).contains(&channels) {
        return Ok(());
    }
    Err(AudioError::BadHeader {
        path: path.to_path_buf(),
        reason: format!("{source} {channels} channels (supported: 1 to {MAX_CHANNELS})"),
    })
}

/// The fields of a WAV `fmt ` chunk that the decoder trusts.
#[derive(Debug)]
struct WavHeader {
    format_tag: u16,
    channels: u16,
    sample_rate: u32,
    block_align: u16,
    bits_per_sample: u16,
}

/// Reads the RIFF/WAVE chunk headers up to the `data` chunk: the `fmt ` fields and the `data`
/// length, each if found. `None` when the file is not WAV (or its structure is too broken to
/// read: symphonia then says why).
fn read_wav_header(file: &mut File) -> std::io::Result<Option<(Option<WavHeader>, Option<u32>)>> {
    let mut riff = [0u8; 12];
    if file.read_exact(&mut riff).is_err() || &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Ok(None);
    }
    let mut fmt: Option<WavHeader> = None;
    let mut data_len = None;
    // Chunks before `data` are few (fmt, fact, LIST); the bound only stops pathological files.
    for _ in 0..10_000 {
        let mut head = [0u8; 8];
        if file.read_exact(&mut head).is_err() {
            break;
        }
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        match &head[0..4] {
            b"fmt " => {
                let mut body = [0u8; 16];
                if len < 16 || file.read_exact(&mut body).is_err() {
                    return Ok(None);
                }
                let u16_at = |i: usize| u16::from_le_bytes([body[i], body[i + 1]]);
                fmt = Some(WavHeader {
                    format_tag: u16_at(0),
                    channels: u16_at(2),
                    sample_rate: u32::from_le_bytes([body[4], body[5], body[6], body[7]]),
                    block_align: u16_at(12),
                    bits_per_sample: u16_at(14),
                });
                // Skip the rest of the chunk (and its pad byte).
                file.seek(SeekFrom::Current(i64::from(len) - 16 + i64::from(len & 1)))?;
            }
            b"data" => {
                data_len = Some(len);
                break;
            }
            _ => {
                file.seek(SeekFrom::Current(i64::from(len) + i64::from(len & 1)))?;
            }
        }
    }
    Ok(Some((fmt, data_len)))
}

/// Rejects a WAV header the decoder would choke on (symphonia panics on sample rate 0).
fn check_wav_header(path: &Path, file: &mut File) -> Result<(), AudioError> {
    let header = read_wav_header(file);
    file.seek(SeekFrom::Start(0)).map_err(|source| AudioError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let Ok(Some((fmt, data_len))) = header else {
        return Ok(());
    };
    let bad = |reason: &str| AudioError::BadHeader {
        path: path.to_path_buf(),
        reason: format!("{WAV_HEADER} {reason}"),
    };
    if let Some(fmt) = fmt {
        check_rate(path, WAV_HEADER, fmt.sample_rate)?;
        check_channels(path, WAV_HEADER, u32::from(fmt.channels))?;
        if fmt.block_align == 0 {
            return Err(bad("block size 0 bytes"));
        }
        // PCM (1) and IEEE float (3) samples need a width.
        if matches!(fmt.format_tag, 1 | 3) && fmt.bits_per_sample == 0 {
            return Err(bad("0 bits per sample"));
        }
    }
    if data_len == Some(0) {
        return Err(AudioError::Empty { path: path.to_path_buf() });
    }
    Ok(())
}

/// A probed format reader with the id and parameters of its first audio track.
type OpenTrack = (Box<dyn FormatReader>, u32, CodecParameters);

/// Probes `file` after checking its header ourselves and returns the first audio track, whose
/// rate and channels (when the container states them) are checked too. Call under [`guarded`].
fn open_track(path: &Path, mut file: File) -> Result<OpenTrack, AudioError> {
    check_wav_header(path, &mut file)?;
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
    let format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::NoAudioTrack { path: path.to_path_buf() })?;
    let (track_id, params) = (track.id, track.codec_params.clone());
    // Formats that state rate and channels up front are checked here; the rest per packet.
    if let Some(rate) = params.sample_rate {
        check_rate(path, STREAM, rate)?;
    }
    if let Some(channels) = params.channels {
        check_channels(path, STREAM, channels.count() as u32)?;
    }
    if params.n_frames == Some(0) {
        return Err(AudioError::Empty { path: path.to_path_buf() });
    }
    Ok((format, track_id, params))
}

/// Decodes every packet of the first audio track and averages its channels.
/// Returns the mono samples and their sample rate.
pub fn decode_mono(path: &Path) -> Result<(Vec<f32>, u32), AudioError> {
    let file = open_input(path)?;
    guarded(path, || decode_track(path, file))
}

fn decode_track(path: &Path, file: File) -> Result<(Vec<f32>, u32), AudioError> {
    let (mut format, track_id, params) = open_track(path, file)?;
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
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
            None => {
                check_rate(path, STREAM, spec.rate)?;
                check_channels(path, STREAM, spec.channels.count() as u32)?;
                rate = Some(spec.rate)
            }
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

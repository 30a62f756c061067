//! Front-end tests: mel filterbank, log-mel spectrogram, audio decoding and resampling, writers.
//! Files under assets/ come from `scripts/fetch-assets.sh`.

use std::f64::consts::PI;
use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use whisper::audio::{check_audio_file, load_audio, AudioError, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
use whisper::mel::{
    check_input, frames_with_signal, log_mel_spectrogram, mel_filterbank, pad_or_trim, padded_signal, periodic_hann, scale_log_mel, HOP_LENGTH, LOG_FLOOR,
    N_FFT, N_FREQ, N_SAMPLES, SILENCE_RMS,
};
use whisper::output::{render, OutputFormat};
use whisper::{Segment, Transcript};

fn asset(name: &str) -> PathBuf {
    let path = whisper::assets::assets_dir().join(name);
    assert!(path.exists(), "{} is missing: run scripts/fetch-assets.sh", path.display());
    path
}

/// Reads a little-endian f32 C-order array from an .npy member of an .npz archive.
fn read_npz_f32(path: &Path, member: &str) -> Array2<f32> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = zip::ZipArchive::new(file).unwrap();
    let mut entry = archive.by_name(&format!("{member}.npy")).unwrap();
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
    };
    let header = std::str::from_utf8(&bytes[header_start..header_start + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape_text = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape: Vec<usize> = shape_text
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    assert_eq!(shape.len(), 2);
    let data: Vec<f32> = bytes[header_start + header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    Array2::from_shape_vec((shape[0], shape[1]), data).unwrap()
}

#[test]
fn filterbank_matches_reference_mel_80_and_mel_128() {
    for n_mels in [80, 128] {
        let reference = read_npz_f32(&asset("mel_filters.npz"), &format!("mel_{n_mels}"));
        let computed = mel_filterbank(n_mels, N_FFT, 16_000);
        assert_eq!(computed.dim(), reference.dim());
        assert_eq!(computed.dim(), (n_mels, 201));
        let max_err = computed.iter().zip(reference.iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max_err <= 1e-6, "mel_{n_mels}: max abs difference {max_err}");
    }
}

/// Deterministic test signal: two tones, a chirp and a little pseudo-random noise.
fn test_signal(n: usize) -> Vec<f32> {
    let mut state: u32 = 12345;
    (0..n)
        .map(|i| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (state >> 8) as f64 / (1u32 << 24) as f64 - 0.5;
            let t = i as f64 / 16_000.0;
            (0.3 * (2.0 * PI * 440.0 * t).sin() + 0.1 * (2.0 * PI * 3100.0 * t).sin() + 0.2 * (2.0 * PI * (200.0 + 1500.0 * t) * t).sin() + 0.02 * noise) as f32
        })
        .collect()
}

/// The samples with 30 s of zeros appended and reflect-padded by `N_FFT / 2` at both ends.
fn naive_padded(samples: &[f32]) -> Vec<f64> {
    let mut signal: Vec<f64> = samples.iter().map(|&x| x as f64).collect();
    signal.resize(samples.len() + N_SAMPLES, 0.0);
    let half = N_FFT / 2;
    let len = signal.len();
    let mut padded = Vec::with_capacity(len + N_FFT);
    for k in 0..half {
        padded.push(signal[half - k]); // x[200], x[199], ..., x[1]
    }
    padded.extend_from_slice(&signal);
    for k in 0..half {
        padded.push(signal[len - 2 - k]); // x[L-2], x[L-3], ...
    }
    padded
}

/// Straightforward evaluation of the definition in f64: explicit padding, direct DFT per bin.
fn naive_log_mel(samples: &[f32], filters: &Array2<f32>) -> Array2<f64> {
    let padded = naive_padded(samples);
    let len = samples.len() + N_SAMPLES;
    let frames = 1 + len / HOP_LENGTH - 1; // centred STFT frames, minus the dropped last one
    let n_mels = filters.nrows();
    let mut log_mel = Array2::<f64>::zeros((n_mels, frames));
    for f in 0..frames {
        let frame = &padded[f * HOP_LENGTH..f * HOP_LENGTH + N_FFT];
        let mut power = vec![0.0f64; N_FFT / 2 + 1];
        if frame.iter().any(|&x| x != 0.0) {
            for (k, p) in power.iter_mut().enumerate() {
                let (mut re, mut im) = (0.0, 0.0);
                for (n, &x) in frame.iter().enumerate() {
                    let w = 0.5 - 0.5 * (2.0 * PI * n as f64 / N_FFT as f64).cos();
                    let angle = -2.0 * PI * (k * n) as f64 / N_FFT as f64;
                    re += x * w * angle.cos();
                    im += x * w * angle.sin();
                }
                *p = re * re + im * im;
            }
        }
        for m in 0..n_mels {
            let energy: f64 = filters.row(m).iter().zip(&power).map(|(&w, &p)| w as f64 * p).sum();
            log_mel[[m, f]] = energy.max(1e-10).log10();
        }
    }
    let max = log_mel.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    log_mel.mapv(|x| (x.max(max - 8.0) + 4.0) / 4.0)
}

#[test]
fn log_mel_matches_naive_dft_computation() {
    let samples = test_signal(20_850);
    let filters = read_npz_f32(&asset("mel_filters.npz"), "mel_80");
    let expected = naive_log_mel(&samples, &filters);
    let mel = log_mel_spectrogram(&samples, 80).unwrap();
    assert_eq!(mel.dim(), expected.dim());
    let mut max_err = 0.0f64;
    for (a, b) in mel.iter().zip(expected.iter()) {
        max_err = max_err.max((*a as f64 - b).abs());
    }
    assert!(max_err < 1e-4, "max abs difference {max_err}");
    // The signal is loud enough that its frames are far from the clamp floor.
    assert!(mel[[10, 50]] > expected.iter().copied().fold(f64::INFINITY, f64::min) as f32 + 1.0);
}

/// The public pieces of the front end (what another implementation builds the log-mel from:
/// padding and framing, window, filterbank, DFT as a matrix product, dynamic-range step) give
/// the spectrogram `log_mel_spectrogram` computes.
#[test]
fn public_mel_pieces_rebuild_the_log_mel() {
    for n in [0, 1, 150, 200, 201, 20_850] {
        let samples = test_signal(n);
        let (padded, frames) = padded_signal(&samples);
        assert_eq!(padded.len(), n + N_SAMPLES + N_FFT, "{n} samples");
        assert_eq!(frames, (n + N_SAMPLES) / HOP_LENGTH);
        let naive = naive_padded(&samples);
        assert!(padded.iter().zip(&naive).all(|(&a, &b)| a as f64 == b), "{n} samples: padding");
        assert!((frames - 1) * HOP_LENGTH + N_FFT <= padded.len(), "the last frame fits");
    }

    let samples = test_signal(20_850);
    let n_mels = 80;
    check_input(&samples, n_mels).unwrap();
    let (padded, frames) = padded_signal(&samples);
    let window = periodic_hann(N_FFT);
    assert_eq!(window.len(), N_FFT);
    assert_eq!(window[0], 0.0);
    assert_eq!(window[N_FFT / 2], 1.0);
    let filters = mel_filterbank(n_mels, N_FFT, 16_000);
    assert_eq!(filters.dim(), (n_mels, N_FREQ));
    // DFT as two matrix products: frames [frames, N_FFT] times cos/sin [N_FFT, N_FREQ].
    let cos = Array2::from_shape_fn((N_FFT, N_FREQ), |(t, k)| (2.0 * PI * ((k * t) % N_FFT) as f64 / N_FFT as f64).cos());
    let sin = Array2::from_shape_fn((N_FFT, N_FREQ), |(t, k)| -(2.0 * PI * ((k * t) % N_FFT) as f64 / N_FFT as f64).sin());
    let windowed = Array2::from_shape_fn((frames, N_FFT), |(i, t)| padded[i * HOP_LENGTH + t] as f64 * window[t] as f64);
    let (re, im) = (windowed.dot(&cos), windowed.dot(&sin));
    let power = &re * &re + &im * &im; // [frames, N_FREQ]
    let energy = filters.mapv(|w| w as f64).dot(&power.t()); // [n_mels, frames]
    let mut mel = energy.mapv(|e| (e as f32).max(LOG_FLOOR).log10());
    scale_log_mel(mel.view_mut());
    let reference = log_mel_spectrogram(&samples, n_mels).unwrap();
    assert_eq!(mel.dim(), reference.dim());
    let max_err = mel.iter().zip(reference.iter()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(max_err < 1e-4, "max abs difference {max_err}");

    // The dynamic-range step alone: clamp at max - 8, then (x + 4) / 4.
    let mut m = Array2::from_shape_vec((2, 2), vec![0.0f32, -10.0, -3.0, -9.0]).unwrap();
    scale_log_mel(m.view_mut());
    assert_eq!(m.into_raw_vec_and_offset().0, vec![1.0, -1.0, 0.25, -1.0]);
    // And the input checks are log_mel_spectrogram's.
    assert!(matches!(check_input(&samples, 0), Err(whisper::mel::MelError::ZeroMelBins)));
    let mut bad = samples.clone();
    bad[7] = f32::INFINITY;
    assert!(matches!(check_input(&bad, 80), Err(whisper::mel::MelError::NonFiniteSample { index: 7, .. })));
}

#[test]
fn frame_count_includes_thirty_seconds_of_padding() {
    for (n, frames) in [(0usize, 3000usize), (159, 3000), (160, 3001), (16_000, 3100), (176_000, 4100)] {
        let mel = log_mel_spectrogram(&vec![0.01; n], 80).unwrap();
        assert_eq!(mel.dim(), (80, frames), "{n} samples");
    }
    assert_eq!(log_mel_spectrogram(&[0.0; 10], 128).unwrap().nrows(), 128);
}

#[test]
fn silence_is_flat_at_the_floor() {
    let mel = log_mel_spectrogram(&vec![0.0; 32_000], 80).unwrap();
    // log10(1e-10) = -10, scaled: (-10 + 4) / 4.
    assert!(mel.iter().all(|&x| (x - (-1.5)).abs() < 1e-6));

    // Speech followed by silence: the padded tail sits exactly 8 log10 units below the maximum.
    let mel = log_mel_spectrogram(&test_signal(16_000), 80).unwrap();
    let max = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let tail = mel.column(mel.ncols() - 1);
    assert!(
        tail.iter().all(|&x| (x - (max - 2.0)).abs() < 1e-5),
        "tail {:?}, max {max}",
        tail.slice(ndarray::s![..4])
    );
}

#[test]
fn log_mel_rejects_bad_input() {
    assert!(log_mel_spectrogram(&[0.0; 10], 0).is_err());
    let mut samples = vec![0.0f32; 100];
    samples[42] = f32::NAN;
    let err = log_mel_spectrogram(&samples, 80).unwrap_err().to_string();
    assert!(err.contains("42"), "{err}");
}

#[test]
fn pad_or_trim_fixes_the_frame_axis() {
    let mel = Array2::from_shape_fn((3, 5), |(m, f)| (m * 10 + f) as f32);
    let trimmed = pad_or_trim(&mel, 2);
    assert_eq!(trimmed, ndarray::array![[0.0, 1.0], [10.0, 11.0], [20.0, 21.0]]);
    let padded = pad_or_trim(&mel.view(), 7);
    assert_eq!(padded.dim(), (3, 7));
    assert_eq!(padded.row(2).to_vec(), vec![20.0, 21.0, 22.0, 23.0, 24.0, 0.0, 0.0]);
}

/// Writes 16-bit PCM WAV with the given interleaved samples.
fn write_wav(path: &Path, rate: u32, channels: u16, interleaved: &[i16]) {
    let data_len = (interleaved.len() * 2) as u32;
    let mut bytes = Vec::with_capacity(44 + data_len as usize);
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes()); // PCM
    bytes.extend_from_slice(&channels.to_le_bytes());
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * channels as u32 * 2).to_le_bytes());
    bytes.extend_from_slice(&(channels * 2).to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for s in interleaved {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Writes a 2 s, 440 Hz tone at `rate` (left channel amplitude 0.6, right 0.2 when stereo),
/// decodes it and checks the 16 kHz mono result against the ideal tone sample by sample.
fn check_tone_resampling(rate: u32, channels: u16) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("tone-{rate}-{channels}.wav"));
    let frames = 2 * rate as usize;
    let freq = 440.0;
    let mut interleaved = Vec::with_capacity(frames * channels as usize);
    for i in 0..frames {
        let s = (2.0 * PI * freq * i as f64 / rate as f64).sin();
        interleaved.push((0.6 * s * 32767.0).round() as i16);
        if channels == 2 {
            interleaved.push((0.2 * s * 32767.0).round() as i16);
        }
    }
    write_wav(&path, rate, channels, &interleaved);
    let amplitude = if channels == 2 { 0.4 } else { 0.6 };

    let mono = load_audio(&path).unwrap();
    assert_eq!(mono.len(), 32_000, "{rate} Hz x{channels}");
    // Downmix averages the channels and resampling keeps phase: compare with the ideal 16 kHz
    // signal away from the edges (16-bit quantisation and the filter leave ~1e-4).
    let mut max_err = 0.0f64;
    for (i, &x) in mono.iter().enumerate().skip(500).take(31_000) {
        let ideal = amplitude * (2.0 * PI * freq * i as f64 / 16_000.0).sin();
        max_err = max_err.max((x as f64 - ideal).abs());
    }
    assert!(max_err < 5e-4, "{rate} Hz x{channels}: max deviation from the ideal tone {max_err}");
    // Frequency: positive-going zero crossings over 1 s.
    let crossings = mono[8000..24_000].windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
    assert!((439..=441).contains(&crossings), "{rate} Hz: {crossings} crossings per second");
}

#[test]
fn stereo_44k1_sine_becomes_16k_mono() {
    check_tone_resampling(44_100, 2);
}

#[test]
fn other_rates_resample_in_phase() {
    for rate in [48_000, 22_050, 8_000, 11_025] {
        check_tone_resampling(rate, 1);
    }
}

#[test]
fn mono_16k_wav_is_passed_through() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ramp.wav");
    let pcm: Vec<i16> = (0..1000).map(|i| (i * 30 - 15_000) as i16).collect();
    write_wav(&path, 16_000, 1, &pcm);
    let samples = load_audio(&path).unwrap();
    assert_eq!(samples.len(), 1000);
    for (s, p) in samples.iter().zip(&pcm) {
        assert!((s - *p as f32 / 32768.0).abs() < 1e-7);
    }
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64).sqrt()
}

#[test]
fn jfk_decodes_from_wav_flac_ogg_and_mp3() {
    let wav = load_audio(&asset("jfk.wav")).unwrap();
    assert_eq!(wav.len(), 176_000, "jfk.wav is 11.0 s at 16 kHz");
    let flac = load_audio(&asset("jfk.flac")).unwrap();
    assert_eq!(flac, wav, "flac is lossless");
    let wav_rms = rms(&wav);
    for name in ["jfk.ogg", "jfk.mp3"] {
        let decoded = load_audio(&asset(name)).unwrap();
        let seconds = decoded.len() as f64 / 16_000.0;
        assert!((seconds - 11.0).abs() < 0.1, "{name}: {seconds} s");
        let ratio = rms(&decoded) / wav_rms;
        assert!((0.8..1.25).contains(&ratio), "{name}: loudness ratio {ratio}");
    }
    // The lossy vorbis copy was encoded from the wav: it must follow the waveform closely.
    let ogg = load_audio(&asset("jfk.ogg")).unwrap();
    let n = ogg.len().min(wav.len());
    let dot: f64 = ogg[..n].iter().zip(&wav[..n]).map(|(&a, &b)| a as f64 * b as f64).sum();
    let corr = dot / (rms(&ogg[..n]) * rms(&wav[..n]) * n as f64);
    assert!(corr > 0.9, "ogg/wav correlation {corr}");
}

#[test]
fn audio_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let check = |path: &Path, matches: fn(&AudioError) -> bool| {
        let err = load_audio(path).unwrap_err();
        assert!(matches(&err), "{}: unexpected {err:?}", path.display());
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    };

    check(&dir.path().join("missing.wav"), |e| matches!(e, AudioError::NotFound { .. }));

    let text = dir.path().join("notes.wav");
    std::fs::write(&text, "this is not audio at all, just some words in a text file\n".repeat(20)).unwrap();
    check(&text, |e| matches!(e, AudioError::UnsupportedFormat { .. }));

    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    check(&empty, |e| matches!(e, AudioError::Empty { .. }));

    let no_frames = dir.path().join("no-frames.wav");
    write_wav(&no_frames, 16_000, 1, &[]);
    check(&no_frames, |e| matches!(e, AudioError::Empty { .. }));

    // A FLAC stream whose header is cut short.
    let flac = std::fs::read(asset("jfk.flac")).unwrap();
    let cut = dir.path().join("cut.flac");
    std::fs::write(&cut, &flac[..30]).unwrap();
    check(&cut, |e| {
        matches!(e, AudioError::UnsupportedFormat { .. } | AudioError::Corrupt { .. } | AudioError::Empty { .. })
    });

    // Valid header, garbage frames.
    let garbage = dir.path().join("garbage.flac");
    let mut bytes = flac[..8192].to_vec();
    let header_end = 4 + 38; // "fLaC" + STREAMINFO block; later bytes are metadata and frames
    for (i, b) in bytes.iter_mut().enumerate().skip(header_end + 400) {
        *b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3];
    }
    std::fs::write(&garbage, &bytes).unwrap();
    match load_audio(&garbage) {
        Err(err) => assert!(err.to_string().contains(&garbage.display().to_string()), "{err}"),
        // Skipping damaged frames is allowed, but nothing plausible may come out of pure noise.
        Ok(samples) => assert!(samples.len() < 16_000, "decoded {} samples from garbage", samples.len()),
    }
}

#[test]
fn writers_render_a_transcript() {
    let transcript = Transcript {
        language: "en".into(),
        duration: 11.0,
        segments: vec![
            Segment {
                start: 0.0,
                end: 4.24,
                text: " And so my fellow Americans,".into(),
                tokens: vec![],
            },
            Segment {
                start: 4.24,
                end: 10.96,
                text: " ask not what your country can do for you.".into(),
                tokens: vec![],
            },
        ],
    };
    assert_eq!(
        render(&transcript, OutputFormat::Txt),
        "And so my fellow Americans,\nask not what your country can do for you.\n"
    );
    let srt = render(&transcript, OutputFormat::Srt);
    assert!(
        srt.starts_with("1\n00:00:00,000 --> 00:00:04,240\nAnd so my fellow Americans,\n\n2\n00:00:04,240 --> 00:00:10,960\n"),
        "{srt}"
    );
    let vtt = render(&transcript, OutputFormat::Vtt);
    assert!(vtt.starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:04.240\n"), "{vtt}");
    let json: serde_json::Value = serde_json::from_str(&render(&transcript, OutputFormat::Json)).unwrap();
    assert_eq!(json["text"], "And so my fellow Americans, ask not what your country can do for you.");
    assert_eq!(json["segments"][1]["end"], 10.96);
    assert_eq!(json["duration"], 11.0);
}

#[test]
fn degenerate_wav_headers_are_rejected_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let tone: Vec<i16> = (0..4000).map(|i| ((i as f64 * 0.3).sin() * 8000.0) as i16).collect();
    let cases: [(&str, u32, u16, &[i16], &str); 7] = [
        ("rate-0.wav", 0, 1, &tone, "sample rate 0 Hz"),
        ("rate-1.wav", 1, 1, &tone, "sample rate 1 Hz"),
        ("rate-too-low.wav", MIN_SAMPLE_RATE - 1, 1, &tone, "sample rate 999 Hz"),
        ("rate-too-high.wav", MAX_SAMPLE_RATE + 1, 1, &tone, "sample rate 768001 Hz"),
        ("channels-0.wav", 16_000, 0, &tone, "0 channels"),
        ("channels-27.wav", 16_000, 27, &tone[..27 * 100], "27 channels"),
        ("channels-1000.wav", 16_000, 1000, &tone, "1000 channels"),
    ];
    for (name, rate, channels, samples, needle) in cases {
        let path = dir.path().join(name);
        write_wav(&path, rate, channels, samples);
        for err in [check_audio_file(&path).unwrap_err(), load_audio(&path).unwrap_err()] {
            assert!(matches!(err, AudioError::BadHeader { .. }), "{name}: {err:?}");
            let message = err.to_string();
            assert!(message.starts_with(&format!("{}: ", path.display())), "{message}");
            assert!(message.contains(needle), "{name}: {message}");
        }
    }
    // A data chunk of length zero is an empty file, found from the header alone.
    let path = dir.path().join("no-data.wav");
    write_wav(&path, 16_000, 1, &[]);
    assert!(matches!(check_audio_file(&path), Err(AudioError::Empty { .. })));

    // The edges of the accepted range decode and resample.
    for rate in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] {
        let path = dir.path().join(format!("edge-{rate}.wav"));
        let n = rate as usize / 10;
        write_wav(&path, rate, 1, &tone.iter().copied().cycle().take(n).collect::<Vec<_>>());
        check_audio_file(&path).unwrap();
        let samples = load_audio(&path).unwrap();
        assert_eq!(samples.len(), 1600, "{rate} Hz: 0.1 s at 16 kHz");
    }
}

#[test]
fn a_decoder_panic_becomes_an_error() {
    // Symphonia's AIFF reader panics on a sample rate of 0; AIFF is not a format we check
    // ourselves, so this reaches the decoder and its panic.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rate-0.aiff");
    let mut comm = Vec::new();
    comm.extend_from_slice(&1u16.to_be_bytes());
    comm.extend_from_slice(&1000u32.to_be_bytes());
    comm.extend_from_slice(&16u16.to_be_bytes());
    comm.extend_from_slice(&[0u8; 10]);
    let mut ssnd = vec![0u8; 8];
    ssnd.extend(std::iter::repeat_n([0x10u8, 0x00], 1000).flatten());
    let mut body = b"AIFF".to_vec();
    for (id, chunk) in [(b"COMM", &comm), (b"SSND", &ssnd)] {
        body.extend_from_slice(id);
        body.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        body.extend_from_slice(chunk);
    }
    let mut bytes = b"FORM".to_vec();
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&body);
    std::fs::write(&path, bytes).unwrap();
    for err in [check_audio_file(&path).unwrap_err(), load_audio(&path).unwrap_err()] {
        assert!(matches!(err, AudioError::DecoderPanic { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&format!("{}: ", path.display())), "{err}");
    }
    assert!(!whisper::audio::in_guarded_decode());
}

#[test]
fn input_paths_are_checked_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let err = check_audio_file(dir.path()).unwrap_err();
    assert!(matches!(err, AudioError::IsDirectory { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("{}: is a directory, not an audio file", dir.path().display()));
    assert!(matches!(load_audio(dir.path()), Err(AudioError::IsDirectory { .. })));
    let missing = dir.path().join("missing.wav");
    assert!(matches!(check_audio_file(&missing), Err(AudioError::NotFound { .. })));
    check_audio_file(&asset("jfk.wav")).unwrap();
    check_audio_file(&asset("jfk.mp3")).unwrap();
}

#[test]
fn frames_with_signal_follow_the_silence_level() {
    let n = 16_000;
    assert_eq!(frames_with_signal(&vec![0.0; n]), vec![false; n / HOP_LENGTH]);
    assert_eq!(frames_with_signal(&vec![0.0; n + 159]).len(), n / HOP_LENGTH);
    // White-ish noise 6 dB under the level stays silent, a sine 6 dB over it is signal.
    let mut state: u32 = 1;
    let noise: Vec<f32> = (0..n)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let u = (state >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0; // uniform, RMS 1/sqrt(3)
            u * 3f32.sqrt() * SILENCE_RMS * 0.5
        })
        .collect();
    assert!(frames_with_signal(&noise).iter().all(|&s| !s));
    let sine: Vec<f32> = (0..n).map(|i| (i as f32 * 0.1).sin() * 2f32.sqrt() * SILENCE_RMS * 2.0).collect();
    assert!(frames_with_signal(&sine).iter().all(|&s| s));
    // One short burst marks only the frames whose analysis window covers it.
    let mut burst = vec![0.0f32; n];
    burst[8000..8080].fill(0.01);
    let signal = frames_with_signal(&burst);
    let marked: Vec<usize> = (0..signal.len()).filter(|&i| signal[i]).collect();
    assert_eq!(marked, (49..=51).collect::<Vec<_>>(), "frames whose 400 samples overlap 8000..8080");
}

#[test]
fn thread_requests_are_capped_at_the_available_cores() {
    let cores = whisper::ops::available_threads();
    assert_eq!(whisper::ops::effective_threads(0), cores);
    assert_eq!(whisper::ops::effective_threads(1), 1);
    assert_eq!(whisper::ops::effective_threads(100_000), cores);
    assert_eq!(whisper::ops::CpuOps::new(100_000).unwrap().threads(), cores);
}

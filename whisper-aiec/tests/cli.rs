//! End-to-end tests of the `whisper-run` binary on real speech and on bad input.
//! Models and samples come from `scripts/fetch-assets.sh`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const JFK_WORDS: &str = "and so my fellow americans ask not what your country can do for you ask what you can do for your country";

fn asset(name: &str) -> PathBuf {
    let path = whisper::assets::assets_dir().join(name);
    assert!(path.exists(), "{} is missing: run scripts/fetch-assets.sh", path.display());
    path
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn whisper_run(args: &[&str]) -> Run {
    let Output { status, stdout, stderr } = Command::new(env!("CARGO_BIN_EXE_whisper-run"))
        .args(args)
        .env_remove("WHISPER_MODEL_DIR")
        .output()
        .expect("whisper-run starts");
    let run = Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "whisper-run panicked:\n{}", run.stderr);
    run
}

/// Lower-case words with punctuation removed.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric() || *c == '\'').collect::<String>().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

fn word_error_rate(reference: &[String], hypothesis: &[String]) -> f64 {
    // Levenshtein distance over words.
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut row = vec![i + 1; hypothesis.len() + 1];
        for (j, h) in hypothesis.iter().enumerate() {
            row[j + 1] = (prev[j] + usize::from(r != h)).min(prev[j + 1] + 1).min(row[j] + 1);
        }
        prev = row;
    }
    prev[hypothesis.len()] as f64 / reference.len() as f64
}

fn ngram_counts(words: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    for gram in words.windows(n) {
        *counts.entry(gram).or_insert(0) += 1;
    }
    counts
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

fn write_wav(path: &Path, samples: &[i16]) {
    let data_len = (samples.len() * 2) as u32;
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    for field in [16u32.to_le_bytes().as_slice(), &1u16.to_le_bytes(), &1u16.to_le_bytes()] {
        bytes.extend_from_slice(field);
    }
    bytes.extend_from_slice(&16_000u32.to_le_bytes());
    bytes.extend_from_slice(&32_000u32.to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn jfk_with_default_model_and_settings() {
    let jfk = asset("jfk.wav");
    let run = whisper_run(&[path_str(&jfk)]);
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert_eq!(words(&run.stdout).join(" "), JFK_WORDS, "transcript: {}", run.stdout);
    // The timing line reports the audio duration and the realtime factor.
    assert!(
        run.stderr.contains("11.00 s of audio") && run.stderr.contains("realtime factor"),
        "{}",
        run.stderr
    );
}

#[test]
fn long_form_keeps_every_word_once_with_ordered_timestamps() {
    let audio = asset("long-speech.wav");
    let text = std::fs::read_to_string(asset("long-speech.txt")).unwrap();
    let run = whisper_run(&["--beam", "1", "-l", "en", "--output", "json", "--quiet", path_str(&audio)]);
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert!(run.stderr.is_empty(), "--quiet prints nothing on success: {}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON object");

    let duration = json["duration"].as_f64().unwrap();
    assert!(duration > 60.0, "the clip spans several 30 s windows: {duration} s");
    let segments = json["segments"].as_array().unwrap();
    assert!(segments.len() >= 3, "{} segments", segments.len());
    let mut previous_end = 0.0;
    for seg in segments {
        let (start, end) = (seg["start"].as_f64().unwrap(), seg["end"].as_f64().unwrap());
        assert!(start >= previous_end - 1e-9 && end > start, "segment {seg} after {previous_end}");
        assert!(end <= duration + 0.05, "segment {seg} ends after the audio ({duration} s)");
        previous_end = end;
    }
    // Segment texts make up the transcript text.
    let joined: Vec<String> = segments.iter().flat_map(|s| words(s["text"].as_str().unwrap())).collect();
    let hypothesis = words(json["text"].as_str().unwrap());
    assert_eq!(joined, hypothesis);

    let reference = words(&text);
    let wer = word_error_rate(&reference, &hypothesis);
    assert!(
        wer < 0.10,
        "word error rate {wer:.3}\nreference: {}\nhypothesis: {}",
        reference.join(" "),
        hypothesis.join(" ")
    );
    // Window boundaries neither drop nor repeat speech: no 5-gram that occurs once in the text
    // occurs twice in the transcript, and the length matches closely.
    let reference_grams = ngram_counts(&reference, 5);
    for (gram, count) in ngram_counts(&hypothesis, 5) {
        if reference_grams.get(gram) == Some(&1) {
            assert_eq!(count, 1, "repeated: {}", gram.join(" "));
        }
    }
    let ratio = hypothesis.len() as f64 / reference.len() as f64;
    assert!((0.95..=1.05).contains(&ratio), "{} words for {} in the text", hypothesis.len(), reference.len());
}

#[test]
fn subtitle_file_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("jfk.srt");
    let model = asset("whisper-tiny.en");
    let jfk = asset("jfk.wav");
    let run = whisper_run(&[
        "-m",
        path_str(&model),
        "--beam",
        "1",
        "-t",
        "2",
        "--output",
        "srt",
        "-o",
        path_str(&out),
        path_str(&jfk),
    ]);
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert!(run.stdout.is_empty(), "with -o nothing goes to stdout: {}", run.stdout);
    let srt = std::fs::read_to_string(&out).unwrap();
    assert!(srt.starts_with("1\n00:00:00,000 --> 00:00:"), "{srt}");
    let text: Vec<&str> = srt
        .lines()
        .filter(|l| !l.is_empty() && !l.contains("-->") && l.parse::<u32>().is_err())
        .collect();
    assert_eq!(words(&text.join(" ")).join(" "), JFK_WORDS, "{srt}");
    // Only the finished file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("jfk.srt")]);
}

#[test]
fn silence_gives_an_empty_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let silence = dir.path().join("silence.wav");
    write_wav(&silence, &vec![0i16; 16_000 * 5]);
    for args in [&["--beam", "1", path_str(&silence)][..], &[path_str(&silence)][..]] {
        let run = whisper_run(args);
        assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
        assert_eq!(run.stdout.trim(), "", "transcript of silence with {args:?}");
    }
}

/// Asserts a failure with `code` whose message names `needle`.
fn assert_fails(run: &Run, code: i32, needle: &str) {
    assert_eq!(run.code, Some(code), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains(needle), "stderr does not name {needle:?}:\n{}", run.stderr);
}

#[test]
fn bad_audio_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.wav");
    assert_fails(&whisper_run(&[path_str(&missing)]), 1, path_str(&missing));

    let text = dir.path().join("notes.mp3");
    std::fs::write(&text, "shopping list: bread, milk, apples\n".repeat(50)).unwrap();
    let tiny = asset("whisper-tiny.en");
    let run = whisper_run(&["-m", path_str(&tiny), path_str(&text)]);
    assert_fails(&run, 1, path_str(&text));
    assert!(run.stderr.contains("not a supported audio file"), "{}", run.stderr);

    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    assert_fails(&whisper_run(&["-m", path_str(&tiny), path_str(&empty)]), 1, path_str(&empty));
    let no_frames = dir.path().join("no-frames.wav");
    write_wav(&no_frames, &[]);
    let run = whisper_run(&["-m", path_str(&tiny), path_str(&no_frames)]);
    assert_fails(&run, 1, path_str(&no_frames));
    assert!(run.stderr.contains("no audio samples"), "{}", run.stderr);
}

#[test]
fn one_bad_file_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let tiny = asset("whisper-tiny.en");
    let jfk = asset("jfk.wav");
    let run = whisper_run(&["-m", path_str(&tiny), "--beam", "1", path_str(&empty), path_str(&jfk)]);
    assert_fails(&run, 1, path_str(&empty));
    assert_eq!(words(&run.stdout).join(" "), JFK_WORDS);
}

#[test]
fn bad_models_are_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let jfk = asset("jfk.wav");

    let nowhere = dir.path().join("no-such-model");
    assert_fails(&whisper_run(&["-m", path_str(&nowhere), path_str(&jfk)]), 1, path_str(&nowhere));

    let not_a_model = dir.path().join("empty-dir");
    std::fs::create_dir(&not_a_model).unwrap();
    assert_fails(&whisper_run(&["-m", path_str(&not_a_model), path_str(&jfk)]), 1, path_str(&not_a_model));

    // A copy of tiny.en whose model.bin stops after 1 MiB.
    let truncated = dir.path().join("truncated");
    std::fs::create_dir(&truncated).unwrap();
    let tiny = asset("whisper-tiny.en");
    for name in ["config.json", "tokenizer.json", "vocabulary.txt"] {
        std::fs::copy(tiny.join(name), truncated.join(name)).unwrap();
    }
    let bin = std::fs::read(tiny.join("model.bin")).unwrap();
    std::fs::write(truncated.join("model.bin"), &bin[..1 << 20]).unwrap();
    let run = whisper_run(&["-m", path_str(&truncated), path_str(&jfk)]);
    assert_fails(&run, 1, path_str(&truncated.join("model.bin")));
}

#[test]
fn bad_usage_exits_with_2() {
    let jfk = asset("jfk.wav");
    let run = whisper_run(&[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("AUDIO"), "{}", run.stderr);

    assert_fails(&whisper_run(&["--beam", "0", path_str(&jfk)]), 2, "--beam");
    assert_fails(&whisper_run(&["--output", "docx", path_str(&jfk)]), 2, "docx");
    assert_fails(&whisper_run(&["-o", "/tmp/x.txt", path_str(&jfk), path_str(&jfk)]), 2, "-o");

    let tiny = asset("whisper-tiny.en");
    assert_fails(&whisper_run(&["-m", path_str(&tiny), "-l", "de", path_str(&jfk)]), 1, "English-only");
    let base = asset("whisper-base");
    assert_fails(&whisper_run(&["-m", path_str(&base), "-l", "xx", path_str(&jfk)]), 1, "xx");
}

#[test]
fn several_inputs_give_one_json_line_each() {
    let tiny = asset("whisper-tiny.en");
    let (wav, flac) = (asset("jfk.wav"), asset("jfk.flac"));
    let run = whisper_run(&["-m", path_str(&tiny), "--beam", "1", "-q", "--output", "json", path_str(&wav), path_str(&flac)]);
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    for line in lines {
        let json: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(json["language"], "en");
        assert!((json["duration"].as_f64().unwrap() - 11.0).abs() < 0.01, "{line}");
        assert_eq!(words(json["text"].as_str().unwrap()).join(" "), JFK_WORDS);
    }
}

/// A 16-bit PCM WAV file whose `fmt ` fields are whatever the test says (no consistency checks).
fn write_raw_wav(path: &Path, rate: u32, channels: u16, samples: &[i16]) {
    let data_len = (samples.len() * 2) as u32;
    let block_align = channels.wrapping_mul(2);
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&channels.to_le_bytes());
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&rate.wrapping_mul(u32::from(block_align)).to_le_bytes());
    bytes.extend_from_slice(&block_align.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// A mono 16-bit AIFF file with the sample rate field (80-bit float) all zero: symphonia's AIFF
/// reader panics on it, so it exercises the last line of defence rather than our header checks.
fn write_aiff_with_rate_zero(path: &Path) {
    let frames = 16_000u32;
    let mut comm = Vec::new();
    comm.extend_from_slice(&1u16.to_be_bytes());
    comm.extend_from_slice(&frames.to_be_bytes());
    comm.extend_from_slice(&16u16.to_be_bytes());
    comm.extend_from_slice(&[0u8; 10]);
    let mut ssnd = vec![0u8; 8];
    for i in 0..frames {
        ssnd.extend_from_slice(&((i % 200) as i16 * 50).to_be_bytes());
    }
    let mut body = b"AIFF".to_vec();
    for (id, chunk) in [(b"COMM", &comm), (b"SSND", &ssnd)] {
        body.extend_from_slice(id);
        body.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        body.extend_from_slice(chunk);
    }
    let mut bytes = b"FORM".to_vec();
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&body);
    std::fs::write(path, bytes).unwrap();
}

/// One second of a quiet tone, so that only the header is wrong.
fn tone() -> Vec<i16> {
    (0..16_000).map(|i| ((i as f64 * 0.2).sin() * 3000.0) as i16).collect()
}

/// Asserts the run failed before the model was loaded (the "loaded" line comes after the load).
fn assert_no_model_load(run: &Run) {
    assert!(!run.stderr.contains("loaded"), "the model was loaded:\n{}", run.stderr);
}

#[test]
fn degenerate_wav_headers_are_clear_errors_before_the_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = asset("whisper-tiny.en");
    let cases: [(&str, u32, u16, Vec<i16>, &str); 7] = [
        ("rate-0.wav", 0, 1, tone(), "sample rate 0 Hz"),
        ("rate-1.wav", 1, 1, tone(), "sample rate 1 Hz"),
        ("rate-max.wav", u32::MAX, 1, tone(), "sample rate 4294967295 Hz"),
        ("channels-0.wav", 16_000, 0, tone(), "0 channels"),
        ("channels-1000.wav", 16_000, 1000, tone(), "1000 channels"),
        ("channels-65535.wav", 16_000, u16::MAX, tone(), "65535 channels"),
        ("no-data.wav", 16_000, 1, Vec::new(), "no audio samples"),
    ];
    for (name, rate, channels, samples, needle) in cases {
        let path = dir.path().join(name);
        write_raw_wav(&path, rate, channels, &samples);
        let run = whisper_run(&["-m", path_str(&tiny), path_str(&path)]);
        assert_fails(&run, 1, &format!("error: {}: ", path.display()));
        assert!(run.stderr.contains(needle), "{name}: stderr does not say {needle:?}:\n{}", run.stderr);
        assert_no_model_load(&run);
    }
}

#[test]
fn a_panic_inside_the_decoder_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let aiff = dir.path().join("rate-0.aiff");
    write_aiff_with_rate_zero(&aiff);
    let tiny = asset("whisper-tiny.en");
    // `whisper_run` also asserts that nothing says "panicked".
    let run = whisper_run(&["-m", path_str(&tiny), path_str(&aiff)]);
    assert_fails(&run, 1, &format!("error: {}: ", aiff.display()));
    assert!(run.stderr.contains("decoder failed"), "{}", run.stderr);
    // A bad file among good ones: the others are still transcribed.
    let jfk = asset("jfk.wav");
    let run = whisper_run(&["-m", path_str(&tiny), "--beam", "1", path_str(&aiff), path_str(&jfk)]);
    assert_fails(&run, 1, path_str(&aiff));
    assert_eq!(words(&run.stdout).join(" "), JFK_WORDS);
}

#[test]
fn thread_requests_above_the_cores_are_capped() {
    let tiny = asset("whisper-tiny.en");
    let jfk = asset("jfk.wav");
    let started = std::time::Instant::now();
    let run = whisper_run(&["-m", path_str(&tiny), "--beam", "1", "-t", "100000", path_str(&jfk)]);
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert_eq!(words(&run.stdout).join(" "), JFK_WORDS);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let note = format!("note: -t 100000 is more than the {cores} available cores; using {cores}");
    assert!(run.stderr.contains(&note), "{}", run.stderr);
    assert_eq!(run.stderr.matches("note:").count(), 1, "{}", run.stderr);
    // Uncapped, 100000 threads did not finish at all (1000 took 67 s instead of 0.8 s).
    assert!(elapsed < 60.0, "{elapsed:.1} s");

    // -t 0 means one thread per available core, without a note.
    let run = whisper_run(&["-m", path_str(&tiny), "--beam", "1", "-t", "0", path_str(&jfk)]);
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert!(!run.stderr.contains("note:"), "{}", run.stderr);
    assert_eq!(words(&run.stdout).join(" "), JFK_WORDS);
}

/// 30 s of ±1-bit dither: -92 dBFS, what a quiet 16-bit recording of nothing holds.
fn dither(seconds: usize) -> Vec<i16> {
    let mut state: u32 = 7;
    (0..16_000 * seconds)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((state >> 16) % 3) as i16 - 1
        })
        .collect()
}

#[test]
fn silence_and_near_silence_give_empty_transcripts_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let silence = dir.path().join("silence-30s.wav");
    write_wav(&silence, &vec![0i16; 16_000 * 30]);
    // Before the silence gate, tiny.en transcribed this as "you" (beam 1) or "You" (beam 5).
    let near = dir.path().join("dither-30s.wav");
    write_wav(&near, &dither(30));
    let tiny = asset("whisper-tiny.en");
    let base = asset("whisper-base");
    for model in [&tiny, &base] {
        for input in [&silence, &near] {
            for (format, expected) in [("txt", ""), ("srt", ""), ("vtt", "WEBVTT\n\n")] {
                let run = whisper_run(&["-m", path_str(model), "-q", "--output", format, path_str(input)]);
                assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
                assert_eq!(run.stdout, expected, "{format} of {} with {}", input.display(), model.display());
            }
            let run = whisper_run(&["-m", path_str(model), "-q", "--output", "json", path_str(input)]);
            assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
            let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
            assert_eq!(json["text"], "", "{}", run.stdout);
            assert_eq!(json["segments"].as_array().map(Vec::len), Some(0), "{}", run.stdout);
            assert_eq!(json["duration"], 30.0);
        }
    }
}

#[test]
fn speech_followed_by_near_silence_keeps_exactly_the_speech() {
    let dir = tempfile::tempdir().unwrap();
    let mut samples: Vec<i16> = whisper::audio::load_audio(&asset("jfk.wav"))
        .unwrap()
        .iter()
        .map(|&x| (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    samples.extend(dither(40));
    let path = dir.path().join("jfk-then-dither.wav");
    write_wav(&path, &samples);
    let tiny = asset("whisper-tiny.en");
    for beam in ["1", "5"] {
        let run = whisper_run(&["-m", path_str(&tiny), "-q", "--beam", beam, path_str(&path)]);
        assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
        assert_eq!(words(&run.stdout).join(" "), JFK_WORDS, "beam {beam}");
    }
}

#[test]
fn output_path_is_checked_before_the_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    let jfk = asset("jfk.wav");
    let tiny = asset("whisper-tiny.en");

    let missing = dir.path().join("no-such-dir").join("out.txt");
    let run = whisper_run(&["-m", path_str(&tiny), "-o", path_str(&missing), path_str(&jfk)]);
    assert_fails(&run, 1, &format!("directory {} does not exist", dir.path().join("no-such-dir").display()));
    assert_no_model_load(&run);

    let run = whisper_run(&["-m", path_str(&tiny), "-o", path_str(dir.path()), path_str(&jfk)]);
    assert_fails(&run, 1, "names a directory");
    assert_no_model_load(&run);

    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let under_file = file.join("out.txt");
    let run = whisper_run(&["-m", path_str(&tiny), "-o", path_str(&under_file), path_str(&jfk)]);
    assert_fails(&run, 1, &format!("{} is not a directory", file.display()));
    assert_no_model_load(&run);

    // A directory that takes no new file (skipped where permissions do not bind, e.g. as root).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let locked = dir.path().join("read-only");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        if std::fs::File::create(locked.join("probe")).is_err() {
            let run = whisper_run(&["-m", path_str(&tiny), "-o", path_str(&locked.join("out.txt")), path_str(&jfk)]);
            assert_fails(&run, 1, "cannot create a file in");
            assert_no_model_load(&run);
        }
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    // -o stays atomic: a failed run leaves the old transcript as it was, and nothing else.
    let out = dir.path().join("kept").join("out.txt");
    std::fs::create_dir(out.parent().unwrap()).unwrap();
    std::fs::write(&out, "old transcript\n").unwrap();
    let bad = dir.path().join("rate-0.wav");
    write_raw_wav(&bad, 0, 1, &tone());
    let run = whisper_run(&["-m", path_str(&tiny), "-o", path_str(&out), path_str(&bad)]);
    assert_fails(&run, 1, path_str(&bad));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "old transcript\n");
    let names: Vec<_> = std::fs::read_dir(out.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("out.txt")]);
}

#[test]
fn a_directory_as_input_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = asset("whisper-tiny.en");
    let run = whisper_run(&["-m", path_str(&tiny), path_str(dir.path())]);
    assert_fails(&run, 1, &format!("error: {}: is a directory, not an audio file", dir.path().display()));
    assert!(!run.stderr.contains("format reader"), "{}", run.stderr);
    assert_no_model_load(&run);
}

#[test]
fn model_and_input_errors_come_before_the_model_load() {
    let dir = tempfile::tempdir().unwrap();
    let jfk = asset("jfk.wav");
    let tiny = asset("whisper-tiny.en");

    let nowhere = dir.path().join("no-such-model");
    let run = whisper_run(&["-m", path_str(&nowhere), path_str(&jfk)]);
    assert_fails(&run, 1, &format!("{}: no such model directory", nowhere.display()));

    let file = dir.path().join("model-file");
    std::fs::write(&file, "x").unwrap();
    assert_fails(
        &whisper_run(&["-m", path_str(&file), path_str(&jfk)]),
        1,
        &format!("{}: not a directory", file.display()),
    );

    // model.bin is cut short and tokenizer.json is missing. Loading model.bin would fail on the
    // truncation; the missing tokenizer is found first, so nothing was read.
    let partial = dir.path().join("partial");
    std::fs::create_dir(&partial).unwrap();
    let bin = std::fs::read(tiny.join("model.bin")).unwrap();
    std::fs::write(partial.join("model.bin"), &bin[..1 << 16]).unwrap();
    std::fs::copy(tiny.join("config.json"), partial.join("config.json")).unwrap();
    let run = whisper_run(&["-m", path_str(&partial), path_str(&jfk)]);
    assert_fails(&run, 1, &format!("{}: missing", partial.join("tokenizer.json").display()));
    assert!(!run.stderr.contains("truncated"), "{}", run.stderr);

    // Every cheap error is reported in one run: bad inputs and a bad model directory together.
    let missing = dir.path().join("missing.wav");
    let run = whisper_run(&["-m", path_str(&nowhere), path_str(&missing), path_str(dir.path())]);
    assert_fails(&run, 1, &format!("{}: no such file", missing.display()));
    assert!(run.stderr.contains("is a directory, not an audio file"), "{}", run.stderr);
    assert!(run.stderr.contains("no such model directory"), "{}", run.stderr);

    // A missing or unreadable input with a good model: reported without loading the model.
    let run = whisper_run(&["-m", path_str(&tiny), path_str(&missing)]);
    assert_fails(&run, 1, path_str(&missing));
    assert_no_model_load(&run);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let locked = dir.path().join("locked.wav");
        std::fs::copy(&jfk, &locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        if std::fs::File::open(&locked).is_err() {
            let run = whisper_run(&["-m", path_str(&tiny), path_str(&locked)]);
            assert_fails(&run, 1, &format!("{}: cannot read", locked.display()));
            assert_no_model_load(&run);
        }
    }
}

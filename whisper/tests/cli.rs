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

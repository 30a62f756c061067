//! `whisper-run`: transcribe or translate audio files with a Whisper model on the CPU.
//!
//! The transcript goes to stdout (or `-o FILE`); progress and timing go to stderr.
//! Exit status: 0 on success, 1 when a file or the model fails, 2 on bad usage.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use whisper::audio::{load_audio, AudioError, SAMPLE_RATE};
use whisper::mel::{log_mel_spectrogram, MelError, HOP_LENGTH};
use whisper::model::ModelError;
use whisper::output::{render, OutputFormat};
use whisper::tokenizer::Task;
use whisper::transcribe::{TranscribeOptions, Transcriber};

/// Audio longer than this (seconds) gets a progress bar: it spans more than one model window.
const PROGRESS_MIN_SECONDS: f64 = 30.0;

#[derive(Parser, Debug)]
#[command(name = "whisper-run", version, about = "Transcribe speech with a Whisper model")]
struct Args {
    /// Model directory (model.bin or model.safetensors + config.json, tokenizer.json)
    /// [default: assets/whisper-base, or $WHISPER_MODEL_DIR]
    #[arg(short = 'm', long = "model", value_name = "MODEL_DIR")]
    model: Option<PathBuf>,

    /// Spoken language (e.g. en, de, english), or "auto" to detect it
    #[arg(short = 'l', long = "language", value_name = "LANG", default_value = "auto")]
    language: String,

    /// Transcribe in the spoken language, or translate to English
    #[arg(long, value_enum, default_value_t = TaskArg::Transcribe)]
    task: TaskArg,

    /// Beam width (1 = greedy decoding)
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=64))]
    beam: u16,

    /// Worker threads (0 = all cores)
    #[arg(short = 't', long, value_name = "N", default_value_t = 0)]
    threads: usize,

    /// Output format; json is one object per line for each input
    #[arg(long = "output", value_enum, value_name = "FORMAT", default_value_t = OutputFormat::Txt)]
    format: OutputFormat,

    /// Write the transcript to FILE instead of stdout (one audio file only)
    #[arg(short = 'o', long = "output-file", value_name = "FILE")]
    output_file: Option<PathBuf>,

    /// No progress bar and no timing line on stderr
    #[arg(short = 'q', long)]
    quiet: bool,

    /// Audio files (wav, flac, mp3, ogg/vorbis)
    #[arg(value_name = "AUDIO", required = true)]
    audio: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TaskArg {
    Transcribe,
    Translate,
}

/// Everything that can stop one input (or the whole run).
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error("{path}: {source}")]
    Mel { path: PathBuf, source: MelError },
    #[error("cannot load the model: {}", with_path(dir, source))]
    Model { dir: PathBuf, source: ModelError },
    #[error("-l/--language: {source}")]
    Language { source: ModelError },
    #[error("{path}: transcription failed: {source}")]
    Transcribe { path: PathBuf, source: ModelError },
    #[error("{path}: cannot write output: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("cannot set up {threads} worker threads: {source}")]
    Threads { threads: usize, source: rayon::ThreadPoolBuildError },
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => {
            // Prints help/version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = err.print();
            return ExitCode::from(err.exit_code().clamp(0, 255) as u8);
        }
    };
    if args.output_file.is_some() && args.audio.len() > 1 {
        eprintln!("whisper-run: error: -o/--output-file takes exactly one AUDIO file, got {}", args.audio.len());
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("whisper-run: error: {err}");
            ExitCode::from(1)
        }
    }
}

/// Returns whether every input succeeded; errors that stop the whole run come back as `Err`.
fn run(args: &Args) -> Result<bool, RunError> {
    if args.threads > 0 {
        // The log-mel front end runs on rayon's global pool; the model has its own pool.
        rayon::ThreadPoolBuilder::new()
            .num_threads(args.threads)
            .build_global()
            .map_err(|source| RunError::Threads { threads: args.threads, source })?;
    }
    // A missing input is reported before the (slower) model load.
    for path in &args.audio {
        if !path.exists() {
            return Err(AudioError::NotFound { path: path.clone() }.into());
        }
    }

    let model_dir = args.model.clone().unwrap_or_else(whisper::assets::default_model_dir);
    let started = Instant::now();
    let transcriber = Transcriber::load(&model_dir).map_err(|source| RunError::Model {
        dir: model_dir.clone(),
        source,
    })?;
    if !args.quiet {
        eprintln!("whisper-run: loaded {} in {:.2} s", model_dir.display(), started.elapsed().as_secs_f64());
    }

    let opts = TranscribeOptions {
        language: match args.language.trim() {
            "" | "auto" => None,
            lang => Some(lang.to_string()),
        },
        task: match args.task {
            TaskArg::Transcribe => Task::Transcribe,
            TaskArg::Translate => Task::Translate,
        },
        beam_size: args.beam as usize,
        threads: args.threads,
        ..TranscribeOptions::default()
    };

    // A language the model does not know fails once, before any audio is decoded.
    if let Some(lang) = &opts.language {
        let tokenizer = &transcriber.tokenizer;
        if tokenizer.is_multilingual() {
            tokenizer.language_token(lang).map_err(|source| RunError::Language { source })?;
        } else if !matches!(lang.to_lowercase().as_str(), "en" | "english") {
            let what = format!("language {lang:?}");
            return Err(RunError::Language {
                source: ModelError::EnglishOnly { what },
            });
        }
    }

    let mut all_ok = true;
    for path in &args.audio {
        match transcribe_file(&transcriber, path, &opts, args) {
            Ok(()) => {}
            // Losing stdout ends the run; other failures move on to the next file.
            Err(err @ RunError::Stdout(_)) => return Err(err),
            Err(err) => {
                eprintln!("whisper-run: error: {err}");
                all_ok = false;
            }
        }
    }
    Ok(all_ok)
}

fn transcribe_file(transcriber: &Transcriber, path: &Path, opts: &TranscribeOptions, args: &Args) -> Result<(), RunError> {
    let started = Instant::now();
    let samples = load_audio(path)?;
    let seconds = samples.len() as f64 / SAMPLE_RATE as f64;
    let mel = log_mel_spectrogram(&samples, transcriber.model.dims.n_mels).map_err(|source| RunError::Mel {
        path: path.to_path_buf(),
        source,
    })?;
    let n_audio_frames = samples.len() / HOP_LENGTH;
    drop(samples);

    let bar = progress_bar(seconds, args.quiet);
    let mut on_progress = |done: f64| bar.set_position((done.min(seconds) * 1000.0) as u64);
    let result = transcriber.transcribe(&mel, n_audio_frames, opts, &mut on_progress);
    bar.finish_and_clear();
    let transcript = result.map_err(|source| RunError::Transcribe {
        path: path.to_path_buf(),
        source,
    })?;
    let elapsed = started.elapsed().as_secs_f64();

    let text = render(&transcript, args.format);
    match &args.output_file {
        Some(file) => write_atomically(file, text.as_bytes()).map_err(|source| RunError::Write { path: file.clone(), source })?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes()).and_then(|_| stdout.flush()).map_err(RunError::Stdout)?;
        }
    }

    if !args.quiet {
        let rtf = if seconds > 0.0 { elapsed / seconds } else { 0.0 };
        eprintln!(
            "whisper-run: {}: {:.2} s of audio in {:.2} s, realtime factor {:.3}{}",
            path.display(),
            seconds,
            elapsed,
            rtf,
            if rtf > 0.0 { format!(" ({:.1}x realtime)", 1.0 / rtf) } else { String::new() }
        );
    }
    Ok(())
}

/// The model error's message, prefixed with the model directory unless it already names it.
fn with_path(dir: &Path, err: &ModelError) -> String {
    let message = err.to_string();
    if message.contains(&*dir.to_string_lossy()) {
        message
    } else {
        format!("{}: {message}", dir.display())
    }
}

/// A bar in audio milliseconds on stderr; hidden for short audio, `--quiet` or a non-terminal.
fn progress_bar(seconds: f64, quiet: bool) -> ProgressBar {
    if quiet || seconds <= PROGRESS_MIN_SECONDS || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some((seconds * 1000.0) as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg} (eta {eta})").unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(format!("{:.0} s of audio", seconds));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Writes `bytes` to a temporary file next to `path`, then renames it over `path`, so a failure
/// never leaves a half-written transcript.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

//! `whisper-run`: transcribe or translate audio files with a Whisper model, its heavy ops on the
//! CPU (`--backend cpu`, the default) or as aiec kernels on the emulator or the NPU
//! (`--backend emulate|npu`; see `whisper_aiec`). `--report` says per op what ran where and what
//! the NPU would take by the cost model.
//!
//! The transcript goes to stdout (or `-o FILE`); progress and timing go to stderr.
//! Exit status: 0 on success, 1 when a file or the model fails, 2 on bad usage.
//!
//! Everything that can be checked cheaply is checked before the model is loaded (which takes
//! seconds): the `-o` file's directory (exists, is a directory, takes a new file), every input
//! (exists, is a readable non-empty file, has a sane header and a recognised format) and the
//! model directory (exists and holds the files the model needs). All such errors are reported
//! together. A bad model directory or `-o` stops the run; a bad input is skipped and the others
//! are transcribed (exit status 1 at the end), as with inputs that fail later.

// The error types hold their causes by value; boxing them would save nothing measurable.
#![allow(clippy::result_large_err)]

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use aiec::DeviceModel;
use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use whisper::audio::{check_audio_file, load_audio, AudioError, SAMPLE_RATE};
use whisper::mel::{frames_with_signal, HOP_LENGTH};
use whisper::model::ModelError;
use whisper::ops::{CpuOps, Ops, OpsError};
use whisper::output::{render, OutputFormat};
use whisper::tokenizer::Task;
use whisper::transcribe::{TranscribeOptions, Transcriber};
use whisper_aiec::cache::KernelCache;
use whisper_aiec::ops::{KernelOps, KernelOpsError, Target};

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

    /// Worker threads: 0 = one per available core; more than the available cores are capped
    /// to them, with a note on stderr
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

    /// Where the heavy ops run: the CPU, aiec kernels on the emulator, aiec kernels on the NPU
    /// (needs an NPU, XRT and the full mlir-aie toolchain with Peano), or auto (the NPU when it
    /// is usable, else the CPU, said on stderr)
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    backend: BackendArg,

    /// Precision of the matrix products: int8 (the default on the CPU: weights per output
    /// channel, activations per row, about 1.5x faster than f32 with the same word error on
    /// long speech) or f32 (the default with --backend emulate|npu, whose kernels take bf16)
    #[arg(long = "compute-type", value_enum, value_name = "TYPE")]
    compute_type: Option<ComputeTypeArg>,

    /// The NPU the kernels are compiled for (and the cost model estimates)
    #[arg(long, value_name = "DEVICE", default_value = "npu1", value_parser = ["npu1", "npu2"])]
    device: String,

    /// After the run, print per op the calls, shapes, backend, host time and the cost model's
    /// device estimate to stderr (kernel backends)
    #[arg(long)]
    report: bool,

    /// Write the same report as JSON to FILE
    #[arg(long = "report-json", value_name = "FILE")]
    report_json: Option<PathBuf>,

    /// Directory of compiled kernels [default: $AIEC_CACHE_DIR, else ~/.cache/aiec/kernels]
    #[arg(long = "kernel-cache", value_name = "DIR")]
    kernel_cache: Option<PathBuf>,

    /// Audio files (wav, flac, mp3, ogg/vorbis)
    #[arg(value_name = "AUDIO", required = true)]
    audio: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Cpu,
    Emulate,
    Npu,
    Auto,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ComputeTypeArg {
    F32,
    Int8,
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
    Mel { path: PathBuf, source: OpsError },
    #[error("cannot load the model: {}", with_path(dir, source))]
    Model { dir: PathBuf, source: ModelError },
    #[error("-l/--language: {source}")]
    Language { source: ModelError },
    #[error("{path}: transcription failed: {source}")]
    Transcribe { path: PathBuf, source: ModelError },
    #[error("{path}: cannot write output: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot write output: {problem}")]
    Output { path: PathBuf, problem: String },
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("--backend {backend}: {source}")]
    Backend { backend: &'static str, source: KernelOpsError },
    #[error("{path}: cannot write the report: {source}")]
    Report { path: PathBuf, source: std::io::Error },
    #[error("cannot set up {threads} worker threads: {source}")]
    Threads { threads: usize, source: rayon::ThreadPoolBuildError },
}

/// glibc's allocator, set for a program whose working set is a few arrays of megabytes freed
/// and allocated again for every layer:
/// - one arena for every thread: the decoder runs on a worker of the CpuOps pool while the
///   model is loaded on the main thread; with an arena per thread the memory each frees stays
///   with its own arena and the peak grows by several megabytes for no speed;
/// - blocks up to 64 MiB come from the heap, and up to 64 MiB of free heap is kept: otherwise
///   each layer's activations are fresh pages from the kernel, faulted in and zeroed again
///   (150 000 page faults for 69 s of speech, a tenth of the wall time), while what the heap
///   keeps is at most one layer's worth.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocator settings; called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

fn main() -> ExitCode {
    tune_malloc();
    // A panic inside the audio decoder is caught and reported as an error naming the file;
    // the default hook would print it as a crash first.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !whisper::audio::in_guarded_decode() {
            default_hook(info)
        }
    }));
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
    let threads = worker_threads(args.threads);
    // The model and the log-mel run on the CpuOps pool built below; the global pool is bounded
    // too, so that no other parallel work uses more threads than asked for.
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|source| RunError::Threads { threads, source })?;

    // Cheap checks before the (slow) model load; every problem found is reported.
    let mut setup_ok = true;
    if let Some(file) = &args.output_file {
        if let Err(err) = check_output_file(file) {
            eprintln!("whisper-run: error: {err}");
            setup_ok = false;
        }
    }
    let mut all_ok = true;
    let mut inputs = Vec::with_capacity(args.audio.len());
    for path in &args.audio {
        match check_audio_file(path) {
            Ok(()) => inputs.push(path),
            Err(err) => {
                eprintln!("whisper-run: error: {err}");
                all_ok = false;
            }
        }
    }
    let model_dir = args.model.clone().unwrap_or_else(whisper::assets::default_model_dir);
    if let Err(source) = Transcriber::check_dir(&model_dir) {
        eprintln!(
            "whisper-run: error: {}",
            RunError::Model {
                dir: model_dir.clone(),
                source
            }
        );
        setup_ok = false;
    }
    if !setup_ok || inputs.is_empty() {
        return Ok(false);
    }

    let started = Instant::now();
    let kernels = kernel_ops(args)?;
    let ops: Arc<dyn Ops> = match &kernels {
        Some(k) => k.clone(),
        None => Arc::new(CpuOps::new(threads).map_err(|e| RunError::Threads {
            threads: e.threads,
            source: e.source,
        })?),
    };
    let default_compute = if kernels.is_some() { ComputeTypeArg::F32 } else { ComputeTypeArg::Int8 };
    let compute = match args.compute_type.unwrap_or(default_compute) {
        ComputeTypeArg::F32 => whisper::model::ComputeType::F32,
        ComputeTypeArg::Int8 => whisper::model::ComputeType::Int8,
    };
    let transcriber = Transcriber::load_with(&model_dir, ops, compute).map_err(|source| RunError::Model {
        dir: model_dir.clone(),
        source,
    })?;
    if let Some(k) = &kernels {
        if !args.quiet {
            let bound = whisper_aiec::shapes::model_design_classes(&transcriber.model, args.beam as usize).len();
            eprintln!(
                "whisper-run: heavy ops on aiec kernels ({}, compiled for {}); at most {bound} distinct designs for this model at beam {}; cache {}",
                k.target().name(),
                args.device,
                args.beam,
                k.cache_dir().display()
            );
        }
    }
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

    let mut audio_seconds = 0.0;
    for path in inputs {
        match transcribe_file(&transcriber, path, &opts, args, &mut audio_seconds) {
            Ok(()) => {}
            // Losing stdout ends the run; other failures move on to the next file.
            Err(err @ RunError::Stdout(_)) => return Err(err),
            Err(err) => {
                eprintln!("whisper-run: error: {err}");
                all_ok = false;
            }
        }
    }
    if let Some(k) = &kernels {
        k.set_audio_seconds(audio_seconds);
        let report = k.report();
        if args.report {
            eprint!("{}", report.to_text());
        } else if !args.quiet {
            eprintln!("whisper-run: {}", report.total_line());
        }
        if let Some(path) = &args.report_json {
            write_atomically(path, report.to_json().as_bytes()).map_err(|source| RunError::Report { path: path.clone(), source })?;
        }
    } else if args.report || args.report_json.is_some() {
        eprintln!("whisper-run: note: --report describes kernel backends; with --backend cpu every op ran on the CPU");
    }
    Ok(all_ok)
}

/// The kernel backend `--backend` asks for, or `None` for the CPU. `npu` without an NPU, XRT or
/// the toolchain is an error naming what is missing; `auto` says which it chose.
fn kernel_ops(args: &Args) -> Result<Option<Arc<KernelOps>>, RunError> {
    let device = DeviceModel::by_name(&args.device).unwrap_or_else(DeviceModel::npu1);
    let cache = KernelCache::new(args.kernel_cache.clone().unwrap_or_else(KernelCache::default_dir));
    let target = match args.backend {
        BackendArg::Cpu => return Ok(None),
        BackendArg::Emulate => Target::Emulate,
        BackendArg::Npu => Target::Npu,
        BackendArg::Auto => match aiec_runtime::npu::NpuBackend::probe() {
            Ok(()) => Target::Npu,
            Err(why) => {
                if !args.quiet {
                    eprintln!("whisper-run: --backend auto: using the CPU ({why})");
                }
                return Ok(None);
            }
        },
    };
    let ops = KernelOps::new(target, device, cache).map_err(|source| RunError::Backend {
        backend: target.name(),
        source,
    })?;
    Ok(Some(Arc::new(ops)))
}

fn transcribe_file(transcriber: &Transcriber, path: &Path, opts: &TranscribeOptions, args: &Args, audio_seconds: &mut f64) -> Result<(), RunError> {
    let started = Instant::now();
    let samples = load_audio(path)?;
    let seconds = samples.len() as f64 / SAMPLE_RATE as f64;
    *audio_seconds += seconds;
    let mel = transcriber
        .ops()
        .log_mel(&samples, transcriber.model.dims.n_mels)
        .map_err(|source| RunError::Mel {
            path: path.to_path_buf(),
            source,
        })?;
    let n_audio_frames = samples.len() / HOP_LENGTH;
    // Windows with no frame above the silence level are not decoded: near-silence would
    // otherwise come out as a hallucinated word.
    let signal = frames_with_signal(&samples);
    drop(samples);

    let bar = progress_bar(seconds, args.quiet);
    let mut on_progress = |done: f64| bar.set_position((done.min(seconds) * 1000.0) as u64);
    let result = transcriber.transcribe_with_signal(&mel, n_audio_frames, &signal, opts, &mut on_progress);
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

/// The threads to use for `-t requested`: 0 means one per available core; a request above the
/// available cores is capped to them (with a note), since more threads only slow the work down.
fn worker_threads(requested: usize) -> usize {
    let available = whisper::ops::available_threads();
    if requested > available {
        eprintln!("whisper-run: note: -t {requested} is more than the {available} available cores; using {available}");
    }
    whisper::ops::effective_threads(requested)
}

/// The directory `path` goes into and the temporary file [`write_atomically`] writes first.
fn output_dir_and_temp(path: &Path) -> (PathBuf, PathBuf) {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    (dir, tmp)
}

/// Checks that the transcript can later be written to `path`: it is not a directory, and its
/// directory exists and takes a new file (tried by creating and removing the temporary file
/// [`write_atomically`] will use, which also covers read-only mounts and ACLs).
fn check_output_file(path: &Path) -> Result<(), RunError> {
    let fail = |problem: String| RunError::Output {
        path: path.to_path_buf(),
        problem,
    };
    if path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') {
        return Err(fail("it names a directory, not a file".into()));
    }
    let (dir, tmp) = output_dir_and_temp(path);
    match std::fs::metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(fail(format!("directory {} does not exist", dir.display()))),
        Err(e) => return Err(fail(format!("{}: {e}", dir.display()))),
        Ok(meta) if !meta.is_dir() => return Err(fail(format!("{} is not a directory", dir.display()))),
        Ok(_) => {}
    }
    match std::fs::File::create(&tmp) {
        Ok(file) => {
            drop(file);
            let _ = std::fs::remove_file(&tmp);
            Ok(())
        }
        Err(e) => Err(fail(format!("cannot create a file in {}: {e}", dir.display()))),
    }
}

/// Writes `bytes` to a temporary file next to `path`, then renames it over `path`, so a failure
/// never leaves a half-written transcript.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (_, tmp) = output_dir_and_temp(path);
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

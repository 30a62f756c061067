//! Measures the CPU reference path: model load, log-mel, transcription wall time and the
//! realtime factor (audio seconds per wall second).
//!
//! `whisper-bench [--model DIR] [--beam N] [--threads N] [--repeat N] [AUDIO]`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use whisper::ops::CpuOps;
use whisper::transcribe::{TranscribeOptions, Transcriber};

#[derive(Parser)]
#[command(about = "Time Whisper transcription on the CPU")]
struct Args {
    /// Audio file (default: assets/long-speech.wav, else assets/jfk.wav).
    audio: Option<PathBuf>,
    /// Model directory (default: assets/whisper-base).
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    beam: usize,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Transcriptions to time (the best is reported too).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    #[arg(long)]
    language: Option<String>,
    /// f32 or int8.
    #[arg(long, default_value = "int8")]
    compute_type: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    whisper::ops::single_threaded_sgemm();
    let assets = whisper::assets::assets_dir();
    let audio = args.audio.unwrap_or_else(|| {
        let long = assets.join("long-speech.wav");
        if long.is_file() {
            long
        } else {
            assets.join("jfk.wav")
        }
    });
    let model_dir = args.model.unwrap_or_else(whisper::assets::default_model_dir);

    let t = Instant::now();
    let ops = CpuOps::new(args.threads)?;
    let threads = ops.threads();
    let transcriber = Transcriber::load_with(
        &model_dir,
        Arc::new(ops),
        match args.compute_type.as_str() {
            "f32" => whisper::model::ComputeType::F32,
            "int8" => whisper::model::ComputeType::Int8,
            other => return Err(format!("unknown compute type {other}").into()),
        },
    )?;
    let load = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let samples = whisper::audio::load_audio(&audio)?;
    let mel = transcriber.ops().log_mel(&samples, transcriber.model.dims.n_mels)?;
    let mel_time = t.elapsed().as_secs_f64();
    let n_frames = samples.len() / whisper::mel::HOP_LENGTH;
    let signal = whisper::mel::frames_with_signal(&samples);
    let seconds = samples.len() as f64 / whisper::audio::SAMPLE_RATE as f64;

    let opts = TranscribeOptions {
        beam_size: args.beam,
        language: args.language.clone(),
        ..TranscribeOptions::default()
    };
    let mut best = f64::INFINITY;
    let mut transcript = None;
    for _ in 0..args.repeat.max(1) {
        let t = Instant::now();
        let out = transcriber.transcribe_with_signal(&mel, n_frames, &signal, &opts, &mut |_| {})?;
        best = best.min(t.elapsed().as_secs_f64());
        transcript = Some(out);
    }
    let transcript = transcript.expect("at least one run");
    for seg in &transcript.segments {
        println!("[{:7.2} -> {:7.2}] {}", seg.start, seg.end, seg.text.trim());
    }
    println!("model       {}", model_dir.display());
    println!("audio       {} ({seconds:.2} s, language {})", audio.display(), transcript.language);
    println!("load        {load:.3} s");
    println!("log-mel     {mel_time:.3} s");
    println!(
        "transcribe  {best:.3} s (beam {}, {} threads) = {:.1}x realtime",
        args.beam,
        threads,
        seconds / best
    );
    if let Some(peak) = peak_rss_kib() {
        println!("peak RSS    {:.0} MiB", peak as f64 / 1024.0);
    }
    Ok(())
}

/// Peak resident set size from /proc (Linux only).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

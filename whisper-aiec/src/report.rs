//! What ran where: per Whisper op, the calls, the shapes, the backend, the host wall time and the
//! cost model's estimate of the device time. Estimates are never measurements and say so.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// Work that stays on the host under a kernel backend: light, or bookkeeping that has no kernel.
pub const HOST_WORK: &[&str] = &[
    "STFT framing: reflect padding of the audio (a copy)",
    "log-mel dynamic range: the clamp at the global maximum minus 8 needs the whole clip",
    "layout: f32 <-> bf16 conversion of activations, im2col for the convolutions, heads split and joined, padding to shape classes",
    "residual additions and positional embeddings (elementwise adds)",
    "token embedding lookup (a row gather)",
    "argmax, log-softmax over the vocabulary, beam and timestamp bookkeeping",
];

/// Totals for one Whisper op.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OpStats {
    pub calls: u64,
    /// Shape as the model called the op -> calls.
    pub shapes: BTreeMap<String, u64>,
    /// Wall time of the op on the host, padding and layout included.
    pub host_seconds: f64,
    /// Time inside the backend's runs.
    pub backend_seconds: f64,
    /// Kernel invocations the op made.
    pub kernel_calls: u64,
    /// Cost-model estimate of the device time of those invocations.
    pub estimated_seconds: f64,
}

/// The whole report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub backend: String,
    pub device: String,
    pub ops: BTreeMap<String, OpStats>,
    /// Every design used, by name.
    pub designs: BTreeSet<String>,
    /// Designs compiled by this run (the others came from the cache).
    pub compiled: usize,
    pub cache_dir: String,
    /// Seconds of audio transcribed (for the realtime factor).
    pub audio_seconds: f64,
    pub host_work: Vec<String>,
}

impl Report {
    pub fn new(backend: &str, device: &str, cache_dir: &str) -> Report {
        Report {
            backend: backend.to_string(),
            device: device.to_string(),
            cache_dir: cache_dir.to_string(),
            host_work: HOST_WORK.iter().map(|s| s.to_string()).collect(),
            ..Report::default()
        }
    }

    /// Records one call of `op` at `shape`.
    pub fn record(&mut self, op: &str, shape: String, host: Duration, backend: Duration, kernel_calls: u64, estimated_seconds: f64) {
        let s = self.ops.entry(op.to_string()).or_default();
        s.calls += 1;
        *s.shapes.entry(shape).or_default() += 1;
        s.host_seconds += host.as_secs_f64();
        s.backend_seconds += backend.as_secs_f64();
        s.kernel_calls += kernel_calls;
        s.estimated_seconds += estimated_seconds;
    }

    pub fn estimated_seconds(&self) -> f64 {
        self.ops.values().map(|s| s.estimated_seconds).sum()
    }

    /// The summary line: estimated device time and realtime factor.
    pub fn total_line(&self) -> String {
        let est = self.estimated_seconds();
        let factor = if est > 0.0 { self.audio_seconds / est } else { f64::INFINITY };
        format!(
            "estimated {} time for this transcription: {est:.3} s ({factor:.1} x realtime) — cost-model estimate, not a measurement",
            self.device
        )
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "per op ({} backend; estimates for {}):", self.backend, self.device);
        let _ = writeln!(
            out,
            "  {:<11} {:>6} {:>8} {:>9} {:>11} {:>12}  shapes (calls)",
            "op", "calls", "kernels", "host s", "backend s", "est. dev ms"
        );
        for (op, s) in &self.ops {
            let mut shapes: Vec<(&String, &u64)> = s.shapes.iter().collect();
            shapes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let mut listed: Vec<String> = shapes.iter().take(4).map(|(sh, n)| format!("{sh} ({n})")).collect();
            if shapes.len() > 4 {
                listed.push(format!("+{} more", shapes.len() - 4));
            }
            let _ = writeln!(
                out,
                "  {:<11} {:>6} {:>8} {:>9.2} {:>11.2} {:>12.3}  {}",
                op,
                s.calls,
                s.kernel_calls,
                s.host_seconds,
                s.backend_seconds,
                s.estimated_seconds * 1e3,
                listed.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "designs: {} distinct ({} compiled by this run, the rest from {})",
            self.designs.len(),
            self.compiled,
            self.cache_dir
        );
        let _ = writeln!(out, "on the host, not on kernels:");
        for w in &self.host_work {
            let _ = writeln!(out, "  - {w}");
        }
        let _ = writeln!(out, "{}", self.total_line());
        out
    }

    pub fn to_json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("estimated_seconds".into(), self.estimated_seconds().into());
            o.insert("total".into(), self.total_line().into());
        }
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }
}

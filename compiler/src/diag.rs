//! Source spans and rendered diagnostics: every compile error points at the DSL source.

use std::fmt;
use std::sync::Arc;

/// A named source text (a `.tile` file, or `<rust>` for the builder API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub(crate) name: String,
    pub(crate) text: String,
}

impl Source {
    /// A source called `name` (shown in diagnostics as `name:line:col`) holding `text`.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<Source> {
        Arc::new(Source {
            name: name.into(),
            text: text.into(),
        })
    }
    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = self.text[line_start..offset].chars().count() + 1;
        (line, col)
    }
    fn line_text(&self, line: usize) -> &str {
        self.text.lines().nth(line - 1).unwrap_or("")
    }
}

/// A byte range in a [`Source`]. Builder-API spans carry the Rust caller's file and line instead.
#[derive(Debug, Clone)]
pub struct Span {
    pub(crate) source: Arc<Source>,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset past the last byte.
    pub end: usize,
}

impl PartialEq for Span {
    fn eq(&self, other: &Self) -> bool {
        self.start == other.start && self.end == other.end && self.source.name == other.source.name
    }
}

impl Span {
    /// Bytes `start..end` of `source`.
    pub fn new(source: &Arc<Source>, start: usize, end: usize) -> Span {
        Span {
            source: source.clone(),
            start,
            end,
        }
    }
    /// A span for code written with the Rust builder API: names the caller's file:line.
    #[track_caller]
    pub(crate) fn caller() -> Span {
        let loc = std::panic::Location::caller();
        let text = format!("{}:{}:{}", loc.file(), loc.line(), loc.column());
        Span {
            source: Source::new(text, String::new()),
            start: 0,
            end: 0,
        }
    }
    /// Where the span starts, as `file:line:col` (for a builder-API span, the Rust caller's).
    pub fn location(&self) -> String {
        if self.source.text.is_empty() {
            return self.source.name.clone();
        }
        let (l, c) = self.source.line_col(self.start);
        format!("{}:{}:{}", self.source.name, l, c)
    }
    /// The span from the start of `self` to the end of `other` (same source).
    pub(crate) fn to(&self, other: &Span) -> Span {
        Span {
            source: self.source.clone(),
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// An error or note attached to a span, rendered rustc-style:
///
/// ```text
/// error: tile memory exceeded on compute tile (0, 2): 70144 bytes needed, limit 65536
///  --> matmul.tile:4:3
///   |
/// 4 |   dim M = 512 tile 128
///   |   ^^^^^^^^^^^^^^^^^^^^ ...
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The one-line message after `error:` / `note:`.
    pub message: String,
    /// Where in the source it points, when it points anywhere.
    pub span: Option<Span>,
    /// `= note:` lines: further explanation or a suggested fix.
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// A diagnostic with `message` at `span` and no notes.
    pub(crate) fn new(message: impl Into<String>, span: Option<&Span>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span: span.cloned(),
            notes: Vec::new(),
        }
    }
    /// Adds a `= note:` line.
    pub(crate) fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

impl Diagnostic {
    /// The same rendering as an error's, headed `note:` (for advice that does not stop compilation).
    pub fn render_note(&self) -> String {
        let mut out = String::new();
        let _ = self.render(&mut out, "note");
        out
    }

    fn render(&self, f: &mut impl fmt::Write, severity: &str) -> fmt::Result {
        writeln!(f, "{severity}: {}", self.message)?;
        if let Some(span) = &self.span {
            writeln!(f, " --> {}", span.location())?;
            if !span.source.text.is_empty() {
                let (line, col) = span.source.line_col(span.start);
                let (end_line, end_col) = span.source.line_col(span.end.max(span.start));
                let text = span.source.line_text(line);
                let width = if end_line == line {
                    (end_col.saturating_sub(col)).max(1)
                } else {
                    text.chars().count().saturating_sub(col - 1).max(1)
                };
                let (text, col, width) = window(text, col, width);
                let num = line.to_string();
                let pad = " ".repeat(num.len());
                writeln!(f, "{pad} |")?;
                writeln!(f, "{num} | {text}")?;
                writeln!(f, "{pad} | {}{}", " ".repeat(col - 1), "^".repeat(width))?;
            }
        }
        for n in &self.notes {
            writeln!(f, "  = note: {n}")?;
        }
        Ok(())
    }
}

/// Characters of a source line a diagnostic shows; a longer line is cut around the span.
const SHOWN_CHARS: usize = 160;

/// The part of `text` to show for a span at `col` (1-based, in characters) of `width`
/// characters: the whole line, or for a long one `...` + about [`SHOWN_CHARS`] characters around
/// the span + `...`, with the column and width moved to match.
fn window(text: &str, col: usize, width: usize) -> (String, usize, usize) {
    let len = text.chars().count();
    if len <= SHOWN_CHARS {
        return (text.to_string(), col, width);
    }
    let start = (col - 1).saturating_sub(SHOWN_CHARS / 4).min(len - SHOWN_CHARS);
    let end = start + SHOWN_CHARS;
    let (prefix, suffix) = (if start > 0 { "..." } else { "" }, if end < len { "..." } else { "" });
    let shown: String = text.chars().skip(start).take(SHOWN_CHARS).collect();
    let col_shown = col - start + prefix.len();
    let width = width.min(end.saturating_sub(col - 1)).max(1);
    (format!("{prefix}{shown}{suffix}"), col_shown, width)
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f, "error")
    }
}

/// Errors of the compiler. Each variant is a kind of failure; all carry a located diagnostic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompileError {
    /// Source text that does not parse (syntax, or a source too large or too deeply nested).
    #[error("{0}")]
    Parse(Diagnostic),
    /// Unknown names, dtype mismatches, malformed statements.
    #[error("{0}")]
    Type(Diagnostic),
    /// A hardware limit (memory, DMA channels, locks, BDs, DMA patterns, arguments), or a tiling
    /// that does not divide.
    #[error("{0}")]
    Limit(Diagnostic),
    /// A kernel the scheduler cannot place (e.g. a spread it does not support).
    #[error("{0}")]
    Schedule(Diagnostic),
    /// Lowering through MLIR failed (an internal error: the IR passed the checks).
    #[error("{0}")]
    Lower(Diagnostic),
    /// A construct the target's core toolchain cannot compile (see `target_rules`).
    #[error("{0}")]
    Target(Diagnostic),
}

impl CompileError {
    /// The located diagnostic every variant carries.
    pub fn diagnostic(&self) -> &Diagnostic {
        match self {
            CompileError::Parse(d)
            | CompileError::Type(d)
            | CompileError::Limit(d)
            | CompileError::Schedule(d)
            | CompileError::Lower(d)
            | CompileError::Target(d) => d,
        }
    }
}

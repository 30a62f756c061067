//! Transcript writers: plain text, SubRip (srt), WebVTT and JSON.

use std::fmt::Write as _;

use crate::Transcript;

/// Output format of `whisper-run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One segment per line.
    Txt,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
    /// One JSON object: language, duration, text and timed segments.
    Json,
}

/// Renders `transcript` in `format`; the result ends with a newline unless it is empty text.
pub fn render(transcript: &Transcript, format: OutputFormat) -> String {
    match format {
        OutputFormat::Txt => to_txt(transcript),
        OutputFormat::Srt => to_srt(transcript),
        OutputFormat::Vtt => to_vtt(transcript),
        OutputFormat::Json => to_json(transcript),
    }
}

/// Segments with their text trimmed; segments with no text are left out.
fn spoken(transcript: &Transcript) -> impl Iterator<Item = (f64, f64, &str)> {
    transcript
        .segments
        .iter()
        .map(|s| (s.start, s.end, s.text.trim()))
        .filter(|(_, _, text)| !text.is_empty())
}

pub fn to_txt(transcript: &Transcript) -> String {
    let mut out = String::new();
    for (_, _, text) in spoken(transcript) {
        out.push_str(text);
        out.push('\n');
    }
    out
}

pub fn to_srt(transcript: &Transcript) -> String {
    let mut out = String::new();
    for (index, (start, end, text)) in spoken(transcript).enumerate() {
        let _ = write!(out, "{}\n{} --> {}\n{}\n\n", index + 1, timestamp(start, ','), timestamp(end, ','), text);
    }
    out
}

pub fn to_vtt(transcript: &Transcript) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for (start, end, text) in spoken(transcript) {
        let _ = write!(out, "{} --> {}\n{}\n\n", timestamp(start, '.'), timestamp(end, '.'), text);
    }
    out
}

#[derive(serde::Serialize)]
struct JsonTranscript<'a> {
    language: &'a str,
    duration: f64,
    text: String,
    segments: Vec<JsonSegment<'a>>,
}

#[derive(serde::Serialize)]
struct JsonSegment<'a> {
    start: f64,
    end: f64,
    text: &'a str,
}

/// One line of JSON (so several transcripts form a JSON Lines stream).
pub fn to_json(transcript: &Transcript) -> String {
    let doc = JsonTranscript {
        language: &transcript.language,
        duration: round_ms(transcript.duration),
        text: transcript.text(),
        segments: spoken(transcript)
            .map(|(start, end, text)| JsonSegment {
                start: round_ms(start),
                end: round_ms(end),
                text,
            })
            .collect(),
    };
    // Serialising plain structs of strings and finite numbers cannot fail; NaN becomes null.
    let mut line = serde_json::to_string(&doc).unwrap_or_else(|_| String::from("{}"));
    line.push('\n');
    line
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// `HH:MM:SS<sep>mmm`, rounded to the millisecond; negative or non-finite times print as zero.
pub fn timestamp(seconds: f64, millis_sep: char) -> String {
    let total_ms = if seconds.is_finite() && seconds > 0.0 {
        (seconds * 1000.0).round() as u64
    } else {
        0
    };
    let (hours, rest) = (total_ms / 3_600_000, total_ms % 3_600_000);
    let (minutes, rest) = (rest / 60_000, rest % 60_000);
    let (secs, ms) = (rest / 1000, rest % 1000);
    format!("{hours:02}:{minutes:02}:{secs:02}{millis_sep}{ms:03}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Segment;

    fn sample() -> Transcript {
        let seg = |start: f64, end: f64, text: &str| Segment {
            start,
            end,
            text: text.into(),
            tokens: vec![],
        };
        Transcript {
            language: "en".into(),
            duration: 3725.5,
            segments: vec![
                seg(0.0, 2.5, " Hello there."),
                seg(2.5, 3.0, "  "),
                seg(3661.0416, 3725.5, " General \"Kenobi\"."),
            ],
        }
    }

    #[test]
    fn timestamps_round_to_milliseconds() {
        assert_eq!(timestamp(0.0, ','), "00:00:00,000");
        assert_eq!(timestamp(3661.0416, ','), "01:01:01,042");
        assert_eq!(timestamp(59.9996, '.'), "00:01:00.000");
        assert_eq!(timestamp(-1.0, '.'), "00:00:00.000");
        assert_eq!(timestamp(f64::NAN, '.'), "00:00:00.000");
    }

    #[test]
    fn txt_has_one_trimmed_line_per_spoken_segment() {
        assert_eq!(to_txt(&sample()), "Hello there.\nGeneral \"Kenobi\".\n");
    }

    #[test]
    fn srt_numbers_cues_from_one() {
        let expected = "1\n00:00:00,000 --> 00:00:02,500\nHello there.\n\n\
                        2\n01:01:01,042 --> 01:02:05,500\nGeneral \"Kenobi\".\n\n";
        assert_eq!(to_srt(&sample()), expected);
    }

    #[test]
    fn vtt_starts_with_header() {
        let expected = "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello there.\n\n\
                        01:01:01.042 --> 01:02:05.500\nGeneral \"Kenobi\".\n\n";
        assert_eq!(to_vtt(&sample()), expected);
    }

    #[test]
    fn json_escapes_and_keeps_timing() {
        let json = to_json(&sample());
        assert!(json.ends_with('\n') && !json.trim_end().contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["language"], "en");
        assert_eq!(v["duration"], 3725.5);
        assert_eq!(v["text"], "Hello there. General \"Kenobi\".");
        let segs = v["segments"].as_array().unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[1]["start"], 3661.042);
        assert_eq!(segs[1]["text"], "General \"Kenobi\".");
    }

    #[test]
    fn empty_transcript_renders_without_cues() {
        let t = Transcript {
            language: "en".into(),
            duration: 1.0,
            segments: vec![],
        };
        assert_eq!(to_txt(&t), "");
        assert_eq!(to_srt(&t), "");
        assert_eq!(to_vtt(&t), "WEBVTT\n\n");
        let v: serde_json::Value = serde_json::from_str(&to_json(&t)).unwrap();
        assert_eq!(v["segments"].as_array().unwrap().len(), 0);
        assert_eq!(v["text"], "");
    }
}

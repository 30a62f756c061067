//! Whisper's byte-level BPE (`tokenizer.json`) plus its special tokens.
//!
//! Special tokens are found by their strings, never by fixed ids: multilingual and English-only
//! vocabularies differ by one. Timestamp tokens are not listed in `tokenizer.json`; they follow
//! `<|notimestamps|>`, one per 0.02 s.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::model::ModelError;

/// Seconds per timestamp token.
pub const TIME_PRECISION: f64 = 0.02;

/// Language codes and names, in the order of the language tokens of the multilingual vocabulary.
pub const LANGUAGES: &[(&str, &str)] = &[
    ("en", "english"),
    ("zh", "chinese"),
    ("de", "german"),
    ("es", "spanish"),
    ("ru", "russian"),
    ("ko", "korean"),
    ("fr", "french"),
    ("ja", "japanese"),
    ("pt", "portuguese"),
    ("tr", "turkish"),
    ("pl", "polish"),
    ("ca", "catalan"),
    ("nl", "dutch"),
    ("ar", "arabic"),
    ("sv", "swedish"),
    ("it", "italian"),
    ("id", "indonesian"),
    ("hi", "hindi"),
    ("fi", "finnish"),
    ("vi", "vietnamese"),
    ("he", "hebrew"),
    ("uk", "ukrainian"),
    ("el", "greek"),
    ("ms", "malay"),
    ("cs", "czech"),
    ("ro", "romanian"),
    ("da", "danish"),
    ("hu", "hungarian"),
    ("ta", "tamil"),
    ("no", "norwegian"),
    ("th", "thai"),
    ("ur", "urdu"),
    ("hr", "croatian"),
    ("bg", "bulgarian"),
    ("lt", "lithuanian"),
    ("la", "latin"),
    ("mi", "maori"),
    ("ml", "malayalam"),
    ("cy", "welsh"),
    ("sk", "slovak"),
    ("te", "telugu"),
    ("fa", "persian"),
    ("lv", "latvian"),
    ("bn", "bengali"),
    ("sr", "serbian"),
    ("az", "azerbaijani"),
    ("sl", "slovenian"),
    ("kn", "kannada"),
    ("et", "estonian"),
    ("mk", "macedonian"),
    ("br", "breton"),
    ("eu", "basque"),
    ("is", "icelandic"),
    ("hy", "armenian"),
    ("ne", "nepali"),
    ("mn", "mongolian"),
    ("bs", "bosnian"),
    ("kk", "kazakh"),
    ("sq", "albanian"),
    ("sw", "swahili"),
    ("gl", "galician"),
    ("mr", "marathi"),
    ("pa", "punjabi"),
    ("si", "sinhala"),
    ("km", "khmer"),
    ("sn", "shona"),
    ("yo", "yoruba"),
    ("so", "somali"),
    ("af", "afrikaans"),
    ("oc", "occitan"),
    ("ka", "georgian"),
    ("be", "belarusian"),
    ("tg", "tajik"),
    ("sd", "sindhi"),
    ("gu", "gujarati"),
    ("am", "amharic"),
    ("yi", "yiddish"),
    ("lo", "lao"),
    ("uz", "uzbek"),
    ("fo", "faroese"),
    ("ht", "haitian creole"),
    ("ps", "pashto"),
    ("tk", "turkmen"),
    ("nn", "nynorsk"),
    ("mt", "maltese"),
    ("sa", "sanskrit"),
    ("lb", "luxembourgish"),
    ("my", "myanmar"),
    ("bo", "tibetan"),
    ("tl", "tagalog"),
    ("mg", "malagasy"),
    ("as", "assamese"),
    ("tt", "tatar"),
    ("haw", "hawaiian"),
    ("ln", "lingala"),
    ("ha", "hausa"),
    ("ba", "bashkir"),
    ("jw", "javanese"),
    ("su", "sundanese"),
    ("yue", "cantonese"),
];

/// Task token chosen for a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Task {
    #[default]
    Transcribe,
    /// Speech in any language to English text.
    Translate,
}

/// The tokenizer with Whisper's special tokens resolved.
pub struct WhisperTokenizer {
    inner: tokenizers::Tokenizer,
    path: PathBuf,
    pub eot: u32,
    pub sot: u32,
    pub sot_prev: u32,
    pub sot_lm: Option<u32>,
    pub transcribe: u32,
    pub translate: u32,
    pub no_timestamps: u32,
    /// `<|nospeech|>` or, in older vocabularies, `<|nocaptions|>`.
    pub no_speech: Option<u32>,
    /// First timestamp token (`<|0.00|>`).
    pub timestamp_begin: u32,
    /// `(code, token id)` of every language token in the vocabulary.
    pub languages: Vec<(String, u32)>,
    multilingual: bool,
}

impl std::fmt::Debug for WhisperTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperTokenizer")
            .field("path", &self.path)
            .field("multilingual", &self.multilingual)
            .finish()
    }
}

impl WhisperTokenizer {
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| ModelError::Tokenizer {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
        let id = |token: &str| -> Result<u32, ModelError> {
            inner.token_to_id(token).ok_or_else(|| ModelError::MissingToken {
                path: path.to_path_buf(),
                token: token.to_string(),
            })
        };
        let eot = id("<|endoftext|>")?;
        let sot = id("<|startoftranscript|>")?;
        let no_timestamps = id("<|notimestamps|>")?;
        let languages = LANGUAGES
            .iter()
            .filter_map(|(code, _)| inner.token_to_id(&format!("<|{code}|>")).map(|id| (code.to_string(), id)))
            .collect();
        Ok(Self {
            sot_prev: id("<|startofprev|>")?,
            sot_lm: inner.token_to_id("<|startoflm|>"),
            transcribe: id("<|transcribe|>")?,
            translate: id("<|translate|>")?,
            no_speech: inner.token_to_id("<|nospeech|>").or_else(|| inner.token_to_id("<|nocaptions|>")),
            timestamp_begin: no_timestamps + 1,
            // GPT-2's English vocabulary has 50256 byte-level tokens before <|endoftext|>; the
            // multilingual one has 50257.
            multilingual: eot >= 50257,
            languages,
            eot,
            sot,
            no_timestamps,
            inner,
            path: path.to_path_buf(),
        })
    }

    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    /// Text tokens only, no special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let enc = self.inner.encode(text, false).map_err(|e| ModelError::Tokenizer {
            path: self.path.clone(),
            problem: e.to_string(),
        })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of the text tokens in `tokens` (special and timestamp tokens are dropped).
    pub fn decode(&self, tokens: &[u32]) -> Result<String, ModelError> {
        let text: Vec<u32> = tokens.iter().copied().filter(|&t| t < self.eot).collect();
        self.inner.decode(&text, false).map_err(|e| ModelError::Tokenizer {
            path: self.path.clone(),
            problem: e.to_string(),
        })
    }

    pub fn is_timestamp(&self, token: u32) -> bool {
        token >= self.timestamp_begin
    }

    /// Seconds of a timestamp token.
    pub fn timestamp_seconds(&self, token: u32) -> f64 {
        (token - self.timestamp_begin) as f64 * TIME_PRECISION
    }

    pub fn language_token(&self, code: &str) -> Result<u32, ModelError> {
        let code = code.to_lowercase();
        // Accept full names too ("english").
        let code = LANGUAGES.iter().find(|(_, name)| *name == code).map(|(c, _)| c.to_string()).unwrap_or(code);
        self.languages
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, id)| *id)
            .ok_or_else(|| ModelError::UnknownLanguage {
                code: code.clone(),
                known: self.languages.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>().join(", "),
            })
    }

    pub fn language_code(&self, token: u32) -> Option<&str> {
        self.languages.iter().find(|(_, id)| *id == token).map(|(c, _)| c.as_str())
    }

    /// The prompt that starts a window: `<|startoftranscript|>`, and for multilingual models the
    /// language and task tokens.
    pub fn sot_sequence(&self, language: Option<u32>, task: Task) -> Vec<u32> {
        let mut seq = vec![self.sot];
        if self.multilingual {
            if let Some(lang) = language {
                seq.push(lang);
            }
            seq.push(match task {
                Task::Transcribe => self.transcribe,
                Task::Translate => self.translate,
            });
        }
        seq
    }

    /// Tokens that are never spoken words: punctuation-like symbols and music signs that models
    /// like to hallucinate, plus the special tokens a transcript must not contain. Computed by
    /// tokenizing the symbols, alone and after a space.
    pub fn non_speech_tokens(&self) -> Result<BTreeSet<u32>, ModelError> {
        // Symbols that only count when they are a whole token by themselves.
        let mut symbols: Vec<String> = "\"#()*+/:;<=>@[\\]^_`{|}~「」『』".chars().map(String::from).collect();
        for s in "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split(' ') {
            symbols.push(s.to_string());
        }
        // Music and accidental signs: suppress the first token even when they split into bytes.
        let music: Vec<String> = "♩♪♫♬♭♮♯".chars().map(String::from).collect();
        let mut set = BTreeSet::new();
        // A leading hyphen or apostrophe after a space starts no word in speech.
        for s in [" -", " '"] {
            if let Some(&t) = self.encode(s)?.first() {
                set.insert(t);
            }
        }
        for (i, symbol) in symbols.iter().chain(music.iter()).enumerate() {
            let is_music = i >= symbols.len();
            for text in [symbol.clone(), format!(" {symbol}")] {
                let ids = self.encode(&text)?;
                if ids.len() == 1 || (is_music && !ids.is_empty()) {
                    set.insert(ids[0]);
                }
            }
        }
        set.extend([self.transcribe, self.translate, self.sot, self.sot_prev]);
        set.extend(self.sot_lm);
        set.extend(self.no_speech);
        Ok(set)
    }
}

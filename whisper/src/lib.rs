//! Whisper speech recognition: audio -> log-mel -> encoder -> decoder (KV cache) -> tokens -> text.

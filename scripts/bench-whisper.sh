#!/usr/bin/env bash
# Compare whisper-run (CPU, int8) with faster-whisper (CTranslate2, int8) on the same Whisper
# base weights: language en, 2 threads, beam 1 and beam 5, on jfk.wav and on clips of 30 s,
# 45 s and the whole of long-speech.wav (69 s). The two run in turn (A B A B ...) so that drift
# in the machine's speed hits both; each figure is the median of RUNS runs. Reports whole-process
# wall time, the tool's own transcription time (model loaded, audio decoded), peak RSS and the
# whisper-run / faster-whisper ratios; then the word error rate against long-speech.txt of
# whisper-run f32, whisper-run int8 and faster-whisper on each of the four readings of the text
# that scripts/fetch-assets.sh makes, and their mean.
# Not a test: figures depend on the machine and its load.
#
#   scripts/bench-whisper.sh                 # every clip, beams 1 and 5, 3 runs each
#   RUNS=5 BEAMS=1 scripts/bench-whisper.sh  # 5 runs, beam 1 only
#   COMPUTE_TYPE=f32 scripts/bench-whisper.sh   # time the f32 path (int8 by default here)
#   CLIPS="30 69" scripts/bench-whisper.sh   # only those long clips (seconds; jfk is "jfk")
#   WHISPER_RUN=path/to/whisper-run scripts/bench-whisper.sh   # that binary, no build
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ASSETS="${AIEC_ASSETS:-$ROOT/assets}"
WORK="$ROOT/target-bench"
VENV="$WORK/venv"
MODEL="$ASSETS/whisper-base"
RUNS="${RUNS:-3}"
BEAMS="${BEAMS:-1 5}"
CLIPS="${CLIPS:-jfk 30 45 69}"
THREADS=2
FW_VERSION=1.2.1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-whisper}"

die() { echo "bench-whisper: error: $*" >&2; exit 1; }
log() { echo "bench-whisper: $*" >&2; }

for f in model.bin config.json tokenizer.json vocabulary.txt; do
    [[ -f "$MODEL/$f" ]] || die "$MODEL/$f is missing: run scripts/fetch-assets.sh"
done
[[ -f "$ASSETS/jfk.wav" && -f "$ASSETS/long-speech.wav" && -f "$ASSETS/long-speech.txt" ]] \
    || die "samples missing: run scripts/fetch-assets.sh"

if [[ ! -x /usr/bin/time ]]; then
    log "installing GNU time"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null || die "cannot install time"
fi
command -v sox >/dev/null || die "sox is needed to cut the clips (scripts/fetch-assets.sh installs it)"

mkdir -p "$WORK"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import faster_whisper" 2>/dev/null; then
    log "creating $VENV with faster-whisper $FW_VERSION"
    python3 -m venv "$VENV" || die "python3 -m venv failed"
    "$VENV/bin/pip" install -q "faster-whisper==$FW_VERSION" || die "pip install faster-whisper failed"
fi

if [[ -n "${WHISPER_RUN:-}" ]]; then
    [[ -x "$WHISPER_RUN" ]] || die "WHISPER_RUN=$WHISPER_RUN is not an executable"
else
    log "building whisper-run (release)"
    cargo build -q --release -p whisper-aiec --bin whisper-run --manifest-path "$ROOT/Cargo.toml" || die "cargo build failed"
    WHISPER_RUN="$CARGO_TARGET_DIR/release/whisper-run"
fi

clip_path() {
    if [[ "$1" == jfk ]]; then
        echo "$ASSETS/jfk.wav"
    elif [[ "$1" == 69 ]]; then
        echo "$ASSETS/long-speech.wav"
    else
        local out="$WORK/long-speech-$1s.wav"
        [[ -s "$out" ]] || sox "$ASSETS/long-speech.wav" "$out" trim 0 "$1" || die "sox could not cut $out"
        echo "$out"
    fi
}

cat > "$WORK/fw_run.py" <<'PY'
import sys, time
from faster_whisper import WhisperModel
model_dir, audio, threads, beam = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=threads)
t1 = time.perf_counter()
segments, info = model.transcribe(audio, beam_size=beam, language="en")
text = " ".join(s.text.strip() for s in segments)  # the generator does the work
t2 = time.perf_counter()
print(text)
print(f"TIMING load={t1 - t0:.3f} transcribe={t2 - t1:.3f}", file=sys.stderr)
PY

cat > "$WORK/wer.py" <<'PY'
import re, sys
def words(t):
    return [w for w in (re.sub(r"[^\w']", "", x).lower() for x in t.split()) if w]
ref, hyp = words(open(sys.argv[1]).read()), words(open(sys.argv[2]).read())
d = list(range(len(hyp) + 1))
for i in range(1, len(ref) + 1):
    prev, d[0] = d[0], i
    for j in range(1, len(hyp) + 1):
        prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ref[i - 1] != hyp[j - 1]))
print(f"{100.0 * d[len(hyp)] / len(ref):.2f}")
PY

median() { sort -g | awk '{v[NR]=$1} END {if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# run NAME CMD...: one run under /usr/bin/time -v; appends "wall inner rss_mb" to $WORK/NAME.runs
# and keeps the transcript in $WORK/NAME.txt.
run() {
    local name="$1"; shift
    local err="$WORK/$name.stderr"
    /usr/bin/time -v "$@" >"$WORK/$name.txt" 2>"$err" || { cat "$err" >&2; die "$name failed"; }
    local wall rss inner
    wall="$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$err")"
    rss="$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$err")"
    # The tool's own transcription time (without process start, model load and audio decoding).
    inner="$(sed -n 's/.*TIMING load=[0-9.]* transcribe=\([0-9.]*\).*/\1/p; s/.* s of audio in \([0-9.]*\) s.*/\1/p' "$err" | head -1)"
    echo "$wall $inner $rss" >>"$WORK/$name.runs"
}

col() { awk -v c="$2" '{print $c}' "$WORK/$1.runs" | median; }

printf '\n%-22s %-4s %-15s %8s %10s %8s   %s\n' clip beam tool "wall s" "transcr s" "RSS MB" "ratio wall / transcr (whisper-run / faster-whisper)"
for clip in $CLIPS; do
    audio="$(clip_path "$clip")"
    seconds="$(sox --i -D "$audio")"
    for beam in $BEAMS; do
        rm -f "$WORK"/fw.runs "$WORK"/wr.runs
        for _ in $(seq "$RUNS"); do
            run fw "$VENV/bin/python" "$WORK/fw_run.py" "$MODEL" "$audio" "$THREADS" "$beam"
            run wr "$WHISPER_RUN" -m "$MODEL" --beam "$beam" --threads "$THREADS" -l en --compute-type "${COMPUTE_TYPE:-int8}" "$audio"
        done
        label="$(basename "$audio") (${seconds%.*} s)"
        fw_wall="$(col fw 1)"; fw_inner="$(col fw 2)"; fw_rss="$(col fw 3)"
        wr_wall="$(col wr 1)"; wr_inner="$(col wr 2)"; wr_rss="$(col wr 3)"
        printf '%-22s %-4s %-15s %8.2f %10.2f %8d\n' "$label" "$beam" faster-whisper "$fw_wall" "$fw_inner" "$fw_rss"
        printf '%-22s %-4s %-15s %8.2f %10.2f %8d   %.2fx / %.2fx\n' "$label" "$beam" whisper-run "$wr_wall" "$wr_inner" "$wr_rss" \
            "$(awk -v a="$wr_wall" -v b="$fw_wall" 'BEGIN{print a/b}')" "$(awk -v a="$wr_inner" -v b="$fw_inner" 'BEGIN{print a/b}')"
        if [[ "$clip" == jfk ]]; then
            echo "  faster-whisper: $(tr '\n' ' ' <"$WORK/fw.txt")"
            echo "  whisper-run:    $(tr '\n' ' ' <"$WORK/wr.txt")"
        fi
    done
done

echo
echo "word error rate (%) against long-speech.txt, per reading of the text (long-speech, -slow, -fast, -gb) and mean:"
READINGS=()
for r in long-speech long-speech-slow long-speech-fast long-speech-gb; do
    [[ -f "$ASSETS/$r.wav" ]] && READINGS+=("$r")
done
wer_of() { "$VENV/bin/python" "$WORK/wer.py" "$ASSETS/long-speech.txt" "$1"; }
mean() { awk '{s=0; for(i=1;i<=NF;i++) s+=$i; printf "%.2f", s/NF}'; }
for beam in $BEAMS; do
    fw=""; f32=""; int8=""
    for r in "${READINGS[@]}"; do
        audio="$ASSETS/$r.wav"
        "$VENV/bin/python" "$WORK/fw_run.py" "$MODEL" "$audio" "$THREADS" "$beam" >"$WORK/wer-fw.txt" 2>/dev/null
        "$WHISPER_RUN" -q -m "$MODEL" --beam "$beam" -t "$THREADS" -l en --compute-type f32 "$audio" >"$WORK/wer-f32.txt"
        "$WHISPER_RUN" -q -m "$MODEL" --beam "$beam" -t "$THREADS" -l en --compute-type int8 "$audio" >"$WORK/wer-int8.txt"
        fw="$fw $(wer_of "$WORK/wer-fw.txt")"; f32="$f32 $(wer_of "$WORK/wer-f32.txt")"; int8="$int8 $(wer_of "$WORK/wer-int8.txt")"
    done
    printf '  beam %s: whisper-run f32 %s (%s), whisper-run int8 %s (%s), faster-whisper int8 %s (%s)\n' "$beam" \
        "$(echo "$f32" | mean)" "${f32# }" "$(echo "$int8" | mean)" "${int8# }" "$(echo "$fw" | mean)" "${fw# }"
done

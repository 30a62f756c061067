#!/usr/bin/env bash
# Every example kernel x {npu1, npu2} through `aiec build --stop-after-llvm` (mlir-aie's five steps
# up to the cores' LLVM IR, with the real aie-opt and aie-translate), as a markdown table: each
# step's time or FAIL, and the number of cores taken to LLVM IR.
#
#   scripts/toolchain-table.sh [EXAMPLE.tile...]     (default: dsl-examples/*.tile)
#
# The tools come from MLIR_AIE_INSTALL_DIR or toolchain.toml's [mlir-aie] install_dir.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p aiec
AIEC="${CARGO_TARGET_DIR:-target}/release/aiec"

# The doctor knows where aie-opt and aie-translate are looked for; without them there is no table.
doctor=$("$AIEC" doctor 2>&1 || true)
if ! grep -q '\[ok\] *aie-opt' <<<"$doctor" || ! grep -q '\[ok\] *aie-translate' <<<"$doctor"; then
  echo "error: aie-opt and aie-translate not found: set MLIR_AIE_INSTALL_DIR (or [mlir-aie] install_dir in toolchain.toml) to an mlir-aie install holding bin/aie-opt and bin/aie-translate" >&2
  exit 1
fi

if [ $# -gt 0 ]; then examples=("$@"); else examples=(dsl-examples/*.tile); fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "| kernel | device | 1 aievec | 2 resources | 3 routing | 4 npu-insts | 5 core-llvm | cores to LLVM IR |"
echo "|---|---|---|---|---|---|---|---|"
for ex in "${examples[@]}"; do
  kernel=$(basename "$ex" .tile)
  for device in npu1 npu2; do
    out="$tmp/$kernel-$device"
    # --timings: one "step N NAME ok|FAIL SECONDS" line per step and "cores N" on stdout.
    timings=$("$AIEC" build "$ex" -o "$out" --device "$device" --stop-after-llvm --timings 2>"$out.log" || true)
    row=$(awk -F'\t' '
      $1 == "step" { cell[$2] = ($4 == "ok") ? sprintf("ok %.2f s", $5) : "FAIL" }
      $1 == "cores" { cores = $2 }
      END {
        for (i = 1; i <= 5; i++) printf " %s |", (i in cell) ? cell[i] : "-"
        printf " %s |", (cores == "") ? "-" : cores
      }' <<<"$timings")
    # Nothing ran: the compiler (or the set-up) failed before step 1.
    if [ -z "$timings" ]; then
      row=" compile FAIL | - | - | - | - | - |"
    fi
    echo "| $kernel | $device |$row"
  done
done

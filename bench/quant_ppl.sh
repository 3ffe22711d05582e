#!/usr/bin/env bash
# Perplexity of a model's quantized GGUF forms on a prepared Brown split, beside its f32 form, as
# llama.cpp reports quantization quality (llama-perplexity). Prints a markdown table.
#   bash bench/quant_ppl.sh BUILD_DIR MODEL_FOLDER [DATA=runs/data/brown-v4096] [SPLIT=val] [MAX_BATCHES=-1]
# MODEL_FOLDER is an HF folder or run checkpoint whose matrices' rows are multiples of 256 (so the
# K-quants apply to every matrix). The .gguf files are written to $BUILD_DIR/quant-ppl/.
set -euo pipefail
BUILD=${1:?build dir}; MODEL=${2:?model folder}; DATA=${3:-runs/data/brown-v4096}; SPLIT=${4:-val}; MAXB=${5:--1}
BIN="$BUILD/bin"
OUT="$BUILD/quant-ppl"
mkdir -p "$OUT"
"$BIN/lmlab" convert "$MODEL" "$OUT/f32.gguf" --type f32 >/dev/null
ppl() { "$BIN/lmlab" eval -m "$1" --data "$DATA" --split "$SPLIT" --max-batches "$MAXB" 2>/dev/null | tail -1; }
line() {  # name file
  local r; r=$(ppl "$2")
  local loss p size
  loss=$(sed -E 's/.*loss ([0-9.]+) nats.*/\1/' <<<"$r")
  p=$(sed -E 's/.*perplexity ([0-9.]+).*/\1/' <<<"$r")
  size=$(du -b "$2" | cut -f1)
  echo "$1 $loss $p $size"
}
rows=()
rows+=("$(line f32 "$OUT/f32.gguf")")
for t in bf16 q8_0 q6_k q4_k q4_0; do
  "$BIN/lmlab" quantize "$OUT/f32.gguf" "$OUT/$t.gguf" "$t" >/dev/null
  rows+=("$(line "$t" "$OUT/$t.gguf")")
done
base=$(cut -d' ' -f2 <<<"${rows[0]}")
echo "| type | file MiB | val loss (nats/token) | perplexity | delta loss vs f32 | ppl ratio |"
echo "|---|---|---|---|---|---|"
for r in "${rows[@]}"; do
  read -r name loss p size <<<"$r"
  awk -v n="$name" -v l="$loss" -v p="$p" -v s="$size" -v b="$base" \
    'BEGIN { printf "| %s | %.1f | %.4f | %.2f | %+.4f | %.4f |\n", n, s / 1048576, l, p, l - b, exp(l - b) }'
done

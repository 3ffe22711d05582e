#!/usr/bin/env bash
# Numerical parity with llama.cpp on the same .gguf files and the same tokens: perplexity and
# per-position log-probabilities of a trained lmlab model (f32, q8_0, q4_k) on a chunk of Brown's
# validation text.
#
#   LLAMA_CPP_DIR=/path/to/llama.cpp/build bash bench/llama_cpp_parity.sh [BUILD_DIR] [MODEL]
#
# MODEL: a run (runs/<id>), checkpoint or HF folder with tokenizer.json; default: the finished run
# under runs/ with the lowest validation loss. llama-perplexity scores the second half of each
# n_ctx window and saves every scored position's log-probs (--kl-divergence-base); lmlab's logits
# for the same tokens (`lmlab logits --tokens`) are compared by tools/llama_cpp/compare_logits.py.
# Also checks that lmlab's tokenizer gives llama.cpp's tokens for the text.
set -euo pipefail
shopt -s inherit_errexit
BUILD=${1:-build}
MODEL=${2:-}
BIN="$BUILD/bin"
PY=/usr/bin/python3
# whether this lmlab build has a subcommand (grep reads all of the help: no SIGPIPE under pipefail)
has_cmd() { "$BIN/lmlab" --help 2>/dev/null | grep -E "^  $1 " >/dev/null; }
CHUNKS=${PARITY_CHUNKS:-4}
# llama.cpp keeps its KV cache in f16 by default; f32 here so that the comparison measures the
# weights and kernels (an f16 cache alone moves log-probs by ~4e-3 on the demo model).
KV=${PARITY_KV:-f32}
: "${LLAMA_CPP_DIR:?set LLAMA_CPP_DIR to a llama.cpp build folder (with bin/llama-perplexity)}"
LBIN=""
for d in "$LLAMA_CPP_DIR/bin" "$LLAMA_CPP_DIR/build/bin" "$LLAMA_CPP_DIR"; do
  if [[ -x "$d/llama-perplexity" ]]; then LBIN="$d"; break; fi
done
[[ -n "$LBIN" ]] || { echo "[parity] no llama-perplexity under $LLAMA_CPP_DIR" >&2; exit 1; }
if ! has_cmd logits; then
  echo "[parity] $BIN/lmlab has no 'logits' command yet: nothing to compare against" >&2; exit 1
fi

if [[ -z "$MODEL" ]]; then
  MODEL=$("$PY" - <<'EOF'
import glob, json, os
best = None
for r in glob.glob("runs/*/results.json"):
    try:
        d = json.load(open(r))
    except ValueError:
        continue
    loss = d.get("val", {}).get("model_loss")
    if d.get("status") == "done" and loss is not None and glob.glob(os.path.dirname(r) + "/checkpoints/step-*"):
        if best is None or loss < best[0]:
            best = (loss, os.path.dirname(r))
print(best[1] if best else "")
EOF
)
  [[ -n "$MODEL" ]] || { echo "[parity] no finished run under runs/: pass MODEL (or train one: lmlab train)" >&2; exit 1; }
fi
if [[ -d "$MODEL/checkpoints" ]]; then MODEL=$(ls -d "$MODEL"/checkpoints/step-* | sort | tail -1); fi
[[ -f "$MODEL/config.json" && -f "$MODEL/tokenizer.json" ]] ||
  { echo "[parity] $MODEL: needs config.json and tokenizer.json" >&2; exit 1; }
CTX=$("$PY" -c "import json,sys; print(min(256, json.load(open(sys.argv[1]))['max_position_embeddings']))" "$MODEL/config.json")

OUT="$BUILD/bench/llama_cpp_parity"
rm -rf "$OUT" && mkdir -p "$OUT"
echo "# [parity] model $MODEL, llama.cpp KV cache $KV, n_ctx $CTX, $CHUNKS chunks (positions $((CTX / 2))..$((CTX - 2)) of each scored)"
"$BIN/lmlab" data prepare --out "$OUT/brown" >/dev/null
head -c 40000 "$OUT/brown/val.txt" > "$OUT/text.txt"

"$BIN/lmlab" convert "$MODEL" "$OUT/f32.gguf" --type f32 >/dev/null
if has_cmd quantize; then QTOOL=lmlab; else QTOOL=llama-quantize; fi
for t in q8_0 q4_k; do
  if [[ $QTOOL == lmlab ]]; then
    "$BIN/lmlab" quantize "$OUT/f32.gguf" "$OUT/$t.gguf" "$t" >/dev/null
  else
    extra=() T=Q8_0
    if [[ $t == q4_k ]]; then extra=(--output-tensor-type q6_k); T=Q4_K; fi
    # --pure aborts on a matrix whose width is not a multiple of the block (256 for q4_k)
    "$LBIN/llama-quantize" --pure "${extra[@]}" "$OUT/f32.gguf" "$OUT/$t.gguf" "$T" 2 >"$OUT/quantize_$t.log" 2>&1 ||
      rm -f "$OUT/$t.gguf"
  fi
done

for t in f32 q8_0 q4_k; do
  f="$OUT/$t.gguf"
  if [[ ! -f "$f" ]]; then
    echo "PARITY $t skipped: $QTOOL could not write it (matrix widths must be multiples of the block; $OUT/quantize_$t.log)"
    continue
  fi
  "$LBIN/llama-perplexity" -m "$f" -f "$OUT/text.txt" -c "$CTX" -b "$CTX" --chunks "$CHUNKS" -t 2 -ctk "$KV" -ctv "$KV" \
    --kl-divergence-base "$OUT/$t.base" >"$OUT/ppl_$t.log" 2>&1 || { tail -20 "$OUT/ppl_$t.log" >&2; exit 1; }
  ppl=$(sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p' "$OUT/ppl_$t.log")
  files=()
  for ((c = 0; c < CHUNKS; c++)); do
    "$BIN/lmlab" logits -m "$f" --tokens "$("$PY" tools/llama_cpp/compare_logits.py tokens "$OUT/$t.base" $c)" \
      --out "$OUT/ours_${t}_$c.safetensors" >/dev/null
    files+=("$OUT/ours_${t}_$c.safetensors")
  done
  echo "PARITY $t llama_perplexity=$ppl $("$PY" tools/llama_cpp/compare_logits.py compare "$OUT/$t.base" "${files[@]}" --json "$OUT/$t.json")"
done

# Tokenizer: llama.cpp's tokens of the text (saved in the base file) against lmlab's encoding.
"$PY" - "$OUT/f32.base" "$("$BIN/lmlab" tokenizer encode -t "$MODEL/tokenizer.json" -p "$(cat "$OUT/text.txt")")" <<'EOF'
import sys
sys.path.insert(0, "tools/llama_cpp")
from compare_logits import BaseFile
b = BaseFile(sys.argv[1])
theirs = [int(x) for x in b.tokens.reshape(-1)]
ours = [int(x) for x in sys.argv[2].split()][:len(theirs)]
same = sum(1 for a, c in zip(theirs, ours) if a == c)
first = next((i for i, (a, c) in enumerate(zip(theirs, ours)) if a != c), None)
print(f"PARITY tokenizer same={same}/{len(theirs)} first_difference={first if first is not None else 'none'}")
EOF

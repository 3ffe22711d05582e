# Sourced by bench/llama_cpp.sh and bench/run.sh: the issue's ~100M-parameter Llama model (random
# weights, BPE of 32000 tokens on Brown; bench/bench_gguf.cpp --make-model) as .gguf files, made once
# into $BUILD/bench-models and reused. Needs BUILD and BIN (the lmlab build and its bin/).
#   model_100m_file TYPE   prints the path of the f32 / q8_0 / q4_k file, making it first if missing
# Quantized files come from `lmlab quantize` (every matrix in the type; the LM head Q6_K for q4_k).
CACHE_100M="$BUILD/bench-models"
model_100m_file() {
  local t=$1 hf="$CACHE_100M/llama-100m" f32="$CACHE_100M/llama-100m-f32.gguf" f="$CACHE_100M/llama-100m-$1.gguf"
  mkdir -p "$CACHE_100M"
  if [[ ! -f "$hf/config.json" ]]; then
    echo "# [bench] making the 100M random model in $hf (once; BPE of 32000 tokens on Brown)" >&2
    "$BIN/bench_gguf" --make-model "$hf.tmp" >&2
    rm -rf "$hf" && mv "$hf.tmp" "$hf"
  fi
  [[ -f "$f32" ]] || "$BIN/lmlab" convert "$hf" "$f32" --type f32 >/dev/null
  if [[ $t != f32 && ! -f "$f" ]]; then
    "$BIN/lmlab" quantize "$f32" "$f.tmp" "$t" >&2
    mv "$f.tmp" "$f"
  fi
  echo "$f"
}

#!/usr/bin/env bash
# lmlab vs llama.cpp on the same .gguf files: batch-1 decode (tg128) and prompt processing (pp512)
# of the issue's ~100M-parameter Llama model (bench/bench_gguf.cpp) in f32, q8_0 and q4_k, 2 threads.
#
#   LLAMA_CPP_DIR=/path/to/llama.cpp/build [LLAMA_CPP_DIR_AVX2=/path/to/llama.cpp-avx2/build] \
#     bash bench/llama_cpp.sh [BUILD_DIR]
#
# LLAMA_CPP_DIR is a llama.cpp CPU build (its bin/ holds llama-bench and llama-quantize; the source
# root of a build in build/ works too). llama.cpp is never part of this repository: build it
# yourself (docs/BENCHMARKS.md, "llama.cpp peer"). Prints
#   BENCH decode_100M_<type> / pp512_100M_<type> ours=<tokens/s> peer=<tokens/s> ratio=... unit=tokens/s
# Both sides report the median of 3 timed runs (llama-bench's samples_ts; bench_gguf's samples).
# The model folder and .gguf files are made once into $BUILD_DIR/bench-models and reused.
#
# CPUs without AVX-512: with LLAMA_CPP_DIR_AVX2, a llama.cpp build for AVX2 without AVX-512
# (GGML_NATIVE=OFF GGML_AVX2=ON GGML_FMA=ON GGML_F16C=ON GGML_AVX512=OFF), it also prints
#   BENCH decode_100M_q8_0_avx2 / decode_100M_q4_k_avx2
# against lmlab built for x86-64-v3 in $LMLAB_AVX2_BUILD (default build-avx2; configured and built
# here with -DLMLAB_PORTABLE=ON -DCMAKE_CXX_FLAGS=-march=x86-64-v3 plus $LMLAB_AVX2_CMAKE_FLAGS) and
# run as on such a CPU: LMLAB_QGEMM_ISA=avx2, ONEDNN_MAX_CPU_ISA=AVX2, OPENBLAS_CORETYPE=Haswell.
# Same .gguf files, threads and method (tg128) as the lines above. LLAMA_BENCH_TYPES (default
# "f32 q8_0 q4_k") picks the files of the lines above.
set -euo pipefail
shopt -s inherit_errexit
BUILD=${1:-build}
BIN="$BUILD/bin"
PY=/usr/bin/python3
# whether this lmlab build has a subcommand (grep reads all of the help: no SIGPIPE under pipefail)
has_cmd() { "$BIN/lmlab" --help 2>/dev/null | grep -E "^  $1 " >/dev/null; }
THREADS=${LLAMA_BENCH_THREADS:-2}
REPS=${LLAMA_BENCH_REPS:-3}
: "${LLAMA_CPP_DIR:?set LLAMA_CPP_DIR to a llama.cpp build folder (with bin/llama-bench)}"

LBIN=""
for d in "$LLAMA_CPP_DIR/bin" "$LLAMA_CPP_DIR/build/bin" "$LLAMA_CPP_DIR"; do
  if [[ -x "$d/llama-bench" ]]; then LBIN="$d"; break; fi
done
[[ -n "$LBIN" ]] || { echo "[llama_cpp] no llama-bench under $LLAMA_CPP_DIR (looked in bin/, build/bin/ and the folder itself)" >&2; exit 1; }
for exe in "$BIN/bench_gguf" "$BIN/lmlab"; do
  [[ -x "$exe" ]] || { echo "[llama_cpp] $exe is missing: build lmlab first (make build)" >&2; exit 1; }
done

CACHE="$BUILD/bench-models"
OUT="$BUILD/bench/llama_cpp"
mkdir -p "$CACHE" "$OUT"
HF="$CACHE/llama-100m"
if [[ ! -f "$HF/config.json" ]]; then
  echo "# [llama_cpp] making the 100M random model in $HF (once; BPE of 32000 tokens on Brown)"
  "$BIN/bench_gguf" --make-model "$HF.tmp"
  rm -rf "$HF" && mv "$HF.tmp" "$HF"
fi
F32="$CACHE/llama-100m-f32.gguf"
[[ -f "$F32" ]] || "$BIN/lmlab" convert "$HF" "$F32" --type f32 >/dev/null

# Quantized files come from `lmlab quantize` when this build has it, else from llama-quantize with
# the same layout (every matrix in the type; the LM head Q6_K for q4_k). The tool that wrote a file
# is kept beside it, so a build that gains `lmlab quantize` rewrites the files.
if has_cmd quantize; then QTOOL=lmlab; else QTOOL=llama-quantize; fi
quantize() {  # type -> path of the file
  local t=$1 f="$CACHE/llama-100m-$1.gguf"
  if [[ ! -f "$f" || "$(cat "$f.by" 2>/dev/null)" != "$QTOOL" ]]; then
    if [[ $QTOOL == lmlab ]]; then
      "$BIN/lmlab" quantize "$F32" "$f.tmp" "$t" >&2
    else
      local extra=() T=Q8_0
      if [[ $t == q4_k ]]; then extra=(--output-tensor-type q6_k); T=Q4_K; fi
      "$LBIN/llama-quantize" --pure "${extra[@]}" "$F32" "$f.tmp" "$T" "$THREADS" >"$OUT/quantize_$t.log" 2>&1 ||
        { tail -20 "$OUT/quantize_$t.log" >&2; exit 1; }
    fi
    mv "$f.tmp" "$f"
    echo "$QTOOL" > "$f.by"
  fi
  echo "$f"
}

# median tokens/s of llama-bench's samples for the test with n_prompt=$2, n_gen=$3
peer_median() {
  "$PY" - "$1" "$2" "$3" <<'EOF'
import json, statistics, sys
rows = json.load(open(sys.argv[1]))
p, n = int(sys.argv[2]), int(sys.argv[3])
r = [x for x in rows if x["n_prompt"] == p and x["n_gen"] == n]
if not r:
    sys.exit(f"{sys.argv[1]}: no llama-bench row with n_prompt={p} n_gen={n}")
print(statistics.median(r[0]["samples_ts"]), " ".join(f"{s:.1f}" for s in r[0]["samples_ts"]))
EOF
}
ours_median() {  # json key (pp|tg)
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))[sys.argv[2]]
print(d["tokens_per_s"], " ".join(f"{s:.1f}" for s in d["samples"]))
EOF
}
bench_line() {  # name ours peer unit
  awk -v n="$1" -v o="$2" -v p="$3" -v u="$4" \
    'BEGIN { if (o == "" || p == "") { printf "BENCH %s ours=%s peer=%s ratio=nan unit=%s\n", n, (o==""?"missing":o), (p==""?"missing":p), u; exit }
             printf "BENCH %s ours=%.4g peer=%.4g ratio=%.3f unit=%s\n", n, o, p, o / p, u }'
}

echo "# [llama_cpp] peer: $LBIN; $THREADS threads, $REPS reps, load: $(cut -d' ' -f1-3 /proc/loadavg); quantized files by $QTOOL"
for t in ${LLAMA_BENCH_TYPES-f32 q8_0 q4_k}; do
  if [[ $t == f32 ]]; then f=$F32; else f=$(quantize "$t"); fi
  # llama.cpp first, then ours, per file: drift from other load hits both sides of one type alike.
  "$LBIN/llama-bench" -m "$f" -p 512 -n 128 -t "$THREADS" -r "$REPS" -o json >"$OUT/peer_$t.json" 2>"$OUT/peer_$t.log" ||
    { tail -20 "$OUT/peer_$t.log" >&2; exit 1; }
  "$BIN/bench_gguf" --gguf "$f" -p 512 -n 128 -t "$THREADS" -r "$REPS" >"$OUT/ours_$t.json"
  read -r pt_tg pt_tg_s <<<"$(peer_median "$OUT/peer_$t.json" 0 128)"
  read -r pt_pp pt_pp_s <<<"$(peer_median "$OUT/peer_$t.json" 512 0)"
  read -r us_tg us_tg_s <<<"$(ours_median "$OUT/ours_$t.json" tg)"
  read -r us_pp us_pp_s <<<"$(ours_median "$OUT/ours_$t.json" pp)"
  bench_line "decode_100M_$t" "$us_tg" "$pt_tg" tokens/s
  bench_line "pp512_100M_$t" "$us_pp" "$pt_pp" tokens/s
  echo "# $t ($(du -m "$f" | cut -f1) MiB) samples tokens/s: tg128 ours [$us_tg_s] llama.cpp [$pt_tg_s]; pp512 ours [$us_pp_s] llama.cpp [$pt_pp_s]"
done

# --- CPUs without AVX-512: lmlab for x86-64-v3 against llama.cpp for AVX2, decode (tg128) ---
if [[ -z "${LLAMA_CPP_DIR_AVX2:-}" ]]; then
  echo "# decode_100M_q8_0_avx2 / decode_100M_q4_k_avx2: skipped (set LLAMA_CPP_DIR_AVX2 to a llama.cpp build for AVX2 without AVX-512; docs/BENCHMARKS.md)"
  exit 0
fi
LBIN2=""
for d in "$LLAMA_CPP_DIR_AVX2/bin" "$LLAMA_CPP_DIR_AVX2/build/bin" "$LLAMA_CPP_DIR_AVX2"; do
  if [[ -x "$d/llama-bench" ]]; then LBIN2="$d"; break; fi
done
[[ -n "$LBIN2" ]] || { echo "[llama_cpp] no llama-bench under $LLAMA_CPP_DIR_AVX2 (looked in bin/, build/bin/ and the folder itself)" >&2; exit 1; }
ABUILD=${LMLAB_AVX2_BUILD:-build-avx2}
if [[ ! -f "$ABUILD/build.ninja" ]]; then
  echo "# [llama_cpp] configuring the x86-64-v3 lmlab build in $ABUILD"
  # shellcheck disable=SC2086  # LMLAB_AVX2_CMAKE_FLAGS is a list of flags
  cmake -S . -B "$ABUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLMLAB_PORTABLE=ON -DCMAKE_CXX_FLAGS=-march=x86-64-v3 \
    -DLMLAB_BUILD_TESTS=OFF ${LMLAB_AVX2_CMAKE_FLAGS:-} >"$OUT/avx2_cmake.log" 2>&1 ||
    { tail -20 "$OUT/avx2_cmake.log" >&2; exit 1; }
fi
cmake --build "$ABUILD" --target bench_gguf >"$OUT/avx2_build.log" 2>&1 || { tail -30 "$OUT/avx2_build.log" >&2; exit 1; }
# As on a CPU without AVX-512: lmlab's AVX2 kernels, oneDNN and OpenBLAS held to AVX2 (Haswell).
avx2_env=(env LMLAB_QGEMM_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell)
echo "# [llama_cpp] AVX2: peer $LBIN2, ours $ABUILD (-march=x86-64-v3, ${avx2_env[*]:1}); load: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in q8_0 q4_k; do
  f=$(quantize "$t")
  "$LBIN2/llama-bench" -m "$f" -p 0 -n 128 -t "$THREADS" -r "$REPS" -o json >"$OUT/peer_${t}_avx2.json" 2>"$OUT/peer_${t}_avx2.log" ||
    { tail -20 "$OUT/peer_${t}_avx2.log" >&2; exit 1; }
  "${avx2_env[@]}" "$ABUILD/bin/bench_gguf" --gguf "$f" -p 0 -n 128 -t "$THREADS" -r "$REPS" >"$OUT/ours_${t}_avx2.json"
  read -r pt_tg pt_tg_s <<<"$(peer_median "$OUT/peer_${t}_avx2.json" 0 128)"
  read -r us_tg us_tg_s <<<"$(ours_median "$OUT/ours_${t}_avx2.json" tg)"
  bench_line "decode_100M_${t}_avx2" "$us_tg" "$pt_tg" tokens/s
  echo "# ${t} AVX2 samples tokens/s: tg128 ours [$us_tg_s] llama.cpp [$pt_tg_s]; load $(cut -d' ' -f1-3 /proc/loadavg)"
done

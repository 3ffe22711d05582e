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

OUT="$BUILD/bench/llama_cpp"
mkdir -p "$OUT"
# shellcheck source=bench/model_100m.sh
source "$(dirname "$0")/model_100m.sh"
F32=$(model_100m_file f32)
quantize() { model_100m_file "$1"; }

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

echo "# [llama_cpp] peer: $LBIN; $THREADS threads, $REPS reps, load: $(cut -d' ' -f1-3 /proc/loadavg); quantized files by lmlab quantize"
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

# --- serve_vs_llama_server: the q8_0 file served by llama.cpp's llama-server (-np 16 -cb) and by
#     lmlab serve (--slots 16), same threads; 16 streaming clients each for SERVE_SECONDS (default 60),
#     the same raw prompts on /v1/completions (no chat template on either side) and max_tokens 64
#     (bench/serve_streams.py). ours / peer = aggregate generated tokens/s. The servers run one after
#     the other, never side by side.
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_health() {  # port pid -> 0 once /health answers 200
  for _ in $(seq 1 600); do
    kill -0 "$2" 2>/dev/null || return 1
    "$PY" -c 'import sys, urllib.request; sys.exit(0 if urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2).status == 200 else 1)' "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}
SECS=${SERVE_SECONDS:-60}
if [[ -x "$LBIN/llama-server" ]]; then
  f=$(quantize q8_0)
  # run_served NAME LOG COMMAND...: starts the server (listening on $p), runs the clients, stops it
  run_served() {
    local name=$1 log=$2
    shift 2
    "$@" >"$log" 2>&1 &
    local pid=$!
    if wait_health "$p" "$pid"; then
      "$PY" bench/serve_streams.py 127.0.0.1 "$p" 16 "$SECS" 64 --api completions --single-seconds 0 --name "$name" \
        >"$OUT/serve_$name.txt" 2>&1
    else
      echo "# [llama_cpp] the $name server did not start: $(tail -3 "$log")"
    fi
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
  }
  p=$(free_port)
  run_served peer "$OUT/llama_server.log" "$LBIN/llama-server" -m "$f" -np 16 -cb -t "$THREADS" -c 4096 --host 127.0.0.1 --port "$p"
  p=$(free_port)
  run_served ours "$OUT/lmlab_serve.log" env OMP_NUM_THREADS="$THREADS" "$BIN/lmlab" serve -m "$f" --slots 16 --port "$p"
  res() { sed -n "s/^RESULT $1 //p" "$2" 2>/dev/null; }
  bench_line serve_vs_llama_server "$(res ours.aggregate "$OUT/serve_ours.txt")" "$(res peer.aggregate "$OUT/serve_peer.txt")" tokens/s
  grep -h '^#' "$OUT/serve_ours.txt" "$OUT/serve_peer.txt" 2>/dev/null || true
  echo "# serve_vs_llama_server errors: ours $(res ours.errors "$OUT/serve_ours.txt"), llama-server $(res peer.errors "$OUT/serve_peer.txt")"
else
  echo "# serve_vs_llama_server: skipped (no llama-server in $LBIN: configure llama.cpp with -DLLAMA_BUILD_SERVER=ON and build the llama-server target; docs/BENCHMARKS.md)"
fi

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

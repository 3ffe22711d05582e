#!/usr/bin/env bash
# `make bench`: runs every benchmark with its peer in the same invocation and prints one line per
# figure:  BENCH <name> ours=<x> peer=<y> ratio=<x/y> unit=<unit>   (throughput: higher is better).
# Peers: raw OpenBLAS sgemm (inside bench_matmul), Debian's python3-torch in its fastest
# configuration here (2 threads, the OpenMP build of OpenBLAS preloaded: one thread pool), Debian's
# SentencePiece trainer (spm_train); llama.cpp (bench/llama_cpp.sh) when LLAMA_CPP_DIR names a build
# of it, and its AVX2 build against lmlab for x86-64-v3 when LLAMA_CPP_DIR_AVX2 names that.
set -euo pipefail
BUILD=${1:-build}
BIN="$BUILD/bin"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
PY=/usr/bin/python3
OMP_OPENBLAS=/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0
OUT="$BUILD/bench"
mkdir -p "$OUT"

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "[bench] installing python3-torch for the PyTorch peers"
  bash scripts/install-deps.sh --with-torch
fi
torch_peer() {  # script args... -> stdout
  LD_PRELOAD="$OMP_OPENBLAS" OMP_NUM_THREADS=2 "$PY" "$@"
}
get() {  # name file
  awk -v n="$1" '$1=="RESULT" && $2==n {print $3; exit}' "$2"
}
bench_line() {  # name ours peer unit
  awk -v n="$1" -v o="$2" -v p="$3" -v u="$4" \
    'BEGIN { if (o == "" || p == "") { printf "BENCH %s ours=%s peer=%s ratio=nan unit=%s\n", n, (o==""?"missing":o), (p==""?"missing":p), u; exit }
             printf "BENCH %s ours=%.4g peer=%.4g ratio=%.3f unit=%s\n", n, o, p, o / p, u }' | tee -a "$OUT/bench_lines.txt"
}
: > "$OUT/bench_lines.txt"

# --- matmul: lmlab vs raw sgemm (f32), lmlab bf16 vs lmlab f32 ---
"$BIN/bench_matmul" > "$OUT/matmul.txt"
bench_line matmul_f32_1024 "$(get matmul_f32_1024.ours "$OUT/matmul.txt")" "$(get matmul_f32_1024.peer "$OUT/matmul.txt")" GFLOP/s
bench_line matmul_bf16_2048 "$(get matmul_bf16_2048.ours "$OUT/matmul.txt")" "$(get matmul_bf16_2048.peer "$OUT/matmul.txt")" GFLOP/s
grep -E "^INFO|rel_error" "$OUT/matmul.txt" | sed 's/^/# /'
SGEMM_PEAK=$(get matmul_f32_1024.peer "$OUT/matmul.txt")

# --- attention fwd+bwd, B=4 H=8 T=1024 D=64 causal: tokens/s = B*T / seconds ---
"$BIN/bench_attention" > "$OUT/attention.txt"
torch_peer bench/peer_attention.py > "$OUT/attention_peer.txt"
A_OURS=$(get attention_fwd_bwd_T1024 "$OUT/attention.txt")
A_PEER=$(get attention_fwd_bwd_T1024 "$OUT/attention_peer.txt")
bench_line attention_fwd_bwd_T1024 "$(awk -v s="$A_OURS" 'BEGIN{print 4096/s}')" "$(awk -v s="$A_PEER" 'BEGIN{print 4096/s}')" tokens/s
awk -v o="$(get attention_peak_extra_bytes "$OUT/attention.txt")" -v p="$(get attention_torch_peak_bytes "$OUT/attention_peer.txt")" \
  'BEGIN { printf "# attention_fwd_bwd_T1024 memory: ours %.2f MiB peak kernel scratch (counted by the kernel); PyTorch %s (measured with the torch profiler: peak of all bytes allocated during one forward+backward, output, 3 input gradients of 8 MiB each and T x T matrices included)\n", o/1048576, (p == "" ? "not measured" : sprintf("%.1f MiB", p/1048576)) }'
# attention FLOPs (causal, fwd 2 GEMMs + bwd 5 GEMMs recomputation included = 7 * 2*B*H*T*T*D/2)
awk -v s="$A_OURS" -v peak="$SGEMM_PEAK" 'BEGIN { f = 7 * 2 * 4 * 8 * 1024 * 1024 * 64 / 2; g = f / s / 1e9; printf "# attention_fwd_bwd_T1024: %.1f GFLOP/s = %.2f of the measured sgemm peak (%.1f GFLOP/s)\n", g, g / peak, peak }'

# --- fused cross-entropy fwd+bwd, 4096 x 32000: rows/s ---
"$BIN/bench_cross_entropy" > "$OUT/cross_entropy.txt"
torch_peer bench/peer_cross_entropy.py > "$OUT/cross_entropy_peer.txt"
C_OURS=$(get cross_entropy_V32k "$OUT/cross_entropy.txt")
C_PEER=$(get cross_entropy_V32k "$OUT/cross_entropy_peer.txt")
bench_line cross_entropy_V32k "$(awk -v s="$C_OURS" 'BEGIN{print 4096/s}')" "$(awk -v s="$C_PEER" 'BEGIN{print 4096/s}')" rows/s

# --- training and decoding the Llama-style model (configs in bench/train_configs.h) ---
"$BIN/bench_train" peak A B B_bf16 decode_A > "$OUT/train.txt"
torch_peer bench/peer_train.py A B B_bf16 decode_A > "$OUT/train_peer.txt"
PEAK=$(get sgemm_peak "$OUT/train.txt")
for cfg in A B; do
  ours=$(get train_$cfg "$OUT/train.txt"); peer=$(get train_$cfg "$OUT/train_peer.txt")
  bench_line train_$cfg "$ours" "$peer" tokens/s
  awk -v o="$ours" -v p="$peer" -v f="$(get train_$cfg.flops_per_token "$OUT/train.txt")" -v peak="$PEAK" \
    'BEGIN { printf "# train_%s MFU vs the sgemm peak measured here (%.1f GFLOP/s): ours %.2f, PyTorch %.2f\n", "'$cfg'", peak, o*f/1e9/peak, p*f/1e9/peak }'
done
# bf16: the peer is PyTorch's bf16 autocast (its fastest bf16 training); MFU against the bf16 GEMM peak
# measured above (matmul_bf16_2048, ours: oneDNN on AMX)
BF16_PEAK=$(get matmul_bf16_2048.ours "$OUT/matmul.txt")
bench_line train_B_bf16 "$(get train_B_bf16 "$OUT/train.txt")" "$(get train_B_bf16 "$OUT/train_peer.txt")" tokens/s
awk -v o="$(get train_B_bf16 "$OUT/train.txt")" -v p="$(get train_B_bf16 "$OUT/train_peer.txt")" -v f="$(get train_B_bf16.flops_per_token "$OUT/train.txt")" -v peak="$BF16_PEAK" \
  'BEGIN { printf "# train_B_bf16 MFU vs the bf16 GEMM peak measured here (matmul_bf16_2048 ours, %.1f GFLOP/s): ours %.2f, PyTorch bf16 autocast %.2f\n", peak, o*f/1e9/peak, p*f/1e9/peak }'
bench_line decode_A "$(get decode_A "$OUT/train.txt")" "$(get decode_A "$OUT/train_peer.txt")" tokens/s

# --- BPE training: 8k vocabulary on all of Brown (~6 MB), MB of training text per second: lmlab's
#     byte-level BPE trainer vs SentencePiece's BPE trainer (spm_train, Debian sentencepiece) on the same
#     text (written by bench_bpe_train) and vocabulary size, its process timed whole ---
"$BIN/bench_bpe_train" --text "$OUT/brown_all.txt" > "$OUT/bpe.txt"
BPE_BYTES=$(get bpe_train_brown.bytes "$OUT/bpe.txt")
SPM_S=""
if command -v spm_train >/dev/null 2>&1; then
  t0=$(date +%s.%N)
  if spm_train --input="$OUT/brown_all.txt" --model_prefix="$OUT/spm_brown" --model_type=bpe --vocab_size=8192 \
      --character_coverage=1.0 --normalization_rule_name=identity --input_sentence_size=0 \
      --max_sentence_length=1000000 --num_threads="$OMP_NUM_THREADS" > "$OUT/spm.log" 2>&1; then
    SPM_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  else
    echo "# bpe_train_brown: spm_train failed (log: $OUT/spm.log)"
  fi
else
  echo "# bpe_train_brown: spm_train missing (Debian sentencepiece; scripts/install-deps.sh installs it)"
fi
bench_line bpe_train_brown "$(get bpe_train_brown "$OUT/bpe.txt")" \
  "$([[ -n "$SPM_S" ]] && awk -v n="$BPE_BYTES" -v s="$SPM_S" 'BEGIN { print n / s / 1e6 }')" MB/s
awk -v o="$(get bpe_train_brown.seconds "$OUT/bpe.txt")" -v p="$SPM_S" -v n="$BPE_BYTES" \
  'BEGIN { printf "# bpe_train_brown: %.2f MB of text; ours %.2f s, SentencePiece %s s\n", n/1e6, o, (p == "" ? "n/a" : sprintf("%.2f", p)) }'

# --- llama.cpp peer: decode / prompt processing of the 100M Llama .gguf (f32, q8_0, q4_k) ---
if [[ -n "${LLAMA_CPP_DIR:-}" ]]; then
  bash bench/llama_cpp.sh "$BUILD" | tee "$OUT/llama_cpp.txt"
  grep '^BENCH' "$OUT/llama_cpp.txt" >> "$OUT/bench_lines.txt"
else
  echo "# decode_100M_* / pp512_100M_* (and the *_avx2 lines): skipped (no llama.cpp build given: make bench LLAMA_CPP_DIR=/path/to/llama.cpp/build [LLAMA_CPP_DIR_AVX2=/path/to/llama.cpp-avx2/build]; docs/BENCHMARKS.md)"
fi

# --- gated delta rule (KDA) fwd+bwd, B=1 T=2048 H=4 dk=dv=64 channel gates f32: chunked vs recurrent, tokens/s ---
"$BIN/bench_delta_rule" > "$OUT/delta_rule.txt"
bench_line kda_chunked_vs_recurrent_T2048 "$(awk -v s="$(get delta_rule_chunked_fwd_bwd_T2048 "$OUT/delta_rule.txt")" 'BEGIN{print 2048/s}')" \
  "$(awk -v s="$(get delta_rule_recurrent_fwd_bwd_T2048 "$OUT/delta_rule.txt")" 'BEGIN{print 2048/s}')" tokens/s
awk '$1=="RESULT" {printf "# %s: %.0f tokens/s\n", $2, 2048/$3}' "$OUT/delta_rule.txt"

# --- MoE training (bench/bench_moe.cpp): 8 experts of width 256, top-2, vs the dense model with the same
# active FFN FLOPs (width 512); same trunk, steps alternate; the bar is ratio >= 0.7 ---
"$BIN/bench_moe" train > "$OUT/moe.txt"
bench_line moe_tokens_per_s "$(get moe_train "$OUT/moe.txt")" "$(get dense_train "$OUT/moe.txt")" tokens/s
grep -E "^INFO" "$OUT/moe.txt" | sed 's/^/# /'

# --- Kimi Linear: 3:1 KDA:MLA hybrid vs all-MLA (the paper's all-attention baseline, same heads), random
#     weights, batch 1, f32, caches filled to the context (bench/bench_kimi.cpp): cache bytes at 16k (bar
#     ratio <= 0.30) and decode tokens/s at 64k (bar ratio >= 3) ---
"$BIN/bench_kimi" 65536 > "$OUT/kimi.txt"
bench_line kimi_cache_bytes_ratio_16k "$(get kimi_cache_bytes_16k.hybrid "$OUT/kimi.txt")" "$(get kimi_cache_bytes_16k.all_mla "$OUT/kimi.txt")" bytes
bench_line kimi_decode_64k "$(get kimi_decode_65536.hybrid "$OUT/kimi.txt")" "$(get kimi_decode_65536.all_mla "$OUT/kimi.txt")" tokens/s
grep '^INFO' "$OUT/kimi.txt" | sed 's/^/# /'
awk -v h="$(get kimi_cache_bytes_16k.hybrid "$OUT/kimi.txt")" -v a="$(get kimi_cache_bytes_16k.all_mha "$OUT/kimi.txt")" \
  'BEGIN { if (a > 0) printf "# kimi cache at 16k vs all full attention (MHA, same heads): ratio %.4f\n", h / a }'

# --- Chat templates: every committed case (tests/chat/cases.json) rendered now by Debian's jinja2,
#     configured as transformers configures it (tools/chat/jinja_oracle.py), and by `lmlab template`;
#     ours = the fraction byte-identical, peer = 1 (the bar).
"$PY" tools/chat/jinja_oracle.py conformance --lmlab "$BIN/lmlab" > "$OUT/template_conformance.txt" 2>&1 || true
bench_line template_conformance "$(get template_conformance "$OUT/template_conformance.txt")" 1 fraction
grep '^#' "$OUT/template_conformance.txt" | tail -n 5 || true

# --- lmlab serve. The model: SERVE_MODEL if set, else the 100M Llama in q8_0 (bench/model_100m.sh,
#     made once into $BUILD/bench-models; the file serve_vs_llama_server uses), a small real-size model.
#   serve_fuzz: 1,000 malformed requests (bench/serve_fuzz.py: bad JSON, wrong types, huge numbers, huge
#     and truncated bodies, bad UTF-8, broken HTTP, slow clients) against lmlab built with ASan+UBSan
#     (build-asan/bin/lmlab, `make asan-cli`); ours = the fraction answered 4xx or closed cleanly, then
#     /health and a valid completion must still work, and the server must exit on SIGTERM with no
#     sanitizer report (else 0); peer = 1.
#   serve_64_streams: 64 streaming clients for 60 s (bench/serve_streams.py) against the release build;
#     ours = aggregate generated tokens/s, peer = one client alone; the bar is ratio >= 4, zero errors.
SV="$OUT/serve"
rm -rf "$SV" && mkdir -p "$SV"
# shellcheck source=bench/model_100m.sh
source bench/model_100m.sh
SMODEL=${SERVE_MODEL:-$(model_100m_file q8_0)}
ASAN_LMLAB=${SERVE_ASAN_LMLAB:-build-asan/bin/lmlab}
# start_server NAME LMLAB [serve flags...]: starts it on a free port; sets SPID and SPORT (empty when
# it did not come up within 60 s)
start_server() {
  local name=$1 exe=$2
  shift 2
  ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$exe" serve -m "$SMODEL" --port 0 "$@" > "$SV/${name}_out.txt" 2> "$SV/${name}_err.txt" &
  SPID=$!
  SPORT=""
  for _ in $(seq 1 600); do
    SPORT=$(sed -n 's/.* on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$SV/${name}_err.txt" 2>/dev/null)
    [ -n "$SPORT" ] && break
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.1
  done
}
if [ -x "$ASAN_LMLAB" ]; then
  start_server fuzz "$ASAN_LMLAB" --slots 4
  if [ -n "$SPORT" ]; then
    "$PY" bench/serve_fuzz.py 127.0.0.1 "$SPORT" 1000 > "$OUT/serve_fuzz.txt" 2>&1
    kill -TERM "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null && frc=0 || frc=$?
    clean=$(get serve_fuzz "$OUT/serve_fuzz.txt")
    if [ "$frc" != 0 ] || grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$SV/fuzz_err.txt"; then
      echo "# serve_fuzz: the ASan server exited $frc or reported: $(grep -m1 -E 'Sanitizer|runtime error:' "$SV/fuzz_err.txt")"
      clean=0
    fi
    bench_line serve_fuzz "$clean" 1 fraction
    grep '^#' "$OUT/serve_fuzz.txt" || true
    [ "$clean" != 0 ] && echo "# serve_fuzz ran against $ASAN_LMLAB (ASan+UBSan): exit 0 after SIGTERM, no sanitizer report"
  else
    kill "$SPID" 2>/dev/null
    echo "# serve_fuzz: lmlab serve (ASan) did not start ($(tail -2 "$SV/fuzz_err.txt"))"
  fi
else
  echo "# serve_fuzz: skipped ($ASAN_LMLAB is missing: make asan-cli)"
fi
start_server streams "$BIN/lmlab" --slots 64 --max-queue 64
if [ -n "$SPORT" ]; then
  "$PY" bench/serve_streams.py 127.0.0.1 "$SPORT" 64 60 64 > "$OUT/serve_streams.txt" 2>&1
  curl -s "http://127.0.0.1:$SPORT/metrics" > "$SV/streams_metrics.txt" 2>/dev/null || true
  kill -TERM "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true
  bench_line serve_64_streams "$(get serve_streams.aggregate "$OUT/serve_streams.txt")" "$(get serve_streams.single "$OUT/serve_streams.txt")" tokens/s
  grep '^#' "$OUT/serve_streams.txt" || true
  echo "# serve_64_streams errors: $(get serve_streams.errors "$OUT/serve_streams.txt") (the bar needs 0); model $SMODEL"
  awk '/^lmlab_decode_steps_total/ { s = $2 } /^lmlab_decode_rows_total/ { r = $2 }
       END { if (s > 0) printf "# serve_64_streams: %d batched decode steps, %.1f rows per step on average\n", s, r / s }' "$SV/streams_metrics.txt"
else
  kill "$SPID" 2>/dev/null
  echo "# serve_64_streams: lmlab serve did not start ($(tail -2 "$SV/streams_err.txt"))"
fi

echo "# all BENCH lines: $OUT/bench_lines.txt"

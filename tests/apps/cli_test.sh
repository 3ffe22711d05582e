#!/usr/bin/env bash
# End-to-end CLI test: the data -> tokenizer -> train -> generate -> eval -> runs -> plot path on a
# tiny model, and bad input (missing files, malformed JSON, invalid configs, prompts longer than the
# context) answered with a clear message and exit code 1, never a crash.
# Usage: cli_test.sh <path to lmlab binary>
set -uo pipefail
LMLAB="$1"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
# expect_error "description" "substring of stderr" cmd...
expect_error() {
  local what="$1" needle="$2"; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -eq 1 ] && grep -qF -- "$needle" <<<"$out"; then ok "$what"; else bad "$what (rc=$rc): $out"; fi
}
expect_ok() {
  local what="$1"; shift
  local out
  if out=$("$@" 2>&1); then ok "$what"; else bad "$what: $out"; fi
}

expect_ok "help" "$LMLAB" --help
expect_ok "data prepare" "$LMLAB" data prepare --out data
expect_ok "tokenizer train" "$LMLAB" tokenizer train --data data --vocab 512
cat > tiny.json <<'JSON'
{"model": {"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
           "num_attention_heads": 2, "max_position_embeddings": 32},
 "train_data": "data/train.tok", "val_data": "data/val.tok", "batch_size": 2, "context": 32,
 "steps": 4, "warmup": 1, "eval_every": 2, "eval_batches": 2}
JSON
expect_ok "train" "$LMLAB" train --config tiny.json --data data --name cli-test
[ -f runs/1/checkpoints/step-00000004/model.safetensors ] && ok "checkpoint written" || bad "no checkpoint"
[ -f runs/1/checkpoints/step-00000004/tokenizer.json ] && ok "tokenizer in checkpoint" || bad "no tokenizer.json"
expect_ok "generate" "$LMLAB" generate -m runs/1 -p "The jury" -n 5 --seed 1
expect_ok "eval" "$LMLAB" eval -m runs/1 --data data --split val --max-batches 2
expect_ok "runs" "$LMLAB" runs
expect_ok "runs show" "$LMLAB" runs show 1
expect_ok "plot" "$LMLAB" plot 1 --metric train/loss -o p.svg
grep -q "<svg" p.svg && ok "plot svg" || bad "plot svg"

long=$(printf 'the %.0s' $(seq 1 60))
expect_error "prompt longer than the context" "exceeds the model's context" "$LMLAB" generate -m runs/1 -p "$long" -n 4
expect_error "missing model" "does not exist" "$LMLAB" generate -m nowhere -p hi
echo "{broken" > broken.json
expect_error "malformed train config" "not valid JSON" "$LMLAB" train --config broken.json
sed 's/"hidden_size": 32/"hidden_size": 33/' tiny.json > heads.json
expect_error "heads not dividing hidden_size" "hidden_size (33) must be divisible by num_attention_heads" "$LMLAB" train --config heads.json
sed 's/"steps": 4/"steps": -4/' tiny.json > neg.json
expect_error "negative steps" "steps must be positive" "$LMLAB" train --config neg.json
sed 's/"batch_size": 2/"batchsize": 2/' tiny.json > unk.json
expect_error "unknown config field" "unknown field 'batchsize'" "$LMLAB" train --config unk.json
sed 's#data/train.tok#data/missing.tok#' tiny.json > nodata.json
expect_error "missing training data" "missing.tok" "$LMLAB" train --config nodata.json
mkdir -p corrupt && cp -r runs/1/checkpoints/step-00000004/. corrupt/
head -c 100 runs/1/checkpoints/step-00000004/model.safetensors > corrupt/model.safetensors
expect_error "truncated model.safetensors" "model.safetensors" "$LMLAB" generate -m corrupt -p hi
echo '{"model": {"type": "WordPiece"}}' > corrupt/tokenizer.json
cp runs/1/checkpoints/step-00000004/model.safetensors corrupt/
expect_error "malformed tokenizer.json" "tokenizer.json" "$LMLAB" generate -m corrupt -p hi
expect_error "unknown experiment" "unknown experiment 'nope'" "$LMLAB" exp run nope
expect_error "resume of an unknown run" "no run with id 99" "$LMLAB" train --resume 99

echo "$fails failed"
[ "$fails" -eq 0 ]

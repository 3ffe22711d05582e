#!/usr/bin/env bash
# bf16 mixed precision vs f32 on config B (d 512, 8 layers, 8 heads, vocab 4096, ctx 256, batch 16)
# over 200 steps of Brown: prints both runs' training loss (mean of the last 20 steps) and val loss,
# and the f32 seed-to-seed spread as the noise yardstick. About 15-20 minutes on 2 cores.
# Usage: bench/bf16_parity.sh [build dir] [steps]
set -euo pipefail
BUILD=${1:-build}
STEPS=${2:-200}
L="$BUILD/bin/lmlab"
DATA=runs/data/brown-v4096
[ -f "$DATA/meta.json" ] || { "$L" data prepare --out "$DATA" && "$L" tokenizer train --data "$DATA" --vocab 4096; }
cfg=$(mktemp)
cat > "$cfg" <<JSON
{"model": {"vocab_size": 4096, "hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 8,
           "num_attention_heads": 8, "max_position_embeddings": 256, "tie_word_embeddings": false},
 "train_data": "x", "batch_size": 16, "context": 256, "steps": $STEPS, "lr": 1e-3, "min_lr": 1e-4,
 "warmup": 20, "eval_every": $STEPS, "eval_batches": 20, "log_every": 1}
JSON
run() {  # precision seed -> run id
  "$L" train --config "$cfg" --data "$DATA" --set precision=$1 --set seed=$2 --name "bf16-parity-$1-s$2" \
    | sed -n 's/^run \([0-9]*\) .*/\1/p' | tail -1
}
summary() {  # run id
  sqlite3 runs/lmlab.db "select printf('%.4f', avg(value)) from metrics where run_id=$1 and name='train/loss' and step > $STEPS - 20;" 2>/dev/null ||
    echo "?"
}
f32=$(run f32 1); bf16=$(run bf16 1); f32b=$(run f32 2)
for r in $f32 $bf16 $f32b; do
  echo "run $r: $("$L" runs show $r | head -1 | cut -c1-60)  train loss (last 20 steps) $(summary $r)  $("$L" runs show $r | grep 'val/loss' | sed 's/ \+/ /g')"
done

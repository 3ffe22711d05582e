#!/usr/bin/env bash
# End-to-end CLI test: the data -> tokenizer -> train -> generate -> eval -> runs -> plot path on a
# tiny model, and bad input (missing files, malformed JSON, invalid configs, prompts longer than the
# context) answered with a clear message and exit code 1, never a crash.
# Usage: cli_test.sh <path to lmlab binary>
set -uo pipefail
LMLAB="$1"
HERE=$(cd "$(dirname "$0")" && pwd)
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
# The port an `lmlab serve --port 0` announced on stderr (waits up to 10 s; empty if it did not start).
served_port() {
  local p=""
  for _ in $(seq 1 100); do
    p=$(sed -n 's/.* on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$1" 2>/dev/null)
    [ -n "$p" ] && break
    sleep 0.1
  done
  echo "$p"
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

# Resume: a run cut off after its step-4 checkpoint (the later checkpoints removed, as if it had been
# killed there) and continued with --resume ends byte-identical to an uninterrupted run, and the
# checkpoints written after the resume are as complete as the others: generate, eval and convert use them.
sed -e 's/"steps": 4/"steps": 8/' -e 's/"eval_batches": 2}/"eval_batches": 2, "ckpt_every": 2, "keep_last": 5}/' tiny.json > resume.json
expect_ok "train run to resume" "$LMLAB" train --config resume.json --data data --name cli-resume
expect_ok "uninterrupted twin" "$LMLAB" train --config resume.json --data data --name cli-twin
rm -rf runs/2/checkpoints/step-00000006 runs/2/checkpoints/step-00000008
expect_ok "train --resume" "$LMLAB" train --resume 2
if cmp -s runs/2/checkpoints/step-00000008/model.safetensors runs/3/checkpoints/step-00000008/model.safetensors &&
   cmp -s runs/2/checkpoints/step-00000008/optimizer.safetensors runs/3/checkpoints/step-00000008/optimizer.safetensors; then
  ok "resumed run = uninterrupted run"; else bad "resumed run differs from the uninterrupted one"; fi
for f in config.json model.safetensors optimizer.safetensors tokenizer.json lmlab.json; do
  [ -f runs/2/checkpoints/step-00000006/$f ] && [ -f runs/2/checkpoints/step-00000008/$f ] || bad "resumed checkpoint lacks $f"
done
cmp -s runs/2/checkpoints/step-00000008/tokenizer.json runs/1/checkpoints/step-00000004/tokenizer.json &&
  ok "resumed checkpoint has the run's tokenizer.json" || bad "resumed checkpoint's tokenizer.json differs"
expect_ok "generate from the resumed run" "$LMLAB" generate -m runs/2 -p "The jury" -n 5 --seed 1
expect_ok "eval of the resumed run" "$LMLAB" eval -m runs/2 --data data --split val --max-batches 2
expect_ok "convert the resumed checkpoint" "$LMLAB" convert runs/2/checkpoints/step-00000008 resumed.gguf
expect_ok "generate from the converted resumed run" "$LMLAB" generate -m resumed.gguf -p "The jury" -n 5 --seed 1
# A time budget is a deadline: a run of 100000 steps max with a 3-second budget stops on the clock,
# evaluates and checkpoints, says how many steps fit, and its first progress line's ETA is the budget's.
sed -e 's/"steps": 4/"steps": 100000/' -e 's/"eval_every": 2/"eval_every": 100000/' tiny.json > budget.json
t0=$(date +%s.%N)
out=$("$LMLAB" train --config budget.json --data data --name cli-budget --minutes 0.05 2>&1); rc=$?
t1=$(date +%s.%N)
if [ "$rc" -eq 0 ] && grep -q "stopped on the clock: [0-9]* steps fit in the 0m03s budget" <<<"$out" &&
   awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a < 30) }'; then ok "time budget is a deadline"; else bad "time budget (rc=$rc): $out"; fi
if grep -o "ETA [0-9hms]*" <<<"$out" | head -1 | grep -qE "ETA 0m0[0-3]s"; then ok "first ETA is the budget's"; else bad "first ETA: $(grep -o 'ETA [0-9hms]*' <<<"$out" | head -1)"; fi
ls runs/4/checkpoints/step-*/tokenizer.json >/dev/null 2>&1 && ok "budget run checkpointed" || bad "budget run has no checkpoint"

# An experiment repeated over seeds: figures as mean ± spread, curves with bands, verdicts in the report.
mkdir -p exps
cat > exps/kda-recall.json <<'JSON'
{"kind": "kda_recall", "description": "micro", "claim": "micro",
 "mixers": [{"pattern": "A", "name": "softmax"}, {"pattern": "K", "name": "kda"}, {"pattern": "G", "name": "gdn"},
            {"pattern": "L", "name": "gla"}],
 "tasks": [{"name": "mqar", "pairs": 2, "queries": 4}],
 "scales": {"micro": {"model": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32},
                      "train": {"batch_size": 4, "steps": 4, "warmup": 1, "eval_every": 2, "eval_examples": 8},
                      "thresholds": [0.05]}}}
JSON
out=$(LMLAB_EXPERIMENTS_DIR=exps "$LMLAB" exp run kda-recall --scale micro --seed 3 --seeds 2 --out expout 2>&1); rc=$?
if [ "$rc" -eq 0 ] && grep -q "seeds\*\*: 3, 4" expout/report.md && grep -q "± " expout/report.md &&
   grep -qE "\| (held|did not hold|mixed|not tested) " expout/report.md && grep -q '"seeds": \[' expout/results.json &&
   grep -q "lmlab exp run kda-recall --scale micro --seed 3 --seeds 2" expout/report.md; then
  ok "exp run --seeds"; else bad "exp run --seeds (rc=$rc): $out"; fi
expect_error "exp run --seeds 0" "--seeds must be 1..1000" env LMLAB_EXPERIMENTS_DIR=exps "$LMLAB" exp run kda-recall --scale micro --seeds 0

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
# sizes read from files are held to what the files hold, before anything is allocated
mkdir -p bomb && cp -r runs/1/checkpoints/step-00000004/. bomb/
sed -i 's/"num_hidden_layers": 1,/"num_hidden_layers": 2000000000,/' bomb/config.json
expect_error "config.json with more layers than its weights" "num_hidden_layers = 2000000000, but" \
  timeout 60 "$LMLAB" generate -m bomb -p hi
sed 's/"hidden_size": 32/"hidden_size": 1048576/' tiny.json > huge.json
expect_error "train config larger than memory" "more than this machine's" timeout 60 "$LMLAB" train --config huge.json
expect_error "unknown experiment" "unknown experiment 'nope'" "$LMLAB" exp run nope
expect_error "resume of an unknown run" "no run with id 99" "$LMLAB" train --resume 99

# tokenize: the run's tokenizer.json and the same model converted to .gguf give the same ids; a
# SentencePiece-style tokenizer.json falls back to <0xXX> byte tokens for characters it lacks.
case "$0" in /*) here=$(dirname "$0") ;; *) here="$OLDPWD/$(dirname "$0")" ;; esac  # the script cd'ed into $W
SPM="$here/../tokenizer/data/spm_tiny.json"
expect_ok "convert run to gguf" "$LMLAB" convert runs/1/checkpoints/step-00000004 tiny.gguf
ids_folder=$("$LMLAB" tokenize -m runs/1 -p "The jury said 東京" --ids-only 2>&1)
ids_gguf=$("$LMLAB" tokenize -m tiny.gguf -p "The jury said 東京" --ids-only 2>&1)
if [ -n "$ids_folder" ] && [ "$ids_folder" = "$ids_gguf" ]; then ok "tokenize folder = gguf"; else bad "tokenize folder ($ids_folder) != gguf ($ids_gguf)"; fi
out=$("$LMLAB" tokenize -m "$SPM" -p "Hi 東" 2>&1)
if grep -qF '"<0xE6>"' <<<"$out" && grep -qF '"<0xB1>"' <<<"$out"; then ok "tokenize spm byte fallback"; else bad "tokenize spm: $out"; fi
[ "$("$LMLAB" tokenize -m "$SPM" -p "Hi" --ids-only --add-special | cut -d' ' -f1)" = "1" ] && ok "tokenize --add-special adds <s>" || bad "tokenize --add-special"
expect_error "tokenize: missing model" "does not exist" "$LMLAB" tokenize -m nowhere.json -p hi

# quantize + logits: a .gguf re-encoded to Q8_0 runs, logits files are written for text and ids, and
# bad arguments are errors naming the problem.
expect_ok "quantize q8_0" "$LMLAB" quantize tiny.gguf tiny-q8.gguf q8_0
out=$("$LMLAB" quantize tiny.gguf tiny-q4.gguf q4_k 2>&1)
if grep -qF "not a multiple of 256" <<<"$out"; then ok "quantize q4_k falls back on 32-wide rows"; else bad "quantize q4_k: $out"; fi
expect_ok "generate from q8_0" "$LMLAB" generate -m tiny-q8.gguf -p "The jury" -n 4 --seed 1
expect_ok "logits from text" "$LMLAB" logits -m runs/1 -p "The jury said" --out a.safetensors
expect_ok "logits from ids" "$LMLAB" logits -m tiny-q8.gguf --tokens 1,2,3 --out b.safetensors
[ -s a.safetensors ] && [ -s b.safetensors ] && ok "logits files written" || bad "no logits files"
# A CPU without oneDNN bf16 kernels (ONEDNN_MAX_CPU_ISA=AVX2 makes this one look like one): `info`
# names the fallback, and prompts of 16+ tokens (the dequantized-panel path of quantized matrices,
# bf16 products) run on q8_0, q4 and bf16 models, as .gguf and as an HF folder.
info=$(ONEDNN_MAX_CPU_ISA=AVX2 "$LMLAB" info 2>&1)
if grep -qF "bf16 GEMM: f32 on OpenBLAS" <<<"$info"; then ok "info names the bf16 fallback"; else bad "info under AVX2: $info"; fi
expect_ok "convert to bf16 gguf" "$LMLAB" convert runs/1/checkpoints/step-00000004 tiny-bf16.gguf --type bf16
expect_ok "bf16 gguf to an HF folder" "$LMLAB" convert tiny-bf16.gguf tiny-bf16-hf
toks=$(seq -s, 3 26)  # 24 ids
for m in tiny-q8.gguf tiny-q4.gguf tiny-bf16.gguf tiny-bf16-hf; do
  expect_ok "AVX2: 24-token prompt on $m" env ONEDNN_MAX_CPU_ISA=AVX2 "$LMLAB" logits -m "$m" --tokens "$toks" --out avx2.safetensors
done
prompt="The jury said that the city of Atlanta had praised the election"
n=$("$LMLAB" tokenize -m runs/1 -p "$prompt" --ids-only 2>&1 | wc -w)
if [ "$n" -ge 16 ] && [ "$n" -le 28 ]; then ok "long prompt is $n tokens"; else bad "long prompt is $n tokens (want 16-28)"; fi
for m in tiny-q8.gguf tiny-bf16-hf; do
  expect_ok "AVX2: generate from $m with a $n-token prompt" env ONEDNN_MAX_CPU_ISA=AVX2 "$LMLAB" generate -m "$m" -p "$prompt" -n 2
done

# lmlab template: the prompt exactly as jinja2 renders it (a committed oracle case), a template that
# raises gives its message and exit 1, an unsupported feature is named with its line; a run's
# checkpoint (no chat template) falls back to ChatML with a warning.
CHAT="$HERE/../chat"
if LMLAB_FIXED_DATE=2026-01-15 "$LMLAB" template --template "$CHAT/templates/fam_llama3.jinja" \
    --messages "$CHAT/conversations/tools_object_args.json" --add-generation-prompt --bos-token '<|begin_of_text|>' --eos-token '<|eot_id|>' \
    > rendered.txt 2>err.txt && cmp -s rendered.txt "$CHAT/expected/fam_llama3__tools_object_args__agp1.txt"; then
  ok "template renders byte-identical to jinja2"
else
  bad "template render differs from jinja2: $(head -c 300 err.txt)"
fi
printf '{%% if messages[0].role != "system" %%}{{ raise_exception("first message must be system") }}{%% endif %%}' > raise.jinja
echo '[{"role": "user", "content": "hi"}]' > msgs.json
expect_error "template: raise_exception" "first message must be system" "$LMLAB" template --template raise.jinja --messages msgs.json
printf 'a\n{%% include "x.jinja" %%}' > inc.jinja
expect_error "template: unsupported feature" "inc.jinja:2: unsupported feature '{% include %}'" "$LMLAB" template --template inc.jinja --messages msgs.json
echo '{"messages": 3}' > badmsgs.json
expect_error "template: bad messages file" "\"messages\" must be an array" "$LMLAB" template --template raise.jinja --messages badmsgs.json
out=$("$LMLAB" template -m runs/1 --messages msgs.json --add-generation-prompt 2>warn.txt)
if [ "$out" = $'<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant' ] && grep -q "using the default (ChatML)" warn.txt; then
  ok "template: a model without one gets ChatML and a warning"
else
  bad "template: ChatML default: $out / $(cat warn.txt)"
fi

# lmlab chat, scripted through a pipe: turns, /system, /reset, /save (the history as JSON), /exit
# (a terse template: the test model's context is 32 tokens).
printf '{%% for m in messages %%}{{ m.content }}{%% endfor %%}' > terse.jinja
printf 'hi\n/system A\nyo\n/save conv.json\n/reset\nok\n/save conv2.json\n/exit\n' |
  "$LMLAB" chat -m runs/1 --template terse.jinja -n 3 --temp 0 > chat_out.txt 2> chat_err.txt
rc=$?
roles=$(python3 -c "import json; print(','.join(m['role'] for m in json.load(open('conv.json'))['messages']))" 2>&1)
roles2=$(python3 -c "import json; print(','.join(m['role'] for m in json.load(open('conv2.json'))['messages']))" 2>&1)
if [ "$rc" -eq 0 ] && [ "$roles" = "system,user,assistant,user,assistant" ] && [ "$roles2" = "system,user,assistant" ]; then
  ok "chat: scripted turns, /system, /save, /reset"
else
  bad "chat (rc=$rc): roles '$roles' / '$roles2': $(cat chat_err.txt)"
fi

# lmlab serve: curl and the official openai npm client (installed by scripts/install-deps.sh into
# data/npm) against a server on a free port; SIGTERM drains and exits 0.
"$LMLAB" serve -m runs/1 --port 0 --api-key sekret --template terse.jinja > serve_out.txt 2> serve_err.txt &
spid=$!
port=$(served_port serve_err.txt)
if [ -z "$port" ]; then
  bad "serve did not start: $(cat serve_err.txt)"
else
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v1/models")
  [ "$code" = "401" ] && ok "serve: no API key -> 401" || bad "serve: no API key gave $code"
  body=$(curl -s -H 'Authorization: Bearer sekret' "http://127.0.0.1:$port/v1/chat/completions" \
    -d '{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "temperature": 0}')
  grep -q '"object":"chat.completion"' <<<"$body" && ok "serve: curl chat completion" || bad "serve: curl chat: $body"
  OPENAI_PKG="$HERE/../../data/npm/node_modules/openai"
  if [ -d "$OPENAI_PKG" ] && command -v node >/dev/null; then
    if node "$HERE/openai_client.cjs" "$OPENAI_PKG" "http://127.0.0.1:$port/v1" sekret > openai.txt 2>&1; then
      ok "serve: the openai npm client ($(grep -c '^ok' openai.txt) checks)"
    else
      bad "serve: openai npm client: $(grep -v '^ok' openai.txt | head -5)"
    fi
  else
    bad "serve: the openai npm package is missing (run scripts/install-deps.sh)"
  fi
fi
kill -TERM "$spid" 2>/dev/null
wait "$spid"; src=$?
[ "$src" -eq 0 ] && ok "serve: SIGTERM drains and exits 0" || bad "serve: exit code $src after SIGTERM: $(tail -3 serve_err.txt)"

# The web chat page in a real browser (a server without an API key): headless Chromium loads it, it
# sends a message (?q=), and the streamed reply must be in the DOM, equal to the API's answer.
if command -v chromium >/dev/null; then
  "$LMLAB" serve -m runs/1 --port 0 --template terse.jinja > web_out.txt 2> web_err.txt &
  wpid=$!
  wport=$(served_port web_err.txt)
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --virtual-time-budget=10000 --dump-dom \
    "http://127.0.0.1:$wport/?q=hello&temperature=0&max_tokens=4" > dom.html 2>/dev/null
  want=$(curl -s "http://127.0.0.1:$wport/v1/chat/completions" \
    -d '{"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4, "temperature": 0}' |
    python3 -c "import json,sys; print(json.load(sys.stdin)['choices'][0]['message']['content'])" 2>&1)
  got=$(python3 -c "
import html, re
d = open('dom.html', encoding='utf-8', errors='replace').read()
m = re.search(r'<div class=\"msg assistant\">(.*?)</div>', d, re.S)
print(html.unescape(m.group(1)) if m and 'data-state=\"replied\"' in d else 'NO REPLY')" 2>&1)
  [ -n "$wport" ] && [ "$got" = "$want" ] && ok "serve: the web page streams a reply in Chromium" ||
    bad "serve: web page reply '$got' vs API '$want'"
  kill -TERM "$wpid" 2>/dev/null
  wait "$wpid"
else
  bad "serve: chromium is missing (run scripts/install-deps.sh)"
fi

expect_error "quantize: unknown type" "unknown type 'q3'" "$LMLAB" quantize tiny.gguf x.gguf q3
expect_error "quantize: same file" "same file" "$LMLAB" quantize tiny.gguf tiny.gguf q8_0
expect_error "logits: bad id" "'x' is not a token id" "$LMLAB" logits -m tiny.gguf --tokens 1,x --out c.safetensors
expect_error "logits: id outside vocab" "outside the vocabulary" "$LMLAB" logits -m tiny.gguf --tokens 99999 --out c.safetensors
expect_error "logits: no input" "give -p TEXT or --tokens" "$LMLAB" logits -m tiny.gguf --out c.safetensors

echo "$fails failed"
[ "$fails" -eq 0 ]

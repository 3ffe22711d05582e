#!/usr/bin/env bash
# Checks the include graph against DESIGN.md's layer order: a file under lmlab/<layer>/ may include
# only lmlab headers of the layers it is allowed to use. Also reports the line count of
# lmlab/core + lmlab/autograd (STYLE 2.2: a brake, not a gate). Exit 1 on a violation.
set -euo pipefail
cd "$(dirname "$0")/.."

allowed() {  # layer -> space-separated layers it may include (itself always allowed)
  case "$1" in
    core) echo "" ;;
    ops) echo "core" ;;
    autograd) echo "core ops" ;;
    io|tokenizer|data) echo "core" ;;
    chat) echo "core io" ;;
    nn) echo "core ops autograd io" ;;
    models) echo "core ops autograd nn io tokenizer" ;;
    objectives) echo "core ops autograd nn models" ;;
    train) echo "core ops autograd nn models objectives io tokenizer data" ;;
    infer) echo "core ops autograd nn models io tokenizer" ;;
    analysis) echo "core ops autograd nn models objectives train infer io tokenizer data" ;;
    agents) echo "core ops autograd nn models objectives train infer io tokenizer data analysis" ;;
    serve) echo "core ops autograd nn models infer io tokenizer chat agents" ;;
    lab) echo "core ops autograd nn models objectives train infer io tokenizer chat data analysis agents serve" ;;
    experiments) echo "core ops autograd nn models objectives train infer io tokenizer chat data analysis agents serve lab" ;;
    *) echo "" ;;
  esac
}

bad=0
while IFS= read -r f; do
  layer=$(echo "$f" | cut -d/ -f2)
  ok=" $layer $(allowed "$layer") "
  while IFS= read -r inc; do
    dep=$(echo "$inc" | sed -E 's|.*"lmlab/([a-z_]+)/.*|\1|')
    [ "$dep" = "$inc" ] && continue
    if [[ "$ok" != *" $dep "* ]]; then
      echo "layer violation: $f includes lmlab/$dep/ (layer '$layer' may use: $(allowed "$layer"))"
      bad=1
    fi
  done < <(grep -E '^#include "lmlab/[a-z_]+/' "$f" || true)
  if grep -qE '^#include "(apps|tools|tests|bench)/' "$f"; then
    echo "layer violation: $f includes apps/, tools/, tests/ or bench/"
    bad=1
  fi
done < <(find lmlab -mindepth 2 -name '*.h' -o -mindepth 2 -name '*.cpp' | sort)

lines=$(cat lmlab/core/*.h lmlab/core/*.cpp lmlab/autograd/*.h lmlab/autograd/*.cpp | wc -l)
echo "[check-layers] lmlab/core + lmlab/autograd: $lines lines"
if [ "$bad" = 0 ]; then echo "[check-layers] include graph follows the layer order"; fi
exit $bad

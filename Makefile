# lmlab — top-level commands. `make demo` and `make test` do all set-up on a fresh Debian 12.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test bench demo clean asan asan-cli fuzz

all: build

deps:
	bash scripts/install-deps.sh

build:
	@if [ ! -f $(BUILD)/build.ninja ]; then cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS); fi
	cmake --build $(BUILD) -j $(JOBS)

# The sanitizer build targets x86-64-v3 (AVX2, no AVX-512), the CPUs most users have: code that
# -march=native would specialise for this machine runs as it does there, and the quantized-matmul
# tests run every kernel set this CPU has (AVX-512 VNNI, AVX2, portable) under the sanitizers.
# Configured on every run, so an older build-asan picks the flags up.
ASAN_CMAKE_FLAGS := -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLMLAB_SANITIZE=ON -DLMLAB_BUILD_BENCH=OFF \
  -DLMLAB_PORTABLE=ON -DCMAKE_CXX_FLAGS=-march=x86-64-v3
asan:
	cmake -S . -B build-asan -G Ninja $(ASAN_CMAKE_FLAGS) $(CMAKE_FLAGS) >/dev/null
	cmake --build build-asan -j $(JOBS) --target test_core test_ops test_autograd

# target:seconds. FUZZ_SECONDS=N runs every target for N seconds instead.
FUZZ_SECONDS ?=
FUZZ_TARGETS := fuzz_safetensors:10 fuzz_safetensors_index:8 fuzz_gguf:10 fuzz_tokenizer_json:8 \
  fuzz_tokenizer_config:6 fuzz_hf_config:8 fuzz_train_config:6 fuzz_jinja:10

# libFuzzer (clang) over the file parsers, each for its seconds, from seeds the build writes plus the
# committed regression inputs in fuzz/corpus/<target>/; any crash, sanitizer report, leak, timeout
# or single allocation over the RSS limit fails the target (the reproducer is left as
# build-fuzz/crash-* or oom-*).
fuzz: deps build
	@if [ ! -f build-fuzz/build.ninja ]; then CC=clang CXX=clang++ cmake -S fuzz -B build-fuzz -G Ninja -DLMLAB_BUILD_DIR=$(abspath $(BUILD)); fi
	cmake --build build-fuzz -j $(JOBS)
	build-fuzz/fuzz_seeds build-fuzz/corpus
	@set -e; for spec in $(FUZZ_TARGETS); do \
	  t=$${spec%%:*}; s=$${spec##*:}; [ -n "$(FUZZ_SECONDS)" ] && s=$(FUZZ_SECONDS); \
	  echo "[fuzz] $$t for $$s s"; \
	  extra=""; [ -d fuzz/corpus/$$t ] && extra="fuzz/corpus/$$t"; \
	  (cd build-fuzz && ./$$t -max_total_time=$$s -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
	    -dict=../fuzz/$$t.dict corpus/$$t $${extra:+../$$extra}) > build-fuzz/$$t.log 2>&1 \
	    || { tail -n 60 build-fuzz/$$t.log; echo "[fuzz] $$t FAILED (log: build-fuzz/$$t.log)"; exit 1; }; \
	  grep -E "^stat::number_of_executed_units|^Done" build-fuzz/$$t.log | tr '\n' ' '; echo; \
	done

test: deps build asan fuzz
	bash scripts/check-layers.sh
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@echo "[test] sanitizer run (ASan + UBSan) over the core, op and autograd tests"
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# lmlab itself under ASan+UBSan (the server that bench/serve_fuzz.py attacks in make bench).
asan-cli:
	cmake -S . -B build-asan -G Ninja $(ASAN_CMAKE_FLAGS) $(CMAKE_FLAGS) >/dev/null
	cmake --build build-asan -j $(JOBS) --target lmlab_cli

bench: deps build asan-cli
	LLAMA_CPP_DIR="$(LLAMA_CPP_DIR)" LLAMA_CPP_DIR_AVX2="$(LLAMA_CPP_DIR_AVX2)" bash bench/run.sh $(BUILD)

DEMO_MINUTES ?= 10

# The main job: prepare Brown, train the tokenizer, train a ~10M-parameter model for DEMO_MINUTES
# with a live progress line, print samples and the path of runs/<id>/report.html.
demo: deps build
	$(BUILD)/bin/lmlab info
	$(BUILD)/bin/lmlab exp run brown-baseline --scale demo --minutes $(DEMO_MINUTES)

clean:
	rm -rf $(BUILD) build-asan build-fuzz

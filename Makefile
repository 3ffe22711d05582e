# lmlab — top-level commands. `make demo` and `make test` do all set-up on a fresh Debian 12.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build test bench demo clean asan

all: build

deps:
	bash scripts/install-deps.sh

build:
	@if [ ! -f $(BUILD)/build.ninja ]; then cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS); fi
	cmake --build $(BUILD) -j $(JOBS)

asan:
	@if [ ! -f build-asan/build.ninja ]; then cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLMLAB_SANITIZE=ON -DLMLAB_BUILD_BENCH=OFF $(CMAKE_FLAGS); fi
	cmake --build build-asan -j $(JOBS) --target test_core test_ops test_autograd

test: deps build asan
	bash scripts/check-layers.sh
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@echo "[test] sanitizer run (ASan + UBSan) over the core, op and autograd tests"
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

bench: deps build
	bash bench/run.sh $(BUILD)

DEMO_MINUTES ?= 10

# The main job: prepare Brown, train the tokenizer, train a ~10M-parameter model for DEMO_MINUTES
# with a live progress line, print samples and the path of runs/<id>/report.html.
demo: deps build
	$(BUILD)/bin/lmlab info
	$(BUILD)/bin/lmlab exp run brown-baseline --scale demo --minutes $(DEMO_MINUTES)

clean:
	rm -rf $(BUILD) build-asan

# nvdra: the two commands are `make demo` and `make test`. `make help` lists the rest.
SHELL := /bin/bash
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 20
K8S := $(BUILD)/k8s
K8S_NODES ?= 2

.PHONY: help deps configure build test test-unit test-asan fuzz fuzz-smoke bench demo format clean \
	k8s-build k8s-images k8s-nvdra-image cluster cluster-nvdra demo-k8s image

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

deps: ## Install the Debian packages nvdra needs (does nothing when all are present)
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja

configure: deps $(BUILD)/build.ninja

build: configure ## Build everything into build/ (binaries in build/bin)
	ninja -C $(BUILD) -j $(JOBS)

# ctest_run DIR,ARGS,ENV: ctest in DIR, then how many tests were skipped and why; ctest's status.
define ctest_run
cd $(1) && rc=0 && $(3) ctest --output-on-failure -j $(JOBS) --output-junit ctest-junit.xml $(2) \
  || rc=$$?; python3 $(CURDIR)/tests/data/skip_summary.py ctest-junit.xml; exit $$rc
endef

test: build k8s-images k8s-nvdra-image ## Install, build and run every test through ctest (the real cluster too)
	@$(call ctest_run,$(BUILD))

test-unit: build ## Run only the unit tests
	@$(call ctest_run,$(BUILD),-L unit)

test-asan: deps ## Build and run the unit tests under ASan+UBSan
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DNVDRA_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	ninja -C $(ASAN_BUILD) -j $(JOBS)
	@$(call ctest_run,$(ASAN_BUILD),-L unit,ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)

fuzz: deps ## Build the libFuzzer targets with clang into build-fuzz/
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G Ninja -DNVDRA_FUZZ=ON -DBUILD_TESTING=OFF \
	  -DNVDRA_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
	ninja -C $(FUZZ_BUILD) -j $(JOBS) fuzz_targets

fuzz-smoke: fuzz ## Run every fuzzer for FUZZ_SECONDS on its seed corpus
	@set -eo pipefail; for f in $(FUZZ_BUILD)/bin/fuzz_*; do \
	  name=$$(basename $$f); corpus=tests/fuzz/corpus/$${name#fuzz_}; work=$$(mktemp -d); \
	  echo "== $$name ($(FUZZ_SECONDS)s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 -rss_limit_mb=2048 $$work $$corpus 2>&1 | tail -4; \
	  rm -rf $$work; \
	done

bench: build ## Run the benchmarks (figures go to docs/performance.md by hand)
	@for b in $(BUILD)/bin/bench_*; do echo "== $$b"; $$b; done
	@echo "== bench/bench_cd_ready.sh"; bench/bench_cd_ready.sh $(BUILD)/bin

demo: build ## Build, start a simulated GPU cluster with nvdra and run GPU, MIG, MPS and ComputeDomain samples
	@scripts/demo.sh $(BUILD)

k8s-build: deps ## Build the real test cluster from tests/k8s/go.mod (Kubernetes, etcd, containerd, runc, CNI)
	@tests/k8s/build.sh $(K8S)/bin

k8s-images: k8s-build ## Build the real cluster's images (pause, test image) without a container engine
	@tests/k8s/images/build.sh $(K8S)/bin $(K8S)/images

k8s-nvdra-image: build k8s-build ## nvdra's test image for the real cluster (nvdra.dev/nvdra:test, with the IMEX stand-in)
	@scripts/build-image.sh $(BUILD)/bin $(K8S)/bin/nvdra-k8s $(K8S)/images/nvdra $(K8S)/images/nvdra.tar \
	  nvdra.dev/nvdra:test --test

image: build k8s-build ## nvdra's image without a container engine: $(BUILD)/image/nvdra.tar (nvdra:latest)
	@scripts/build-image.sh $(BUILD)/bin $(K8S)/bin/nvdra-k8s $(BUILD)/image $(BUILD)/image/nvdra.tar nvdra:latest

demo-k8s: build k8s-images k8s-nvdra-image ## The demo's samples on the real cluster (nvdra installed from its manifests)
	@scripts/demo-k8s.sh $(BUILD)

# The cluster targets print the kubeconfig path alone on their first line: what they build first
# reports on stderr.
cluster: ## Start the real cluster (K8S_NODES nodes); prints the kubeconfig path, runs until Ctrl-C
	@$(MAKE) --no-print-directory k8s-images >&2
	@$(K8S)/bin/nvdra-k8s up --state $(K8S)/state --nodes $(K8S_NODES) \
	  --image $(K8S)/images/pause.tar --image $(K8S)/images/test.tar

cluster-nvdra: ## The real cluster with nvdra built, installed and serving; like make cluster
	@$(MAKE) --no-print-directory build k8s-images k8s-nvdra-image >&2
	@scripts/cluster-nvdra.sh $(BUILD)

format: ## clang-format every C++ file
	@git ls-files '*.h' '*.cpp' | xargs clang-format -i

clean: ## Remove build folders
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

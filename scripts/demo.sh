#!/usr/bin/env bash
# make demo. Until nvdra-sim lands (issue 4/5) there is no simulated cluster to start, so the demo
# says so and exits non-zero rather than pretending; `make test` exercises what exists today.
set -euo pipefail
echo "nvdra demo: the simulated cluster (nvdra-sim) is not built yet."
echo "What exists today is the Kubernetes client foundation; run 'make test' to exercise it."
exit 1

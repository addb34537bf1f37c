#!/usr/bin/env bash
# Missing test data is a skip, and under NVDRA_REQUIRE_DATA=1 a failure, for every kind of
# consumer: nvdra-test-data, a GoogleTest case of each data set, an end-to-end script and the
# benchmark. The settings point at a folder that holds nothing, whatever is beside the repository.
# Usage: skip_test.sh BUILD_DIR
set -uo pipefail
build=${1:?usage: $0 BUILD_DIR}
bin="$build/bin"
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pass=0
fail=0
expect() {  # expect NAME WANT_RC NEEDLE CMD...: CMD exits WANT_RC and prints NEEDLE
  local name=$1 want=$2 needle=$3 out rc
  shift 3
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" = "$want" ] && [[ "$out" == *"$needle"* ]]; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL $name: want exit $want and [$needle], got exit $rc: $(tail -5 <<<"$out")"
  fi
}
missing=(env -u NVDRA_REQUIRE_DATA NVDRA_COMPAT_DIR="$work/none" NVDRA_FIXTURES_DIR="$work/none")
required=(env NVDRA_REQUIRE_DATA=1 NVDRA_COMPAT_DIR="$work/none" NVDRA_FIXTURES_DIR="$work/none")

# nvdra-test-data, the end-to-end scripts' resolver.
for s in NVDRA_COMPAT_DIR NVDRA_FIXTURES_DIR; do
  expect "$s missing: skip" 77 "test data missing: " "${missing[@]}" "$bin/nvdra-test-data" "$s"
  expect "$s missing: names the setting" 77 "set $s to " "${missing[@]}" "$bin/nvdra-test-data" "$s"
  expect "$s required: failure" 1 "NVDRA_REQUIRE_DATA=1" "${required[@]}" "$bin/nvdra-test-data" "$s"
done
mkdir -p "$work/specs/quickstart/v1" && touch "$work/specs/quickstart/v1/gpu-test1.yaml"
expect "present: its folder" 0 "$work/specs" \
  env NVDRA_REQUIRE_DATA=1 NVDRA_COMPAT_DIR="$work/specs" "$bin/nvdra-test-data" NVDRA_COMPAT_DIR
expect "unknown setting" 2 "usage" "$bin/nvdra-test-data" NVDRA_OTHER_DIR

# GoogleTest cases print "[  SKIPPED ]", which gtest_discover_tests makes ctest report as skipped.
for t in "cel_test Cel.CompatCorpusSelectors github.com/kubernetes-sigs/dra-driver-nvidia-gpu" \
         "sim_test AllocatorTest.CompatCorpusClaims NVDRA_COMPAT_DIR" \
         "k8sclient_test ObjectCodec.RoundTripKeepsEveryFieldOfEveryFixture NVDRA_FIXTURES_DIR"; do
  read -r exe name needle <<<"$t"
  expect "$name missing: skipped" 0 "[  SKIPPED ] $name" "${missing[@]}" "$bin/$exe" --gtest_filter="$name"
  expect "$name missing: says why" 0 "$needle" "${missing[@]}" "$bin/$exe" --gtest_filter="$name"
  expect "$name required: failed" 1 "[  FAILED  ] $name" "${required[@]}" "$bin/$exe" --gtest_filter="$name"
done

# An end-to-end script ends before starting anything, with ctest's skip code (SKIP_RETURN_CODE).
expect "e2e missing: skip" 77 "NVDRA_COMPAT_DIR" "${missing[@]}" "$root/tests/e2e/agent_sim_test.sh" "$bin"
expect "e2e required: failure" 1 "NVDRA_COMPAT_DIR" "${required[@]}" "$root/tests/e2e/agent_sim_test.sh" "$bin"
skip_code=$(ctest --test-dir "$build" -N --show-only=json-v1 2>/dev/null | python3 -c '
import json, sys
tests = json.load(sys.stdin)["tests"]
props = [p for t in tests if t["name"] == "e2e.agents_prepare" for p in t.get("properties", [])]
print(next((p["value"] for p in props if p["name"] == "SKIP_RETURN_CODE"), "none"))')
[ "$skip_code" = 77 ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL e2e SKIP_RETURN_CODE: $skip_code"; }

# The benchmark that replays the fixtures.
if [ -x "$bin/bench_watch_decode" ]; then
  expect "bench missing: skip" 77 "NVDRA_FIXTURES_DIR" "${missing[@]}" "$bin/bench_watch_decode"
  expect "bench required: failure" 1 "NVDRA_FIXTURES_DIR" "${required[@]}" "$bin/bench_watch_decode"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

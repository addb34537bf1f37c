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
# ctest's side, read from its generated files (running ctest here would overwrite the log of the
# ctest running this test): the scripts' skip code, and GoogleTest's skip marker for the cases.
contains_file() {  # contains_file NAME NEEDLE FILE
  if grep -qF -- "$2" "$3" 2>/dev/null; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $1: [$2] not in $3"; fi
}
contains_file "e2e SKIP_RETURN_CODE" '[=[e2e.agents_prepare]=] PROPERTIES  LABELS "e2e" SKIP_RETURN_CODE "77"' \
  "$build/tests/e2e/CTestTestfile.cmake"
contains_file "gtest SKIP_REGULAR_EXPRESSION" 'SKIP_REGULAR_EXPRESSION [==[\[  SKIPPED \]]==]' \
  "$(ls "$build"/tests/unit/cel_test\[*\]_tests.cmake | head -1)"

# The benchmark that replays the fixtures.
if [ -x "$bin/bench_watch_decode" ]; then
  expect "bench missing: skip" 77 "NVDRA_FIXTURES_DIR" "${missing[@]}" "$bin/bench_watch_decode"
  expect "bench required: failure" 1 "NVDRA_FIXTURES_DIR" "${required[@]}" "$bin/bench_watch_decode"
fi

# make test's last lines, from ctest's JUnit results: how many were skipped, each reason once,
# and the failures for missing data.
cat >"$work/junit.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="Linux-c++" tests="6" failures="2" disabled="0" skipped="3">
  <testcase name="a" status="run"><system-out>ok</system-out></testcase>
  <testcase name="b" status="notrun"><skipped message="SKIP_REGULAR_EXPRESSION_MATCHED"/>
    <system-out>x.cpp:1: Skipped
test data missing: NVIDIA's demo specs not at /x (from NVDRA_COMPAT_DIR; ...)
</system-out></testcase>
  <testcase name="c" status="notrun"><skipped message="SKIP_RETURN_CODE=77"/>
    <system-out>test data missing: NVIDIA's demo specs not at /x (from NVDRA_COMPAT_DIR; ...)</system-out></testcase>
  <testcase name="d" status="notrun"><skipped message="SKIP_RETURN_CODE=77"/><system-out>no GPU</system-out></testcase>
  <testcase name="e" status="fail"><failure message=""/><system-out>test data missing: fixtures [NVDRA_REQUIRE_DATA=1]</system-out></testcase>
  <testcase name="f" status="fail"><failure message=""/><system-out>Expected equality</system-out></testcase>
</testsuite>
XML
summary=$(python3 "$root/tests/data/skip_summary.py" "$work/junit.xml")
want="ctest: 6 tests, 3 skipped; why (README, 'Test data', says where the data is):
  2 x test data missing: NVIDIA's demo specs not at /x (from NVDRA_COMPAT_DIR; ...)
  1 x other (see the test's output)
ctest: 1 failed for missing data (NVDRA_REQUIRE_DATA=1):
  1 x test data missing: fixtures [NVDRA_REQUIRE_DATA=1]"
[ "$summary" = "$want" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL summary: $summary"; }

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

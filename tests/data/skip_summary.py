#!/usr/bin/env python3
"""After ctest: one line saying how many tests were skipped, then why, once per reason.

Usage: skip_summary.py JUNIT_XML (ctest --output-junit). A skipped test's reason is the
"test data missing: ..." line it printed (tests/data/test_data.h), else "other". Tests that
failed for missing data (NVDRA_REQUIRE_DATA=1) are counted and explained the same way.
"""
import collections
import re
import sys
import xml.etree.ElementTree as ET


def reason(case):
    found = re.search(r"test data missing: .*", case.findtext("system-out") or "")
    return found.group(0).strip() if found else None


try:
    cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
except (OSError, ET.ParseError) as e:
    sys.exit(f"skip_summary: no ctest results: {e}")
skipped = collections.Counter()
failed = collections.Counter()
for case in cases:
    if case.find("skipped") is not None:  # ctest marks a skipped test <skipped message="..."/>
        skipped[reason(case) or "other (see the test's output)"] += 1
    elif case.find("failure") is not None and reason(case):
        failed[reason(case)] += 1
if not skipped:
    print(f"ctest: {len(cases)} tests, none skipped")
else:
    print(f"ctest: {len(cases)} tests, {sum(skipped.values())} skipped; why (README, 'Test data', "
          "says where the data is):")
for why, n in skipped.most_common():
    print(f"  {n} x {why}")
if failed:
    print(f"ctest: {sum(failed.values())} failed for missing data (NVDRA_REQUIRE_DATA=1):")
for why, n in failed.most_common():
    print(f"  {n} x {why}")

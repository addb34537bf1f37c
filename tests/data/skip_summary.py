#!/usr/bin/env python3
"""One line after ctest: how many tests ran and were skipped, then why, once per reason.

Usage: skip_summary.py JUNIT_XML (ctest --output-junit). A skipped test's reason is the
"test data missing: ..." line it printed (tests/data/test_data.h), else "other".
"""
import collections
import re
import sys
import xml.etree.ElementTree as ET

try:
    cases = ET.parse(sys.argv[1]).getroot().iter("testcase")
except (OSError, ET.ParseError) as e:
    sys.exit(f"skip_summary: no ctest results: {e}")
total = 0
reasons = collections.Counter()
for case in cases:
    total += 1
    if case.find("skipped") is None:  # ctest marks a skipped test <skipped message="..."/>
        continue
    out = case.findtext("system-out") or ""
    found = re.search(r"test data missing: .*", out)
    reasons[found.group(0).strip() if found else "other (see the test's output)"] += 1
skipped = sum(reasons.values())
if not skipped:
    print(f"ctest: {total} tests, none skipped")
    sys.exit(0)
print(f"ctest: {total} tests, {skipped} skipped; why (README, 'Test data', says where the data is):")
for reason, n in reasons.most_common():
    print(f"  {n} x {reason}")

#!/bin/sh
# The series' qtests (tests/qtest/ in qemu/), built and run against the
# build tree's QEMU: access-rate-test (boot-sector guests under TCG; the
# tracker's tcg and dirty-log backends against exact page counts, and
# range errors).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
B=$top/qemu/build
for t in access-rate-test; do
    ninja -C "$B" "tests/qtest/$t" > /dev/null
    (cd "$B" && QTEST_QEMU_BINARY=./qemu-system-x86_64 "./tests/qtest/$t" --verbose)
done

#!/bin/sh
# The series' own unit tests (tests/unit/ in qemu/), built and run.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
B=$top/qemu/build
for t in test-access-window test-adaptive-model; do
    ninja -C "$B" "tests/unit/$t" > /dev/null
    "$B/tests/unit/$t"
done

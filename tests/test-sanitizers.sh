#!/bin/sh
# The series' unit tests and qtests under AddressSanitizer and
# UndefinedBehaviorSanitizer (qemu/build-san, scripts/build-qemu-san): any
# report fails the test.  The qtests run the sanitized QEMU: the tracker
# with each backend, and migrations with the adaptive capability.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
B=$top/qemu/build-san
"$top/scripts/build-qemu-san" > "$top/out/build-qemu-san.log" 2>&1 || {
    tail -30 "$top/out/build-qemu-san.log"; exit 1; }
# halt on the first report of either; leaks are reported for the unit
# tests (our code only)
export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
for t in test-access-window test-adaptive-model; do
    echo "== tests/unit/$t"
    "$B/tests/unit/$t"
done
# QEMU itself leaks at exit in code that is not the series' (glib caches,
# devices never finalized): no leak check for the QEMU processes
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
cd "$B"
echo "== tests/qtest/access-rate-test"
QTEST_QEMU_BINARY=./qemu-system-x86_64 ./tests/qtest/access-rate-test
echo "== tests/qtest/migration-test: the adaptive tests, plain pre- and post-copy"
. "$top/tests/adaptive-qtests.sh"
paths=$adaptive_qtest_paths
QTEST_QEMU_BINARY=./qemu-system-x86_64 ./tests/qtest/migration-test $paths \
    -p /x86_64/migration/precopy/unix/plain \
    -p /x86_64/migration/postcopy/plain
echo "sanitizers: clean"

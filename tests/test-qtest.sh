#!/bin/sh
# The series' qtests (tests/qtest/ in qemu/), built and run against the
# build tree's QEMU: access-rate-test (boot-sector guests under TCG; the
# tracker's tcg and dirty-log backends against exact page counts, and
# range errors) and migration-test's /migration/adaptive/ tests (the
# capability's choice for boot-block readers, writers and a mixed guest,
# parameters and tracker commands while measuring, post-copy recovery).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
B=$top/qemu/build
for t in access-rate-test migration-test; do
    ninja -C "$B" "tests/qtest/$t" > /dev/null
done
(cd "$B" && QTEST_QEMU_BINARY=./qemu-system-x86_64 ./tests/qtest/access-rate-test --verbose)
. "$top/tests/adaptive-qtests.sh"
paths=$adaptive_qtest_paths
(cd "$B" && QTEST_QEMU_BINARY=./qemu-system-x86_64 ./tests/qtest/migration-test --verbose $paths)

#!/bin/sh
# Every patch of the series passes QEMU's scripts/checkpatch.pl without
# errors (warnings are printed), and the series is in sync with qemu/.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
fail=0
while read -r p; do
    out=$("$top/qemu/scripts/checkpatch.pl" -q "$top/patches/$p" 2>&1) || true
    if printf '%s\n' "$out" | grep -q '^ERROR'; then
        echo "not ok - $p"; printf '%s\n' "$out"; fail=1
    else
        echo "ok - $p: $(printf '%s\n' "$out" | grep '^total' || echo clean)"
    fi
done < "$top/patches/series"
"$top/scripts/check-patch-sync" || fail=1
exit $fail

#!/bin/sh
# Every patch of both series passes its checkpatch.pl without errors
# (warnings are printed): QEMU's for patches/, the kernel's (from the
# kernel tree .cache/linux, made by scripts/prepare-linux) for
# linux-kvm-patches/.  Both series are in sync with their trees.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
fail=0
check_series() { # checkpatch dir [options]
    cp=$1 dir=$2
    shift 2
    while read -r p; do
        out=$("$cp" "$@" "$dir/$p" 2>&1) || true
        if printf '%s\n' "$out" | grep -q '^ERROR'; then
            echo "not ok - $p"; printf '%s\n' "$out"; fail=1
        else
            echo "ok - $p: $(printf '%s\n' "$out" | grep '^total' || echo clean)"
        fi
    done < "$dir/series"
}
check_series "$top/qemu/scripts/checkpatch.pl" "$top/patches" -q
"$top/scripts/check-patch-sync" || fail=1

"$top/scripts/prepare-linux" >/dev/null || fail=1
check_series "$top/.cache/linux/scripts/checkpatch.pl" \
    "$top/linux-kvm-patches" -q --no-tree --strict
"$top/scripts/check-kvm-patch-sync" || fail=1
exit $fail

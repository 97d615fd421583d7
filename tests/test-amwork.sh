#!/bin/sh
# The guest workload's integrity check, run on the host: it passes on an
# untouched region and fails on a corrupted one (so it can fail).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cc -O2 -Wall -Wextra -Werror -o "$tmp/amwork" "$top/guest/amwork.c"
fail=0

check() { # name expected-regex file
    if grep -Eq "$2" "$3"; then
        echo "ok - $1"
    else
        echo "not ok - $1"; sed 's/^/#   /' "$3"; fail=1
    fi
}

for w in "write 4" "read 4" "mixed 2 4 4" "hold 4" "pages 100 write"; do
    "$tmp/amwork" -s 0.5 $w > "$tmp/out" 2>&1
    check "amwork $w verifies OK" 'AMWORK VERIFY .* OK$' "$tmp/out"
done

# SIGUSR1 verifies while running; SIGUSR2 corrupts a word of a held region.
"$tmp/amwork" hold 4 > "$tmp/out" 2>&1 &
pid=$!
sleep 0.3
kill -USR1 $pid; sleep 0.3
kill -USR2 $pid; sleep 0.3
kill -USR1 $pid; sleep 0.3
kill -TERM $pid; wait $pid || true
check "verify on SIGUSR1 while running" 'VERIFY .* OK$' "$tmp/out"
check "a corrupted word is detected" 'VERIFY .* FAIL bad=1 first=512' "$tmp/out"

if "$tmp/amwork" bogus 2>/dev/null; then
    echo "not ok - bad arguments rejected"; fail=1
else
    echo "ok - bad arguments rejected"
fi
exit $fail

#!/bin/sh
# scripts/check-patch-sync, export-patches and prepare-qemu on a scratch
# tree (QEMU_DIR/PATCH_DIR point away from the real qemu/ and patches/):
#  - fails on an uncommitted change and on an unexported commit,
#  - passes after export, and re-exporting rewrites no file,
#  - prepare-qemu refuses to touch a tree with unexported work.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export QEMU_DIR="$tmp/qemu" PATCH_DIR="$tmp/patches"
mkdir -p "$QEMU_DIR" "$PATCH_DIR"
: > "$PATCH_DIR/series"
g() { git -C "$QEMU_DIR" -c user.name=t -c user.email=t@t "$@"; }
g init -q
echo base > "$QEMU_DIR/file.c"
g add file.c
g commit -q -m base
g tag debian-base
fail=0
expect() { # name want(0|1) cmd...
    name=$1 want=$2; shift 2
    if "$@" > "$tmp/log" 2>&1; then got=0; else got=1; fi
    if [ $got = "$want" ]; then
        echo "ok - $name"
    else
        echo "not ok - $name (exit $got, wanted $want)"
        sed 's/^/#   /' "$tmp/log"; fail=1
    fi
}
sync=$top/scripts/check-patch-sync

expect "in sync on a clean base" 0 "$sync"
echo change >> "$QEMU_DIR/file.c"
expect "uncommitted change fails" 1 "$sync"
grep -q 'uncommitted changes' "$tmp/log" || { echo "not ok - names the change"; fail=1; }
echo new > "$QEMU_DIR/new.c"
g add new.c
g commit -q -a -m "first change"
expect "unexported commit fails" 1 "$sync"
grep -q '0001-first-change.patch' "$tmp/log" || { echo "not ok - names the commit"; fail=1; }
expect "prepare-qemu refuses to drop unexported work" 1 "$top/scripts/prepare-qemu"
grep -q 'refusing' "$tmp/log" || { echo "not ok - refusal is explained"; fail=1; }
g log --oneline | grep -q 'first change' || { echo "not ok - commit survived"; fail=1; }
expect "export" 0 "$top/scripts/export-patches"
expect "in sync after export" 0 "$sync"
before=$(ls -l --time-style=+%s.%N "$PATCH_DIR")
sleep 1.1
expect "re-export" 0 "$top/scripts/export-patches"
grep -q 'wrote' "$tmp/log" && { echo "not ok - re-export rewrote a file"; fail=1; }
[ "$before" = "$(ls -l --time-style=+%s.%N "$PATCH_DIR")" ] &&
    echo "ok - re-export changed no file" ||
    { echo "not ok - re-export changed files"; fail=1; }
g commit -q --amend -m "first change, reworded"
expect "amended commit is out of sync" 1 "$sync"
expect "export after amend" 0 "$top/scripts/export-patches"
[ "$(cat "$PATCH_DIR/series")" = "0001-first-change-reworded.patch" ] &&
    [ ! -e "$PATCH_DIR/0001-first-change.patch" ] &&
    echo "ok - stale patch file removed, series updated" ||
    { echo "not ok - series after amend"; fail=1; }
expect "prepare-qemu: nothing to do when in sync" 0 "$top/scripts/prepare-qemu"
exit $fail

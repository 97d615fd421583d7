# Shared settings for the scripts; sourced, not run.
# shellcheck shell=sh
TOP=$(cd "$(dirname "$0")/.." && pwd)
QEMU_DIR=${QEMU_DIR:-$TOP/qemu}
PATCH_DIR=${PATCH_DIR:-$TOP/patches}
CACHE_DIR=${CACHE_DIR:-$TOP/.cache}
OUT_DIR=${OUT_DIR:-$TOP/out}
QEMU_SRC_PKG=qemu
QEMU_SRC_VERSION=1:10.0.13+ds-0+deb13u1
BASE_TAG=debian-base
# Identity and dates used for commits we create in qemu/, so that the base
# commit and the applied series are reproducible across machines.
GIT_IDENT_NAME="Adaptive Migration Build"
GIT_IDENT_EMAIL="build@adaptive-migration.invalid"
BASE_DATE="2025-01-01T00:00:00Z"

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# Shared settings for the scripts; sourced, not run.
# shellcheck shell=sh
TOP=$(cd "$(dirname "$0")/.." && pwd)
QEMU_DIR=${QEMU_DIR:-$TOP/qemu}
PATCH_DIR=${PATCH_DIR:-$TOP/patches}
CACHE_DIR=${CACHE_DIR:-$TOP/.cache}
OUT_DIR=${OUT_DIR:-$TOP/out}
QEMU_SRC_PKG=qemu
QEMU_SRC_VERSION=1:10.0.13+ds-0+deb13u1
BASE_TAG=${BASE_TAG:-debian-base}
# Identity and dates used for commits we create in qemu/, so that the base
# commit and the applied series are reproducible across machines.
GIT_IDENT_NAME="Adaptive Migration Build"
GIT_IDENT_EMAIL="build@adaptive-migration.invalid"
BASE_DATE="2025-01-01T00:00:00Z"

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# The KVM series: Debian's linux-source-6.12 with linux-kvm-patches/ applied,
# in a git tree under .cache (generated, like qemu/).
LINUX_SRC_PKG=linux-source-6.12
LINUX_SRC_VERSION=6.12.95-1~bpo12+1
LINUX_TARBALL=/usr/src/linux-source-6.12.tar.xz
LINUX_DIR=${LINUX_DIR:-$CACHE_DIR/linux}
LINUX_PATCH_DIR=${LINUX_PATCH_DIR:-$TOP/linux-kvm-patches}
LINUX_BASE_TAG=debian-6.12.95

#!/bin/sh
# Idempotent host set-up: apt sources and every package the project needs,
# all from Debian's archive, by name.
#
#  - deb-src for trixie, to get Debian's qemu source package;
#  - bookworm-backports, for meson >= 1.5 and the Linux 6.12 packages.
#
# Run as root.  Re-running changes nothing once done.
set -eu

STAMP_DIR=${STAMP_DIR:-/var/lib/adaptive-migration}
LIST=/etc/apt/sources.list.d/adaptive-migration.sources

if [ "$(id -u)" != 0 ]; then
    echo "setup-host: must run as root (apt-get install)" >&2
    exit 1
fi

want_list='Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg'

changed=0
if [ ! -f "$LIST" ] || [ "$(cat "$LIST")" != "$want_list" ]; then
    printf '%s\n' "$want_list" > "$LIST"
    changed=1
fi

mkdir -p "$STAMP_DIR"
if [ $changed = 1 ] || [ ! -f "$STAMP_DIR/apt-updated" ] ||
   [ -n "$(find "$STAMP_DIR/apt-updated" -mmin +720 2>/dev/null)" ]; then
    apt-get update -q
    touch "$STAMP_DIR/apt-updated"
fi

# Build dependencies of the x86_64-softmmu QEMU we configure (a subset of
# Debian's qemu Build-Depends), the option ROM toolchain (gcc-multilib gives
# a 32-bit capable compiler), the guest (kernel + busybox), and test tools.
# pahole: BTF for the rebuilt KVM modules (make kvm-modules).
# ipxe-qemu: the NIC option ROMs of the q35 machine of the migration qtests.
# sqlite3: the database workload of the guest; iproute2: the emulated links
# of make bench (network namespaces, veth, tc).
PKGS="build-essential gcc-multilib git quilt dpkg-dev devscripts
      python3 python3-venv python3-setuptools python3-wheel
      ninja-build pkg-config flex bison
      libglib2.0-dev libpixman-1-dev zlib1g-dev libfdt-dev libslirp-dev
      libcap-ng-dev libattr1-dev libaio-dev liburing-dev libzstd-dev
      libnuma-dev
      seabios ipxe-qemu busybox-static cpio gzip xz-utils zstd kmod
      socat jq libjansson-dev python3-matplotlib
      libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
      redis-server redis-tools pahole sqlite3 iproute2"
BPO_PKGS="meson linux-image-6.12.95+deb12-amd64-unsigned"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

bmissing=""
for p in $BPO_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
        bmissing="$bmissing $p"
done
# meson from backports must be >= 1.5 even if bookworm's 1.0 is installed
if ! meson --version 2>/dev/null | awk -F. '{exit !($1 > 1 || ($1 == 1 && $2 >= 5))}'; then
    bmissing="$bmissing meson"
fi
if [ -n "$bmissing" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -t bookworm-backports $bmissing
fi
# The KVM series (make kvm-modules, make check-kvm) is built against this
# exact kernel: Debian's linux-source-6.12 of the same version as the
# installed kernel image (the series' base), and that kernel's headers trees
# (which pull in linux-kbuild-6.12.95+deb12 and gcc-12), all from
# bookworm-backports.  Pinned: bookworm-security carries newer
# linux-source-6.12 versions that an unpinned install would pick.
KVM_PKG_VERSION=6.12.95-1~bpo12+1
PINNED_PKGS="linux-source-6.12=$KVM_PKG_VERSION
             linux-headers-6.12.95+deb12-amd64=$KVM_PKG_VERSION
             linux-headers-6.12.95+deb12-common=$KVM_PKG_VERSION"
pmissing=""
for pv in $PINNED_PKGS; do
    [ "$(dpkg-query -W -f='${Status} ${Version}' "${pv%%=*}" 2>/dev/null)" = \
      "install ok installed ${pv#*=}" ] || pmissing="$pmissing $pv"
done
if [ -n "$pmissing" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        --allow-downgrades -t bookworm-backports $pmissing
fi
echo "setup-host: ok (meson $(meson --version))"

#!/bin/sh
# The KVM series' modules and selftests, tested nested under TCG
# (scripts/check-kvm; its exit status passes through: 0 pass, 1 fail,
# 77 skip when a prerequisite such as the kernel tree is missing).
top=$(cd "$(dirname "$0")/.." && pwd)
exec "$top/scripts/check-kvm" "$@"

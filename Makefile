# Adaptive live migration: patched QEMU (Debian's source + patches/),
# KVM patches, test guest, harness, tests.  Run as root on Debian bookworm.
#
#   make demo     set up everything, then migrate the test guest
#   make check    set up everything, then run all tests
#   make kvm-modules  build the KVM modules + selftests of .cache/linux into out/kvm
#   make check-kvm    test them nested: Debian's kernel under TCG loads them,
#                     runs the selftests and the patched QEMU with -accel kvm
#
# Every target is idempotent.

SHELL := /bin/sh
TOP := $(CURDIR)
STAMP := /var/lib/adaptive-migration

.PHONY: all setup qemu build guest gang patches check-patch-sync demo check \
        bench bench-quick bench-libvirt bench-gang bench-tracker bench-decision-cost soak fuzz kvm-modules check-kvm bench-kvm linux kvm-patches \
        clean distclean help

all: build guest ## build QEMU and the test guest

help: ## this list
	@awk -F':.*## ' '/^[a-z-]+:.*## / { printf "  make %-20s %s\n", $$1, $$2 }' Makefile

setup: ## install the Debian packages and apt sources the project needs
	scripts/setup-host.sh

# Create qemu/ from Debian's source and apply patches/ (refuses to destroy
# work that is not exported).
qemu: setup ## create qemu/ from Debian's source with patches/ applied
	scripts/prepare-qemu

build: qemu ## build qemu/ (x86_64-softmmu)
	scripts/build-qemu

guest: setup ## build the test guest (kernel + busybox initramfs + amwork)
	scripts/build-guest

# The gang coordinator (C, QMP over unix sockets, jansson).
gang: setup out/amgang ## build the gang coordinator out/amgang

out/amgang: gang/amgang.c
	mkdir -p out
	$(CC) -O2 -Wall -Wextra -Werror -o $@ gang/amgang.c -ljansson -lvirt -lvirt-qemu -lm

# Export the commits in qemu/ since the base into patches/.
patches: ## export the commits of qemu/ into patches/
	scripts/export-patches

check-patch-sync: ## check that qemu/ and patches/ hold the same series
	scripts/check-patch-sync

demo: build guest gang ## migrate a read-heavy and a write-heavy guest by pre-copy, post-copy, adaptive
	scripts/demo

check: build guest gang linux ## run every test (tests/run)
	tests/run

# Every scheme (fixed, the operators' rules, adaptive) on every workload
# over emulated links (data centre, LAN, WAN; scaled to TCG), with the
# per-cell oracle and regrets: out/bench/link/ (progress on stderr).
bench: build guest gang ## the emulated-link benchmark, whole matrix (about 60 min): out/bench/link/
	scripts/bench-link

# A small subset of it, in a few minutes: out/bench/link-quick/.
bench-quick: build guest ## a subset of it (a few minutes): out/bench/link-quick/
	scripts/bench-link --quick

# The earlier gang bench over local sockets: the paper's four VMs, then
# the redis set (out/bench/paper/, out/bench/redis/).
bench-libvirt: build guest gang ## the benchmark's libvirt workload set alone (two libvirt hosts, ~12 min)
	scripts/bench-link --workload libvirt4 --out out/bench/link-libvirt

bench-gang: build guest gang ## the earlier gang bench over local sockets
	scripts/bench-gang --workset paper
	scripts/bench-gang --workset redis

# Guest throughput with the access-rate tracker on vs off (a ratio).
bench-tracker: build guest ## guest throughput with the access-rate tracker on vs off
	scripts/bench-tracker

# Long runs of issue 13's tests: 30 adaptive migrations back and forth
# (RSS and fds printed per migration), and the monitor fuzzer over five
# seeds (make check runs short versions of both).
soak: build guest ## 30 adaptive migrations back and forth, RSS and fds per migration
	SOAK_N=30 tests/test-soak.py

fuzz: build guest ## hostile QMP/HMP input, 5 seeds x 4000 cases
	for seed in 1 2 3 4 5; do \
	    scripts/fuzz-monitor --seed $$seed --cases 4000 || exit 1; \
	done

# What the adaptive decision's page sample costs the source (time, RSS).
bench-decision-cost: build guest ## the decision's page sample: time and source RSS
	scripts/bench-decision-cost

# The KVM modules (kvm.ko, kvm-amd.ko, kvm-intel.ko) and the KVM selftests
# of a kernel tree (default .cache/linux, or KVM_TREE=...) for Debian's
# installed 6.12 kernel, into out/kvm.  KVM_SELFTESTS=... picks the selftests.
kvm-modules: linux ## build the KVM modules and selftests of .cache/linux into out/kvm
	scripts/build-kvm-modules $(KVM_TREE)

# Those modules tested in a TCG guest with nested SVM (exit 77: skipped):
# the selftest, the scan-cost benchmark, and the patched QEMU with
# -accel kvm whose tracker must tell a reading guest from a writing one.
check-kvm: build guest linux ## test them nested (TCG guest with SVM): selftests, QEMU with -accel kvm
	scripts/check-kvm $(KVM_TREE)

# Only the scan-cost benchmark (ns per SPTE, KVM_GET_ACCESS_COUNTS next to
# KVM_CLEAR_DIRTY_LOG on a 256 MiB slot of 4 KiB mappings, one run).
bench-kvm: build guest linux ## the KVM scan-cost benchmark (ns per SPTE)
	KVM_L2_RUNS=0 KVM_SELFTESTS=x86_64/access_counts_test KVM_BENCH_ITERATIONS=10 \
	    scripts/check-kvm $(KVM_TREE)

# .cache/linux: Debian's linux-source-6.12 with linux-kvm-patches/ applied
# (refuses to destroy work that is not exported).
linux: setup ## create .cache/linux: Debian's 6.12 source with linux-kvm-patches/ applied
	scripts/prepare-linux

# Export the commits of .cache/linux into linux-kvm-patches/.
kvm-patches: ## export the commits of .cache/linux into linux-kvm-patches/
	scripts/export-kvm-patches

# Removes build products only; qemu/ is kept (it may hold your work).
clean: ## remove build products (keeps qemu/)
	rm -rf out qemu/build

# Removes qemu/ too, but only when everything in it is in patches/.
distclean: ## remove qemu/ and .cache/ too, if everything is exported
	scripts/check-patch-sync
	rm -rf out qemu .cache

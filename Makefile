# Adaptive live migration: patched QEMU (Debian's source + patches/),
# KVM patches, test guest, harness, tests.  Run as root on Debian bookworm.
#
#   make demo     set up everything, then migrate the test guest
#   make check    set up everything, then run all tests
#
# Every target is idempotent.

SHELL := /bin/sh
TOP := $(CURDIR)
STAMP := /var/lib/adaptive-migration

.PHONY: all setup qemu build guest gang patches check-patch-sync demo check \
        bench bench-tracker clean distclean help

all: build guest

help:
	@sed -n 's/^#   //p' Makefile

setup:
	scripts/setup-host.sh

# Create qemu/ from Debian's source and apply patches/ (refuses to destroy
# work that is not exported).
qemu: setup
	scripts/prepare-qemu

build: qemu
	scripts/build-qemu

guest: setup
	scripts/build-guest

# The gang coordinator (C, QMP over unix sockets, jansson).
gang: setup out/amgang

out/amgang: gang/amgang.c
	mkdir -p out
	$(CC) -O2 -Wall -Wextra -Werror -o $@ gang/amgang.c -ljansson -lvirt -lvirt-qemu -lm

# Export the commits in qemu/ since the base into patches/.
patches:
	scripts/export-patches

check-patch-sync:
	scripts/check-patch-sync

demo: build guest gang
	scripts/demo

check: build guest gang
	tests/run

# The paper's four-VM experiment, scaled, then the redis workload set
# (table, CSV, PNG in out/bench/paper/ and out/bench/redis/).
bench: build guest gang
	scripts/bench-gang --workset paper
	scripts/bench-gang --workset redis

# Guest throughput with the access-rate tracker on vs off (a ratio).
bench-tracker: build guest
	scripts/bench-tracker

# Removes build products only; qemu/ is kept (it may hold your work).
clean:
	rm -rf out qemu/build

# Removes qemu/ too, but only when everything in it is in patches/.
distclean:
	scripts/check-patch-sync
	rm -rf out qemu .cache

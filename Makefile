# vfio-type1-rs: top-level entry points. See README.md.
#
#   make setup       install and cache the toolchain, kernel source, QEMU
#   make kernels     build (or reuse) the x86_64 and arm64 test kernels
#   make module      build vfio_iommu_type1_rs.ko for ARCH (default x86_64)
#   make selftests   build the kselftests for ARCH
#   make check       all tests, both arches, both backends
#   make run         set up, build and walk through the VFIO flow in a VM
#   make bench       MAP/UNMAP_DMA throughput, ours vs the C module (not a test)
#   make fuzz        differential fuzzing, C vs ours: SEEDS="1 2" or SEEDS=random:N, OPS=N
#   make kselftests-vfio   the kernel's own vfio kselftests, both backends
#   make check-clients     QEMU passing an edu device to a nested guest, both backends

ARCH ?= x86_64
SHELL := /bin/bash
SCRIPTS := $(CURDIR)/scripts

.PHONY: all setup kernels module selftests check run bench fuzz kselftests-vfio check-clients clean

all: module

setup:
	@$(SCRIPTS)/setup

kernels: setup
	@$(SCRIPTS)/build-kernel x86_64 >/dev/null
	@$(SCRIPTS)/build-kernel arm64 >/dev/null

module:
	@$(SCRIPTS)/build-module $(ARCH)

selftests:
	@$(SCRIPTS)/build-selftests $(ARCH)

check:
	@$(SCRIPTS)/check

run:
	@$(SCRIPTS)/demo

bench:
	@$(SCRIPTS)/bench

# SEEDS and OPS pass through the environment to scripts/fuzz.
fuzz: setup
	@SEEDS="$(SEEDS)" OPS="$(OPS)" $(SCRIPTS)/fuzz

kselftests-vfio: setup
	@$(SCRIPTS)/kselftests-vfio

check-clients: setup
	@$(SCRIPTS)/check-clients

clean:
	rm -rf out
	find . -name '*.o' -o -name '*.ko' -o -name '.*.cmd' -o -name '*.mod*' | grep -v '^./.git' | xargs rm -f
	rm -f Module.symvers modules.order rust/bindings_generated.rs

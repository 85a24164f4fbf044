# vfio-type1-rs: top-level entry points. See README.md.
#
#   make setup       install and cache the toolchain, kernel source, QEMU
#   make kernels     build (or reuse) the x86_64 and arm64 test kernels
#   make module      build vfio_iommu_type1_rs.ko for ARCH (default x86_64)
#   make selftests   build the kselftests for ARCH
#   make check       all tests, both arches, both backends (KERNEL=7.2 make check: on Linux 7.2)
#   make check-matrix  the whole suite on every supported kernel version
#   make run         set up, build and walk through the VFIO flow in a VM
#   make bench       MAP/UNMAP_DMA throughput, ours vs the C module (not a test)
#   make fuzz        differential fuzzing, C vs ours: SEEDS="1 2" or SEEDS=random:N, OPS=N
#   make kselftests-vfio   the kernel's own vfio kselftests, both backends
#   make study       the call chains below the backend, step by step, C vs ours
#                    (ARCH=arm64 unless given: ARCH=x86_64, ARCH=all)
#   make check-clients     QEMU passing an edu device to a nested guest, both backends
#   make check-dpdk        DPDK testpmd forwarding between two e1000e through vfio-pci, both backends (x86_64)
#   make mutants     mutation testing of rust/: each mutant of scripts/mutants.list
#                    must be killed by its tests (MUTANTS="id1 id2": a subset)

ARCH ?= x86_64
SHELL := /bin/bash
SCRIPTS := $(CURDIR)/scripts

.PHONY: all setup kernels module selftests check run bench fuzz kselftests-vfio check-clients check-dpdk check-matrix study mutants clean

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

# The study defaults to arm64 (SMMUv3), whatever ARCH defaults to above.
STUDY_ARCH := $(if $(filter command line environment,$(origin ARCH)),$(ARCH),arm64)
study:
	@$(SCRIPTS)/study $(STUDY_ARCH)

check-clients: setup
	@for a in $(or $(ARCHES),x86_64 arm64); do $(SCRIPTS)/check-clients $$a || exit 1; done
	@KERNEL_FLAVOUR=64k $(SCRIPTS)/check-clients arm64

check-dpdk: setup
	@$(SCRIPTS)/check-dpdk

check-matrix:
	@$(SCRIPTS)/check-matrix

# MUTANTS passes through the environment to scripts/mutants.
mutants: setup
	@MUTANTS="$(MUTANTS)" $(SCRIPTS)/mutants

clean:
	rm -rf out
	find . -name '*.o' -o -name '*.ko' -o -name '.*.cmd' -o -name '*.mod*' | grep -v '^./.git' | xargs rm -f
	rm -f Module.symvers modules.order rust/bindings_generated.rs

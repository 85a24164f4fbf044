#!/bin/sh
# Guest side of scripts/study (`make study`): the study flow (study.c) on
# the C vfio_iommu_type1 and on vfio-type1-rs in one boot, with the same
# kprobe events. Run in a VM booted with the C backend and our module
# copied in:
#
#   VM_WITH_RUST_MODULE=1 scripts/vm run --backend c -- ./selftests/run_study.sh
#
# Sets up the probes, runs the flow with the C module serving, insmods ours
# (the most recently registered backend serves new containers), runs it
# again, rmmods ours and removes the probes. Prints study's "STUDY|" lines
# (one STUDY|RUN ... STUDY|END block per backend) and exits non-zero if
# anything failed.
cd "$(dirname "$0")" || exit 1
ko=/vmtest/vfio_iommu_type1_rs.ko
c_mod=vfio_iommu_type1
rs_mod=vfio_iommu_type1_rs

[ -f "$ko" ] || { echo "STUDY|ERROR $ko missing (VM_WITH_RUST_MODULE=1?)"; exit 1; }
[ -d /sys/module/$c_mod ] || { echo "STUDY|ERROR the C module is not loaded"; exit 1; }
# Kernel messages on the console would cut into the output lines.
dmesg -n 1

rc=0
./study probes || exit 1
./study run $c_mod || rc=1
if insmod "$ko"; then
	./study run $rs_mod || rc=1
	rmmod $rs_mod || { echo "STUDY|ERROR rmmod $rs_mod failed"; rc=1; }
else
	echo "STUDY|ERROR insmod $ko failed"
	rc=1
fi
./study clean || { echo "STUDY|ERROR the probes could not be removed"; rc=1; }
# What the kernel said meanwhile (warnings only).
dmesg | grep -E 'WARNING:|BUG:|Oops' | sed 's/^/STUDY|DMESG /'
exit $rc

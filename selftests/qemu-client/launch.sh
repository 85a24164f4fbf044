# Sourced by run_nested.sh (the client test) and vmstart.sh (the VM-start
# bench): find the edu device QEMU gets, start QEMU with it, read counters.

# Per-cpu counter deltas folded first, so the totals are exact.
vmstat() {
	echo 1 >/proc/sys/vm/stat_refresh 2>/dev/null
	awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat
}
now() { cut -d' ' -f1 /proc/uptime; }

# The edu device alone in its IOMMU group (vfio-pci bound): sets bdf and g.
find_edu() {
	bdf=
	for d in /sys/bus/pci/drivers/vfio-pci/0000:*; do
		g=$(basename "$(readlink "$d/iommu_group")")
		[ "$(ls "/sys/kernel/iommu_groups/$g/devices" | wc -l)" = 1 ] || continue
		bdf=${d##*/}
		return 0
	done
	return 1
}

# launch_qemu SERIAL-FILE QEMU-MEMORY-ARGS...: QEMU in the background with
# the edu passed through, booting payload.elf (which logs to SERIAL-FILE);
# sets qpid. QEMU's stderr (with its vfio trace lines) goes to /tmp/qemu.err.
# Needs bundle (the bundle directory), arch and bdf.
launch_qemu() {
	serial=$1
	shift
	case $arch in
	x86_64)
		QEMU_MODULE_DIR=$bundle/mod "$bundle"/lib/ld-linux-x86-64.so.2 --library-path "$bundle"/lib \
			"$bundle"/qemu-system-x86_64 -L "$bundle"/share -M pc -nodefaults -display none \
			-accel tcg,tb-size=32 "$@" -kernel "$bundle"/payload.elf \
			-device "vfio-pci,host=$bdf,romfile=" \
			-serial "file:$serial" -device isa-debug-exit,iobase=0xf4 -no-reboot \
			-trace vfio_listener_region_add_ram -trace vfio_listener_region_del \
			-trace vfio_region_mmap 2>/tmp/qemu.err & ;;
	*)
		# highmem=off: ECAM and the PCI window below 4 GiB (so at most
		# 3 GiB of RAM); GICv2 for its GICv2m MSI frame (payload-arm64.c).
		QEMU_MODULE_DIR=$bundle/mod "$bundle"/lib/ld-linux-aarch64.so.1 --library-path "$bundle"/lib \
			"$bundle"/qemu-system-aarch64 -M virt,highmem=off,gic-version=2 -cpu cortex-a57 \
			-nodefaults -display none -accel tcg,tb-size=32 "$@" -kernel "$bundle"/payload.elf \
			-device "vfio-pci,host=$bdf,romfile=" \
			-serial "file:$serial" -no-reboot \
			-trace vfio_listener_region_add_ram -trace vfio_listener_region_del \
			-trace vfio_region_mmap 2>/tmp/qemu.err & ;;
	esac
	qpid=$!
}

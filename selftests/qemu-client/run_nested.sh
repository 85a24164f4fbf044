#!/bin/sh
# Guest side of scripts/check-clients: QEMU as the VMM inside the test VM.
# The distribution's qemu-system-x86_64 or qemu-system-aarch64 (bundled
# with its libraries by the host script) boots a second-level guest under
# TCG with the edu device that sits alone in its IOMMU group passed through
# (-device vfio-pci), on whichever backend the VM loaded. The guest is
# payload.elf (no OS): it runs a DMA round trip through the device into its
# own memory and reports on its serial line, then moves the device's BAR
# (as a guest OS may) and does it again; on arm64 it also takes the edu's
# MSI (raised by register and by each DMA completion). Two cases: guest RAM
# from anonymous memory (QEMU's default) and from hugetlbfs (2 MiB pages,
# also on 64 KiB-page kernels, prealloc: how DPDK/NFV hosts run it); QEMU
# is stopped with SIGTERM in the first and SIGKILL (a crashing VMM) in the
# second.
#
# What is checked (TAP):
#   - the payload's DMA round trip passes (guest RAM -> edu -> the test
#     VM's IOMMU -> the backend's mapping of QEMU's RAM -> back);
#   - QEMU's MAP_DMA calls (counted by a kprobe on the vfio container's
#     ioctl, so the same census works for both backends) mapped the guest
#     RAM holding the payload, and the edu BAR for peer-to-peer; when the
#     guest moves the BAR, QEMU unmaps it at the old address and maps it
#     at the new one;
#   - QEMU's locked memory while it runs covers the RAM it pinned;
#   - (arm64) the payload took its 5 MSIs, and the test VM's vfio-msi
#     interrupt of the device counted at least as many;
#   - after QEMU exits: every pin released, module refcount 0, (ours) no
#     container left in debugfs, no kernel warning.
# Prints "# map CASE ..."/"# unmap CASE ..." census lines (iova, size,
# flags) and "# time ..." lines for the host script, which compares C and
# ours.
#   sh run_nested.sh        (cwd: the bundle directory)
cd "$(dirname "$0")" || exit 1
bundle=$(pwd)
arch=$(uname -m)
# Where each board loads payload.elf (its buffers lie in the next 64 KiB).
case $arch in
x86_64) payload_at=$((0x100000)) ;;
*) payload_at=$((0x40100000)) ;;
esac
T=/sys/kernel/tracing
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $*"; }
check() { d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

. ./launch.sh
echo "TAP version 13"
# The edu device alone in its group.
find_edu || { echo "Bail out! no edu device alone in its group"; exit 1; }
echo "# passing $bdf (group $g) to QEMU; backend $VFIO_BACKEND_MODULE"

# The census: every MAP_DMA (cmd 0x3b71) and UNMAP_DMA (0x3b72) on a vfio
# container, with the user's struct read at entry. MAP is {argsz, flags,
# vaddr, iova, size}, UNMAP {argsz, flags, iova, size}.
census=0
if [ -w $T/kprobe_events ]; then
	echo 'p:clients/container_ioctl vfio_fops_unl_ioctl cmd=$arg2:x32 flags=+u4($arg3):x32 f8=+u8($arg3):x64 f16=+u16($arg3):x64 f24=+u24($arg3):x64' >>$T/kprobe_events &&
		echo 'cmd == 0x3b71 || cmd == 0x3b72' >$T/events/clients/container_ioctl/filter && census=1
fi
[ "$census" = 1 ] || echo "# no kprobe events in this kernel: the MAP_DMA census is skipped"
# Enabling an event also turns on comm recording (record-cmd), which
# patches the sched_wakeup/sched_switch tracepoints in and out; Debian's
# kernel under TCG oopsed once on that patching (int3 in ttwu_do_activate,
# selftests/dpdk-client/run_dpdk.sh): off while the census runs.
record_cmd=$(cat $T/options/record-cmd 2>/dev/null)
[ -z "$record_cmd" ] || echo 0 >$T/options/record-cmd

# run_case NAME MIB SIGNAL QEMU-MEMORY-ARGS...: one QEMU run and its checks;
# QEMU is stopped with SIGNAL (TERM: an orderly exit; KILL: a VMM crash,
# the kernel closes its fds).
run_case() {
	name=$1 mib=$2 sig=$3
	shift 3
	echo "# case $name: $mib MiB of guest RAM ($*)"
	if [ "$census" = 1 ]; then
		echo >$T/trace
		echo 1 >$T/events/clients/container_ioctl/enable
	fi
	acq0=$(vmstat nr_foll_pin_acquired)
	rel0=$(vmstat nr_foll_pin_released)
	dmesg -c >/dev/null
	serial=/tmp/l2-serial.log
	: >$serial
	t0=$(now)
	launch_qemu $serial "$@"
	# Wait for the payload's verdict (or QEMU's end).
	verdict=
	for i in $(seq 1 480); do
		verdict=$(grep -m1 '^payload: \(PASS\|FAIL\)' $serial)
		[ -n "$verdict" ] && break
		kill -0 $qpid 2>/dev/null || break
		sleep 1
	done
	t1=$(now)
	sed 's/^/# guest: /' $serial
	sed -n 's/^vfio_/# qemu trace: vfio_/p' /tmp/qemu.err | head -40
	echo "# time from QEMU start to the payload's verdict ($name): $(elapsed "$t0" "$t1") s"
	case $verdict in
	"payload: PASS"*) ok "$name: nested guest's DMA round trips through the passed-through edu, before and after it moved the BAR" ;;
	*) not_ok "$name: nested guest's DMA round trip (verdict: '${verdict:-none}'; QEMU says: $(grep -v '^vfio_' /tmp/qemu.err | tail -3 | tr '\n' ' '))" ;;
	esac

	# While QEMU runs: it pinned its RAM and has it accounted as locked
	# memory (type1 charges locked_vm for what it pins).
	lck=$(awk '/^VmLck:/ { print $2 }' /proc/$qpid/status 2>/dev/null)
	echo "# QEMU VmLck while running: ${lck:-?} kB; pins held: $(($(vmstat nr_foll_pin_acquired) - acq0 - $(vmstat nr_foll_pin_released) + rel0))"
	check "$name: QEMU's locked memory covers its $mib MiB of guest RAM (VmLck ${lck:-?} kB)" [ "${lck:-0}" -ge $((mib * 1024)) ]
	if [ "$arch" != x86_64 ]; then
		# The MSIs: the payload's own count, and this VM's count of the
		# vfio-msi interrupt QEMU asked for (freed when QEMU exits).
		taken=$(sed -n 's/^payload: MSIs taken: \([0-9]*\).*/\1/p' $serial | head -1)
		seen=$(awk -v d="$bdf" '$0 ~ "vfio-msi.*" d { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }' /proc/interrupts)
		echo "# MSIs ($name): the payload took ${taken:-none}; the test VM's vfio-msi for $bdf counted $seen"
		check "$name: the nested guest took the edu's 5 MSIs (register, 4 DMA completions; ${taken:-none} taken)" [ "${taken:-0}" = 5 ]
		check "$name: every MSI came through the test VM's IOMMU to vfio-pci ($seen counted)" [ "$seen" -ge 5 ]
	fi

	kill -$sig $qpid 2>/dev/null
	wait $qpid
	qrc=$?
	t2=$(now)
	echo "# QEMU exited with status $qrc, $(elapsed "$t1" "$t2") s after SIG$sig"

	if [ "$census" = 1 ]; then
		echo 0 >$T/events/clients/container_ioctl/enable
		# One line per call: kind, iova, size, flags (MAP's vaddr is left
		# out: it differs between runs).
		awk -v c="$name" '/container_ioctl:/ {
			for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			if (v["cmd"] == "0x3b71") printf "# map %s iova=%s size=%s flags=%s\n", c, v["f16"], v["f24"], v["flags"]
			else printf "# unmap %s iova=%s size=%s flags=%s\n", c, v["f8"], v["f16"], v["flags"]
		}' $T/trace >/tmp/census
		cat /tmp/census
		echo "# census ($name): $(grep -c '^# map ' /tmp/census) MAP_DMA, $(grep -c '^# unmap ' /tmp/census) UNMAP_DMA"
		# The payload and its buffers must lie inside one mapping.
		bar=$(sed -n 's/.*edu at .*BAR0 \(0x[0-9a-f]*\).*/\1/p' $serial | head -1)
		moved=$(sed -n 's/.*BAR0 moved to \(0x[0-9a-f]*\).*/\1/p' $serial | head -1)
		ram=0 p2p=0 p2p_moved=0 p2p_gone=0
		while read -r _ kind _ iova size _; do
			iova=$((${iova#iova=})) size=$((${size#size=}))
			if [ "$kind" = map ]; then
				[ "$iova" -le $payload_at ] && [ $((iova + size)) -ge $((payload_at + 0x10000)) ] && ram=1
				[ -n "$bar" ] && [ "$iova" = $((bar)) ] && [ "$size" = $((0x100000)) ] && p2p=1
				[ -n "$moved" ] && [ "$iova" = $((moved)) ] && [ "$size" = $((0x100000)) ] && p2p_moved=1
			elif [ -n "$bar" ] && [ "$iova" = $((bar)) ] && [ "$size" = $((0x100000)) ]; then
				p2p_gone=1
			fi
		done </tmp/census
		check "$name: QEMU mapped the guest RAM holding the payload (iova $(printf 0x%x $payload_at))" [ "$ram" = 1 ]
		check "$name: QEMU mapped the edu BAR (${bar:-?}, 1 MiB) for peer-to-peer" [ "$p2p" = 1 ]
		check "$name: when the guest moved the BAR, QEMU unmapped it at ${bar:-?} and mapped it at ${moved:-?}" \
			[ "$p2p_gone" = 1 -a "$p2p_moved" = 1 ]
	fi

	# After QEMU: nothing pinned, nothing held.
	acq=$(($(vmstat nr_foll_pin_acquired) - acq0))
	rel=$(($(vmstat nr_foll_pin_released) - rel0))
	check "$name: every page QEMU's mappings pinned is released ($acq acquired, $rel released)" \
		[ "$acq" = "$rel" -a "$acq" -gt 0 ]
	refcnt=$(cat /sys/module/$VFIO_BACKEND_MODULE/refcnt)
	check "$name: backend module refcount back to 0 ($refcnt)" [ "$refcnt" = 0 ]
	if [ "$VFIO_BACKEND" = rust ]; then
		left=$(head -1 /sys/kernel/debug/vfio_iommu_type1_rs/containers)
		check "$name: no container left in debugfs ($left)" [ "$left" = "0 containers" ]
	fi
	trouble=$(dmesg | grep -E 'WARNING:|BUG:|Oops|DMAR:.*fault|Unable to handle|arm-smmu-v3.*event')
	check "$name: no kernel warning or IOMMU fault during the run" [ -z "$trouble" ]
	[ -n "$trouble" ] && echo "$trouble" | sed 's/^/# /'
}

run_case anon 32 TERM -m 32
# 2 MiB huge pages on every kernel (on 64 KiB pages the default size is
# 512 MiB; 2 MiB is the contiguous-PTE size there).
hp=/sys/kernel/mm/hugepages/hugepages-2048kB
echo 40 >$hp/nr_hugepages
free=$(cat $hp/free_hugepages)
mkdir -p /tmp/hugetlb-2m
mount -t hugetlbfs -o pagesize=2M none /tmp/hugetlb-2m
if [ "${free:-0}" -ge 32 ]; then
	run_case hugetlb 64 KILL -m 64 -object memory-backend-file,id=ram,size=64M,mem-path=/tmp/hugetlb-2m,share=on,prealloc=on \
		-machine memory-backend=ram
	# The huge pages are free again once QEMU is gone.
	free2=$(cat $hp/free_hugepages)
	check "hugetlb: every huge page is free again ($free2 of $free)" [ "$free2" = "$free" ]
else
	n=$((n + 1))
	echo "ok $n hugetlb: nested guest on hugetlbfs # SKIP only ${free:-0} free 2 MiB pages"
fi
umount /tmp/hugetlb-2m
echo 0 >$hp/nr_hugepages
[ "$census" = 1 ] && echo '-:clients/container_ioctl' >>$T/kprobe_events
[ -z "$record_cmd" ] || echo "$record_cmd" >$T/options/record-cmd
echo "1..$n"
[ "$failed" = 0 ]

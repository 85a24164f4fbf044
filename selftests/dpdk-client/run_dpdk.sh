#!/bin/sh
# Guest side of scripts/check-dpdk: DPDK moving packets through the backend.
# Debian's dpdk-testpmd (bundled with its libraries and three PMD plugins by
# the host script) drives the two e1000e NICs of scripts/vm --nics 2 through
# vfio-pci (net_e1000_em, poll mode) on whichever backend the VM loaded,
# with IOVA as VA and its memory in 2 MiB huge pages. QEMU puts both NICs
# on one hub, so what port 0 sends port 1 receives and the other way round;
# testpmd forwards in io mode (port 0 -> port 1, port 1 -> port 0) after
# sending one burst from each port first (start tx_first), so the bursts go
# round and round for FWD_SECS seconds (default 5), then stops and quits.
# testpmd is driven through its command line (-i) from a FIFO. Two cases,
# one testpmd run each:
#   dynamic: EAL's default, memory taken from the huge pages as the heap
#     grows (and given back as it shrinks): a MAP_DMA per 2 MiB page as
#     EAL's memory event callback adds it, an UNMAP_DMA as it goes;
#   prealloc: --socket-mem 64, 64 MiB taken at start (how DPDK is mostly
#     deployed), mapped before the first device is set up.
#
# On a kernel without file locking (our test kernel: no
# CONFIG_FILE_LOCKING, flock(2) is ENOSYS) EAL cannot lock a hugetlbfs
# directory, so the guest's hugetlbfs mount is taken away and EAL, in
# --in-memory mode, takes its huge pages from memfd_create(MFD_HUGETLB)
# instead; on a kernel with it (Debian's) from the hugetlbfs mount. EAL
# needs no socket: --in-memory (no shared config, so no IPC socket) and
# --no-telemetry.
#
# What is checked (TAP):
#   - testpmd probed both NICs with net_e1000_em through vfio-pci and
#     reached its prompt, and IOVA as VA was selected;
#   - both ports' link state change interrupts (MSI-X through vfio-pci,
#     to an eventfd; the queues themselves are polled) reached testpmd;
#   - packets moved: the NICs' own counters (show port stats all, read
#     after stop) say port 0 sent exactly what port 1 received and port 1
#     sent exactly what port 0 received (the hub loses nothing; the bursts
#     still in flight at stop sit in the receiving NIC's ring, already
#     counted as received), at least 1000 each way;
#   - no RX/TX errors, no RX-missed, no RX-nombuf, nothing dropped in
#     testpmd's forwarding;
#   - the census (a kprobe on the vfio container's ioctl, as in
#     qemu-client/run_nested.sh): DPDK mapped its memory with MAP_DMA,
#     every mapping with iova == vaddr (IOVA as VA) and a whole number of
#     2 MiB pages, and each UNMAP_DMA undoing one earlier MAP_DMA;
#   - while forwarding: testpmd's locked memory (VmLck; --no-mlockall, so
#     only what the backend charges) equals what it has mapped;
#   - after testpmd exits (status 0): every pin released, module refcount
#     0, (ours) no container left in debugfs, every huge page free again,
#     no kernel warning or DMAR fault.
# Prints "# map CASE ..."/"# unmap CASE ..." census lines (iova, size,
# flags), the port counters and "# time ..." lines for the host script,
# which compares the census of C and ours.
#   sh run_dpdk.sh        (cwd: the bundle directory)
cd "$(dirname "$0")" || exit 1
T=/sys/kernel/tracing
FWD_SECS=${FWD_SECS:-5}
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n $*"; }
skip() { n=$((n + 1)); echo "ok $n $1 # SKIP $2"; }
check() { d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
vmstat() {
	echo 1 >/proc/sys/vm/stat_refresh 2>/dev/null
	awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat
}
now() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# wait_prompts N SECONDS: until testpmd has shown its prompt N times (it
# writes the prompt straight away; the rest of its output is buffered
# until it exits), or died.
wait_prompts() {
	i=0
	while [ $i -lt "$2" ]; do
		[ "$(grep -o 'testpmd> ' /tmp/testpmd.log | wc -l)" -ge "$1" ] && return 0
		kill -0 $tpid 2>/dev/null || return 1
		sleep 1
		i=$((i + 1))
	done
	return 1
}

echo "TAP version 13"
nics=
for d in /sys/bus/pci/drivers/vfio-pci/0000:*; do
	[ "$(cat "$d/vendor"):$(cat "$d/device")" = 0x8086:0x10d3 ] && nics="$nics ${d##*/}"
done
set -- $nics
[ $# = 2 ] || { echo "Bail out! want 2 e1000e NICs on vfio-pci (scripts/vm --nics 2), have: ${nics:-none}"; exit 1; }
nic0=$1 nic1=$2
echo "# NICs $nic0 and $nic1 (groups $(basename "$(readlink /sys/bus/pci/devices/$nic0/iommu_group)") and $(basename "$(readlink /sys/bus/pci/devices/$nic1/iommu_group)")); backend $VFIO_BACKEND_MODULE; kernel $(uname -r)"

# Huge pages: 2 MiB, reserved at boot (scripts/check-dpdk: hugepages=N).
hp=/sys/kernel/mm/hugepages/hugepages-2048kB
hp_free0=$(cat $hp/free_hugepages)
if [ -e /proc/locks ]; then
	hpmode="hugetlbfs (/dev/hugepages)"
else
	umount /dev/hugepages 2>/dev/null
	hpmode="memfd (MFD_HUGETLB; no file locking in this kernel, hugetlbfs unmounted)"
fi
echo "# huge pages: $hp_free0 of $(cat $hp/nr_hugepages) 2 MiB pages free; EAL takes them from $hpmode"

# The census: every MAP_DMA (cmd 0x3b71) and UNMAP_DMA (0x3b72) on a vfio
# container, the user's struct read at entry. MAP is {argsz, flags, vaddr,
# iova, size}, UNMAP {argsz, flags, iova, size}.
census=0
if [ -w $T/kprobe_events ]; then
	echo 'p:dpdk/container_ioctl vfio_fops_unl_ioctl cmd=$arg2:x32 flags=+u4($arg3):x32 f8=+u8($arg3):x64 f16=+u16($arg3):x64 f24=+u24($arg3):x64' >>$T/kprobe_events &&
		echo 'cmd == 0x3b71 || cmd == 0x3b72' >$T/events/dpdk/container_ioctl/filter && census=1
fi
[ "$census" = 1 ] || echo "# no kprobe events in this kernel: the MAP_DMA census is skipped"
# No comm recording: with it, enabling and disabling the event registers
# and unregisters probes on the sched_switch/sched_wakeup tracepoints,
# text patching in the scheduler while testpmd's threads come and go; on
# Debian's kernel under TCG that oopsed once (int3 at the sched_wakeup
# site in ttwu_do_activate, both vCPUs, right after testpmd exited).
record_cmd=$(cat $T/options/record-cmd 2>/dev/null)
[ -z "$record_cmd" ] || echo 0 >$T/options/record-cmd

# run_case NAME EAL-ARGS...: one testpmd run and its checks.
run_case() {
	name=$1
	shift
	echo "# case $name: testpmd ${*:-(EAL's default memory)}"
	if [ "$census" = 1 ]; then
		echo >$T/trace
		echo 1 >$T/events/dpdk/container_ioctl/enable
	fi
	acq0=$(vmstat nr_foll_pin_acquired)
	rel0=$(vmstat nr_foll_pin_released)
	dmesg -c >/dev/null
	rm -f /tmp/cmds
	mkfifo /tmp/cmds
	t0=$(now)
	./lib/ld-linux-x86-64.so.2 --library-path ./lib ./dpdk-testpmd \
		-l 0-1 -n 1 --in-memory --no-telemetry --iova-mode=va "$@" \
		$(cat ./plugins) \
		-a "$nic0" -a "$nic1" -- \
		-i --forward-mode=io --nb-cores=1 --total-num-mbufs=2048 --no-mlockall \
		</tmp/cmds >/tmp/testpmd.log 2>&1 &
	tpid=$!
	exec 3>/tmp/cmds
	prompt=0
	wait_prompts 1 300 && prompt=1
	t1=$(now)
	echo "# time from testpmd start to its prompt ($name): $(elapsed "$t0" "$t1") s"
	check "$name: testpmd reached its prompt" [ "$prompt" = 1 ]

	locked=? mapped_now=? irqs=0:
	if [ "$prompt" = 1 ]; then
		echo "start tx_first" >&3
		sleep "$FWD_SECS"
		# While forwarding: what the backend charged as locked memory,
		# and what DPDK has mapped so far (MAPs less UNMAPs).
		locked=$(awk '/^VmLck:/ { print $2 }' /proc/$tpid/status)
		pins=$(($(vmstat nr_foll_pin_acquired) - acq0 - $(vmstat nr_foll_pin_released) + rel0))
		if [ "$census" = 1 ]; then
			mapped_now=$(awk '/container_ioctl:/ {
				for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
				if (v["cmd"] == "0x3b71") s += (v["f24"] + 0); else s -= (v["f16"] + 0)
			} END { print s / 1024 }' $T/trace)
		fi
		echo "# while forwarding ($name): testpmd VmLck ${locked:-?} kB, DPDK has $mapped_now kB mapped, $pins pages pinned"
		# The NICs' interrupts testpmd asked vfio-pci for (link state
		# change; the queues are polled), counted by this kernel.
		irqs=$(awk -v a="$nic0" -v b="$nic1" '$0 ~ "vfio.*(" a "|" b ")" {
			for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; k = k " " $NF } END { print s + 0 ":" k }' /proc/interrupts)
		echo "# while forwarding ($name): vfio interrupts of the NICs counted ${irqs%%:*} (${irqs#*:} )"
		echo "stop" >&3
		wait_prompts 3 60
		echo "show port stats all" >&3
		wait_prompts 4 60
	fi
	t2=$(now)
	echo "quit" >&3
	exec 3>&-
	wait $tpid
	trc=$?
	t3=$(now)
	echo "# time forwarding ($name): $(elapsed "$t1" "$t2") s; testpmd exited with status $trc, $(elapsed "$t2" "$t3") s after quit"
	[ "$census" = 1 ] && echo 0 >$T/events/dpdk/container_ioctl/enable
	grep -v '^ *$' /tmp/testpmd.log | sed "s/^/# testpmd ($name): /" | head -200
	check "$name: testpmd exited with status 0 after quit ($trc)" [ "$trc" = 0 ]
	# (Its log is complete only now: stdout to a file is buffered.)
	check "$name: testpmd probed both NICs with net_e1000_em through vfio-pci" \
		[ "$(grep -c 'Probe PCI driver: net_e1000_em' /tmp/testpmd.log)" = 2 ]
	check "$name: EAL selected IOVA as VA" grep -q "Selected IOVA mode 'VA'" /tmp/testpmd.log
	lsc=$(grep -c '^Port [01]: link state change event' /tmp/testpmd.log)
	check "$name: both ports' link state change interrupts reached testpmd through vfio-pci ($lsc events; ${irqs%%:*} vfio interrupts counted)" \
		[ "$lsc" -ge 2 -a "${irqs%%:*}" -ge 2 ]

	# The NICs' counters (show port stats all): rxN missN errN nbN txN
	# txeN for port N.
	rx0= rx1= tx0= tx1=
	eval "$(awk '/NIC statistics for port/ { p = $(NF - 1) }
		/RX-packets:/ && p != "" { printf "rx%s=%s miss%s=%s\n", p, $2, p, $4 }
		/RX-errors:/ && p != "" { printf "err%s=%s\n", p, $2 }
		/RX-nombuf:/ && p != "" { printf "nb%s=%s\n", p, $2 }
		/TX-packets:/ && p != "" { printf "tx%s=%s txe%s=%s\n", p, $2, p, $4 }' /tmp/testpmd.log)"
	for p in 0 1; do
		eval "echo \"# port $p ($name): RX-packets \$rx$p RX-missed \$miss$p RX-errors \$err$p RX-nombuf \$nb$p TX-packets \$tx$p TX-errors \$txe$p\""
	done
	# testpmd's forwarding statistics (printed at stop).
	fwd=$(sed -n '/Accumulated forward statistics/,/++++++++/p' /tmp/testpmd.log)
	fwd_rx=$(echo "$fwd" | awk '/RX-packets:/ { print $2 }')
	fwd_tx=$(echo "$fwd" | awk '/TX-packets:/ { print $2 }')
	fwd_drop=$(sed -n '/Forward statistics for port\|Accumulated forward/,/----\|++++/p' /tmp/testpmd.log |
		awk '/-dropped:/ { for (i = 1; i < NF; i++) if ($i ~ /-dropped:$/) s += $(i + 1) } END { print s + 0 }')
	fwd_err=$(grep -cE 'RX-error:|TX-error:|RX-nombufs:' /tmp/testpmd.log)
	echo "# packets ($name): port 0 sent ${tx0:-?}, port 1 received ${rx1:-?}; port 1 sent ${tx1:-?}, port 0 received ${rx0:-?}; testpmd forwarded ${fwd_tx:-?} of ${fwd_rx:-?} received in $FWD_SECS s"
	check "$name: packets moved both ways, as many received as sent: port 0 -> 1 ${tx0:-?} sent, ${rx1:-?} received; port 1 -> 0 ${tx1:-?} sent, ${rx0:-?} received" moved
	check "$name: no RX/TX errors, RX-missed or RX-nombuf on either port, nothing dropped in forwarding" clean

	if [ "$census" = 1 ]; then
		# One line per call: kind, iova, size, flags (MAP's vaddr kept
		# apart: checked against the iova, left out of the comparison).
		awk -v c="$name" '/container_ioctl:/ {
			for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			if (v["cmd"] == "0x3b71") printf "# map %s iova=%s size=%s flags=%s vaddr=%s\n", c, v["f16"], v["f24"], v["flags"], v["f8"]
			else printf "# unmap %s iova=%s size=%s flags=%s\n", c, v["f8"], v["f16"], v["flags"]
		}' $T/trace >/tmp/census
		sed 's/ vaddr=.*//' /tmp/census
		maps=$(grep -c '^# map ' /tmp/census) unmaps=$(grep -c '^# unmap ' /tmp/census)
		sizes=$(awk '{ split($5, s, "="); k = $2 " " ((s[2] + 0) / 1048576) " MiB"; c[k]++ }
			END { for (k in c) { printf "%s%d %s", sep, c[k], k; sep = ", " } }' /tmp/census)
		total=$(awk '$2 == "map" { split($5, s, "="); t += (s[2] + 0) } END { print t / 1048576 }' /tmp/census)
		echo "# census ($name): $maps MAP_DMA, $unmaps UNMAP_DMA ($sizes); $total MiB mapped in all"
		bad=$(awk '$2 == "map" { split($4, i, "="); split($5, s, "="); split($7, v, "=");
			if (i[2] != v[2] || (s[2] + 0) % 2097152) print }' /tmp/census)
		check "$name: DPDK mapped its memory ($maps MAP_DMA, $total MiB), each with iova == vaddr and whole 2 MiB pages" \
			[ "$maps" -gt 0 -a -z "$bad" ]
		[ -n "$bad" ] && echo "$bad" | sed 's/^/# bad: /'
		# Each UNMAP_DMA (the heap shrinking) takes back one earlier
		# MAP_DMA whole; what is still mapped at exit goes with the
		# container.
		stray=$(awk '$2 == "map" { m[$4 " " $5]++ } $2 == "unmap" { if (m[$4 " " $5]-- <= 0) print }' /tmp/census)
		check "$name: each of the $unmaps UNMAP_DMA undid one earlier MAP_DMA (same iova and size)" [ -z "$stray" ]
		[ -n "$stray" ] && echo "$stray" | sed 's/^/# stray: /'
		check "$name: testpmd's locked memory while forwarding equals what DPDK had mapped (VmLck $locked kB, mapped $mapped_now kB)" \
			[ "$locked" = "$mapped_now" ]
	else
		skip "$name: DPDK mapped its memory with iova == vaddr" "no kprobe events in this kernel"
		skip "$name: each UNMAP_DMA undid one earlier MAP_DMA" "no kprobe events in this kernel"
		skip "$name: testpmd's locked memory equals what DPDK mapped" "no kprobe events in this kernel"
	fi

	# After testpmd: nothing pinned, nothing held.
	acq=$(($(vmstat nr_foll_pin_acquired) - acq0))
	rel=$(($(vmstat nr_foll_pin_released) - rel0))
	check "$name: every page DPDK's mappings pinned is released ($acq acquired, $rel released)" \
		[ "$acq" = "$rel" -a "$acq" -gt 0 ]
	refcnt=$(cat /sys/module/$VFIO_BACKEND_MODULE/refcnt)
	check "$name: backend module refcount back to 0 ($refcnt)" [ "$refcnt" = 0 ]
	if [ "$VFIO_BACKEND" = rust ]; then
		left=$(head -1 /sys/kernel/debug/vfio_iommu_type1_rs/containers)
		check "$name: no container left in debugfs ($left)" [ "$left" = "0 containers" ]
	fi
	hp_free=$(cat $hp/free_hugepages)
	check "$name: every huge page is free again ($hp_free of $hp_free0)" [ "$hp_free" = "$hp_free0" ]
	trouble=$(dmesg | grep -E 'WARNING:|BUG:|Oops|DMAR:.*fault|DMAR: \[DMA|Unable to handle')
	check "$name: no kernel warning or IOMMU fault during the run" [ -z "$trouble" ]
	[ -n "$trouble" ] && echo "$trouble" | sed 's/^/# /'
	dmesg | grep -v 'resetting$\|reset done$' | sed "s/^/# dmesg ($name): /" | tail -20
}
moved() {
	[ -n "$rx0" ] && [ -n "$rx1" ] && [ "$tx0" = "$rx1" ] && [ "$tx1" = "$rx0" ] &&
		[ "$tx0" -ge 1000 ] && [ "$tx1" -ge 1000 ]
}
clean() {
	[ -n "$rx0" ] && [ "$miss0$err0$nb0$txe0$miss1$err1$nb1$txe1" = 00000000 ] &&
		[ "$fwd_drop" = 0 ] && [ "$fwd_err" = 0 ]
}

run_case dynamic
run_case prealloc --socket-mem 64
[ "$census" = 1 ] && echo '-:dpdk/container_ioctl' >>$T/kprobe_events
[ -z "$record_cmd" ] || echo "$record_cmd" >$T/options/record-cmd
echo "1..$n"
[ "$failed" = 0 ]

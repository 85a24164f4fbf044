#!/bin/sh
# Guest side of scripts/bench's VM-start section: how long the bundled QEMU
# (7.2, the type1 client) takes to start a guest with as much RAM as this
# test VM allows, with the edu passed through, and how much of that is
# MAP_DMA (QEMU maps all guest RAM before the guest runs).
#
#   sh vmstart.sh setup MIB     size the cases (at most MIB, 3 GiB on arm64)
#   sh vmstart.sh warmup        one untimed anon start (the first QEMU launch
#                               in a boot pays for cold caches: 2-3x on arm64)
#   sh vmstart.sh run PASS      the cases on the backend loaded now
#   sh vmstart.sh teardown
# (cwd: the bundle directory; VFIO_BACKEND_MODULE names the backend.)
#
# Cases, each with the same guest RAM size:
#   anon      QEMU's default: anonymous RAM, MAP_DMA faults it in and pins
#   prealloc  memory-backend-ram,prealloc=on: QEMU touches it first
#   hugetlb   memory-backend-file on hugetlbfs (2 MiB pages), prealloc=on
# Per case one line for scripts/bench-report:
#   res backend=B sec=vmstart kind=CASE x=MIB boot_s=S map_s=S maps=N map_mib=M
# boot_s: QEMU launched -> the payload's first serial output (the guest
# runs); map_s: the summed time of QEMU's MAP_DMA calls, from a kprobe and a
# kretprobe on the container's ioctl (same probes for both backends);
# maps/map_mib: how many MAP_DMA calls and MiB they mapped. A run whose
# payload does not pass, or that leaves a page pinned, prints BENCH-FAILED.
cd "$(dirname "$0")" || exit 1
bundle=$(pwd)
arch=$(uname -m)
T=/sys/kernel/tracing
conf=/tmp/vmstart.conf
hp=/sys/kernel/mm/hugepages/hugepages-2048kB
mnt=/tmp/vmstart-2m
. ./launch.sh

# The guest RAM size: the request, at most 3 GiB on arm64 (-M virt with
# highmem=off), and what MemAvailable leaves after 1 GiB for QEMU and the
# rest; in steps of 256 MiB.
setup() {
	req=$1
	[ "$arch" = x86_64 ] || [ "$req" -le 3072 ] || req=3072
	avail=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
	mib=$(( (avail - 1024) / 256 * 256 ))
	[ "$mib" -le "$req" ] || mib=$req
	[ "$mib" -ge 64 ] || mib=64
	echo "mib=$mib" >$conf
	echo "# vmstart: guest RAM $mib MiB (asked $1, MemAvailable $avail MiB)"
	mkdir -p $mnt
	mount -t hugetlbfs -o pagesize=2M none $mnt
}
teardown() {
	echo 0 >$hp/nr_hugepages
	umount $mnt 2>/dev/null
	rm -f $conf
}

# probes_on / probes_off: MAP_DMA (cmd 0x3b71) entries with their size, and
# every container ioctl's return, on the global clock (one thread's entry
# and return may be on different CPUs).
probes_on() {
	echo 'p:vmstart/map vfio_fops_unl_ioctl cmd=$arg2:x32 size=+u24($arg3):u64' >>$T/kprobe_events || return 1
	echo 'r:vmstart/ret vfio_fops_unl_ioctl' >>$T/kprobe_events || return 1
	echo 'cmd == 0x3b71' >$T/events/vmstart/map/filter
	# record-cmd patches the scheduler's tracepoints in and out, which
	# oopsed under TCG (run_nested.sh): off while the probes run.
	record_cmd=$(cat $T/options/record-cmd)
	echo 0 >$T/options/record-cmd
	clock=$(sed 's/.*\[\(.*\)\].*/\1/' $T/trace_clock)
	echo global >$T/trace_clock
	echo >$T/trace
	echo 1 >$T/events/vmstart/enable
}
probes_off() {
	echo 0 >$T/events/vmstart/enable
	echo "$clock" >$T/trace_clock
	echo "$record_cmd" >$T/options/record-cmd
	echo '-:vmstart/map' >>$T/kprobe_events
	echo '-:vmstart/ret' >>$T/kprobe_events
}
# From the trace: "maps=N map_mib=M map_s=S", pairing each MAP_DMA entry
# with the next return of the same thread.
map_times() {
	awk '{
		for (i = 2; i <= NF; i++) if ($i ~ /^\[[0-9]+\]$/) break
		if (i > NF) next
		pid = $(i - 1); sub(/.*-/, "", pid)
		ts = $(i + 2); sub(/:$/, "", ts)
		if ($(i + 3) == "map:") {
			for (j = i + 4; j <= NF; j++) if ($j ~ /^size=/) { s = $j; sub(/size=/, "", s); mib += s / 1048576 }
			start[pid] = ts; n++
		} else if ($(i + 3) == "ret:" && (pid in start)) {
			t += ts - start[pid]; delete start[pid]
		}
	} END { printf "maps=%d map_mib=%d map_s=%.6f", n, mib, t }' $T/trace
}

# one CASE QEMU-MEMORY-ARGS...: launch, time to the first serial output and
# to the verdict, stop QEMU, check every pin is back.
one() {
	name=$1
	shift
	serial=/tmp/vmstart-serial.log
	: >$serial
	acq0=$(vmstat nr_foll_pin_acquired)
	rel0=$(vmstat nr_foll_pin_released)
	probes_on || { echo "res backend=$VFIO_BACKEND_MODULE sec=vmstart kind=$name x=$mib note=no kprobes"; return; }
	t0=$(now)
	launch_qemu $serial "$@"
	boot= verdict=
	i=0
	while [ $i -lt 6000 ] && kill -0 $qpid 2>/dev/null; do
		[ -z "$boot" ] && [ -s $serial ] && boot=$(now)
		verdict=$(grep -m1 '^payload: \(PASS\|FAIL\)' $serial)
		[ -n "$verdict" ] && break
		sleep 0.05
		i=$((i + 1))
	done
	kill -TERM $qpid 2>/dev/null
	wait $qpid
	# Read before the probes go: removing them clears the buffer.
	echo 0 >$T/events/vmstart/enable
	m=$(map_times)
	probes_off
	rel=$(( $(vmstat nr_foll_pin_released) - rel0 ))
	acq=$(( $(vmstat nr_foll_pin_acquired) - acq0 ))
	case $verdict in
	"payload: PASS"*)
		echo "res backend=$VFIO_BACKEND_MODULE sec=vmstart kind=$name x=$mib boot_s=$(awk -v a="$t0" -v b="$boot" 'BEGIN { printf "%.3f", b - a }') $m" ;;
	*)
		echo "BENCH-FAILED: vmstart $name: verdict '${verdict:-none}'; QEMU: $(grep -v '^vfio_' /tmp/qemu.err | tail -3 | tr '\n' ' ')"
		echo "res backend=$VFIO_BACKEND_MODULE sec=vmstart kind=$name x=$mib note=payload did not pass" ;;
	esac
	[ "$acq" = "$rel" ] || echo "BENCH-FAILED: vmstart $name: $acq pages pinned, $rel released"
}

run() {
	. $conf
	one anon -m $mib
	one prealloc -m $mib -object memory-backend-ram,id=ram,size=${mib}M,prealloc=on \
		-machine memory-backend=ram
	# The pool for this run only (anon runs need the memory back).
	echo $((mib / 2)) >$hp/nr_hugepages
	got=$(cat $hp/free_hugepages)
	if [ "$got" -ge $((mib / 2)) ]; then
		one hugetlb -m $mib -object memory-backend-file,id=ram,size=${mib}M,mem-path=$mnt,share=on,prealloc=on \
			-machine memory-backend=ram
	else
		echo "res backend=$VFIO_BACKEND_MODULE sec=vmstart kind=hugetlb x=$mib note=only $got of $((mib / 2)) 2 MiB pages"
	fi
	echo 0 >$hp/nr_hugepages
}

find_edu || { echo "BENCH-FAILED: vmstart: no edu device alone in its group"; exit 1; }
case $1 in
setup) setup "$2" ;;
# The warm-up's result is not a pass (bench-report skips "# " lines); a
# failure of it still is one.
warmup) . $conf; one anon -m $mib | sed 's/^res /# warmup: res /' ;;
run) run ;;
teardown) teardown ;;
*) echo "usage: vmstart.sh setup MIB | warmup | run PASS | teardown" >&2; exit 2 ;;
esac

#!/bin/sh
# Runs the selftests (or the command given, from this directory:
# debug_checks.sh ./stress_test -t NAME) on
# the debug kernel (lockdep, kmemleak, atomic-sleep checks), then reports,
# as TAP, whether the kernel complained:
#   1. no lockdep report, WARN, BUG, hung task or "sleeping function" splat;
#   2. no KASAN report ("BUG: KASAN: ..." or any other "KASAN:" line);
#   3. no kmemleak report that involves vfio (ours or vfio core).
cd "$(dirname "$0")"
# stress_test races longer here, under lockdep/KASAN/hung-task checks.
export STRESS_SECONDS=${STRESS_SECONDS:-20}
if [ $# -gt 0 ]; then
	"$@"
else
	./run_tests.sh
fi
rc=$?

echo "TAP version 13"
echo "1..3"
splats=$(dmesg | grep -E "WARNING:|BUG:|DEBUG_LOCKS_WARN_ON|possible circular locking|inconsistent lock state|possible recursive locking|Possible unsafe locking|suspicious RCU usage|sleeping function called from invalid context|turning off the locking correctness validator|blocked for more than [0-9]+ seconds")
if [ -z "$splats" ]; then
	echo "ok 1 debug_kernel.no_lockdep_warn_or_bug"
else
	echo "$splats" | sed 's/^/# /'
	dmesg | grep -A 40 -E "WARNING:|BUG:|possible circular|inconsistent lock" | head -80 | sed 's/^/# /'
	echo "not ok 1 debug_kernel.no_lockdep_warn_or_bug"
fi

# Named apart from 1 so that a KASAN report is never mistaken for another
# BUG: it means an out-of-bounds or use-after-free access.
kasan=$(dmesg | grep -E "BUG: KASAN|KASAN:")
if [ -z "$kasan" ]; then
	echo "ok 2 debug_kernel.no_kasan_report"
else
	echo "$kasan" | sed 's/^/# /'
	dmesg | grep -A 40 -E "BUG: KASAN" | head -80 | sed 's/^/# /'
	echo "not ok 2 debug_kernel.no_kasan_report"
fi

if [ -w /sys/kernel/debug/kmemleak ]; then
	# Objects must be older than kmemleak's minimum age to be reported, and
	# a second scan weeds out transient false positives.
	sleep 6
	echo scan > /sys/kernel/debug/kmemleak
	sleep 6
	echo scan > /sys/kernel/debug/kmemleak
	leaks=$(cat /sys/kernel/debug/kmemleak)
	ours=$(echo "$leaks" | awk '/^unreferenced object/ { if (blk ~ /vfio/) print blk; blk = "" } { blk = blk "\n" $0 } END { if (blk ~ /vfio/) print blk }')
	if [ -z "$ours" ]; then
		echo "ok 3 debug_kernel.no_kmemleak_in_vfio # $(echo "$leaks" | grep -c '^unreferenced') unrelated reports"
	else
		echo "$ours" | sed 's/^/# /'
		echo "not ok 3 debug_kernel.no_kmemleak_in_vfio"
	fi
else
	echo "ok 3 debug_kernel.no_kmemleak_in_vfio # SKIP kmemleak not available"
fi
exit $rc

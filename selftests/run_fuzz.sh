#!/bin/sh
# Guest side of scripts/fuzz: the differential fuzzer (fuzz.c) against the
# C vfio_iommu_type1 and vfio-type1-rs in one boot. Run in a VM booted with
# the C backend and our module copied in:
#
#   VM_WITH_RUST_MODULE=1 scripts/vm run --backend c -- \
#       ./selftests/run_fuzz.sh [--trace] [--dump] [--avoid NAMES] OPS SEED...
#
# Per seed: fuzz with the C module serving (log A), insmod ours (the most
# recently registered backend serves new containers), the same seed (log
# B), rmmod ours; then compare. Each seed runs on C then ours before the
# next, so a crash of ours still leaves the earlier seeds reported. Prints
# TAP: one ok / not ok per seed, the first differing lines as # comments,
# and "# fuzz: S seeds x N ops, D differences". Exits non-zero on any
# difference, crash, kernel warning or leak. --trace makes our run print
# every op to the console before running it (find the op that panics);
# --dump prints both whole logs of a failed seed ("C| ", "R| " prefixes);
# --avoid passes fuzz the names of known differences to steer around.
cd "$(dirname "$0")" || exit 1
trace= dump= avoid=
while :; do
	case $1 in
	--trace) trace=--trace; shift ;;
	--avoid) avoid="--avoid $2"; shift 2 ;;
	--dump) dump=1; shift ;;
	*) break ;;
	esac
done
ops=${1:?usage: run_fuzz.sh [--trace] [--dump] [--avoid NAMES] OPS SEED...}
shift
ko=/vmtest/vfio_iommu_type1_rs.ko
c_mod=vfio_iommu_type1
rs_mod=vfio_iommu_type1_rs

# Fixed addresses and identical layouts in both runs.
echo 0 >/proc/sys/kernel/randomize_va_space
[ -f "$ko" ] || { echo "Bail out! $ko missing (VM_WITH_RUST_MODULE=1?)"; exit 1; }
[ -d /sys/module/$c_mod ] || { echo "Bail out! the C module is not loaded"; exit 1; }
dmesg -c >/dev/null

# Kernel warnings since the last call (vfio or not: the C side must be
# clean too).
kernel_trouble() {
	dmesg -c | grep -E 'WARNING:|BUG:|Oops|panicked|UBSAN|refcount_t|list_(add|del) corruption'
}

# First difference of two logs as TAP comments, after the CONTEXT common
# lines before it (cut to 240 characters) to show the state it arose in.
first_diff() {
	awk -v ctx="${CONTEXT:-12}" '
	     NR == FNR { a[FNR] = $0; na = FNR; next }
	     { nb = FNR
	       if (!d && a[FNR] != $0) {
		       d = 1
		       for (i = FNR - ctx; i < FNR; i++)
			       if (i > 0) print "#   " substr(a[i], 1, 240)
		       print "#   C:    " a[FNR]; print "#   ours: " $0
	       } }
	     END { if (!d && na != nb) print "#   C log has " na " lines, ours " nb }' "$1" "$2"
}

# SET_IOMMU calls whose container the backend named in the run did not
# serve alone.
served() {
	grep -c ' served=0' "$1"
}

echo "TAP version 13"
echo "1..$#"
n=0 bad=0 diffs=0
for seed in "$@"; do
	n=$((n + 1))
	a=/tmp/fuzz-c-$seed.log b=/tmp/fuzz-rs-$seed.log why=
	VFIO_BACKEND_MODULE=$c_mod ./fuzz --seed "$seed" --ops "$ops" --log "$a" $avoid
	rc_a=$?
	t_a=$(kernel_trouble)
	if insmod "$ko"; then
		echo "# seed $seed: running on ours"
		VFIO_BACKEND_MODULE=$rs_mod ./fuzz --seed "$seed" --ops "$ops" --log "$b" $avoid $trace
		rc_b=$?
		t_b=$(kernel_trouble)
		rmmod $rs_mod || why="$why rmmod-failed"
	else
		rc_b=125 t_b= why="$why insmod-failed"
	fi
	# Which backend served (outside the compared logs): served=1 on
	# every SET_IOMMU means the module named in the run had the
	# container and the other one did not.
	ns_a=$(served "$a") ns_b=$(served "$b" 2>/dev/null)
	echo "# seed $seed: C: $(wc -l <"$a") lines, $ns_a containers not served by $c_mod;" \
		"ours: $(wc -l <"$b" 2>/dev/null) lines, $ns_b not served by $rs_mod"
	[ "$ns_a$ns_b" = 00 ] || why="$why wrong-backend"
	[ "$rc_a" = 0 ] || why="$why C-exit=$rc_a"
	[ "$rc_b" = 0 ] || why="$why ours-exit=$rc_b"
	[ -z "$t_a" ] || why="$why C-kernel-warning"
	[ -z "$t_b" ] || why="$why ours-kernel-warning"
	if ! cmp -s "$a" "$b"; then
		why="$why differ"
		diffs=$((diffs + 1))
	fi
	if [ -z "$why" ]; then
		echo "ok $n seed $seed"
		continue
	fi
	bad=$((bad + 1))
	echo "not ok $n seed $seed #$why"
	first_diff "$a" "$b"
	tail -n 1 "$a" | sed 's/^/#   C end:    /'
	tail -n 1 "$b" | sed 's/^/#   ours end: /'
	[ -z "$t_a" ] || echo "$t_a" | head -5 | sed 's/^/#   C dmesg: /'
	[ -z "$t_b" ] || echo "$t_b" | head -5 | sed 's/^/#   ours dmesg: /'
	if [ -n "$dump" ]; then
		sed 's/^/C| /' "$a"
		sed 's/^/R| /' "$b"
	fi
done
echo "# fuzz: $# seeds x $ops ops, $diffs differences, $bad failed"
[ "$bad" = 0 ]

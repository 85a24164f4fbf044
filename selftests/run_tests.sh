#!/bin/sh
# Runs every selftest binary in this directory (inside the test VM) and
# prints their TAP output; exits non-zero if any failed.
cd "$(dirname "$0")"
rc=0
for t in ./*_test; do
	echo "# running $t"
	"$t" || rc=1
done
exit $rc

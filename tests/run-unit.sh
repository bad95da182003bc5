#!/bin/sh
# run-unit.sh BUILD: run every unit test binary of one build.
set -u
rc=0
for t in "$1"/tests/test_*; do
	[ -x "$t" ] || continue
	PARTISAN_SRCDIR="$PWD" "$t" || rc=1
done
exit $rc

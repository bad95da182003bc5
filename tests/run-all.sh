#!/bin/sh
# run-all.sh: the whole suite, for `make check`: the import check (pure
# cores include no shell or I/O header, no new include cycle:
# tests/imports.py), then unit tests, the simulator, the fuzz targets (the
# committed corpus tests/fuzz/corpus/TARGET, then seeded mutations; `make
# fuzz` runs them under libFuzzer) and the integration
# tests, first on the normal build and then on the AddressSanitizer + UBSan
# build; on the normal build only, the fault campaign's checker test and a
# short seeded campaign (tests/campaign); last, a subset once more under
# valgrind. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
passed=0
failed=0
failures=""

step() { # name, command...
	name=$1
	shift
	echo "=== $name"
	if "$@"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures="$failures $name"
	fi
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1
export PARTISAN_SRCDIR="$PWD"
step "imports" /usr/bin/python3 tests/imports.py daemon proto
for b in build build/asan; do
	for t in "$b"/tests/test_*; do
		[ -x "$t" ] && step "$t" "$t"
	done
	step "$b/tests/sim" "$b/tests/sim" --suite check
	step "$b/tests/simscale" "$b/tests/simscale" --suite check
	for t in "$b"/fuzz/fuzz_*; do
		corpus=tests/fuzz/corpus/$(basename "$t")
		[ -d "$corpus" ] || corpus=
		[ -x "$t" ] && step "$t" "$t" --runs 20000 $corpus
	done
	step "integration ($b)" env PARTISAN_BUILD="$PWD/$b" /usr/bin/python3 tests/integration/run.py
	if [ "$b" = build ]; then
		# The fault campaign's checker on hand-made histories, then one short
		# seeded campaign (5 namespace hosts, 30 s of faults; it prints
		# "skipped: ..." and passes where namespaces are unavailable;
		# `make campaign` runs a long one).
		step "campaign checker" /usr/bin/python3 tests/campaign/test_checker.py
		step "campaign (seed 1, 30 s)" env PARTISAN_BUILD="$PWD/$b" \
			/usr/bin/python3 tests/campaign/campaign.py --seed 1 --duration 30 --hosts 5
	fi
done
# The client library and the daemon under valgrind memcheck: a
# representative subset (messaging, monitors, calls, names, backpressure),
# as the whole suite would take an hour there. 0 errors, 0 definite leaks.
step "integration under valgrind (build: test_messaging.py)" env PARTISAN_VALGRIND=1 \
	PARTISAN_BUILD="$PWD/build" /usr/bin/python3 tests/integration/run.py test_messaging.py
echo
[ -n "$failures" ] && echo "failed:$failures"
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

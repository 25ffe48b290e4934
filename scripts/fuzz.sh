#!/usr/bin/env bash
# Runs every Go fuzz target (func FuzzX in a _test.go file under cmd/ and
# pkg/) for FUZZTIME each, one after the other. A crasher is written by go
# test into the package's testdata/fuzz/FuzzX/ and then runs as a regression
# test with every plain go test; commit it with the fix.
set -euo pipefail

usage() {
	cat <<'USAGE'
Usage: scripts/fuzz.sh [--help]

Environment:
  FUZZTIME   how long each target runs (default 10s; make test uses 2s, make fuzz 1m)
  GO         the go command (default go)
USAGE
}
[ "${1:-}" = "--help" ] && { usage; exit 0; }
[ $# -eq 0 ] || { usage >&2; exit 2; }

cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
mapfile -t dirs < <(grep -rl --include='*_test.go' '^func Fuzz' cmd pkg | xargs -n1 dirname | sort -u)
failed=0
for d in "${dirs[@]}"; do
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$d"/*_test.go | sed 's/^func //' | sort -u); do
		printf 'fuzz %-28s %-20s %s\n' "./$d" "$target" "$FUZZTIME"
		if ! out=$("$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "./$d" 2>&1); then
			printf '%s\n' "$out" >&2
			failed=1
		fi
	done
done
if [ "$failed" -ne 0 ]; then
	echo "fuzz: a target failed; its crasher is in testdata/fuzz/ and now runs with go test" >&2
	exit 1
fi
echo "fuzz: every target ran $FUZZTIME without a crash"

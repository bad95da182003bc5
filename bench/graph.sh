#!/bin/sh
# graph.sh: start 10 hyparview daemons on loopback (active view 3, passive 6),
# join each through a random earlier one, and render `partisanctl graph` of
# one of them to OUT (default bench/graph-hyparview-10.png). Needs graphviz.
# Usage: sh bench/graph.sh [BUILD] [OUT]
set -eu
B=${1:-build}
OUT=${2:-bench/graph-hyparview-10.png}
dir=$(mktemp -d)
trap 'kill $(cat "$dir"/*.pid 2>/dev/null) 2>/dev/null; rm -rf "$dir"' EXIT
echo '{"peer_service_manager": "hyparview", "hyparview": {"active_max_size": 3, "passive_max_size": 6}}' >"$dir/c.json"
for i in 0 1 2 3 4 5 6 7 8 9; do
	"$B/partisand" -f -c "$dir/c.json" --name "n$i@127.0.0.1" --listen 127.0.0.1:0 \
		--socket "$dir/n$i.sock" 2>"$dir/n$i.log" &
	echo $! >"$dir/n$i.pid"
done
for i in 0 1 2 3 4 5 6 7 8 9; do # each answers on its socket once it is up
	until "$B/partisanctl" -s "$dir/n$i.sock" spec >/dev/null 2>&1; do :; done
done
port() { "$B/partisanctl" -s "$dir/n$1.sock" --json spec | grep -o '"port": *[0-9]*' | head -1 | grep -o '[0-9]*$'; }
for i in 1 2 3 4 5 6 7 8 9; do
	j=$(awk -v n="$i" 'BEGIN { srand(n); print int(rand() * n) }')
	"$B/partisanctl" -s "$dir/n$i.sock" join "n$j@127.0.0.1:$(port "$j")" >/dev/null
done
"$B/partisanctl" -s "$dir/n0.sock" graph --png "$OUT"
echo "graph of n0's neighbourhood: $OUT"

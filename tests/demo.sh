#!/bin/sh
# demo.sh BUILD: a 3-node partisan cluster on loopback, shown working, then
# stopped. Every process it starts is stopped on exit.
set -u
B=${1:-build}
D=$(mktemp -d /tmp/partisan-demo.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT INT TERM

ctl() { # node, args...
	n=$1
	shift
	"$B/partisanctl" -s "$D/$n.sock" "$@"
}

wait_until() { # seconds, command...
	t=$(($1 * 50))
	shift
	while ! "$@" >/dev/null 2>&1; do
		t=$((t - 1))
		[ $t -le 0 ] && { echo "demo: timed out waiting for: $*" >&2; exit 1; }
		sleep 0.02 # poll interval of this deadline loop
	done
}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting 3 daemons on 127.0.0.1 (ports picked by the kernel)"
for n in a b c; do
	"$B/partisand" -f --name "$n@127.0.0.1" --listen 127.0.0.1:0 --socket "$D/$n.sock" \
		>"$D/$n.log" 2>&1 &
	pids="$pids $!"
	eval "pid_$n=$!"
	wait_until 5 ctl "$n" spec
done
port_a=$(ctl a --json spec | sed -n 's/.*"port": *\([0-9]*\).*/\1/p' | head -1)
echo "a@127.0.0.1 listens on port $port_a"

say "b and c join through a"
ctl b join "a@127.0.0.1:$port_a"
ctl c join "a@127.0.0.1:$port_a"
wait_until 10 sh -c "[ \$('$B/partisanctl' -s '$D/c.sock' --json nodes | grep -o '@127.0.0.1' | wc -l) -eq 2 ]"
ctl a members

say "connections from a"
ctl a connections

say "c listens as 'hello'; a sends it a message"
ctl c listen hello >"$D/listen.out" 2>&1 &
pids="$pids $!"
wait_until 5 sh -c "'$B/partisanctl' -s '$D/c.sock' --json status | grep -q hello"
ctl a send c@127.0.0.1 hello "hi from a"
wait_until 5 grep -q "hi from a" "$D/listen.out"
cat "$D/listen.out"

say "every node subscribes to 'news'; b broadcasts (Plumtree)"
subs=""
for n in a b c; do
	ctl "$n" subscribe news >"$D/news.$n" 2>&1 &
	subs="$subs $!"
done
pids="$pids $subs"
for n in a b c; do
	wait_until 5 sh -c "'$B/partisanctl' -s '$D/$n.sock' --json status | grep -q '\"sessions\": [2-9]'"
done
ctl b broadcast news "hello, everyone"
for n in a b c; do
	wait_until 5 grep -q "hello, everyone" "$D/news.$n"
	printf '%s got: ' "$n"
	cat "$D/news.$n"
done
kill $subs 2>/dev/null

say "a monitors c's endpoint and watches node events; c is killed with SIGKILL"
ctl c listen worker >"$D/worker.out" 2>&1 &
pids="$pids $!"
wait_until 5 grep -q "listening on worker" "$D/worker.out"
ctl a monitor "partisan:name:c@127.0.0.1:worker" >"$D/down.out" 2>&1 &
pids="$pids $!"
ctl a monitor-nodes >"$D/events.out" 2>&1 &
pids="$pids $!"
wait_until 5 sh -c "'$B/partisanctl' -s '$D/a.sock' --json status | grep -q '\"sessions\": [3-9]'"
eval "kill -9 \$pid_c"
wait_until 5 grep -q "nodedown" "$D/events.out"
wait_until 5 grep -q "DOWN" "$D/down.out"
cat "$D/events.out"
grep DOWN "$D/down.out"
say "a's view now: c is still a member, but not connected"
ctl a members
ctl a nodes

say "done: stopping everything"

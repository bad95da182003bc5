"""campaign.py: a randomized fault campaign on the multi-host bed.

N hosts (network namespaces, tests/hosts/bed.py), each running partisand
(with the bed's shared secret, on its defaults: [::]:10200) and the client
programs of tests/campaign/worker.py (acked sends with sequence numbers,
calls with timeouts, monitors on the other hosts' endpoints, broadcasts and
subscriptions). A nemesis driven by --seed applies one fault at a time:
kill -9 and restart (same port, or a new one), SIGSTOP/SIGCONT of a daemon,
partitions (halves, one way, around a bridge node), loss 1-30 %, connection
resets, SIGSTOP/SIGCONT of a host's client programs. Every nemesis event and
every client observation is one JSON line in the history file; at the end
every fault is healed, the campaign waits (with deadlines) for membership,
acks and broadcasts to settle, and tests/campaign/checker.py judges the
history. Exit 0 clean (or skipped), 1 on any violation, with the seed that
reproduces it.

    sudo python3 tests/campaign/campaign.py --seed 7 --duration 600 [--hosts 5]
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))
sys.path.insert(0, os.path.join(here, "..", "hosts"))
sys.path.insert(0, here)
from harness import BUILD, Cluster, wait_for  # noqa: E402
import bed  # noqa: E402
import checker  # noqa: E402

PORT = 10200
PYTHON = "/usr/bin/python3"
# After the last heal every live node must see every live node (alive in its
# members, linked in its nodes) within this bound: stated in the history.
MEMBERSHIP_BOUND_S = 30.0
KINDS = ["kill_same_port", "kill_new_port", "stop_daemon", "partition_halves", "partition_oneway",
         "partition_bridge", "loss", "reset", "pause_clients"]


class History:
    """The history file: one JSON object a line, written by several threads."""

    def __init__(self, path):
        self.f = open(path, "w")
        self.lock = threading.Lock()
        self.path = path

    def write(self, rec=None, line=None):
        if line is None:
            rec.setdefault("t", round(time.monotonic(), 4))
            line = json.dumps(rec, separators=(",", ":"))
        with self.lock:
            self.f.write(line.rstrip("\n") + "\n")

    def close(self):
        with self.lock:
            self.f.close()


class Campaign:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.n = args.hosts
        self.hist = History(args.history)
        self.bed = None
        self.c = None
        self.ds = []
        self.workers = [None] * self.n
        self.readers = []
        self.dead = set()          # hosts whose daemon the nemesis killed and not yet restarted
        self.nid = 0
        self.counts = {k: 0 for k in KINDS}

    # ---- the bed, the daemons, the workers -----------------------------

    def contact(self, i):
        return "n%d@%s:%d" % (i, self.bed.ip[i], self.ds[i].port)

    def setup(self):
        self.bed = bed.Bed(self.n)
        self.bed.no_offloads()
        self.c = Cluster()
        self.ds = [self.c.add("n%d" % i, self.c.secured(), host=self.bed.ip[i],
                              prefix=self.bed.prefix(i), listen=None) for i in range(self.n)]
        for d in self.ds[1:]:
            d.ctl("join", self.contact(0))
        self.wait_mesh(20, "the first full mesh")
        names = [d.name for d in self.ds]
        self.hist.write({"kind": "run", "seed": self.args.seed, "hosts": self.n, "nodes": names,
                         "duration_s": self.args.duration, "membership_bound_s": MEMBERSHIP_BOUND_S,
                         "failure_timeout_ms": 2000})
        for i in range(self.n):
            self.start_worker(i, names)
        for d in self.ds:
            wait_for(lambda: {"inbox", "echo", "victim"} <=
                     {n for e in d.ctl_json("status")["endpoints"] for n in e["names"]}, 10,
                     "the workers of %s registered" % d.name)

    def start_worker(self, i, names):
        env = dict(os.environ, PARTISAN_BUILD=BUILD)
        p = subprocess.Popen(self.bed.prefix(i) + [PYTHON, os.path.join(here, "worker.py"), "--host", str(i),
                                                   "--sock", self.ds[i].sock, "--nodes", ",".join(names),
                                                   "--seed", str(self.args.seed)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.workers[i] = p

        def read():
            for line in p.stdout:
                self.hist.write(line=line)
        t = threading.Thread(target=read, daemon=True)
        t.start()
        self.readers.append(t)

    def tell_workers(self, what):
        for p in self.workers:
            if p and p.poll() is None:
                try:
                    p.stdin.write(what + "\n")
                    p.stdin.flush()
                except OSError:
                    pass

    def linked(self, live):
        """Does every live node see every other live one alive and linked?"""
        names = {self.ds[i].name for i in live}
        for i in live:
            d = self.ds[i]
            alive = {m["name"] for m in d.ctl_json("members")["members"] if m.get("status", "alive") == "alive"}
            if not names <= alive or not names - {d.name} <= set(d.nodes()):
                return False
        return True

    def wait_mesh(self, timeout, what):
        wait_for(lambda: self.linked(range(self.n)), timeout, what, interval=0.2)

    # ---- the nemesis --------------------------------------------------

    def event(self, name, phase, **rec):
        rec.update(kind="nemesis", event=name, phase=phase)
        self.hist.write(rec)

    def check_daemons(self):
        """A daemon that exited without the nemesis killing it is a crash:
        recorded (the checker flags it) and started again."""
        for i, d in enumerate(self.ds):
            if i not in self.dead and d.proc.poll() is not None:
                self.hist.write({"kind": "daemon_exit", "host": i, "rc": d.proc.returncode})
                self.restart(i, d.listen)

    def restart(self, i, listen):
        d = self.ds[i]
        d.listen = listen
        live = [j for j in range(self.n) if j != i and j not in self.dead]
        d.extra_args = ["--join", self.contact(self.rng.choice(live))] if live else []
        try:
            d.start()
        except AssertionError:
            if d.proc.poll() is not None:
                # it did not come up at all: a crash at start, flagged
                self.hist.write({"kind": "daemon_exit", "host": i, "rc": d.proc.returncode, "at": "start"})
                d.start()
                return
            # running but slow to answer (harness waits 10 s): a loaded machine
            self.hist.write({"kind": "slow_start", "host": i})
            spec = wait_for(lambda: d.ctl_json("spec"), 60, "%s to answer on its socket" % d.name)
            d.port = spec["listen_addrs"][0]["port"]

    def nemesis_step(self):
        r = self.rng
        kind = r.choice(KINDS)
        self.nid += 1
        nid = self.nid
        hold = r.uniform(1.0, 6.0)
        h = r.randrange(self.n)
        if kind in ("kill_same_port", "kill_new_port"):
            d = self.ds[h]
            listen = d.listen if kind == "kill_same_port" else "[::]:%d" % (PORT + 1 + r.randrange(500))
            self.event(kind, "start", nid=nid, host=h, old_port=d.port, hold_s=round(hold, 2))
            self.dead.add(h)
            d.kill()
            time.sleep(hold)  # the nemesis waits between its events
            self.dead.discard(h)
            self.restart(h, listen)
            self.event(kind, "end", nid=nid, host=h, port=d.port)
        elif kind in ("stop_daemon", "pause_clients"):
            proc = self.ds[h].proc if kind == "stop_daemon" else self.workers[h]
            self.event(kind, "start", nid=nid, host=h, hold_s=round(hold, 2))
            proc.send_signal(signal.SIGSTOP)
            time.sleep(hold)
            proc.send_signal(signal.SIGCONT)
            self.event(kind, "end", nid=nid, host=h)
        else:
            hosts = list(range(self.n))
            r.shuffle(hosts)
            if kind == "partition_halves":
                k = r.randrange(1, self.n // 2 + 1)
                a, b = sorted(hosts[:k]), sorted(hosts[k:])
                self.event(kind, "start", nid=nid, a=a, b=b, hosts=hosts, hold_s=round(hold, 2))
                self.bed.partition(a, b)
            elif kind == "partition_oneway":
                k = r.randrange(1, self.n // 2 + 1)
                a, b = sorted(hosts[:k]), sorted(hosts[k:])
                # a hears nothing from b; b hears a
                self.event(kind, "start", nid=nid, deaf=a, unheard=b, hosts=hosts, hold_s=round(hold, 2))
                for i in a:
                    self.bed.drop_from(i, b)
            elif kind == "partition_bridge":
                bridge, rest = hosts[0], hosts[1:]
                k = len(rest) // 2
                a, b = sorted(rest[:k]), sorted(rest[k:])
                self.event(kind, "start", nid=nid, a=a, b=b, bridge=bridge, hosts=hosts, hold_s=round(hold, 2))
                self.bed.partition(a, b)
            elif kind == "loss":
                victims = sorted(hosts[:r.randrange(1, 4)])
                pct = r.randint(1, 30)
                self.event(kind, "start", nid=nid, hosts=victims, percent=pct, hold_s=round(hold, 2))
                for i in victims:
                    self.bed.loss(i, pct)
            else:  # reset: every TCP segment into h answered with a reset, briefly
                hold = r.uniform(0.3, 1.5)
                self.event(kind, "start", nid=nid, hosts=[h], hold_s=round(hold, 2))
                self.bed.reset(h)
            time.sleep(hold)
            self.bed.heal()
            self.event(kind, "end", nid=nid)
        self.counts[kind] += 1

    # ---- the run --------------------------------------------------------

    def run(self):
        a = self.args
        print("campaign: seed %d, %d hosts, %d s; history %s" % (a.seed, self.n, a.duration, a.history), flush=True)
        self.setup()
        end = time.monotonic() + a.duration
        self.hist.write({"kind": "phase", "phase": "faults"})
        while time.monotonic() < end:
            self.check_daemons()
            self.nemesis_step()
            time.sleep(self.rng.uniform(0.5, 3.0))  # the gap between nemesis events
        self.settle()

    def settle(self):
        """Every fault healed (each step healed its own; this says so), the
        traffic stopped, then wait with deadlines for membership, the acks and
        the broadcasts to settle, and stop the workers."""
        self.check_daemons()
        self.bed.heal()
        self.hist.write({"kind": "nemesis", "event": "final_heal", "phase": "end", "nid": 0})
        self.tell_workers("stop")
        t0 = time.monotonic()
        live = range(self.n)
        deadline = t0 + MEMBERSHIP_BOUND_S
        while True:
            ok = False
            try:
                ok = self.linked(live)
            except Exception:
                pass
            if ok or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the poll interval of this deadline loop
        for i in live:
            d = self.ds[i]
            try:
                members = d.ctl_json("members")["members"]
                nodes = d.nodes()
            except Exception as e:
                members, nodes = [], ["error: %s" % e]
            self.hist.write({"kind": "membership", "host": i, "node": d.name,
                             "alive": sorted(m["name"] for m in members if m.get("status", "alive") == "alive"),
                             "members": {m["name"]: m.get("status") for m in members}, "nodes": nodes})
        print("campaign: membership settled %.1fs after the last heal: %s"
              % (time.monotonic() - t0, "yes" if ok else "NO"), flush=True)
        # Acked messages still outstanding are retransmitted until acknowledged
        # (or reported lost after ack_hold_ms): wait for none left.
        try:
            wait_for(lambda: all(d.ctl_json("status").get("outstanding_acks", 0) == 0 for d in self.ds),
                     60, "every ack back", interval=0.2)
        except AssertionError as e:
            print("campaign: %s" % e, flush=True)
        # Broadcasts missed during a fault come by Plumtree's anti-entropy
        # (exchange_tick_ms, 10 s): give it two rounds, ending early once every
        # current subscriber has every broadcast sent.
        self.hist.write({"kind": "phase", "phase": "drain"})
        try:
            wait_for(self.broadcasts_settled, 25, "every broadcast at every subscriber", interval=0.5)
        except AssertionError:
            pass
        self.tell_workers("quit")
        for p in self.workers:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        for t in self.readers:
            t.join(5)
        self.hist.write({"kind": "end"})

    def broadcasts_settled(self):
        with self.hist.lock:
            self.hist.f.flush()
        sent, got, subs = set(), {}, {}
        with open(self.hist.path) as f:
            for line in f:
                r = json.loads(line)
                k = r.get("kind")
                if k == "bcast" and r.get("ok"):
                    sent.add(r["bid"])
                elif k == "sub_up":
                    subs[r["host"]] = r["sid"]
                elif k == "bcast_recv":
                    got.setdefault(r["sid"], set()).add(r["bid"])
        return all(sent <= got.get(sid, set()) for sid in subs.values())

    def close(self, keep_logs=None):
        for p in self.workers:
            if p and p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
        for d in self.ds:
            if d.proc and d.proc.poll() is None:
                d.proc.send_signal(signal.SIGCONT)
        if self.c:
            if keep_logs:
                shutil.rmtree(keep_logs, ignore_errors=True)
                shutil.copytree(self.c.dir, keep_logs, ignore=shutil.ignore_patterns("*.sock", "*.secret"))
            try:
                self.c.close()
            except AssertionError as e:
                self.hist.write({"kind": "daemon_problem", "detail": str(e)[:2000]})
                print("campaign: %s" % str(e)[:2000], flush=True)
                self.problem = True
        if self.bed:
            self.bed.close()
        self.hist.close()


def table(summary, counts):
    rows = [("events applied", ", ".join("%s %d" % (k, v) for k, v in counts.items() if v) or "none")]
    rows += [(k, str(v)) for k, v in summary.items()]
    w = max(len(k) for k, _ in rows)
    return "\n".join("  %-*s  %s" % (w, k, v) for k, v in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None, help="the nemesis seed (default: random, printed)")
    ap.add_argument("--duration", type=float, default=600, help="seconds of faults (default 600)")
    ap.add_argument("--hosts", type=int, default=5, help="hosts, 5 to 7 (default 5)")
    ap.add_argument("--history", default=None, help="the history file (default build/campaign/history-SEED.jsonl)")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1 << 31)
    if not 2 <= args.hosts <= 10:
        ap.error("--hosts: 5 to 7 are meant, 2..10 work")
    reason = bed.available()
    if reason is not None:
        print("campaign: skipped: %s" % reason)
        return 0
    outdir = os.path.join(os.path.abspath(BUILD), "campaign")
    os.makedirs(outdir, exist_ok=True)
    if args.history is None:
        args.history = os.path.join(outdir, "history-%d.jsonl" % args.seed)

    def on_term(sig, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    cp = Campaign(args)
    cp.problem = False
    failed = None
    try:
        cp.run()
    except KeyboardInterrupt:
        failed = "interrupted"
    except Exception as e:  # the campaign itself broke: still clean up, and say so
        failed = "%s: %s" % (type(e).__name__, e)
    finally:
        logs = os.path.join(outdir, "logs-%d" % args.seed)
        cp.close(keep_logs=logs)
    if failed:
        print("campaign: FAILED (%s); seed %d; history %s; daemon logs %s" % (failed, args.seed, args.history, logs))
        return 1
    result = checker.check_file(args.history)
    print(table(result.summary, cp.counts))
    for v in result.violations[:50]:
        print("  VIOLATION %s: %s" % (v["kind"], v["detail"]))
    bad = len(result.violations) + (1 if cp.problem else 0)
    print("campaign: %s; seed %d (rerun: make campaign SEED=%d DURATION=%g HOSTS=%d); history %s; daemon logs %s"
          % ("%d violations" % bad if bad else "no violations", args.seed, args.seed, args.duration,
             args.hosts, args.history, logs))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""checker.py: judge a fault campaign's history (one JSON object a line, as
tests/campaign/campaign.py and worker.py write it).

    python3 tests/campaign/checker.py HISTORY     # exit 1 on any violation

What it holds the history to (the violation kinds it reports):
  acked messages  every `send --ack` that returned ok is delivered exactly once
                  while both daemons live (`duplicate` otherwise; a second
                  delivery by a new incarnation of the receiver's daemon, after
                  the old one died before its Ack left, is counted apart: the
                  SPEC's exactly-once holds "while both daemons live"), in sequence order per sender and
                  target (`out_of_order`), to the host it was sent to
                  (`misdelivered`); one never delivered (`lost`) is allowed only
                  where the sender's daemon died after the send, or the
                  receiver's daemon was dead some time after it and the sender
                  got `ack_lost` for that target afterwards (or its daemon died);
                  one delivered although its send failed: `delivered_after_error`
  calls           every call ended (`call_hung` otherwise) with the reply it sent
                  (`wrong_reply`) or one of the defined errors, ENOPROC,
                  ENOCONNECTION, EPARTITION, ETIMEDOUT (EIO only when the
                  caller's daemon died) (`call_error`), within its timeout plus
                  CALL_SLACK_S plus the longer of the times its daemon and the
                  calling thread waited, runnable, for a CPU, unless the caller's programs or daemon were paused or
                  killed meanwhile (`call_late`)
  monitors        at most one DOWN per monitor (`down_duplicate`), with a reason
                  that fits (`down_reason`): normal after the endpoint closed,
                  noproc once it was gone, noconnection when a fault touched
                  either node, the target's daemon died, or the monitor's daemon
                  reported the target's node down meanwhile or was not linked to
                  it when the monitor was set (a link lost to starvation is lost
                  too), killed when its
                  session was lost without a goodbye; a monitor on an endpoint
                  that went away (or whose node died) while the monitor's own
                  session lived gets its DOWN (`down_missing`)
  membership      after the final heal every node sees every node alive in its
                  members and linked in its nodes within the bound the run
                  states (`membership`)
  broadcasts      no subscriber gets a broadcast twice (`bcast_duplicate`); a
                  subscriber subscribed before a broadcast and until the end,
                  whose node was not cut off from the origin's (partition, kill,
                  SIGSTOP or reset of either) around the send, gets it
                  (`bcast_missing`)
  daemons         none exits without the nemesis killing it (`daemon_crash`),
                  none logs a sanitizer error (`daemon_problem`)
"""
import json
import sys
from collections import Counter, OrderedDict, defaultdict

# A call's answer is due by its timeout; the daemon's timer runs on a 100 ms
# tick. On a shared machine a daemon or the caller may wait, runnable, for a
# CPU: the caller records how long its daemon and itself waited so
# (/proc/PID/task/*/schedstat) during the call, and that much lateness is
# the machine's, not the daemon's. What is late beyond both is a violation.
CALL_SLACK_S = 0.5
CALL_ERRORS = {"ENOPROC", "ENOCONNECTION", "EPARTITION", "ETIMEDOUT"}
# A fault counts around an event from this long before it (links are found
# dead up to failure_timeout_ms later, then redialled) ...
FAULT_BEFORE_S = 3.0
# ... to this long after it (a broadcast's eager push, IHave and graft).
BCAST_AFTER_S = 5.0
# A DOWN noconnection and the nodedown of the same link lost come from one
# event in the daemon, but through two sessions: this far apart at most.
NODEDOWN_LAG_S = 1.0
# A DOWN is due this long after its endpoint went away, at the latest.
DOWN_GRACE_S = 10.0
NETWORK_KINDS = {"partition_halves", "partition_oneway", "partition_bridge", "loss", "reset"}
DAEMON_KINDS = {"kill_same_port", "kill_new_port", "stop_daemon"}


class Result:
    def __init__(self):
        self.summary = OrderedDict()
        self.violations = []

    def violate(self, kind, detail):
        self.violations.append({"kind": kind, "detail": detail})

    def kinds(self):
        return Counter(v["kind"] for v in self.violations)


class Fault:
    """One nemesis event from its start to its end."""

    def __init__(self, rec):
        self.kind = rec["event"]
        self.t0 = rec["t"]
        self.t1 = None
        self.rec = rec
        if "host" in rec:
            self.hosts = {rec["host"]}
        else:
            self.hosts = set(rec.get("a", [])) | set(rec.get("b", [])) | set(rec.get("deaf", [])) \
                | set(rec.get("unheard", [])) | set(rec.get("hosts", []) if self.kind in ("loss", "reset") else [])

    def overlaps(self, t0, t1):
        return self.t0 <= t1 and (self.t1 is None or self.t1 >= t0)

    def separates(self, h, o):
        """Does this fault cut host h off from host o (or either from all)?"""
        r = self.rec
        if self.kind in DAEMON_KINDS or self.kind == "reset":
            return bool(self.hosts & {h, o})
        if self.kind in ("partition_halves", "partition_bridge"):
            a, b = set(r["a"]), set(r["b"])
            return (h in a and o in b) or (h in b and o in a)
        if self.kind == "partition_oneway":
            a, b = set(r["deaf"]), set(r["unheard"])
            return (h in a and o in b) or (h in b and o in a)
        return False


def pct(xs, p):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def check(records):
    """records: the history's objects in file order. Returns a Result."""
    res = Result()
    run = next((r for r in records if r.get("kind") == "run"), {})
    nodes = run.get("nodes", [])
    host_of = {n: i for i, n in enumerate(nodes)}
    end_t = max((r["t"] for r in records if "t" in r), default=0.0)
    end_rec = [r for r in records if r.get("kind") == "end"]
    if end_rec:
        end_t = end_rec[-1]["t"]

    faults, open_faults = [], {}
    for r in records:
        if r.get("kind") != "nemesis":
            continue
        if r["phase"] == "start":
            f = Fault(r)
            faults.append(f)
            open_faults[r["nid"]] = f
        elif r["nid"] in open_faults:
            open_faults.pop(r["nid"]).t1 = r["t"]
    final_heal = [r["t"] for r in records if r.get("kind") == "nemesis" and r["event"] == "final_heal"]
    deaths = defaultdict(list)  # host -> [(dead from, dead until)]
    for f in faults:
        if f.kind in ("kill_same_port", "kill_new_port"):
            deaths[f.rec["host"]].append((f.t0, f.t1 if f.t1 is not None else end_t))
    for r in records:
        if r.get("kind") == "daemon_exit":
            res.violate("daemon_crash", "host %d's daemon exited by itself (rc %s) at t=%.3f"
                        % (r["host"], r.get("rc"), r["t"]))
            deaths[r["host"]].append((r["t"], r["t"]))
        elif r.get("kind") == "daemon_problem":
            res.violate("daemon_problem", r.get("detail", "")[:500])

    def died_after(h, t):
        """Was host h's daemon killed at or after t (until the end)?"""
        return any(k >= t for k, _ in deaths[h])

    def dead_during(h, t0, t1):
        return any(k <= t1 and back >= t0 for k, back in deaths[h])

    def touched(hosts, t0, t1, kinds):
        return any(f.kind in kinds and f.hosts & hosts and f.overlaps(t0, t1) for f in faults)

    by_kind = defaultdict(list)
    for r in records:
        by_kind[r.get("kind")].append(r)
    lost_sessions = {r["sid"]: r["t"] for r in by_kind["session_lost"]}

    # ---- acked messages ---------------------------------------------------
    sends = {}
    send_err = Counter()
    for r in by_kind["send"]:
        key = (r["sid"], r["to_host"], r["seq"])
        sends[key] = r
        if not r["ok"]:
            send_err[r.get("err", "?")] += 1
    acklost = defaultdict(list)  # sid -> [(t, target host)]
    for r in by_kind["ack_lost"]:
        acklost[r["sid"]].append((r["t"], host_of.get(r["to"].split(":")[2] if r["to"].count(":") >= 3 else r["to"])))
    # A session lives on one daemon incarnation: a delivery to a session
    # that began before a death of its daemon was handed over by an older
    # incarnation than one to a session begun after it (the worker stamps
    # what it reads, so a delivery stamped just after the kill may still be
    # the old daemon's).
    session_t = {r["sid"]: r["t"] for r in by_kind["session_up"]}
    delivered = defaultdict(list)
    last_seq = {}
    order_bad = 0
    for r in by_kind["deliver"]:
        key = (r["sender"], r["to_host"], r["seq"])
        delivered[key].append(r)
        if r["host"] != r["to_host"]:
            res.violate("misdelivered", "%s seq %d for host %d delivered on host %d"
                        % (r["sender"], r["seq"], r["to_host"], r["host"]))
        # per receiving session: after a receiver daemon's death its next
        # incarnation may hand over again what the old one had (see below)
        stream = (r["sender"], r["to_host"], r["rid"])
        prev = last_seq.get(stream)
        if prev is not None and r["seq"] < prev:
            order_bad += 1
            res.violate("out_of_order", "%s -> host %d: seq %d delivered after seq %d (t=%.3f)"
                        % (r["sender"], r["to_host"], r["seq"], prev, r["t"]))
        last_seq[stream] = r["seq"] if prev is None else max(prev, r["seq"])
    for r in by_kind["deliver_bad"]:
        res.violate("misdelivered", "an inbox on host %d got a payload it never sent: %r" % (r["host"], r["payload"]))
    dups = dups_restart = 0
    for key, ds in delivered.items():
        if len(ds) > 1 and all(a["rid"] != b["rid"] and
                               any(session_t.get(a["rid"], a["t"]) <= k <= b["t"] for k, _ in deaths[key[1]])
                               for a, b in zip(ds, ds[1:])):
            # SPEC: exactly once "while both daemons live". The receiver's
            # daemon died after handing it over and before its Ack left; the
            # sender retransmitted to the new incarnation, which has no memory
            # of it. Counted, not a violation.
            dups_restart += 1
        elif len(ds) > 1:
            dups += 1
            res.violate("duplicate", "%s -> host %d seq %d delivered %d times (t=%s)"
                        % (key[0], key[1], key[2], len(ds), ", ".join("%.3f" % d["t"] for d in ds)))
        s = sends.get(key)
        if s is None and key[0] not in lost_sessions:
            res.violate("delivered_after_error", "%s -> host %d seq %d delivered, never sent" % key)
        elif s is not None and not s["ok"]:
            res.violate("delivered_after_error", "%s -> host %d seq %d delivered although the send "
                        "failed with %s" % (key[0], key[1], key[2], s.get("err")))
    lost_ok = Counter()
    lost_bad = 0
    ok_sends = [s for s in sends.values() if s["ok"]]
    for s in ok_sends:
        key = (s["sid"], s["to_host"], s["seq"])
        if key in delivered:
            continue
        src, dst, t = s["host"], s["to_host"], s["t"]
        if died_after(src, t):
            lost_ok["sender's daemon died"] += 1
        elif dead_during(dst, t, end_t) and any(ta >= t and th == dst for ta, th in acklost[s["sid"]]):
            lost_ok["receiver's daemon died, sender told ack_lost"] += 1
        else:
            lost_bad += 1
            why = "receiver's daemon died but no ack_lost came" if dead_during(dst, t, end_t) \
                else "neither daemon died"
            res.violate("lost", "%s (host %d) -> host %d seq %d sent ok at t=%.3f, never delivered: %s"
                        % (s["sid"], src, dst, s["seq"], t, why))
    res.summary["acked sends ok / failed"] = "%d / %d%s" % (
        len(ok_sends), sum(send_err.values()),
        " (%s)" % ", ".join("%s %d" % kv for kv in send_err.most_common()) if send_err else "")
    res.summary["delivered (distinct)"] = str(len(delivered))
    res.summary["lost, allowed"] = "%d%s" % (sum(lost_ok.values()), " (%s)" % ", ".join(
        "%s: %d" % kv for kv in lost_ok.items()) if lost_ok else "")
    res.summary["lost, not allowed / duplicated / out of order"] = "%d / %d / %d" % (lost_bad, dups, order_bad)
    res.summary["duplicated across a receiver daemon restart (allowed)"] = str(dups_restart)
    res.summary["ack_lost events (messages)"] = "%d (%d)" % (
        len(by_kind["ack_lost"]), sum(r.get("count", 1) for r in by_kind["ack_lost"]))

    # ---- calls ----------------------------------------------------------------
    ends = {}
    for r in by_kind["call_end"]:
        ends[r["cid"]] = r
    results = Counter()
    lat = []
    starved_calls = 0
    for st in by_kind["call_start"]:
        e = ends.get(st["cid"])
        h = st["host"]
        if e is None or e["result"] == "hung":
            results["hung"] += 1
            res.violate("call_hung", "call %s from host %d to host %d at t=%.3f never returned"
                        % (st["cid"], h, st["to_host"], st["t"]))
            continue
        results[e["result"]] += 1
        t0, t1 = st["t"], e["t"]
        if e["result"] == "ok":
            lat.append(e["latency_ms"])
        elif e["result"] == "wrong_reply":
            res.violate("wrong_reply", "call %s got a reply that is not its payload" % st["cid"])
        elif e["result"] not in CALL_ERRORS and not (e["result"] == "EIO" and dead_during(h, t0, t1 + 1)):
            res.violate("call_error", "call %s from host %d to host %d ended with %s, not a defined error"
                        % (st["cid"], h, st["to_host"], e["result"]))
        late_ms = e["latency_ms"] - st["timeout_ms"] - CALL_SLACK_S * 1000
        if late_ms > 0 and not touched({h}, t0, t1, {"pause_clients", "stop_daemon", "kill_same_port",
                                                     "kill_new_port"}):
            # the two may have waited at the same time: the larger, not the sum
            starved = max(e.get("daemon_wait_ms") or 0, e.get("caller_wait_ms") or 0)
            if late_ms > starved:
                res.violate("call_late", "call %s from host %d took %.0f ms, timeout %d ms (%s; the daemon "
                            "or the caller waited %.0f ms at most for a CPU meanwhile)"
                            % (st["cid"], h, e["latency_ms"], st["timeout_ms"], e["result"], starved))
            else:
                starved_calls += 1
    res.summary["calls"] = "%d: %s" % (sum(results.values()), ", ".join("%s %d" % kv for kv in results.most_common()))
    res.summary["calls late only by CPU starvation"] = str(starved_calls)
    res.summary["call latency ok p50 / p99 / max"] = "%.1f / %.1f / %.1f ms" % (
        pct(lat, 50), pct(lat, 99), max(lat) if lat else 0.0)

    # ---- monitors -------------------------------------------------------------
    victims = defaultdict(list)  # ref -> [lifetime]
    by_sid = {}
    for r in records:
        k = r.get("kind")
        # a victim's life starts with its session, before it registers: a
        # starved worker may record victim_up after others found it already
        if k == "session_up" and r.get("role") == "victim":
            v = {"host": r["host"], "up": r["t"], "end": None, "how": None, "sid": r["sid"]}
            victims[r["ref"]].append(v)
            by_sid[r["sid"]] = v
        elif k in ("victim_bye", "victim_lost") and r["sid"] in by_sid:
            v = by_sid[r["sid"]]
            v["end"], v["how"] = r["t"], "bye" if k == "victim_bye" else "lost"
    for vs in victims.values():
        for v in vs:  # a victim whose daemon died went away then
            if v["end"] is None:
                for k, _ in deaths[v["host"]]:
                    if k >= v["up"]:
                        v["end"], v["how"] = k, "died"
                        break
    nodedowns = defaultdict(list)  # (host, its peer's host) -> [t]: links its daemon saw go down
    linkev = defaultdict(list)     # (host, its peer's host) -> [(t, up)]
    for r in records:
        if r.get("kind") in ("nodeup", "nodedown") and r["node"] in host_of:
            key = (r["host"], host_of[r["node"]])
            linkev[key].append((r["t"], r["kind"] == "nodeup"))
            if r["kind"] == "nodedown":
                nodedowns[key].append(r["t"])

    def unlinked_at(h, j, t):
        """Was host h's daemon not linked to host j's at t? Yes if the next
        link event it reported after t is a nodeup."""
        nxt = [up for x, up in linkev[(h, j)] if x >= t]
        return bool(nxt) and nxt[0]
    downs = defaultdict(list)
    for r in by_kind["mon_down"]:
        downs[(r["sid"], r["mref"])].append(r)
    reasons = Counter()
    for m in by_kind["mon_set"]:
        key = (m["sid"], m["mref"])
        ds = downs.get(key, [])
        for d in ds:
            reasons[d["reason"]] += 1
        lives = [v for v in victims.get(m["target"], []) if v["up"] <= m["t"]] or victims.get(m["target"], [])
        if not lives:
            continue
        v = lives[-1]
        h, tgt, t = m["host"], v["host"], m["t"]
        if len(ds) > 1:
            res.violate("down_duplicate", "monitor %s on host %d of %s: %d DOWNs (%s)"
                        % (m["mref"], h, m["target"], len(ds), ", ".join(d["reason"] for d in ds)))
        if ds:
            d = ds[0]
            gone = v["end"] is not None and v["end"] <= d["t"]
            fit = {
                "normal": gone and v["how"] == "bye",
                "noproc": gone,
                "noconnection": dead_during(tgt, t - FAULT_BEFORE_S, d["t"]) or
                touched({h, tgt}, t - FAULT_BEFORE_S, d["t"], NETWORK_KINDS | DAEMON_KINDS) or
                any(t - FAULT_BEFORE_S <= x <= d["t"] + NODEDOWN_LAG_S for x in nodedowns[(h, tgt)]) or
                unlinked_at(h, tgt, t),
                "killed": gone and v["how"] in ("lost", "died"),
            }.get(d["reason"], False)
            if not fit:
                res.violate("down_reason", "monitor %s on host %d of %s (host %d): DOWN %s at t=%.3f; "
                            "the endpoint %s" % (m["mref"], h, m["target"], tgt, d["reason"], d["t"],
                                                 "went away (%s) at t=%.3f" % (v["how"], v["end"])
                                                 if v["end"] is not None else "lived on"))
        elif v["end"] is not None and v["end"] + DOWN_GRACE_S <= end_t:
            holder_lost = lost_sessions.get(m["sid"])
            # excused only if the monitor's session or daemon went before the DOWN was due
            if (holder_lost is None or holder_lost > v["end"] + DOWN_GRACE_S) and \
                    not dead_during(h, t, v["end"] + DOWN_GRACE_S):
                res.violate("down_missing", "monitor %s on host %d of %s (host %d, set t=%.3f): the endpoint "
                            "went away (%s) at t=%.3f, no DOWN by the end (t=%.3f)"
                            % (m["mref"], h, m["target"], tgt, t, v["how"], v["end"], end_t))
    res.summary["monitors set"] = str(len(by_kind["mon_set"]))
    res.summary["DOWNs by reason"] = ", ".join("%s %d" % kv for kv in reasons.most_common()) or "none"

    # ---- membership ---------------------------------------------------------
    if final_heal:
        th = final_heal[-1]
        bound = run.get("membership_bound_s", 30.0)
        snaps = {r["host"]: r for r in by_kind["membership"] if r["t"] >= th}
        everyone = set(nodes)
        worst = 0.0
        for i, n in enumerate(nodes):
            s = snaps.get(i)
            if s is None:
                res.violate("membership", "no membership snapshot of host %d after the final heal" % i)
                continue
            worst = max(worst, s["t"] - th)
            missing = sorted(everyone - set(s["alive"]))
            unlinked = sorted(everyone - {n} - set(s["nodes"]))
            if missing or unlinked or s["t"] - th > bound:
                res.violate("membership", "host %d %.1fs after the final heal (bound %.0fs): not alive in its "
                            "members %s, not linked %s" % (i, s["t"] - th, bound, missing, unlinked))
        res.summary["membership after the final heal"] = "all %d see all within %.1f s (bound %.0f s)" % (
            len(nodes), worst, bound) if not res.kinds()["membership"] else "NOT settled"

    # ---- broadcasts -----------------------------------------------------------
    sent = {r["bid"]: r for r in by_kind["bcast"] if r["ok"]}
    subs = {}
    for r in by_kind["sub_up"]:
        subs[r["sid"]] = {"host": r["host"], "up": r["t"], "lost": lost_sessions.get(r["sid"])}
    got = Counter((r["sid"], r["bid"]) for r in by_kind["bcast_recv"])
    bdups = 0
    for (sid, bid), c in got.items():
        if c > 1:
            bdups += 1
            res.violate("bcast_duplicate", "subscriber %s got %s %d times" % (sid, bid, c))
    required = missing = 0
    for bid, b in sent.items():
        o, t = b["host"], b["t"]
        for sid, s in subs.items():
            if s["up"] > t or s["lost"] is not None:
                continue
            h = s["host"]
            if any(f.separates(h, o) and f.overlaps(t - FAULT_BEFORE_S, t + BCAST_AFTER_S) for f in faults):
                continue
            required += 1
            if got[(sid, bid)] == 0:
                missing += 1
                res.violate("bcast_missing", "subscriber %s (host %d) never got %s (host %d, t=%.3f)"
                            % (sid, h, bid, o, t))
    res.summary["broadcasts sent / receipts"] = "%d / %d" % (len(sent), sum(got.values()))
    res.summary["broadcast receipts due / missing / duplicated"] = "%d / %d / %d" % (required, missing, bdups)
    bad_lines = sum(r["lines"] for r in by_kind["unreadable"])
    if bad_lines:
        res.summary["history lines that did not parse"] = str(bad_lines)
    res.summary["violations"] = ", ".join("%s %d" % kv for kv in res.kinds().most_common()) or "0"
    return res


def load(path):
    """The history's records; a line that does not parse (a worker killed
    mid-line) is skipped and counted in a record of its own."""
    recs, bad = [], 0
    with open(path) as f:
        for line in f:
            if line.strip():
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    bad += 1
    if bad:
        recs.append({"kind": "unreadable", "lines": bad})
    return recs


def check_file(path):
    return check(load(path))


def main(argv):
    if len(argv) != 2:
        print("usage: checker.py HISTORY", file=sys.stderr)
        return 2
    res = check_file(argv[1])
    w = max(len(k) for k in res.summary)
    for k, v in res.summary.items():
        print("  %-*s  %s" % (w, k, v))
    for v in res.violations:
        print("  VIOLATION %s: %s" % (v["kind"], v["detail"]))
    return 1 if res.violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

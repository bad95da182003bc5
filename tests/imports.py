#!/usr/bin/env python3
"""imports.py: the daemon's modules may depend on each other one way only.

A module is a .c file and its .h (daemon/peer.c + daemon/peer.h: "peer").
Module A depends on module B when A.c or A.h includes "B.h". The check
(a step of `make check`, from tests/run-all.sh) fails

- if a pure core (a module in daemon/core/) includes anything but another
  core and the generated protobuf headers (*.pb-c.h), or a system header
  for I/O (sockets, the event loop, file descriptors, the clock, TLS;
  IO_HEADERS below, with CORE_SYSTEM_OK's documented exceptions);
- if the graph has a cycle (it prints each one), except one made only of
  the shell modules in TOLERATED_CYCLE: the daemon.h/ipc/router/peer cycle
  that issue 12's node core removes. That one is printed as known; a cycle
  with a core in it, or with any module not on that list, fails.

    python3 tests/imports.py [DIR ...]      # default: daemon proto
    python3 tests/imports.py --dot          # the graph, for graphviz
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
SYSINC = re.compile(r'^\s*#\s*include\s+<([^>]+)>', re.M)
# System headers a pure core may not include: a core is given the time and
# its randomness and returns actions (DESIGN.md), so it needs none of these.
IO_HEADERS = ("event2/", "sys/socket.h", "sys/un.h", "netinet/", "arpa/inet.h", "netdb.h",
              "ifaddrs.h", "net/", "unistd.h", "fcntl.h", "poll.h", "sys/ioctl.h",
              "sys/epoll.h", "sys/select.h", "sys/stat.h", "time.h", "sys/time.h", "signal.h",
              "pthread.h", "syslog.h", "systemd/", "mbedtls/", "jansson.h")

# (core, system header) pairs allowed all the same, each with its reason.
CORE_SYSTEM_OK = {
    ("nodespec", "arpa/inet.h"): "inet_pton checks an address string; nothing is opened",
}

# The shell modules whose mutual cycle is tolerated for now: daemon.h holds
# every module's state and they call each other through it (daemon -> ipc ->
# router -> peer -> daemon, with graph, metrics and security reading struct
# daemon). The node core (core/node.c) took the protocol out of it; what is
# left is the shell's shared state, which upcalls through a callback table
# would remove. link and hello (peer.c's parts) are out of it already.
# Only a cycle made entirely of these modules passes; take a module off the
# list once it has left the cycle (the check says so), never add a core.
TOLERATED_CYCLE = frozenset({"daemon", "graph", "ipc", "metrics", "peer", "router", "security",
                             "peer-int"})


def modules(dirs):
    """name -> {"files", "deps" (modules it includes), "sys" (<headers>),
    "quoted" ("headers" as written), "core" (in a folder named core)}"""
    mods = {}
    for top in dirs:
        for root, _, files in os.walk(top):
            for f in sorted(files):
                base, ext = os.path.splitext(f)
                if ext not in (".c", ".h"):
                    continue
                m = mods.setdefault(base, {"files": [], "deps": set(), "sys": set(),
                                           "quoted": set(),
                                           "core": os.path.basename(root) == "core"})
                m["files"].append(os.path.join(root, f))
    for name, m in mods.items():
        for path in m["files"]:
            with open(path) as fh:
                text = fh.read()
            for inc in INCLUDE.findall(text):
                m["quoted"].add(inc)
                dep = os.path.splitext(os.path.basename(inc))[0]
                if dep != name and dep in mods:
                    m["deps"].add(dep)
            m["sys"].update(SYSINC.findall(text))
    return mods


def cycles(mods):
    """Every elementary cycle's strongly connected component (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(mods[v]["deps"]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(mods):
        if v not in index:
            visit(v)
    return out


def core_violations(name, m, mods):
    """What the pure core name includes that it may not."""
    bad = []
    for inc in sorted(m["quoted"]):
        dep = os.path.splitext(os.path.basename(inc))[0]
        if inc.endswith(".pb-c.h") or dep == name or (dep in mods and mods[dep]["core"]):
            continue
        bad.append('"%s"' % inc)
    for h in sorted(m["sys"]):
        if h.startswith(IO_HEADERS) and (name, h) not in CORE_SYSTEM_OK:
            bad.append("<%s>" % h)
    return bad


def main(argv):
    dot = "--dot" in argv
    dirs = [a for a in argv if not a.startswith("--")] or ["daemon", "proto"]
    mods = modules(dirs)
    if dot:
        print("digraph imports {")
        for name in sorted(mods):
            for dep in sorted(mods[name]["deps"]):
                print('  "%s" -> "%s";' % (name, dep))
        print("}")
        return 0
    bad = 0
    in_cycle = set()
    for comp in cycles(mods):
        in_cycle.update(comp)
        edges = ["%s -> %s" % (a, b) for a in comp for b in sorted(mods[a]["deps"]) if b in comp]
        cores = [c for c in comp if mods[c]["core"]]
        others = [c for c in comp if c not in TOLERATED_CYCLE and not mods[c]["core"]]
        if not cores and not others:
            print("imports: known cycle, tolerated until the node core (issue 12): %s: %s"
                  % (", ".join(comp), "; ".join(edges)))
            continue
        why = []
        if cores:
            why.append("pure cores in it: %s" % ", ".join(cores))
        if others:
            why.append("not in TOLERATED_CYCLE: %s" % ", ".join(others))
        print("imports: a cycle among %s (%s): %s" % (", ".join(comp), "; ".join(why),
                                                    "; ".join(edges)))
        bad += 1
    gone = sorted(n for n in TOLERATED_CYCLE if n in mods and n not in in_cycle)
    if gone:
        print("imports: in no cycle any more, take off TOLERATED_CYCLE: %s" % ", ".join(gone))
    ncores = 0
    for name, m in sorted(mods.items()):
        if not m["core"]:
            continue
        ncores += 1
        for (core, h), reason in sorted(CORE_SYSTEM_OK.items()):
            if core == name and h in m["sys"]:
                print("imports: the pure core %s includes <%s>, allowed: %s" % (name, h, reason))
        v = core_violations(name, m, mods)
        if v:
            print("imports: the pure core %s includes %s" % (name, ", ".join(v)))
            bad += 1
    print("imports: %d modules (%d pure cores), %s" % (len(mods), ncores,
                                                     "%d problem(s)" % bad if bad else "ok"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

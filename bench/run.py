#!/usr/bin/python3
"""bench/run.py BUILD_DIR: partisan's benchmarks, each figure side by side
with its baselines measured in the same run (`make bench`).

  messaging   one-way msgs/s (64 B, 1 KiB), call round trip p50/p99, and
              bandwidth (64 KiB, 1 MiB) through two partisand on loopback,
              vs the same frames on one raw TCP stream (bench/raw_stream.c),
              Erlang distribution between two nodes (bench/disterl.erl) and
              iperf3
  membership  full-mesh convergence of N daemons, idle CPU and RSS, failure
              detection (kill -9, SIGSTOP, leave) and broadcast at 20, vs
              HashiCorp serf agents driven the same way (bench/serfrpc.py)

Prints a table with ratios and the issue's targets; writes BUILD/bench/
results.json with the machine it ran on. A report, never a test: nothing
here fails on a slow number. Every process started here runs in its own
process group and is killed on the way out, whatever happens.

Environment: BENCH_QUICK=1 (short windows, small N: for development),
BENCH_ONLY=msgs,rtt,bw,tls,mesh,serf (a subset), BENCH_MESH_N=20,50,...,
BENCH_SERF_N=20,50,..., BENCH_REPEAT=N (run the selected rows N times and
print each figure as min/median/max with "failures: k/N"; a repetition
that produced no figure counts as a failure, its reason in the notes).
"""
import datetime
import json
import math
import os
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import serfrpc  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
PARTISAND = os.path.join(BUILD, "partisand")
PARTISANCTL = os.path.join(BUILD, "partisanctl")
PT_MSGS = os.path.join(BUILD, "bench", "pt_msgs")
PT_MESH = os.path.join(BUILD, "bench", "pt_mesh")
RAW = os.path.join(BUILD, "bench", "raw_stream")
TLS_CRYPTO = os.path.join(BUILD, "bench", "tls_crypto")

QUICK = os.environ.get("BENCH_QUICK") == "1"
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
WARM = 0.5                          # seconds before a counting window opens
WINDOW = 1.0 if QUICK else 3.0      # one-way counting window
RTT_SECS = 1.0 if QUICK else 3.0    # round trips measured after 0.3 s of warm-up
IPERF_SECS = 1 if QUICK else 3
IDLE = 2.0 if QUICK else 5.0        # idle window for CPU after convergence
ROUNDS = 3 if QUICK else 5          # broadcast / serf event rounds
TLS_CONVERGE_LIMIT = 120.0          # a 50-node TLS mesh: ~2,450 handshakes
FAIL_N = 20


def n_list(var, default):
    v = os.environ.get(var)
    return [int(x) for x in v.split(",")] if v else default


MESH_N = n_list("BENCH_MESH_N", [10, 20] if QUICK else [20, 50, 100, 200])
SERF_N = n_list("BENCH_SERF_N", [10, 20] if QUICK else [20, 50, 100, 200])
try:
    REPEAT = int(os.environ.get("BENCH_REPEAT") or "1")
except ValueError:
    REPEAT = 0
CONVERGE_LIMIT = 45.0               # give up on a cluster size after this long
CLK_TCK = os.sysconf("SC_CLK_TCK")


def want(section):
    return not ONLY or section in ONLY


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# ---- processes -------------------------------------------------------------

class Procs:
    """Every process the bench starts, each in its own process group."""

    def __init__(self):
        self.live = []

    def start(self, args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=None, cwd=None):
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                             env=env, cwd=cwd, start_new_session=True)
        p.reader = LineReader(p.stdout) if stdout == subprocess.PIPE else None
        self.live.append(p)
        return p

    def signal(self, p, sig):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, p, graceful=0.0):
        """SIGTERM and up to `graceful` seconds, then SIGKILL the group."""
        if p.poll() is None and graceful > 0:
            self.signal(p, signal.SIGCONT)
            self.signal(p, signal.SIGTERM)
            try:
                p.wait(graceful)
            except subprocess.TimeoutExpired:
                pass
        self.signal(p, signal.SIGCONT)
        self.signal(p, signal.SIGKILL)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass
        if p.stdout:
            p.stdout.close()
        if p in self.live:
            self.live.remove(p)

    def stop_many(self, ps, graceful=3.0):
        """Stop a whole cluster: SIGTERM to all at once, then SIGKILL."""
        for p in ps:
            if p.poll() is None:
                self.signal(p, signal.SIGCONT)
                self.signal(p, signal.SIGTERM)
        deadline = time.monotonic() + graceful
        for p in ps:
            try:
                p.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in ps:
            self.stop(p)

    def stop_all(self):
        self.stop_many(list(self.live), graceful=1.0)


PROCS = Procs()


class LineReader:
    """Lines from a child's stdout pipe, with deadlines."""

    def __init__(self, f):
        self.fd = f.fileno()
        self.buf = b""
        self.eof = False

    def line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf and not self.eof:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            data = os.read(self.fd, 65536)
            if not data:
                self.eof = True
            self.buf += data
        if b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            return line.decode(errors="replace")
        if self.buf:
            line, self.buf = self.buf, b""
            return line.decode(errors="replace")
        return None

    def lines(self, timeout):
        """Every line until EOF or the deadline."""
        out, deadline = [], time.monotonic() + timeout
        while True:
            line = self.line(max(0.0, deadline - time.monotonic()))
            if line is None:
                return out
            out.append(line)

    def expect(self, prefix, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            line = self.line(max(0.0, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError("%s: no %r line within %.0fs" % (what, prefix, timeout))
            if line.startswith(prefix):
                return line


def run(args, timeout=60, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def free_ports(n, udp=False):
    """n distinct loopback ports free now (TCP, and UDP too when asked)."""
    held, ports = [], []
    try:
        while len(ports) < n:
            t = socket.socket()
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            held.append(t)
            if udp:
                u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    u.bind(("127.0.0.1", port))
                except OSError:
                    u.close()
                    continue
                held.append(u)
            ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


def proc_cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def proc_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def idle_usage(pids, window):
    """CPU of all pids over window seconds (% of one core), RSS per process."""
    t0, c0 = time.monotonic(), sum(proc_cpu_ticks(p) for p in pids)
    time.sleep(window)
    t1, c1 = time.monotonic(), sum(proc_cpu_ticks(p) for p in pids)
    rss = [proc_rss_kib(p) / 1024.0 for p in pids]
    return {"cpu_pct_one_core": 100.0 * (c1 - c0) / CLK_TCK / (t1 - t0),
            "rss_mib_mean": statistics.mean(rss), "rss_mib_max": max(rss)}


def parse_kv(lines, key):
    """'KEY max X median Y' -> {max, median}; 'KEY X' -> float."""
    for line in lines:
        w = line.split()
        if w and w[0] == key:
            if len(w) >= 5 and w[1] == "max":
                return {"max": float(w[2]), "median": float(w[4])}
            return float(w[1])
    return None


# ---- machine ----------------------------------------------------------------

def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError):
        mem = 0
    rev = run(["git", "-C", os.path.dirname(HERE), "describe", "--always", "--dirty"], 10)
    versions = {}
    if shutil.which("erl"):
        r = run(["erl", "-noshell", "-eval",
                 'io:format("~s", [erlang:system_info(otp_release)]), halt().'], 30)
        versions["erlang_otp"] = r.stdout.strip()
    if shutil.which("serf"):
        versions["serf"] = run(["serf", "version"], 10).stdout.split("\n")[0].strip()
    if shutil.which("iperf3"):
        versions["iperf3"] = run(["iperf3", "--version"], 10).stdout.split("\n")[0].strip()
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "memory_gib": round(mem, 1),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "loadavg_at_start": os.getloadavg(),
            "partisan_rev": rev.stdout.strip() if rev.returncode == 0 else "unknown",
            "versions": versions}


# ---- partisan clusters --------------------------------------------------------

class PtCluster:
    """N partisand on 127.0.0.1, ports picked by the kernel, default config."""

    def __init__(self, tmp, n, tag, config=None):
        """config: a dict every daemon reads (-c), e.g. a tls block."""
        self.dir = os.path.join(tmp, tag)
        os.makedirs(self.dir)
        self.names = ["%s%d@127.0.0.1" % (tag, i) for i in range(n)]
        self.socks = [os.path.join(self.dir, "%d.sock" % i) for i in range(n)]
        self.procs = []
        extra = []
        if config is not None:
            extra = ["-c", os.path.join(self.dir, "config.json")]
            with open(extra[1], "w") as f:
                json.dump(config, f)
        for name, sock in zip(self.names, self.socks):
            logf = open(sock[:-5] + ".log", "wb")
            self.procs.append(PROCS.start([PARTISAND, "-f", "--name", name, "--listen", "127.0.0.1:0",
                                           "--socket", sock] + extra, stdout=logf, stderr=logf))
            logf.close()

    def list_file(self, skip=()):
        path = os.path.join(self.dir, "list-%d.txt" % len(skip))
        with open(path, "w") as f:
            for i, s in enumerate(self.socks):
                if i not in skip:
                    f.write(s + "\n")
        return path

    def ctl(self, i, *args, timeout=30):
        return run([PARTISANCTL, "-s", self.socks[i]] + list(args), timeout)

    def wait_up(self, timeout=20):
        deadline = time.monotonic() + timeout
        for i in range(len(self.socks)):
            while self.ctl(i, "--json", "spec").returncode != 0:
                if time.monotonic() > deadline or self.procs[i].poll() is not None:
                    raise RuntimeError("partisand %s did not come up" % self.names[i])
                time.sleep(0.05)

    def port(self, i):
        return json.loads(self.ctl(i, "--json", "spec").stdout)["listen_addrs"][0]["port"]

    def pids(self, skip=()):
        return [p.pid for i, p in enumerate(self.procs) if i not in skip and p.poll() is None]

    def mesh(self, *args, timeout=120):
        """Run pt_mesh MODE LIST ARGS...; its output lines (and exit code)."""
        r = run([PT_MESH] + [str(a) for a in args], timeout)
        lines = r.stdout.splitlines()
        if r.returncode == 1 and any(x.startswith("timeout") for x in lines):
            return r.returncode, lines
        if r.returncode not in (0, 3):
            raise RuntimeError("pt_mesh %s: exit %d: %s %s" % (args[0], r.returncode, r.stdout.strip(),
                                                               r.stderr.strip()))
        return r.returncode, lines

    def stop(self):
        PROCS.stop_many(self.procs)


def pt_pair(tmp, tag, config=None):
    c = PtCluster(tmp, 2, tag, config)
    c.wait_up()
    r = c.ctl(1, "join", "%s:%d" % (c.names[0], c.port(0)))
    if r.returncode != 0:
        raise RuntimeError("join: " + r.stderr.strip())
    return c


# ---- messaging figures -----------------------------------------------------------

SEQ = [0]


def oneway_pt(c, size, more=False):
    SEQ[0] += 1
    name = "sink%d" % SEQ[0]
    rx = PROCS.start([PT_MSGS, "recv", c.socks[0], name, str(WARM), str(WINDOW)], stdout=subprocess.PIPE)
    tx = None
    try:
        rx.reader.expect("ready", 10, "pt_msgs recv")
        tx = PROCS.start([PT_MSGS, "send", c.socks[1], c.names[0], name, str(size), str(WARM + WINDOW + 20)]
                         + (["more"] if more else []))
        return parse_rate(rx.reader.expect("msgs", WARM + WINDOW + 30, "pt_msgs recv"))
    finally:
        PROCS.stop(rx)
        if tx:
            PROCS.stop(tx)
        time.sleep(0.3)  # let the daemons drop what was still queued


def oneway_raw(size):
    rx = PROCS.start([RAW, "recv", str(WARM), str(WINDOW)], stdout=subprocess.PIPE)
    tx = None
    try:
        port = rx.reader.expect("port", 10, "raw_stream recv").split()[1]
        tx = PROCS.start([RAW, "send", port, str(size), str(WARM + WINDOW + 20)])
        return parse_rate(rx.reader.expect("msgs", WARM + WINDOW + 30, "raw_stream recv"))
    finally:
        PROCS.stop(rx)
        if tx:
            PROCS.stop(tx)


def parse_rate(line):
    w = line.split()  # msgs N secs S
    return int(w[1]) / float(w[3])


def parse_rtt(line):
    w = line.split()  # rtt N P50 P99
    return {"n": int(w[1]), "p50_us": float(w[2]), "p99_us": float(w[3])}


def rtt_pt(c):
    SEQ[0] += 1
    name = "echo%d" % SEQ[0]
    echo = PROCS.start([PT_MSGS, "echo", c.socks[0], name], stdout=subprocess.PIPE)
    try:
        echo.reader.expect("ready", 10, "pt_msgs echo")
        r = run([PT_MSGS, "call", c.socks[1], c.names[0], name, "64", str(RTT_SECS)], RTT_SECS + 30)
        if r.returncode != 0:
            raise RuntimeError("pt_msgs call: " + r.stderr.strip())
        return parse_rtt(r.stdout.strip())
    finally:
        PROCS.stop(echo)


def rtt_raw():
    pong = PROCS.start([RAW, "pong"], stdout=subprocess.PIPE)
    try:
        port = pong.reader.expect("port", 10, "raw_stream pong").split()[1]
        r = run([RAW, "ping", port, "64", str(RTT_SECS)], RTT_SECS + 30)
        if r.returncode != 0:
            raise RuntimeError("raw_stream ping: " + r.stderr.strip())
        return parse_rtt(r.stdout.strip())
    finally:
        PROCS.stop(pong)


class DistErl:
    """Two-node Erlang distribution on 127.0.0.1 with a private epmd."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "erl")
        os.makedirs(self.dir)
        src = os.path.join(HERE, "disterl.erl")
        if shutil.which("erlc"):
            r = run(["erlc", "-o", self.dir, src], 120)
        else:
            r = run(["erl", "-noshell", "-eval",
                     'case compile:file("%s", [{outdir, "%s"}]) of {ok, _} -> halt(0); _ -> halt(1) end.'
                     % (src, self.dir)], 120)
        if r.returncode != 0:
            raise RuntimeError("compiling disterl.erl: " + (r.stderr or r.stdout).strip())
        port = free_ports(1)[0]
        self.env = dict(os.environ, ERL_EPMD_PORT=str(port))
        self.epmd = PROCS.start(["epmd", "-port", str(port)], env=self.env)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.epmd.poll() is not None:
                    raise RuntimeError("epmd did not start")
                time.sleep(0.05)
        self.n = 0

    def node(self, *run_args):
        self.n += 1
        name = "bench%d@127.0.0.1" % self.n
        p = PROCS.start(["erl", "-noshell", "-noinput", "-name", name, "-setcookie", "partisanbench",
                         "-pa", self.dir, "-run", "disterl"] + [str(a) for a in run_args],
                        stdout=subprocess.PIPE, env=self.env, cwd=self.dir)
        return name, p

    def oneway(self, size):
        rx_name, rx = self.node("sink", WARM, WINDOW)
        tx = None
        try:
            rx.reader.expect("ready", 60, "disterl sink")
            _, tx = self.node("source", rx_name, size, WARM + WINDOW + 20)
            return parse_rate(rx.reader.expect("msgs", WARM + WINDOW + 60, "disterl sink"))
        finally:
            PROCS.stop(rx)
            if tx:
                PROCS.stop(tx)

    def rtt(self):
        pong_name, pong = self.node("pong")
        ping = None
        try:
            pong.reader.expect("ready", 60, "disterl pong")
            _, ping = self.node("ping", pong_name, 64, RTT_SECS)
            return parse_rtt(ping.reader.expect("rtt", RTT_SECS + 60, "disterl ping"))
        finally:
            PROCS.stop(pong)
            if ping:
                PROCS.stop(ping)

    def close(self):
        PROCS.stop(self.epmd)


def iperf3(length):
    port = free_ports(1)[0]
    srv = PROCS.start(["iperf3", "-s", "-1", "--forceflush", "-B", "127.0.0.1", "-p", str(port)], stdout=subprocess.PIPE)
    try:
        srv.reader.expect("Server listening", 10, "iperf3 -s")
        r = run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(IPERF_SECS), "-l", str(length),
                 "-J"], IPERF_SECS + 30)
        if r.returncode != 0:
            raise RuntimeError("iperf3 -c: exit %d" % r.returncode)
        return json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 8 / 1e6
    finally:
        PROCS.stop(srv)


# ---- serf --------------------------------------------------------------------

class SerfCluster:
    """N serf agents on 127.0.0.1, each with its own gossip and RPC port."""

    def __init__(self, tmp, n, tag):
        self.dir = os.path.join(tmp, tag)
        os.makedirs(self.dir)
        ports = free_ports(2 * n, udp=True)
        self.bind, self.rpc = ports[:n], ports[n:]
        self.procs, self.conns = [], []
        for i in range(n):
            logf = open(os.path.join(self.dir, "%d.log" % i), "wb")
            self.procs.append(PROCS.start(
                ["serf", "agent", "-node=%s%d" % (tag, i), "-bind=127.0.0.1:%d" % self.bind[i],
                 "-rpc-addr=127.0.0.1:%d" % self.rpc[i], "-log-level=warn"], stdout=logf, stderr=logf))
            logf.close()
        self.names = ["%s%d" % (tag, i) for i in range(n)]

    def connect(self, timeout=60):
        deadline = time.monotonic() + timeout
        for i in range(len(self.procs)):
            while True:
                try:
                    self.conns.append(serfrpc.Serf(self.rpc[i]))
                    break
                except OSError:
                    if time.monotonic() > deadline or self.procs[i].poll() is not None:
                        raise RuntimeError("serf agent %d did not come up" % i)
                    time.sleep(0.05)

    def pids(self, skip=()):
        return [p.pid for i, p in enumerate(self.procs) if i not in skip and p.poll() is None]

    def converge(self, limit):
        """Everyone joins agent 0 at once (join requests pipelined, a refused
        join sent again); time until every agent counts N members, none
        failed or left (RPC stats). Returns (times or None, detail)."""
        n = len(self.conns)
        t0 = time.monotonic()
        pending, retries = list(self.conns[1:]), 0
        while pending and time.monotonic() - t0 < limit:
            for c in pending:
                c.send("join", {"Existing": ["127.0.0.1:%d" % self.bind[0]], "Replay": False})
            failed = []
            for c in pending:
                try:
                    c.response()
                except RuntimeError:
                    failed.append(c)
            retries += len(failed)
            pending = failed
            if pending:
                time.sleep(0.1)
        when, last = [None] * n, {}
        while None in when and time.monotonic() - t0 < limit:
            for i, c in enumerate(self.conns):
                if when[i] is None:
                    s = last[i] = c.stats()["serf"]
                    if int(s["members"]) >= n and s["failed"] == "0" and s["left"] == "0":
                        when[i] = time.monotonic() - t0
            time.sleep(0.01)
        detail = {"join_retries": retries, "converged": sum(w is not None for w in when)}
        if None in when:
            late = [i for i in range(n) if when[i] is None and i in last][:10]
            detail["not_converged_sample"] = {self.names[i]: {k: last[i][k] for k in ("members", "failed", "left")}
                                              for i in late}
            return None, detail
        return {"max": max(when), "median": sorted(when)[n // 2]}, detail

    def detect(self, victim, action, gone_status, skip, limit=60.0):
        """Time until every other agent's members() shows victim with a status
        in gone_status (or absent)."""
        others = [i for i in range(len(self.conns)) if i != victim and i not in skip]
        name = self.names[victim]
        when = {}
        t0 = time.monotonic()
        action()
        while len(when) < len(others) and time.monotonic() - t0 < limit:
            for i in others:
                if i in when:
                    continue
                st = [m["Status"] for m in self.conns[i].members() if m["Name"] == name]
                if not st or st[0] in gone_status:
                    when[i] = time.monotonic() - t0
            time.sleep(0.002)
        if len(when) < len(others):
            return None
        v = sorted(when.values())
        return {"max": v[-1], "median": v[len(v) // 2]}

    def events(self, rounds, limit=30.0):
        """A stream of user events on every agent; agent 0 fires `rounds`
        events; per round, time until every other agent's stream has it."""
        streams = [serfrpc.Serf(p) for p in self.rpc]
        try:
            for s in streams:
                s.stream("user:bench")
            time.sleep(0.5)
            out = []
            for r in range(rounds):
                payload = ("round-%d" % r).encode()
                when = {}
                t0 = time.monotonic()
                self.conns[0].event("bench", payload)
                others = streams[1:]
                while len(when) < len(others) and time.monotonic() - t0 < limit:
                    ready = [s for s in others if s.pending()]
                    if not ready:
                        ready = select.select(others, [], [], 0.05)[0]
                        for s in ready:
                            s.fill()
                    for s in others:
                        while s.pending():
                            s.read_obj()  # header
                            body = s.read_obj()
                            if body.get("Payload") == payload and s not in when:
                                when[s] = time.monotonic() - t0
                if len(when) < len(others):
                    return None
                v = sorted(when.values())
                out.append({"max": v[-1], "median": v[len(v) // 2]})
                time.sleep(0.2)
            return out
        finally:
            for s in streams:
                s.close()

    def stop(self):
        for c in self.conns:
            c.close()
        PROCS.stop_many(self.procs, graceful=1.0)


# ---- the runs ------------------------------------------------------------------

def guarded(results, key, fn, *args):
    """Run one measurement; an exception becomes "n/a (reason)", not an abort."""
    try:
        results[key] = fn(*args)
    except Exception as e:  # a report goes on without one figure
        log("%s: %s" % (key, e))
        results[key] = {"error": str(e)}
    return results[key]


def bench_messaging(tmp, R):
    have_erl = shutil.which("erl") and shutil.which("epmd")
    erl = None
    try:
        if have_erl:
            try:
                erl = DistErl(tmp)
            except Exception as e:
                log("disterl: %s" % e)
                R["disterl_error"] = str(e)
        else:
            R["disterl_error"] = "erl not installed"
        c = pt_pair(tmp, "m")
        try:
            if want("msgs"):
                for size in (64, 1024):
                    log("one-way %d B" % size)
                    guarded(R, "oneway_%d_partisan" % size, oneway_pt, c, size)
                    guarded(R, "oneway_%d_partisan_more" % size, oneway_pt, c, size, True)
                    guarded(R, "oneway_%d_raw" % size, oneway_raw, size)
                    if erl:
                        guarded(R, "oneway_%d_disterl" % size, erl.oneway, size)
            if want("rtt"):
                log("round trip")
                guarded(R, "rtt_partisan", rtt_pt, c)
                guarded(R, "rtt_raw", rtt_raw)
                if erl:
                    guarded(R, "rtt_disterl", erl.rtt)
            if want("bw"):
                for size in (65536, 1048576):
                    log("bandwidth %d B" % size)
                    rate = guarded(R, "bw_%d_partisan" % size, oneway_pt, c, size)
                    if isinstance(rate, float):
                        R["bw_%d_partisan" % size] = rate * size / 1e6
                    rate = guarded(R, "bw_%d_raw" % size, oneway_raw, size)
                    if isinstance(rate, float):
                        R["bw_%d_raw" % size] = rate * size / 1e6
                    if shutil.which("iperf3"):
                        guarded(R, "bw_%d_iperf3" % size, iperf3, size)
                    else:
                        R["bw_%d_iperf3" % size] = {"error": "iperf3 not installed"}
        finally:
            c.stop()
    finally:
        if erl:
            erl.close()


def tls_configs(tmp):
    """One certificate for every bench daemon (its SAN is 127.0.0.1, the host
    of every name), made with tests/integration/pki.py; and a secret."""
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
    from pki import Pki, tls_config
    pki = Pki(os.path.join(tmp, "pki"))
    crt, key = pki.node("bench@127.0.0.1", ips=["127.0.0.1"])
    secret = os.path.join(tmp, "pki", "secret")
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, os.urandom(24).hex().encode())
    os.close(fd)
    return {"certificates": tls_config(crt, key, pki.crt), "secret": {"cluster": {"secret_file": secret}}}


def bench_tls(tmp, R):
    """TLS against plain TCP, pair by pair in the same run: certificates
    (AES-GCM) and the cluster secret (ECDHE-PSK, ChaCha20-Poly1305)."""
    cfgs = tls_configs(tmp)
    r = run([TLS_CRYPTO], 60)
    R["tls_crypto"] = {w[0]: float(w[1]) for w in (x.split() for x in r.stdout.splitlines()) if len(w) == 3}
    pairs = {"plain": pt_pair(tmp, "tp"), "certificates": pt_pair(tmp, "tc", cfgs["certificates"]),
             "secret": pt_pair(tmp, "ts", cfgs["secret"])}
    try:
        for mode, c in pairs.items():
            log("tls bench: %s" % mode)
            guarded(R, "tls_oneway_64_%s" % mode, oneway_pt, c, 64)
            rate = guarded(R, "tls_bw_1048576_%s" % mode, oneway_pt, c, 1048576)
            if isinstance(rate, float):
                R["tls_bw_1048576_%s" % mode] = rate * 1048576 / 1e6
            guarded(R, "tls_rtt_%s" % mode, rtt_pt, c)
    finally:
        for c in pairs.values():
            c.stop()
    for mode, cfg in (("plain", None), ("certificates", cfgs["certificates"])):
        log("tls bench: converge 50, %s" % mode)
        c = PtCluster(tmp, 50, "tm%s-" % mode[0], cfg)
        entry = R.setdefault("tls_mesh", {})[mode] = {}
        try:
            # TLS handshakes are public-key arithmetic: give them time
            rc, lines = c.mesh("converge", c.list_file(), TLS_CONVERGE_LIMIT, timeout=TLS_CONVERGE_LIMIT + 60)
            entry["members"] = parse_kv(lines, "members")
            entry["connected"] = parse_kv(lines, "connected")
            if not entry["members"]:
                entry["error"] = "not converged after %.0f s: %s" % (TLS_CONVERGE_LIMIT, " ".join(lines))
        except Exception as e:
            entry["error"] = str(e)
        finally:
            c.stop()


def bcast_available(c):
    r = c.ctl(0, "broadcast", "bench-probe", "x", timeout=10)
    if r.returncode != 0:
        return "partisanctl broadcast: " + (r.stderr.strip() or "exit %d" % r.returncode)
    return None


def summarize_rounds(lines, key):
    rounds = []
    for line in lines:
        w = line.split()
        if w and w[0] == key and len(w) >= 5:
            rounds.append({"max": float(w[2]), "median": float(w[4])})
    if not rounds:
        return None
    return {"rounds": rounds, "max_median_over_rounds": statistics.median(r["max"] for r in rounds)}


def pt_failures(c, R):
    n = len(c.socks)
    F = R.setdefault("failures_partisan", {"n": n})
    why = bcast_available(c)
    if why is None:
        rc, lines = c.mesh("bcast", c.list_file(), ROUNDS, 30)
        F["broadcast"] = summarize_rounds(lines, "bcast") if rc == 0 else {"error": " ".join(lines)}
    else:
        F["broadcast"] = {"error": "not available (%s)" % why}
    dead = set()
    for key, victim, sig in (("kill9", n - 1, signal.SIGKILL), ("sigstop", n - 2, signal.SIGSTOP)):
        log("partisan %s at %d" % (key, n))
        victim_pid = c.procs[victim].pid
        skip = tuple(sorted(dead))
        victim_index = victim - sum(1 for d in dead if d < victim)
        try:
            rc, lines = c.mesh("down", c.list_file(skip), victim_index, victim_pid, int(sig), 30)
            F[key] = parse_kv(lines, "down") or {"error": " ".join(lines)}
        except Exception as e:
            F[key] = {"error": str(e)}
        PROCS.stop(c.procs[victim])
        dead.add(victim)
    log("partisan leave at %d" % n)
    victim = n - 3
    try:
        rc, lines = c.mesh("gone", c.list_file(tuple(sorted(dead))), victim, 30)
        F["leave"] = parse_kv(lines, "gone") or {"error": " ".join(lines)}
    except Exception as e:
        F["leave"] = {"error": str(e)}


def bench_mesh(tmp, R):
    for n in MESH_N:
        log("partisan full mesh, %d daemons" % n)
        c = PtCluster(tmp, n, "p%d-" % n)
        entry = R.setdefault("mesh_partisan", {})[str(n)] = {}
        try:
            rc, lines = c.mesh("converge", c.list_file(), CONVERGE_LIMIT, timeout=CONVERGE_LIMIT + 60)
            entry["members"] = parse_kv(lines, "members")
            entry["connected"] = parse_kv(lines, "connected")
            entry["joins_issued_s"] = parse_kv(lines, "joins_issued")
            if not entry["members"]:
                got = [x for x in lines if x.startswith("timeout")]
                entry["error"] = "not converged after %.0f s (%s)" % (
                    CONVERGE_LIMIT, got[0].split()[-1] + " daemons saw all members" if got else " ".join(lines))
            time.sleep(0.5)
            entry["idle"] = idle_usage(c.pids(), IDLE)  # not idle if it did not converge: noted
            if n == FAIL_N and entry["members"]:
                pt_failures(c, R)
        except Exception as e:
            log("mesh %d: %s" % (n, e))
            entry["error"] = str(e)
        finally:
            c.stop()


def serf_failures(s, R):
    n = len(s.conns)
    F = R.setdefault("failures_serf", {"n": n})
    log("serf user event at %d" % n)
    try:
        ev = s.events(ROUNDS)
        F["event"] = ({"rounds": ev, "max_median_over_rounds": statistics.median(r["max"] for r in ev)}
                      if ev else {"error": "timeout"})
    except Exception as e:
        F["event"] = {"error": str(e)}
    dead = set()
    for key, victim, sig in (("kill9", n - 1, signal.SIGKILL), ("sigstop", n - 2, signal.SIGSTOP)):
        log("serf %s at %d" % (key, n))
        p = s.procs[victim]
        try:
            F[key] = s.detect(victim, lambda: os.kill(p.pid, sig), ("failed", "left"), dead) or \
                {"error": "timeout"}
        except Exception as e:
            F[key] = {"error": str(e)}
        PROCS.stop(p)
        dead.add(victim)
    log("serf leave at %d" % n)
    victim = n - 3
    try:
        F["leave"] = s.detect(victim, lambda: s.conns[victim].send("leave"), ("left",), dead) or \
            {"error": "timeout"}
    except Exception as e:
        F["leave"] = {"error": str(e)}


def bench_serf(tmp, R):
    if not shutil.which("serf"):
        R["serf_error"] = "serf not installed"
        return
    for n in SERF_N:
        log("serf, %d agents" % n)
        s = SerfCluster(tmp, n, "s%d-" % n)
        entry = R.setdefault("mesh_serf", {})[str(n)] = {}
        try:
            s.connect()
            conv, detail = s.converge(CONVERGE_LIMIT)
            entry.update(detail)
            if conv is None:
                entry["error"] = "not converged after %.0f s (%d/%d agents saw all %d alive)" % (
                    CONVERGE_LIMIT, detail["converged"], n, n)
            entry["members"] = conv
            time.sleep(0.5)
            entry["idle"] = idle_usage(s.pids(), IDLE)  # not idle if it did not converge: noted
            if n == FAIL_N and conv:
                serf_failures(s, R)
        except Exception as e:
            log("serf %d: %s" % (n, e))
            entry["error"] = str(e)
        finally:
            s.stop()


def corosync_note():
    if not shutil.which("corosync"):
        return "skipped: corosync is not installed (the bench does not install it)"
    if not os.path.exists("/usr/include/corosync/cpg.h"):
        return "skipped: libcpg-dev (corosync/cpg.h) is not installed (the bench does not install it)"
    return "skipped: the CPG program is not part of this bench yet"


# ---- the table -------------------------------------------------------------------

def val(x, key=None):
    if isinstance(x, dict):
        if "error" in x:
            return None
        return x.get(key) if key else None
    return x


def why(x):
    if isinstance(x, dict) and "error" in x:
        return x["error"]
    return "not measured"


INF = math.inf  # a cluster that did not converge within CONVERGE_LIMIT


def conv_value(entry):
    """Convergence seconds of a mesh entry, INF if it did not converge."""
    if entry.get("members"):
        return entry["members"]["max"]
    if str(entry.get("error", "")).startswith("not converged"):
        return INF
    return None


def human(v, unit):
    if v is None:
        return "n/a"
    if v == INF:
        return "> %.0f s" % CONVERGE_LIMIT
    if unit == "msgs/s":
        return "%.3gM" % (v / 1e6) if v >= 1e6 else "%.3gk" % (v / 1e3) if v >= 1e3 else "%.0f" % v
    if unit == "us":
        return "%.0f us" % v
    if unit == "s":
        return "%.3f s" % v
    if unit == "MB/s":
        return "%.0f MB/s" % v
    if unit == "%":
        return "%.1f %%" % v
    if unit == "MiB":
        return "%.1f MiB" % v
    return "%g" % v


class Table:
    def __init__(self):
        self.rows = []

    def add(self, figure, unit, pt, base_name, base, target=None, ok=None, pt_why=None, base_why=None,
            note=None):
        """ok(pt, base, ratio) -> bool decides "met"; ratio is pt / base.
        INF (did not converge) gives a bound on the ratio, or none."""
        ratio, rtext = None, ""
        if pt is not None and base:
            if pt == INF and base == INF:
                pass
            elif pt == INF:
                ratio, rtext = INF, "> %.3g" % (CONVERGE_LIMIT / base)
            elif base == INF:
                ratio, rtext = 0.0, "< %.3g" % (pt / CONVERGE_LIMIT)
            else:
                ratio = pt / base
                rtext = "%.3g" % ratio
        result = ""
        if target:
            try:  # a ratio target without a baseline value is n/a (TypeError on None)
                result = "n/a" if ok is None or pt is None else "met" if ok(pt, base, ratio) else "missed"
            except TypeError:
                result = "n/a"
        finite = lambda v: v if v is not None and v != INF else None  # noqa: E731
        self.rows.append({"figure": figure, "unit": unit, "partisan": finite(pt),
                          "partisan_text": human(pt, unit), "baseline": base_name,
                          "baseline_value": finite(base), "baseline_text": human(base, unit) if base_name else "",
                          "ratio": finite(ratio), "ratio_text": rtext, "target": target or "",
                          "result": result,
                          "partisan_na": pt_why if pt is None or pt == INF else None,
                          "baseline_na": base_why if base_name and (base is None or base == INF) else None,
                          "note": note})

    def render(self):
        head = ["figure", "partisan", "baseline", "value", "partisan/base", "target", "result"]
        lines, last = [], None
        body = []
        for r in self.rows:
            fig = r["figure"] if r["figure"] != last else ""
            last = r["figure"]
            body.append([fig, r["partisan_text"] if fig else "", r["baseline"] or "", r["baseline_text"],
                         r["ratio_text"], r["target"], r["result"]])
        widths = [max(len(x[i]) for x in body + [head]) for i in range(len(head))]
        fmt = "  ".join("%%-%ds" % w for w in widths)
        lines.append(fmt % tuple(head))
        lines.append(fmt % tuple("-" * w for w in widths))
        for b in body:
            lines.append((fmt % tuple(b)).rstrip())
        notes = []
        for r in self.rows:
            if r["partisan_na"]:
                notes.append("%s, partisan: n/a (%s)" % (r["figure"], r["partisan_na"]))
            if r["baseline_na"]:
                notes.append("%s, %s: n/a (%s)" % (r["figure"], r["baseline"], r["baseline_na"]))
            if r["note"]:
                notes.append("%s: %s" % (r["figure"], r["note"]))
        seen = set()
        notes = [" ".join(x.split()) for x in notes]
        notes = [x for x in notes if not (x in seen or seen.add(x))]
        return "\n".join(lines), notes


def build_table(R):
    T = Table()
    ge = lambda k: (lambda pt, b, r: r >= k)  # noqa: E731
    le = lambda k: (lambda pt, b, r: r <= k)  # noqa: E731
    derr = R.get("disterl_error")

    for size, more in ((64, False), (64, True), (1024, False), (1024, True)) if want("msgs") else ():
        pt, raw, de = (R.get("oneway_%d_%s" % (size, k))
                       for k in ("partisan_more" if more else "partisan", "raw", "disterl"))
        fig = "one-way %s msgs/s%s" % ("64 B" if size == 64 else "1 KiB", ", send more" if more else "")
        T.add(fig, "msgs/s", val(pt), "raw TCP stream", val(raw),
              ">= 0.35" if size == 64 else None, ge(0.35), why(pt), why(raw))
        T.add(fig, "msgs/s", val(pt), "disterl", val(de), ">= 3" if size == 64 else None, ge(3), why(pt),
              derr or why(de))

    pt, raw, de = R.get("rtt_partisan"), R.get("rtt_raw"), R.get("rtt_disterl")
    for q in ("p50", "p99") if want("rtt") else ():
        fig = "call RTT %s (64 B)" % q
        T.add(fig, "us", val(pt, q + "_us"), "raw TCP ping-pong", val(raw, q + "_us"), None, None, why(pt),
              why(raw))
        T.add(fig, "us", val(pt, q + "_us"), "disterl ping-pong", val(de, q + "_us"),
              "<= 1.5" if q == "p50" else None, le(1.5), why(pt), derr or why(de))

    for size in (65536, 1048576) if want("bw") else ():
        fig = "bandwidth %s msgs" % ("64 KiB" if size == 65536 else "1 MiB")
        pt, raw, ip = (R.get("bw_%d_%s" % (size, k)) for k in ("partisan", "raw", "iperf3"))
        T.add(fig, "MB/s", val(pt), "raw TCP stream", val(raw), ">= 0.3" if size == 1048576 else None,
              ge(0.3), why(pt), why(raw))
        T.add(fig, "MB/s", val(pt), "iperf3 -l %d" % size, val(ip), None, None, why(pt), why(ip))

    for mode in ("certificates", "secret") if want("tls") else ():
        tag = "TLS (%s)" % ("certificates" if mode == "certificates" else "secret, ECDHE-PSK")
        get = lambda k: R.get("tls_%s_%s" % (k, mode))  # noqa: E731
        base = lambda k: R.get("tls_%s_plain" % k)  # noqa: E731
        T.add("%s: one-way 64 B msgs/s" % tag, "msgs/s", val(get("oneway_64")), "plain TCP",
              val(base("oneway_64")), ">= 0.7", ge(0.7), why(get("oneway_64")), why(base("oneway_64")))
        T.add("%s: bandwidth 1 MiB msgs" % tag, "MB/s", val(get("bw_1048576")), "plain TCP",
              val(base("bw_1048576")), ">= 0.5", ge(0.5), why(get("bw_1048576")), why(base("bw_1048576")))
        T.add("%s: call RTT p50" % tag, "us", val(get("rtt"), "p50_us"), "plain TCP",
              val(base("rtt"), "p50_us"), "<= 1.3", le(1.3), why(get("rtt")), why(base("rtt")))
    if want("tls"):
        tm = R.get("tls_mesh", {})
        p, t = tm.get("plain", {"error": "not run"}), tm.get("certificates", {"error": "not run"})
        T.add("TLS (certificates): converge 50 nodes", "s", conv_value(t), "plain TCP", conv_value(p),
              "<= 1.5", le(1.5), why(t), why(p))

    if not (want("mesh") or want("serf")):
        return T
    mp, ms = R.get("mesh_partisan", {}), R.get("mesh_serf", {})
    for n in sorted(set(MESH_N) | set(SERF_N)):
        p, s = mp.get(str(n), {"error": "not run"}), ms.get(str(n), {"error": "not run"})
        fig = "converge %d nodes" % n
        pv, sv = conv_value(p), conv_value(s)
        T.add(fig, "s", pv, "serf", sv, "<= 1 (no slower)", le(1.0), why(p), why(s))
        if n == 200:
            T.add(fig, "s", pv, "", None, "<= 5 s", lambda pt, b, r: pt <= 5.0, why(p))
    def idle(e):
        return e.get("idle", {"error": e.get("error", "not run")})

    def unsettled(p, s):
        bad = [who for who, e in (("partisan", p), ("serf", s)) if "idle" in e and "error" in e]
        return ("measured on a cluster that had not converged: " + ", ".join(bad)) if bad else None

    for n in sorted(set(MESH_N) | set(SERF_N)):
        p, s = mp.get(str(n), {}), ms.get(str(n), {})
        T.add("idle CPU, %d nodes (%% of one core)" % n, "%", val(idle(p), "cpu_pct_one_core"), "serf",
              val(idle(s), "cpu_pct_one_core"), "<= 1" if n == 50 else None, le(1.0), why(idle(p)),
              why(idle(s)), note=unsettled(p, s))
    for n in sorted(set(MESH_N) | set(SERF_N)):
        p, s = mp.get(str(n), {}), ms.get(str(n), {})
        T.add("idle RSS per node, %d nodes" % n, "MiB", val(idle(p), "rss_mib_mean"), "serf",
              val(idle(s), "rss_mib_mean"), "<= 4 MiB", lambda pt, b, r: pt <= 4.0, why(idle(p)),
              why(idle(s)), note=unsettled(p, s))

    fp, fs = R.get("failures_partisan", {}), R.get("failures_serf", {})
    for key, label, target, ok in (
            ("kill9", "kill -9 detected by all", "<= 1 s", lambda pt, b, r: pt <= 1.0),
            ("sigstop", "SIGSTOP detected by all", "<= 3 s", lambda pt, b, r: pt <= 3.0),
            ("leave", "leave seen by all", None, None)):
        p = fp.get(key, {"error": "not run"})
        s = fs.get(key, {"error": "not run"})
        T.add("%s (%d nodes)" % (label, FAIL_N), "s", val(p, "max"), "serf", val(s, "max"), target, ok,
              why(p), why(s))
    p = fp.get("broadcast", {"error": "not run"})
    s = fs.get("event", {"error": "not run"})
    T.add("broadcast to all %d (median of %d)" % (FAIL_N, ROUNDS), "s", val(p, "max_median_over_rounds"),
          "serf user event", val(s, "max_median_over_rounds"), "<= 0.2 (5x faster)", le(0.2), why(p), why(s))
    return T


def spread(vs, unit):
    """min/median/max of the figures vs (at least one) as text."""
    vs = sorted(vs)
    return "/".join(human(v, unit) for v in (vs[0], statistics.median(vs), vs[-1]))


def repeat_table(Rs):
    """The rows of every repetition, one line per figure and baseline: the
    figure's min/median/max over the repetitions that produced it, and how
    many did not (each reason in the notes)."""
    order, rows = [], {}
    for k, R in enumerate(Rs):
        for r in build_table(R).rows:
            key = (r["figure"], r["baseline"])
            if key not in rows:
                order.append(key)
                rows[key] = []
            rows[key].append((k, r))
    n = len(Rs)
    head = ["figure", "partisan min/median/max", "failures", "baseline", "min/median/max",
            "partisan/base min/median/max", "target", "met"]
    body, notes, last = [], [], None
    # a row no repetition ran (not selected) is left out, as noise
    order = [k for k in order if not all(r["partisan"] is None and r["partisan_na"] == "not run"
                                         for _, r in rows[k])]
    for key in order:
        got = rows[key]
        first = got[0][1]
        unit = first["unit"]
        pts = [r["partisan"] for _, r in got if r["partisan"] is not None]
        bases = [r["baseline_value"] for _, r in got if r["baseline_value"] is not None]
        ratios = [r["ratio"] for _, r in got if r["ratio"] is not None]
        failed = n - len(pts)  # a repetition without this row at all failed too
        fig = key[0] if key[0] != last else ""
        if fig:
            for k, r in got:
                if r["partisan"] is None:
                    notes.append("%s, partisan, repetition %d/%d: failed (%s)" % (
                        key[0], k + 1, n, r["partisan_na"] or "no figure"))
        bad = [(k, r["baseline_na"] or "no figure") for k, r in got if r["baseline_value"] is None]
        if key[1] and bad and len(bad) == n and len(set(w for _, w in bad)) == 1:
            notes.append("%s, %s: n/a (%s)" % (key[0], key[1], bad[0][1]))
        elif key[1]:
            for k, w in bad:
                notes.append("%s, %s, repetition %d/%d: n/a (%s)" % (key[0], key[1], k + 1, n, w))
        last = key[0]
        met = [r["result"] for _, r in got if r["result"] in ("met", "missed")]
        body.append([fig, (spread(pts, unit) if pts else "n/a") if fig else "",
                     ("%d/%d" % (failed, n)) if fig else "", key[1] or "",
                     spread(bases, unit) if bases else ("n/a" if key[1] else ""),
                     "/".join("%.3g" % x for x in (min(ratios), statistics.median(ratios), max(ratios)))
                     if ratios else "", first["target"],
                     "%d/%d" % (met.count("met"), n) if met else ""])
    widths = [max(len(x[i]) for x in body + [head]) for i in range(len(head))]
    fmt = "  ".join("%%-%ds" % w for w in widths)
    lines = [fmt % tuple(head), fmt % tuple("-" * w for w in widths)]
    lines += [(fmt % tuple(b)).rstrip() for b in body]
    return "\n".join(lines), notes, [{"figure": k[0], "baseline": k[1],
                                      "partisan": [r["partisan"] for _, r in rows[k]],
                                      "baseline_value": [r["baseline_value"] for _, r in rows[k]],
                                      "failures": n - sum(r["partisan"] is not None for _, r in rows[k])}
                                     for k in order]


def run_once(R):
    tmp = tempfile.mkdtemp(prefix="partisan-bench-")
    try:
        if want("msgs") or want("rtt") or want("bw"):
            bench_messaging(tmp, R)
        if want("tls"):
            bench_tls(tmp, R)
        if want("mesh"):
            bench_mesh(tmp, R)
        if want("serf"):
            bench_serf(tmp, R)
    finally:
        PROCS.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    R["corosync_cpg"] = corosync_note()


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if REPEAT < 1 or REPEAT > 1000:
        sys.exit("bench: BENCH_REPEAT: expected an integer 1..1000, got %r" % os.environ.get("BENCH_REPEAT"))
    for b in (PARTISAND, PARTISANCTL, PT_MSGS, PT_MESH, RAW, TLS_CRYPTO):
        if not os.access(b, os.X_OK):
            sys.exit("bench: %s is missing; run `make bench`" % b)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))

    t_start = time.monotonic()
    M = machine()
    log("%s, %d cores, kernel %s" % (M["cpu_model"], M["nproc"], M["kernel"]))
    Rs = []
    for k in range(REPEAT):
        if REPEAT > 1:
            log("repetition %d/%d" % (k + 1, REPEAT))
        Rs.append({})
        run_once(Rs[-1])
    R = Rs[0]

    T = build_table(R)
    if REPEAT == 1:
        table, notes = T.render()
        rows = T.rows
    else:
        table, notes, rows = repeat_table(Rs)
    if "200" not in R.get("mesh_serf", {}) and 200 in MESH_N:
        notes.append("serf at 200 agents: not run (BENCH_SERF_N)")
    notes.append("corosync CPG: " + R["corosync_cpg"])
    k = R.get("tls_crypto")
    if k:
        notes.append("mbedTLS on this machine (bench/tls_crypto, one core): AES-128-GCM %.0f MB/s, "
                     "ChaCha20-Poly1305 %.0f MB/s sealing 16 KiB records; P-256 key pair %.2f ms, "
                     "ECDH %.2f ms, ECDSA sign %.2f ms, verify %.2f ms" % (
                         k.get("aes128gcm", 0), k.get("chacha20poly1305", 0), k.get("p256_keypair", 0),
                         k.get("p256_ecdh", 0), k.get("p256_sign", 0), k.get("p256_verify", 0)))
    notes.append("partisan: default config (gossip 1000 ms, failure_timeout 2000 ms); "
                 "serf: default LAN profile. Disterl RTT is plain send/receive. "
                 "\"send more\": the sender sets partisan_send_opts.more (as MSG_MORE), so a "
                 "burst reaches the daemon in few writes; disterl's ! is buffered by the VM alike.")
    if REPEAT > 1:
        notes.append("each figure over %d repetitions (BENCH_REPEAT), each on fresh daemons: "
                     "min/median/max of the repetitions that produced it; \"failures\" counts "
                     "the ones that did not" % REPEAT)
    elapsed = time.monotonic() - t_start
    print()
    print("partisan bench — %s, %d cores, %s GiB, Linux %s, %s (load at start %.2f)" % (
        M["cpu_model"], M["nproc"], M["memory_gib"], M["kernel"], M["date"], M["loadavg_at_start"][0]))
    print()
    print(table)
    print()
    for n in notes:
        print("* " + n)
    # a development run (quick, a subset, repeated) never overwrites the full results
    partial = QUICK or ONLY or REPEAT > 1
    out = os.path.join(BUILD, "bench", "results-partial.json" if partial else "results.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"machine": M, "quick": QUICK, "repeat": REPEAT, "elapsed_s": round(elapsed, 1),
                   "results": R if REPEAT == 1 else Rs, "table": rows, "notes": notes}, f, indent=1)
    print()
    print("results: %s (%.0f s)" % (out, elapsed))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        PROCS.stop_all()
        sys.exit(130)

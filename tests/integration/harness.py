"""harness.py: start real partisand processes on loopback and drive them
through partisanctl.

Every daemon listens on 127.0.0.1 port 0 (the kernel picks) and its real port
is read back through the control socket (`partisanctl spec --json`). Sockets
and logs live in a temporary directory; every process is killed at the end,
even when a test fails.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

BUILD = os.environ.get("PARTISAN_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
PARTISAND = os.path.join(BUILD, "partisand")
PARTISANCTL = os.path.join(BUILD, "partisanctl")


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "Segmentation fault")

# PARTISAN_VALGRIND=1: every daemon and every ptclient (the client library)
# runs under valgrind memcheck; a cluster fails at close if any of them
# reported an error or a definite leak (a process killed -9 leaves no
# summary and is not judged).
VALGRIND = os.environ.get("PARTISAN_VALGRIND") == "1"


def valgrind_prefix(logdir, what):
    if not VALGRIND:
        return []
    return ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite",
            "--log-file=%s" % os.path.join(logdir, "vg-%s.%%p" % what)]


def valgrind_errors(logdir):
    """What the valgrind logs in logdir reported: a list of (file, text)."""
    bad = []
    for f in sorted(os.listdir(logdir)) if VALGRIND else []:
        if not f.startswith("vg-"):
            continue
        with open(os.path.join(logdir, f)) as fh:
            text = fh.read()
        if text.strip():  # --quiet: only errors and leaks are written
            bad.append((f, text[-4000:]))
    return bad


def wait_for(cond, timeout=10.0, what="condition", interval=0.02):
    """Poll cond() until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = cond()
        except Exception as e:  # the daemon may be mid-restart
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)  # the poll interval of this deadline loop
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))


class Daemon:
    def __init__(self, cluster, name, config=None, extra_args=(), prefix=(), listen="127.0.0.1:0"):
        self.cluster = cluster
        self.name = name
        self.prefix = list(prefix)      # e.g. ["ip", "netns", "exec", NS]
        self.listen = listen
        self.sock = os.path.join(cluster.dir, name.split("@")[0] + ".sock")
        self.log = os.path.join(cluster.dir, name.split("@")[0] + ".log")
        self.config = config
        self.extra_args = list(extra_args)
        self.proc = None
        self.port = None

    def start(self):
        args = self.prefix + valgrind_prefix(self.cluster.dir, self.name.split("@")[0]) + \
            [PARTISAND, "-f", "--name", self.name, "--socket", self.sock]
        if self.listen is not None:  # None: the daemon's default, as an operator runs it
            args += ["--listen", self.listen]
        if self.config is not None:
            path = os.path.join(self.cluster.dir, self.name.split("@")[0] + ".json")
            with open(path, "w") as f:
                json.dump(self.config, f)
            args += ["-c", path]
        args += self.extra_args
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdout=logf, stderr=logf)
        logf.close()
        spec = wait_for(lambda: self.ctl_json("spec"), 60 if VALGRIND else 10,
                        "%s to answer on its socket" % self.name)
        self.port = spec["listen_addrs"][0]["port"]
        return self

    @property
    def addr(self):
        return "%s:%d" % (self.name, self.port)

    def ctl(self, *args, check=True, timeout=30):
        r = subprocess.run([PARTISANCTL, "-s", self.sock] + list(args), capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("partisanctl %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
        return r

    def ctl_json(self, *args):
        r = self.ctl("--json", *args)
        return json.loads(r.stdout)

    def members(self):
        return sorted(m["name"] for m in self.ctl_json("members")["members"])

    def nodes(self):
        return sorted(self.ctl_json("nodes")["nodes"])

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                return self.proc.wait(30 if VALGRIND else 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def logtext(self):
        try:
            with open(self.log) as f:
                return f.read()
        except OSError:
            return ""


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="partisan-test-")
        self.daemons = []

    def add(self, short, config=None, extra_args=(), start=True, host="127.0.0.1", prefix=(),
            listen=""):
        """listen: "" for HOST:0, None for the daemon's default, else IP:PORT."""
        d = Daemon(self, "%s@%s" % (short, host), config, extra_args, prefix,
                   "%s:0" % host if listen == "" else listen)
        self.daemons.append(d)
        if start:
            d.start()
        return d

    def secured(self, config=None):
        """config (a dict, or None) with this cluster's shared secret, made once
        with mode 0600: how daemons on separate hosts run (off loopback, a
        daemon without a secret or TLS refuses peers: protected mode)."""
        path = os.path.join(self.dir, "cluster.secret")
        if not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, os.urandom(24).hex().encode() + b"\n")
            os.close(fd)
        config = json.loads(json.dumps(config or {}))
        config.setdefault("cluster", {}).setdefault("secret_file", path)
        return config

    def close(self):
        """Stop every daemon (SIGTERM, so sanitizers report at exit), then fail
        if any of them logged a sanitizer error or a crash."""
        bad = []
        for d in self.daemons:
            try:
                d.stop()
            except Exception:
                d.kill()
            text = d.logtext()
            for marker in SANITIZER_MARKERS:
                if marker in text:
                    bad.append("%s: %s\n%s" % (d.name, marker, text[-4000:]))
                    break
        for f, text in valgrind_errors(self.dir):
            bad.append("valgrind %s:\n%s" % (f, text))
        shutil.rmtree(self.dir, ignore_errors=True)
        if bad:
            raise AssertionError("daemon reported a problem:\n" + "\n".join(bad))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def raw_frame(path_or_addr, payload, unix=True):
    """Open a raw connection, send one frame (or raw bytes), return the socket."""
    if unix:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path_or_addr)
    else:
        s = socket.create_connection(path_or_addr)
    s.sendall(payload)
    return s


def frame(body):
    return struct.pack(">I", len(body)) + body


def frame_msg(msg):
    """A protobuf message as one length-prefixed frame."""
    return frame(msg.SerializeToString())


def read_frame(sock, cls, timeout=None):
    """One length-prefixed frame from sock, parsed as cls; EOFError if the
    socket closes first."""
    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("closed")
            buf += chunk
        return buf
    if timeout is not None:
        sock.settimeout(timeout)
    (n,) = struct.unpack(">I", exact(4))
    m = cls()
    m.ParseFromString(exact(n))
    return m


PTCLIENT = os.path.join(BUILD, "tests", "ptclient")


class Client:
    """A ptclient process (tests/integration/ptclient.c) attached to a daemon."""

    def __init__(self, daemon, mode, *args):
        self.proc = subprocess.Popen(valgrind_prefix(daemon.cluster.dir, "ptclient") +
                                     [PTCLIENT, mode, daemon.sock] + [str(a) for a in args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            self.proc.kill()
            raise AssertionError("ptclient %s did not start: %r %s" % (mode, line, self.proc.stderr.read()))
        self.ready = line.split()[1:]

    def finish(self, timeout=120):
        """Wait for the program to end; return (exit code, stdout, stderr)."""
        # Read through the same file objects as readline() did: communicate()
        # reads the raw descriptors and would lose lines already buffered.
        got = {}
        readers = [threading.Thread(target=lambda k=k, f=f: got.__setitem__(k, f.read()))
                   for k, f in (("out", self.proc.stdout), ("err", self.proc.stderr))]
        for t in readers:
            t.start()
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            for t in readers:
                t.join()
            raise AssertionError("ptclient timed out: %s %s" % (got.get("out"), got.get("err")))
        for t in readers:
            t.join()
        return self.proc.returncode, got["out"], got["err"]

    def close_cleanly(self):
        self.proc.stdin.write("bye\n")
        self.proc.stdin.flush()
        return self.finish(10)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def rss_peak_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def kill_all(procs):
    """Kill what is still running of procs (Client objects or Popen)."""
    for p in procs:
        proc = getattr(p, "proc", p)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class ClusterTestCase(unittest.TestCase):
    """A test with a fresh Cluster, programs it started (Client or Popen)
    stopped at the end even on failure, and a helper for a joined cluster."""

    def setUp(self):
        self.c = Cluster()
        self.procs = []

    def tearDown(self):
        kill_all(self.procs)
        self.c.close()

    def client(self, daemon, mode, *args):
        cl = Client(daemon, mode, *args)
        self.procs.append(cl)
        return cl

    def cluster(self, n, config=None):
        ds = [self.c.add("n%d" % i, config) for i in range(n)]
        for d in ds[1:]:
            d.ctl("join", ds[0].addr)
        for d in ds:
            wait_for(lambda: len(d.nodes()) == n - 1, 10, "%s connected" % d.name)
        return ds

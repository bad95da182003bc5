"""The peer controller (client/spawn.c) through `partisanctl peer start/stop/list`:
detached peers recorded and listed, a foreground peer that stops with its
controller, boot failures (invalid config, a wrapper that never starts the
daemon). Every test has its own state directory (PARTISAN_PEER_DIR) and
TMPDIR, and stops whatever it started, even when it fails."""
import glob
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from harness import PARTISANCTL, PARTISAND, wait_for

STOP_DEADLINE = 5.0  # seconds, the library's default graceful deadline


def peer_alive(pid, sock):
    """Is pid running and still the daemon of sock (its --socket argument)?
    A zombie has an empty command line, so it counts as gone."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return False
    return sock.encode() in args


def pid_gone(pid):
    """No such process, or only its zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def read_json(proc, timeout):
    """Read one JSON document from proc's stdout within timeout seconds."""
    deadline = time.monotonic() + timeout
    fd = proc.stdout.fileno()
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        try:
            return json.loads(buf)
        except ValueError:
            continue
    raise AssertionError("no JSON from partisanctl within %.1fs: %r" % (timeout, buf))


class PeerTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="partisan-peer-test-")
        self.tmp = os.path.join(self.dir, "tmp")
        os.mkdir(self.tmp)
        self.statedir = os.path.join(self.dir, "peers")
        self.env = dict(os.environ, PARTISAN_PEER_DIR=self.statedir, TMPDIR=self.tmp,
                        PARTISAN_DAEMON=PARTISAND)
        san = os.path.join(self.dir, "san")
        for key in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            self.env[key] = ":".join(v for v in (os.environ.get(key, ""), "log_path=" + san) if v)
        self.procs = []  # foreground controllers
        self.seen = []   # (pid, socket) of every daemon started

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(STOP_DEADLINE + 10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        try:
            for name in self.peers():
                self.ctl("peer", "stop", name, check=False)
        except Exception:
            pass
        for pid, sock in self.seen:
            if peer_alive(pid, sock):
                os.kill(pid, signal.SIGKILL)
        reports = []
        for path in glob.glob(os.path.join(self.dir, "san*")):
            with open(path, errors="replace") as f:
                text = f.read()
            if text.strip():
                reports.append("%s:\n%s" % (path, text[-4000:]))
        shutil.rmtree(self.dir, ignore_errors=True)
        if reports:
            raise AssertionError("sanitizer reports:\n" + "\n".join(reports))

    # ---- helpers ----

    def ctl(self, *args, check=True, env=None, timeout=60):
        r = subprocess.run([PARTISANCTL] + list(args), capture_output=True, text=True,
                           env=env or self.env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("partisanctl %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                                r.stderr.strip()))
        return r

    def start_detached(self, *extra):
        r = self.ctl("--json", "peer", "start", "--detached", *extra)
        info = json.loads(r.stdout)
        self.seen.append((info["pid"], info["socket"]))
        return info

    def start_foreground(self, *extra):
        p = subprocess.Popen([PARTISANCTL, "--json", "peer", "start"] + list(extra),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env)
        self.procs.append(p)
        info = read_json(p, 30)
        self.seen.append((info["pid"], info["socket"]))
        return p, info

    def peers(self):
        r = self.ctl("--json", "peer", "list")
        return {p["name"]: p for p in json.loads(r.stdout)["peers"]}

    def members(self, info):
        r = self.ctl("-s", info["socket"], "--json", "members")
        return sorted(m["name"] for m in json.loads(r.stdout)["members"])

    def assert_gone(self, info, what):
        wait_for(lambda: not peer_alive(info["pid"], info["socket"]), STOP_DEADLINE, what)

    def assert_no_leftovers(self):
        self.assertEqual(os.listdir(self.tmp), [], "private peer directories left behind")

    # ---- tests ----

    def test_two_detached_peers_join_list_and_stop(self):
        a = self.start_detached()
        b = self.start_detached("--name", "pb")
        self.assertRegex(a["name"], r"^peer-\d+-\d+$")
        self.assertEqual(a["node"], a["name"] + "@127.0.0.1")
        self.assertEqual(b["node"], "pb@127.0.0.1")
        self.assertGreater(a["port"], 0)
        self.assertNotEqual(a["port"], b["port"])
        self.assertTrue(peer_alive(a["pid"], a["socket"]), "a detached peer outlives partisanctl")

        self.ctl("-s", b["socket"], "join", "%s:%d" % (a["node"], a["port"]))
        want = sorted([a["node"], b["node"]])
        for p in (a, b):
            wait_for(lambda: self.members(p) == want, 10, "%s to see both members" % p["name"])

        listed = self.peers()
        self.assertEqual(sorted(listed), sorted([a["name"], b["name"]]))
        for p in (a, b):
            self.assertEqual(listed[p["name"]]["state"], "running")
            self.assertEqual(listed[p["name"]]["pid"], p["pid"])
            self.assertEqual(listed[p["name"]]["port"], p["port"])
            self.assertEqual(listed[p["name"]]["socket"], p["socket"])
        table = self.ctl("peer", "list").stdout
        self.assertRegex(table.splitlines()[0], r"^NAME\s+NODE\s+PID\s+PORT\s+STATE\s+SOCKET$")

        r = self.ctl("peer", "stop", a["name"])
        self.assertIn("stopped", r.stdout)
        self.assert_gone(a, "the stopped peer's process to go")
        self.assertEqual(sorted(self.peers()), [b["name"]])
        self.assertFalse(os.path.exists(os.path.dirname(a["socket"])),
                         "the stopped peer's private directory is removed")
        self.assertEqual(self.members(b), want, "the other peer still runs")

        # A recorded peer that died by itself is listed as down, then cleaned up.
        os.kill(b["pid"], signal.SIGKILL)
        wait_for(lambda: self.peers()[b["name"]]["state"] == "down", 5, "pb to be listed down")
        self.ctl("peer", "stop", b["name"])
        self.assertEqual(self.peers(), {})
        self.assert_no_leftovers()

    def test_peer_start_refuses_a_name_already_running(self):
        a = self.start_detached("--name", "twice")
        r = self.ctl("peer", "start", "--detached", "--name", "twice", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("running already", r.stderr)
        self.assertTrue(peer_alive(a["pid"], a["socket"]))

    def test_stop_of_unknown_peer_and_bad_usage(self):
        r = self.ctl("peer", "stop", "nosuchpeer", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('no recorded peer named "nosuchpeer"', r.stderr)
        r = self.ctl("peer", "start", "--bogus", check=False)
        self.assertEqual(r.returncode, 2)
        r = self.ctl("peer", "stop", check=False)
        self.assertEqual(r.returncode, 2)

    def test_foreground_peer_stops_when_its_controller_gets_sigterm(self):
        p, info = self.start_foreground("--name", "fg")
        self.assertEqual(info["node"], "fg@127.0.0.1")
        self.assertFalse(info["detached"])
        self.assertTrue(peer_alive(info["pid"], info["socket"]))
        self.assertEqual(self.members(info), ["fg@127.0.0.1"])
        self.assertEqual(self.peers(), {}, "only detached peers are recorded")

        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(STOP_DEADLINE + 5), 0, p.stderr.read().decode(errors="replace"))
        self.assert_gone(info, "the daemon to stop with its controller")
        self.assertFalse(os.path.exists(info["socket"]))
        self.assert_no_leftovers()

    def test_foreground_peer_dies_with_a_killed_controller(self):
        p, info = self.start_foreground()
        p.kill()  # no chance to stop it: the death signal (SIGTERM) does
        p.wait()
        self.assert_gone(info, "the daemon to get its death signal")
        wait_for(lambda: not os.path.exists(info["socket"]), STOP_DEADLINE,
                 "the daemon to remove its socket")

    def test_invalid_config_fails_to_boot_with_a_clear_error(self):
        cfg = os.path.join(self.dir, "bad.json")
        with open(cfg, "w") as f:
            json.dump({"channels": {"bulk": {"parallelism": "four"}}}, f)
        for extra in (["--detached"], []):
            r = self.ctl("peer", "start", "--config", cfg, *extra, check=False)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("exited with status 78", r.stderr)
            self.assertIn("channels.bulk.parallelism", r.stderr)
            self.assertEqual(r.stdout, "")
        self.assertEqual(self.peers(), {})
        self.assert_no_leftovers()

    def test_boot_timeout_with_a_wrapper_that_never_starts_the_daemon(self):
        pids = os.path.join(self.dir, "wrapper.pids")
        wrapper = os.path.join(self.dir, "never-boots.sh")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\necho $$ >> %s\nsleep 300 &\necho $! >> %s\nwait\n" % (pids, pids))
        os.chmod(wrapper, 0o755)
        env = dict(self.env, PARTISAN_DAEMON=wrapper)
        t0 = time.monotonic()
        r = self.ctl("peer", "start", "--timeout", "800", check=False, env=env)
        took = time.monotonic() - t0
        print("  boot timeout reported after %.2fs" % took)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("timed out", r.stderr)
        self.assertIn("did not answer", r.stderr)
        self.assertGreaterEqual(took, 0.8)
        self.assertLess(took, 5)
        with open(pids) as f:
            started = [int(x) for x in f.read().split()]
        self.assertEqual(len(started), 2, "the wrapper and its child both ran")
        for pid in started:
            wait_for(lambda: pid_gone(pid), 5, "process %d of the wrapper to be gone" % pid)
        self.assertEqual(self.peers(), {})
        self.assert_no_leftovers()

    def test_daemon_that_cannot_be_run(self):
        env = dict(self.env, PARTISAN_DAEMON=os.path.join(self.dir, "no-such-partisand"))
        r = self.ctl("peer", "start", "--detached", check=False, env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot run", r.stderr)
        self.assert_no_leftovers()


if __name__ == "__main__":
    unittest.main()

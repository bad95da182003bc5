"""IPC robustness under abuse: refused clients closed at once and logged
once, the socket's mode under any umask, thousands of sessions, a session
that never reads, clients gone mid-call and mid-stream, and one stalled
application that must not slow down another on the same node. Each test
prints its figures (RSS, fds, log bytes, latencies)."""
import os
import pwd
import socket
import stat
import struct
import subprocess
import sys
import time
import unittest

import harness
from harness import BUILD, ClusterTestCase, wait_for

sys.path.insert(0, os.path.join(BUILD, "py"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ipc_pb2  # noqa: E402  (generated)
from pyclient import PyClient  # noqa: E402

UNDER_ASAN = "asan" in BUILD


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def frame(msg):
    return harness.frame_msg(msg)


def read_frame(sock):
    return harness.read_frame(sock, ipc_pb2.ServerMsg)


HELLO = frame(ipc_pb2.Request(id=1, hello=ipc_pb2.Hello(version=1, client="abuse")))

# Run as another uid: connect N times, each time send a hello and read to
# EOF; print how many ended with the daemon's EPERM frame and the slowest.
REFUSED_CHILD = r"""
import socket, struct, sys, time
path, n, hello = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
frames = 0
worst = 0.0
for i in range(n):
    t0 = time.monotonic()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    if i % 2 == 0:
        try:
            s.sendall(hello)
        except OSError:
            pass
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    worst = max(worst, time.monotonic() - t0)
    if len(data) >= 4:
        frames += 1
        last = data
    s.close()
print(frames, "%.4f" % worst, last.hex())
"""


class IpcAbuseTest(ClusterTestCase):
    def as_nobody(self, args):
        nobody = pwd.getpwnam("nobody")
        return subprocess.run(args, capture_output=True, text=True, timeout=120,
                              preexec_fn=lambda: (os.setgid(nobody.pw_gid), os.setuid(nobody.pw_uid)))

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run a client under another uid")
    def test_a_refused_client_is_closed_at_once_and_logged_once_not_per_attempt(self):
        os.chmod(self.c.dir, 0o755)  # let the other uid reach the socket itself
        a = self.c.add("guarded", {"ipc": {"mode": "0666", "allow_uids": [0]}})
        fds0, rss0, log0 = nfds(a.proc.pid), rss_kb(a.proc.pid), os.path.getsize(a.log)
        n = 500
        r = self.as_nobody([sys.executable, "-c", REFUSED_CHILD, a.sock, str(n), HELLO.hex()])
        self.assertEqual(r.returncode, 0, r.stderr)
        frames, worst, last = r.stdout.split()
        msg = ipc_pb2.ServerMsg()
        msg.ParseFromString(bytes.fromhex(last)[4:])
        self.assertEqual(msg.response.id, 0)
        self.assertEqual(msg.response.error, ipc_pb2.EPERM)
        self.assertEqual(int(frames), n, "every attempt got the daemon's EPERM, then EOF")
        # The library reports the refusal by its name, not as a lost connection.
        r = self.as_nobody([os.path.join(BUILD, "partisanctl"), "-s", a.sock, "status"])
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, "not allowed|not permitted")
        wait_for(lambda: nfds(a.proc.pid) <= fds0, 5, "the refused sockets closed")
        grown = os.path.getsize(a.log) - log0
        fds1, rss1 = nfds(a.proc.pid), rss_kb(a.proc.pid)
        print("  %d refused connects: slowest close %ss, log +%d bytes, fds %d -> %d, RSS %d -> %d KiB"
              % (n + 1, worst, grown, fds0, fds1, rss0, rss1))
        self.assertEqual(a.logtext().count("refused client"), 1, "one line for that uid, not one per attempt")
        self.assertLess(grown, 1024)
        self.assertLess(float(worst), 2.0)
        self.assertEqual(len(a.ctl_json("status")["endpoints"]), 1, "no session kept but the asker's")
        self.assertEqual(a.ctl_json("spec")["name"], a.name, "root is still served")

    @unittest.skipUnless(os.geteuid() == 0, "needs root to hold a connection under another uid")
    def test_a_refused_client_that_sends_nothing_is_closed_at_once(self):
        os.chmod(self.c.dir, 0o755)
        a = self.c.add("guarded", {"ipc": {"mode": "0666", "allow_uids": [0]}})
        child = r"""
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
t0 = time.monotonic()
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(len(data), "%.4f" % (time.monotonic() - t0))
"""
        r = self.as_nobody([sys.executable, "-c", child, a.sock])
        self.assertEqual(r.returncode, 0, r.stderr)
        got, secs = r.stdout.split()
        print("  silent refused client: %s bytes then EOF after %ss" % (got, secs))
        self.assertGreater(int(got), 4)
        self.assertLess(float(secs), 2.0)

    def test_the_socket_is_never_wider_than_ipc_mode_whatever_the_umask(self):
        for umask, mode in ((0o000, 0o600), (0o000, 0o660), (0o077, 0o660), (0o022, 0o640)):
            old = os.umask(umask)
            try:
                d = self.c.add("m%o%o" % (umask, mode), {"ipc": {"mode": "0%o" % mode}})
            finally:
                os.umask(old)
            got = stat.S_IMODE(os.stat(d.sock).st_mode)
            print("  umask %04o, ipc.mode %04o: socket %04o" % (umask, mode, got))
            self.assertEqual(got, mode)
            d.stop()

    def slow_reader(self, daemon, name):
        """A session that registers name and then reads nothing until told."""
        cl = PyClient(daemon.sock)
        cl.register(name)
        self.addCleanup(cl.sock.close)
        return cl

    def drain_in_order(self, cl, n, sender_id, timeout=30):
        """Read n messages from cl; each sender_id:SEQ: must come once, in order."""
        seq = 0
        deadline = time.monotonic() + timeout
        while seq < n:
            self.assertLess(time.monotonic(), deadline, "only %d of %d arrived" % (seq, n))
            ev = cl.event(timeout=10)
            if ev.WhichOneof("body") != "message":
                continue
            sid, got, _ = ev.message.payload.split(b":", 2)
            self.assertEqual((sid.decode(), int(got)), (sender_id, seq), "in order, none lost or repeated")
            seq += 1
        return seq

    def test_a_stalled_session_does_not_slow_another_app_on_the_same_node(self):
        cfg = {"session_queue_bytes": 1 << 20, "peer_queue_bytes": 1 << 20}
        a, b = self.cluster(2, cfg)
        slow = self.slow_reader(b, "slow")
        fast = PyClient(b.sock)
        fast.register("fast")
        rss0 = rss_kb(b.proc.pid)
        n, size = 4000, 4096  # 16 MiB toward a session that holds 1 MiB
        src = self.client(a, "source", b.name, "slow", n, "--id", "s", "--size", size)

        def delivered():
            return b.ctl_json("status")["messages_in"]
        # 1 MiB queued (256 messages) and what the socket holds: slow is full.
        wait_for(lambda: delivered() >= 290, 20, "slow's queue to fill")
        print("  slow full after %d messages" % delivered())
        pa = PyClient(a.sock)
        lat = []
        m = 600  # 6 s and more of stall: past a Flow lease (5 s), so renewed
        # What A had queued or in flight when the block reached it still
        # lands (on a busy host, for a while): count slow's messages from
        # the 300th fast one on, 3 s into the stall and across the end of
        # the first 5 s lease, which must have been renewed.
        settle = 300
        for i in range(m):
            if i == settle:
                before = delivered()
            time.sleep(0.01)  # pacing: one message per 10 ms
            t0 = time.monotonic()
            pa.request(send=ipc_pb2.Send(to="partisan:name:%s:fast" % b.name, payload=b"f:%d:" % i))
            ev = fast.event(timeout=10)
            lat.append(time.monotonic() - t0)
            self.assertEqual(ev.message.payload, b"f:%d:" % i)
        during = delivered() - before - (m - settle)
        lat.sort()
        rss1 = rss_kb(b.proc.pid)
        print("  with slow stalled: %d/%d to fast, latency p50 %.2f ms, p99 %.2f ms, max %.2f ms; "
              "%d more to slow meanwhile; B RSS %d -> %d KiB"
              % (m, m, lat[m // 2] * 1e3, lat[m * 99 // 100] * 1e3, lat[-1] * 1e3, during, rss0, rss1))
        self.assertLess(lat[m // 2], 0.1)
        self.assertLess(lat[-1], 1.0)
        self.assertLess(during, 100, "slow's sender was paused, not slow's queue grown")
        if not UNDER_ASAN:
            # 1 MiB queued, and what was in flight when A was told to hold back.
            self.assertLess(rss1 - rss0, 16 * 1024, "B's memory for slow stays bounded")
        # slow reads again: every message, in order, none lost.
        self.assertEqual(self.drain_in_order(slow, n, "s"), n)
        rc, out, err = src.finish(30)
        self.assertEqual(rc, 0, err)
        print("  slow resumed: %d/%d in order; sender %s" % (n, n, out.strip()))

    def test_a_wrong_hello_version_with_more_frames_behind_it_closes_that_session_alone(self):
        # The fuzzer's first IPC crash: a session closed by its hello's
        # handler (version mismatch) was freed while the read loop still
        # looked at it for the next frame (use after free under ASan).
        d = self.c.add("n0")
        other = PyClient(d.sock)
        bad = frame(ipc_pb2.Request(id=1, hello=ipc_pb2.Hello(version=99, client="old")))
        more = frame(ipc_pb2.Request(id=2, nodes=ipc_pb2.Nodes()))
        for _ in range(20):
            s = harness.raw_frame(d.sock, bad + more * 5)
            reply = read_frame(s)
            self.assertEqual(reply.response.error, ipc_pb2.EVERSION, reply)
            self.assertIn("version", reply.response.error_msg)
            s.settimeout(10)
            self.assertEqual(s.recv(4096), b"", "the session was not closed")
            s.close()
        self.assertEqual(other.request(nodes=ipc_pb2.Nodes()).WhichOneof("body"), "nodes")
        self.assertIsNone(d.proc.poll())

    def test_thousands_of_sessions_at_once(self):
        d = self.c.add("many")
        pid = d.proc.pid
        rss0, fds0 = rss_kb(pid), nfds(pid)
        n = 3000
        socks = []
        t0 = time.monotonic()
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.sock)
            s.sendall(HELLO)
            socks.append(s)
        for s in socks:
            s.settimeout(30)
            self.assertTrue(read_frame(s).response.hello.self, "each session gets its hello")
        took = time.monotonic() - t0
        self.assertGreaterEqual(d.ctl_json("status")["sessions"], n)
        rss1, fds1 = rss_kb(pid), nfds(pid)
        # With them all open, two more still talk to each other.
        a, b = PyClient(d.sock), PyClient(d.sock)
        b.register("last")
        a.request(send=ipc_pb2.Send(to="partisan:name:%s:last" % d.name, payload=b"hi"))
        self.assertEqual(b.event().message.payload, b"hi")
        a.close()
        b.close()
        for s in socks:
            s.close()
        wait_for(lambda: d.ctl_json("status")["sessions"] <= 1, 30, "the sessions closed")
        wait_for(lambda: nfds(pid) <= fds0, 10, "their descriptors freed")
        per = (rss1 - rss0) / n
        print("  %d sessions opened in %.2fs: RSS %d -> %d KiB (%.1f KiB each), fds %d -> %d -> %d"
              % (n, took, rss0, rss1, per, fds0, fds1, nfds(pid)))
        # One descriptor per session (the daemon's own few, a timer or a
        # dial, may come and go meanwhile).
        self.assertGreaterEqual(fds1 - fds0, n - 8, "one descriptor per session")
        if not UNDER_ASAN:
            self.assertLess(per, 64, "a session costs little memory")

    def test_a_session_that_never_reads_holds_a_local_sender_back_and_loses_nothing(self):
        d = self.c.add("solo", {"session_queue_bytes": 1 << 20})
        slow = self.slow_reader(d, "slow")
        rss0 = rss_kb(d.proc.pid)
        n, size = 8000, 4096  # 32 MiB toward a session that holds 1 MiB
        src = self.client(d, "source", d.name, "slow", n, "--id", "s", "--size", size)
        # A window, not a wait for a condition: unhindered, the 32 MiB go
        # in a fraction of a second; held back, the sender is still at it
        # when the window ends, and the daemon holds about 1 MiB for slow.
        time.sleep(3)
        rss1 = rss_kb(d.proc.pid)
        self.assertIsNone(src.proc.poll(), "the sender is held back while slow does not read")
        print("  local sender held back by a session that does not read: RSS %d -> %d KiB"
              % (rss0, rss1))
        if not UNDER_ASAN:
            self.assertLess(rss1 - rss0, 8 * 1024, "the daemon's memory for slow stays bounded")
        self.assertEqual(self.drain_in_order(slow, n, "s"), n)
        rc, out, err = src.finish(30)
        self.assertEqual(rc, 0, err)

    def test_a_subscriber_that_never_reads_is_shed_broadcasts_and_others_get_all(self):
        cfg = {"session_queue_bytes": 1 << 20}
        a, b = self.cluster(2, cfg)
        deaf = PyClient(b.sock)
        deaf.request(subscribe=ipc_pb2.Topic(topic="news"))
        self.addCleanup(deaf.sock.close)
        fast = PyClient(b.sock)
        fast.request(subscribe=ipc_pb2.Topic(topic="news"))
        pa = PyClient(a.sock)
        rss0 = rss_kb(b.proc.pid)
        # 8 MiB of broadcasts; Plumtree keeps the last 1,024 (1 MiB) for repair.
        n, size = 8000, 1024
        got = set()
        for i in range(n):
            pa.request(broadcast=ipc_pb2.Broadcast(topic="news", payload=b"%d:" % i + b"x" * size))
            while fast.events or i == n - 1 and len(got) < n:
                got.add(fast.event().broadcast.payload.split(b":")[0])
            if i % 500 == 499:  # keep the fast one drained as we go
                fast.request(status=ipc_pb2.Empty())
                while fast.events:
                    got.add(fast.event().broadcast.payload.split(b":")[0])
        while len(got) < n:
            got.add(fast.event().broadcast.payload.split(b":")[0])
        rss1 = rss_kb(b.proc.pid)
        self.assertEqual(len(got), n, "the reading subscriber got every broadcast")
        wait_for(lambda: "broadcasts to it are shed" in b.logtext(), 10, "the shedding logged")
        self.assertEqual(b.logtext().count("broadcasts to it are shed"), 1, "logged once, not per broadcast")
        # What the deaf one was given before it fell behind is all there, once each.
        deaf.sock.settimeout(2)
        seen = []
        try:
            while True:
                seen.append(deaf._read().event.broadcast.payload.split(b":")[0])
        except (socket.timeout, TimeoutError):
            pass
        print("  a deaf subscriber: %d of %d broadcasts queued to it, the rest shed; the reading one "
              "got %d/%d; B RSS %d -> %d KiB" % (len(seen), n, len(got), n, rss0, rss1))
        self.assertEqual(len(seen), len(set(seen)))
        self.assertLess(len(seen), n)
        if not UNDER_ASAN:
            # 1 MiB queued for deaf, 1 MiB in Plumtree's store, and slack.
            self.assertLess(rss1 - rss0, 6 * 1024, "B's memory for the deaf subscriber stays bounded")

    def test_clients_gone_mid_call_and_mid_stream_leave_the_daemon_whole(self):
        cfg = {"session_queue_bytes": 1 << 20}
        a, b = self.cluster(2, cfg)
        # The server goes away holding a call: the caller hears ENOPROC at
        # once, not at its timeout.
        srv = PyClient(b.sock)
        srv.register("svc")
        caller = PyClient(a.sock)
        rq = ipc_pb2.Request(id=99, call=ipc_pb2.Call(to="partisan:name:%s:svc" % b.name,
                                                      payload=b"q", timeout_ms=20000))
        caller.sock.sendall(frame(rq))
        self.assertEqual(srv.event().message.payload, b"q")
        t0 = time.monotonic()
        srv.sock.close()
        caller.sock.settimeout(10)
        r = read_frame(caller.sock).response
        took = time.monotonic() - t0
        self.assertEqual(ipc_pb2.Error.Name(r.error), "ENOPROC")
        self.assertLess(took, 5, "ENOPROC comes when the server goes, not at the call's timeout")
        # The caller goes away mid-call: the late reply lands nowhere and
        # nothing else notices.
        srv2 = PyClient(b.sock)
        srv2.register("svc2")
        gone = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        gone.connect(a.sock)
        gone.sendall(HELLO)
        read_frame(gone)
        gone.sendall(frame(ipc_pb2.Request(id=2, call=ipc_pb2.Call(
            to="partisan:name:%s:svc2" % b.name, payload=b"q2", timeout_ms=20000))))
        call = srv2.event().message
        gone.close()
        wait_for(lambda: a.ctl_json("status")["sessions"] <= 2, 10, "the caller's session closed")
        srv2.request(reply=ipc_pb2.Reply(to=call.__getattribute__("from"), call_ref=call.call_ref,
                                         payload=b"late"))
        # A frame cut off in the middle, then a close.
        half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        half.connect(a.sock)
        half.sendall(HELLO + struct.pack(">I", 1000) + b"0123456789")
        half.close()
        # A session receiving a stream goes away with its queue full: its
        # sender is let go and the rest is counted as undeliverable.
        slow = self.slow_reader(b, "slow")
        dropped0 = b.ctl_json("status")["dropped"]
        n = 4000
        src = self.client(a, "source", b.name, "slow", n, "--id", "s", "--size", 4096)
        wait_for(lambda: b.ctl_json("status")["messages_in"] >= 290, 20, "slow's queue to fill")
        slow.sock.close()
        rc, out, err = src.finish(60)
        self.assertEqual(rc, 0, err)
        wait_for(lambda: b.ctl_json("status")["dropped"] > dropped0, 10,
                 "the rest counted as for nobody")
        # Both daemons are whole: a call across works, and nothing was logged
        # as a crash (the cluster checks the logs at close).
        echo = self.client(b, "hold", "echo")
        ok = a.ctl("send", b.name, "echo", "after", "--ack", check=False)
        self.assertEqual(ok.returncode, 0, ok.stderr)
        self.assertEqual(echo.proc.stdout.readline().strip(), "got")
        print("  server gone mid-call: ENOPROC in %.3fs; caller gone mid-call, half a frame, a "
              "reader gone mid-stream: both daemons whole (%d dropped for nobody)"
              % (took, b.ctl_json("status")["dropped"] - dropped0))


if __name__ == "__main__":
    unittest.main()

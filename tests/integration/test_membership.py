"""Full-mesh membership, failure detection and bad input, with real daemons."""
import os
import signal
import socket
import struct
import subprocess
import time
import unittest

from harness import Cluster, PARTISAND, PARTISANCTL, frame, wait_for

FAILURE_TIMEOUT_MS = 2000
CONNECT_TIMEOUT_MS = 2000


class MembershipTest(unittest.TestCase):
    def setUp(self):
        self.c = Cluster()

    def tearDown(self):
        self.c.close()

    def start_joined(self, n, config=None):
        ds = [self.c.add("n%d" % i, config) for i in range(n)]
        for d in ds[1:]:
            d.ctl("join", ds[0].addr)
        want = sorted(d.name for d in ds)
        for d in ds:
            wait_for(lambda: d.members() == want, 10, "%s to see all %d members" % (d.name, n))
            wait_for(lambda: len(d.nodes()) == n - 1, 10, "%s connected to all" % d.name)
        return ds

    def test_five_daemons_join_through_one_contact_and_all_see_five_members(self):
        t0 = time.monotonic()
        ds = self.start_joined(5)
        print("  5 daemons converged in %.2fs" % (time.monotonic() - t0))
        for d in ds:
            self.assertEqual(len(d.members()), 5)
            self.assertNotIn(d.name, d.nodes(), "nodes never lists the node itself")

    def test_kill9_drops_node_from_nodes_but_keeps_it_in_members(self):
        ds = self.start_joined(4)
        victim = ds[3]
        victim.kill()
        t0 = time.monotonic()
        for d in ds[:3]:
            wait_for(lambda: victim.name not in d.nodes(), 5, "%s to drop the killed node" % d.name)
        print("  kill -9 noticed by all in %.3fs" % (time.monotonic() - t0))
        for d in ds[:3]:
            self.assertIn(victim.name, d.members())

    def test_a_node_restarted_without_a_join_learns_the_cluster_from_those_that_redial_it(self):
        # Restarted on its port with no join (none in a config): it knows
        # nobody, but the others redial it, and their digests must bring
        # it their state, or it stays half linked, timed out over and over.
        ds = self.start_joined(3)
        r = ds[2]
        port = r.port
        r.kill()
        r.listen = "127.0.0.1:%d" % port
        r.start()
        t0 = time.monotonic()
        want = sorted(d.name for d in ds)
        wait_for(lambda: r.members() == want, 10, "the restarted node to learn every member")
        wait_for(lambda: r.nodes() == sorted(d.name for d in ds[:2]), 10,
                 "the restarted node linked to the others")
        print("  restarted without a join: linked to all again in %.2fs" % (time.monotonic() - t0))

    def test_sigstop_drops_node_within_failure_timeout_and_sigcont_brings_it_back(self):
        ds = self.start_joined(3)
        victim = ds[2]
        victim.signal(signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            for d in ds[:2]:
                wait_for(lambda: victim.name not in d.nodes(), FAILURE_TIMEOUT_MS / 1000 + 1.5,
                         "%s to drop the stopped node" % d.name)
            took = time.monotonic() - t0
            print("  SIGSTOP noticed by all in %.3fs" % took)
            for d in ds[:2]:
                self.assertIn(victim.name, d.members(), "a paused node stays a member")
        finally:
            victim.signal(signal.SIGCONT)
        for d in ds[:2]:
            wait_for(lambda: victim.name in d.nodes(), 10, "%s to reconnect the resumed node" % d.name)

    def test_sigstop_in_a_ring_of_nine_is_noticed_by_the_nodes_that_do_not_watch_it(self):
        # Beyond five nodes each daemon heartbeats only its two ring
        # neighbours on each side; the others learn of a hung node from the
        # watchers (Silent) and check it against their own silence.
        ds = self.start_joined(9)
        victim = ds[4]
        victim.signal(signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            for d in ds:
                if d is not victim:
                    wait_for(lambda: victim.name not in d.nodes(), FAILURE_TIMEOUT_MS / 1000 + 2.5,
                             "%s to drop the stopped node" % d.name)
            print("  SIGSTOP in a ring of 9 noticed by all 8 in %.3fs" % (time.monotonic() - t0))
            for d in ds:
                if d is not victim:
                    self.assertEqual(len(d.nodes()), 7, "%s: only the stopped node dropped" % d.name)
        finally:
            victim.signal(signal.SIGCONT)
        for d in ds:
            if d is not victim:
                wait_for(lambda: victim.name in d.nodes(), 10, "%s to reconnect the resumed node" % d.name)

    def test_leave_removes_member_everywhere(self):
        ds = self.start_joined(4)
        ds[1].ctl("leave", ds[3].name)       # remove another node
        ds[2].ctl("leave")                   # leave ourselves
        rest = sorted([ds[0].name, ds[1].name])
        for d in ds[:2]:
            wait_for(lambda: d.members() == rest, 10, "%s to forget the leavers" % d.name)
        for gone in (ds[2], ds[3]):
            wait_for(lambda: gone.members() == [gone.name], 10, "%s to see itself alone" % gone.name)
            self.assertIn("removed from the cluster", gone.logtext())

    def test_a_removed_node_refuses_peers_until_told_to_join_again(self):
        ds = self.start_joined(3)
        ds[0].ctl("leave", ds[2].name)
        gone = ds[2]
        wait_for(lambda: gone.members() == [gone.name], 10, "the removed node to see itself alone")
        for d in ds[:2]:
            wait_for(lambda: gone.name not in d.members(), 10, "%s to forget it" % d.name)
        r = self.c.add("newcomer").ctl("join", gone.addr, check=False)
        self.assertEqual(r.returncode, 1, "a removed node is no contact")
        self.assertIn("left the cluster", r.stderr)
        gone.ctl("join", ds[0].addr)
        want = sorted(d.name for d in ds)
        for d in ds:
            wait_for(lambda: d.members() == want, 10, "%s to see the node back" % d.name)

    def test_channel_with_parallelism_three_opens_three_connections(self):
        cfg = {"channels": {"bulk": {"parallelism": 3}}}
        ds = self.start_joined(2, cfg)
        for d, other in ((ds[0], ds[1]), (ds[1], ds[0])):
            def bulk():
                rows = d.ctl_json("connections", other.name)["connections"]
                return [r for r in rows if r["channel"] == "bulk" and r["connected"] == 3 and r["wanted"] == 3]
            wait_for(bulk, 10, "3 bulk connections from %s" % d.name)

    def test_sync_join_returns_once_every_channel_is_connected(self):
        cfg = {"channels": {"bulk": {"parallelism": 2}}}
        a = self.c.add("a", cfg)
        b = self.c.add("b", cfg)
        b.ctl("join", a.addr)
        rows = b.ctl_json("connections", a.name)["connections"]
        self.assertTrue(all(r["connected"] == r["wanted"] for r in rows), rows)

    def test_a_join_gossips_at_once_not_at_the_next_round(self):
        # Gossip rounds a minute apart: only the join's own gossip can make
        # the contact (and, through it, the rest) know the new node before
        # the joins' 15 s deadline (room for a slow sanitizer build on a
        # busy host, still far from the next round).
        cfg = {"gossip_interval_ms": 60000}
        a, b, c = (self.c.add(n, cfg) for n in ("a", "b", "c"))
        b.ctl("join", a.addr, "--timeout", "15000")
        c.ctl("join", a.addr, "--timeout", "15000")
        want = sorted([a.name, b.name, c.name])
        for d in (a, b, c):
            wait_for(lambda: d.members() == want, 15, "%s to see all three" % d.name)
            wait_for(lambda: len(d.nodes()) == 2, 15, "%s connected to both" % d.name)

    def test_join_to_nothing_fails_with_a_clear_error(self):
        a = self.c.add("a")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        r = a.ctl("join", "127.0.0.1:%d" % port, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("partisanctl:", r.stderr)

    def free_port(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def join_in_background(self, joiner, target, timeout_ms):
        return subprocess.Popen([PARTISANCTL, "-s", joiner.sock, "join", target, "--timeout", str(timeout_ms)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def assert_join_retrying(self, joiner, join):
        # The first dial failed and the join goes on: it has not answered.
        wait_for(lambda: "retrying until it answers" in joiner.logtext() or join.poll() is not None, 10,
                 "%s's join to retry its contact" % joiner.name)
        self.assertIsNone(join.poll(), "the join gave up at its first failed dial: %s" % (
            join.communicate()[1] if join.poll() is not None else ""))

    def test_join_retries_a_contact_that_is_not_listening_yet(self):
        port = self.free_port()
        a = self.c.add("a", start=False, listen="127.0.0.1:%d" % port)
        b = self.c.add("b")
        join = self.join_in_background(b, "a@127.0.0.1:%d" % port, 15000)
        self.assert_join_retrying(b, join)
        a.start()
        out, err = join.communicate(timeout=30)
        self.assertEqual(join.returncode, 0, err)
        self.assertEqual(b.members(), sorted([a.name, b.name]))
        wait_for(lambda: a.members() == sorted([a.name, b.name]), 10, "the contact to see the joiner")

    def test_join_waits_for_a_stopped_contact_past_the_handshake_timeout(self):
        a = self.c.add("a")
        b = self.c.add("b")
        a.signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            join = self.join_in_background(b, a.addr, 15000)
            # Past connect_timeout_ms (2 s), where a join used to give up.
            wait_for(lambda: join.poll() is not None or time.monotonic() - t0 > CONNECT_TIMEOUT_MS / 1000 + 1,
                     10, "the join to outlive the handshake timeout")
            self.assertIsNone(join.poll(), "the join gave up on its stopped contact: %s" % (
                join.communicate()[1] if join.poll() is not None else ""))
        finally:
            a.signal(signal.SIGCONT)
        out, err = join.communicate(timeout=30)
        self.assertEqual(join.returncode, 0, err)
        self.assertIn(a.name, b.nodes())

    def test_join_to_a_contact_that_never_answers_fails_at_its_timeout(self):
        a = self.c.add("a")
        silent = socket.socket()                 # listens, never speaks: a hung contact
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        try:
            for port, last in ((self.free_port(), "Connection refused"), (silent.getsockname()[1], "")):
                t0 = time.monotonic()
                r = a.ctl("join", "127.0.0.1:%d" % port, "--timeout", "3000", check=False)
                took = time.monotonic() - t0
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("no answer from 127.0.0.1:%d within" % port, r.stderr)
                self.assertIn(last, r.stderr)
                self.assertGreaterEqual(took, 2.9, "failed before its timeout: %s" % r.stderr)
                self.assertLess(took, 10, "the timeout is 3 s")
        finally:
            silent.close()

    def test_bad_peer_frames_close_only_that_connection(self):
        ds = self.start_joined(2)
        a = ds[0]
        garbage = socket.create_connection(("127.0.0.1", a.port))
        garbage.sendall(frame(b"\xff\xff\xff\xff not protobuf"))
        self.assertEqual(garbage.recv(65536, socket.MSG_WAITALL) if False else self._drain(garbage), b"closed")
        huge = socket.create_connection(("127.0.0.1", a.port))
        huge.sendall(struct.pack(">I", 0x7fffffff))
        self.assertEqual(self._drain(huge), b"closed")
        self.assertEqual(a.nodes(), [ds[1].name], "the real peer link is untouched")
        self.assertIsNone(a.proc.poll())
        self.assertIn("closing", a.logtext())

    def _drain(self, s):
        s.settimeout(5)
        while True:
            b = s.recv(4096)
            if not b:
                return b"closed"

    def test_bad_ipc_frame_closes_only_that_session(self):
        a = self.c.add("a")
        good = socket.socket(socket.AF_UNIX)
        good.connect(a.sock)
        bad = socket.socket(socket.AF_UNIX)
        bad.connect(a.sock)
        bad.sendall(frame(b"\x0a\xff\xff garbage"))
        self.assertEqual(self._drain(bad), b"closed")
        self.assertEqual(a.ctl_json("spec")["name"], a.name)
        good.close()

    def test_sigterm_exits_zero_and_removes_the_socket(self):
        a = self.c.add("a")
        self.assertTrue(os.path.exists(a.sock))
        self.assertEqual(a.stop(), 0)
        self.assertFalse(os.path.exists(a.sock))


class StaticManagerTest(unittest.TestCase):
    def test_static_membership_is_what_each_node_was_told(self):
        with Cluster() as c:
            cfg = {"peer_service_manager": "static"}
            a, b, x = c.add("a", cfg), c.add("b", cfg), c.add("x", cfg)
            b.ctl("join", a.addr)
            x.ctl("join", a.addr)
            wait_for(lambda: b.members() == sorted([a.name, b.name]), 5, "b to list a")
            self.assertEqual(a.members(), [a.name], "no gossip: a was told nothing")
            self.assertEqual(b.ctl_json("status")["manager"], "static")
            self.assertNotIn(x.name, b.members(), "no gossip: b never hears of x")
            a.ctl("join", b.addr)
            wait_for(lambda: b.name in a.nodes(), 5, "a connected to b")
            b.ctl("leave", a.name)
            self.assertEqual(b.members(), [b.name])


class ClientServerManagerTest(unittest.TestCase):
    def test_clients_connect_to_servers_only(self):
        with Cluster() as c:
            srv = {"peer_service_manager": "client_server", "client_server": {"role": "server"}}
            cli = {"peer_service_manager": "client_server", "client_server": {"role": "client"}}
            s1, s2 = c.add("s1", srv), c.add("s2", srv)
            c1, c2 = c.add("c1", cli), c.add("c2", cli)
            for d in (s2, c1, c2):
                d.ctl("join", s1.addr)
            everyone = sorted(d.name for d in (s1, s2, c1, c2))
            for s in (s1, s2):
                wait_for(lambda: s.members() == everyone, 10, "%s to see everyone" % s.name)
                wait_for(lambda: len(s.nodes()) == 3, 10, "%s connected to all" % s.name)
            # Partisan's client_server: a client's view is the servers and itself.
            for cl in (c1, c2):
                wait_for(lambda: cl.members() == sorted([s1.name, s2.name, cl.name]), 10,
                         "%s to see the servers and itself" % cl.name)
                wait_for(lambda: cl.nodes() == sorted([s1.name, s2.name]), 10, "%s on servers" % cl.name)
            self.assertEqual(c1.ctl_json("status")["manager"], "client_server")
            # A client reaches another client only through a server, when asked to.
            listener = subprocess.Popen([PARTISANCTL, "-s", c2.sock, "listen", "inbox"],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                wait_for(lambda: any("inbox" in e["names"] for e in c2.ctl_json("status")["endpoints"]),
                         5, "inbox")
                r = c1.ctl("send", c2.name, "inbox", "direct", check=False)
                self.assertEqual(r.returncode, 1)
                self.assertIn("only through a server", r.stderr)
                c1.ctl("send", c2.name, "inbox", "via-a-server", "--transitive")
                self.assertIn("via-a-server", listener.stdout.readline())
            finally:
                listener.kill()
                listener.wait()


class ConfigTest(unittest.TestCase):
    def run_d(self, *args):
        return subprocess.run([PARTISAND] + list(args), capture_output=True, text=True, timeout=10)

    def test_shipped_example_config_is_valid(self):
        conf = os.path.join(os.path.dirname(__file__), "..", "..", "conf", "partisand.json")
        r = self.run_d("-c", conf, "--check-config")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_invalid_config_exits_78_naming_the_path(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write('{"channels": {"bulk": {"parallelism": "four"}}}')
            f.flush()
            r = self.run_d("-c", f.name, "--check-config")
        self.assertEqual(r.returncode, 78)
        self.assertEqual(r.stderr.strip(),
                         'partisand: config: channels.bulk.parallelism: expected integer 1..64, got "four"')

    def test_unknown_key_is_refused(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write('{"tls": {"verfy_peer": true}}')
            f.flush()
            r = self.run_d("-c", f.name, "--check-config")
        self.assertEqual(r.returncode, 78)
        self.assertIn("tls.verfy_peer: unknown key", r.stderr)

    def test_bad_flag_exits_78(self):
        r = self.run_d("--listen", "nowhere", "--check-config")
        self.assertEqual(r.returncode, 78)
        self.assertIn("--listen", r.stderr)


if __name__ == "__main__":
    unittest.main()

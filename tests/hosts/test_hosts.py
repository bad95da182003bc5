"""Multi-host tests: daemons on separate test hosts (network namespaces with
their own IPv4 and IPv6 addresses on one bridge, tests/hosts/bed.py), each
started on its defaults as an operator would (`--name` and `--socket` only:
listening on [::]:10200, advertising what peers can reach), and driven
through partisanctl."""
import json
import os
import signal
import subprocess
import sys
import time
import unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))
sys.path.insert(0, here)
from harness import PARTISANCTL, Cluster, Daemon, kill_all, wait_for  # noqa: E402
import bed  # noqa: E402
from pki import Pki, tls_config  # noqa: E402

REASON = bed.available()
PORT = 10200


class HostsTestCase(unittest.TestCase):
    """A bed of N hosts per test class; daemons per test."""
    N = 5
    IPV4 = True

    @classmethod
    def setUpClass(cls):
        cls.bed = bed.Bed(cls.N, ipv4=cls.IPV4)

    @classmethod
    def tearDownClass(cls):
        cls.bed.close()

    def setUp(self):
        self.c = Cluster()
        self.procs = []

    def tearDown(self):
        kill_all(self.procs)
        self.bed.heal()
        self.c.close()

    def host(self, i):
        return self.bed.ip[i] if self.IPV4 else "[%s]" % self.bed.ip6[i]

    def start(self, i, config=None, listen=None, short=None, secured=True):
        """The daemon of host i on its defaults (listen None), named after the
        host; with the bed's shared secret unless secured is False."""
        if secured:
            config = self.c.secured(config)
        return self.c.add(short or "n%d" % i, config, host=self.host(i), prefix=self.bed.prefix(i),
                          listen=listen)

    def contact(self, i, port=PORT):
        return "n%d@%s:%d" % (i, self.host(i), port)

    def listen(self, d, name, *extra):
        """partisanctl listen NAME on daemon d, as a program of that host."""
        p = subprocess.Popen([PARTISANCTL, "-s", d.sock, "--json", "listen", name] + list(extra),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(p)
        wait_for(lambda: any(name in e["names"] for e in d.ctl_json("status")["endpoints"]), 5,
                 "%s registered on %s" % (name, d.name))
        return p

    def mesh(self, ds, what="full mesh"):
        names = sorted(d.name for d in ds)
        for d in ds:
            wait_for(lambda: d.nodes() == sorted(set(names) - {d.name}), 20, "%s: %s" % (d.name, what))


@unittest.skipIf(REASON is not None, "multi-host tests skipped: %s" % REASON)
class FullMeshHostsTest(HostsTestCase):
    def test_five_hosts_on_defaults_join_by_host_address_and_all_pairs_connect(self):
        ds = [self.start(i) for i in range(self.N)]
        spec = ds[0].ctl_json("spec")
        addrs = [a["ip"] for a in spec["listen_addrs"]]
        self.assertEqual(addrs, [self.bed.ip[0], self.bed.ip6[0]], "advertised: the name's host, then IPv6")
        for a in spec["listen_addrs"]:
            self.assertEqual(a["port"], PORT)
        t0 = time.monotonic()
        for d in ds[1:]:
            d.ctl("join", self.contact(0))
        self.mesh(ds)
        took = time.monotonic() - t0
        members = ds[3].ctl_json("members")["members"]
        self.assertEqual(sorted(m["name"] for m in members), sorted(d.name for d in ds))
        for m in members:
            for a in m["listen_addrs"]:
                self.assertNotIn(a["ip"], ("0.0.0.0", "::", "127.0.0.1", "::1"), m)
        print("  5 hosts, defaults, joined by host address: full mesh in %.2fs" % took)

    def test_a_node_restarted_on_a_lower_port_is_reachable_again_and_its_old_spec_pruned(self):
        ds = [self.start(i) for i in range(2)] + [self.start(2, listen="0.0.0.0:20000")]
        for d in ds[1:]:
            d.ctl("join", self.contact(0))
        self.mesh(ds)
        inbox = self.listen(ds[1], "inbox")
        ds[2].kill()
        ds[2].listen = "0.0.0.0:15000"
        ds[2].start()
        t0 = time.monotonic()
        ds[2].ctl("join", self.contact(0), "--timeout", "5000")
        self.mesh(ds, "reconnected to the restarted node")
        took = time.monotonic() - t0
        for d in ds:
            wait_for(lambda: [m["listen_addrs"][0]["port"] for m in d.ctl_json("members")["members"]
                              if m["name"] == ds[2].name] == [15000], 10,
                     "%s: one spec of the restarted node, the new one" % d.name)
        ds[2].ctl("send", ds[1].name, "inbox", "after-restart")
        self.assertEqual(json.loads(inbox.stdout.readline())["message"], "after-restart")
        print("  restart on a lower port: every member linked again %.2fs after its join" % took)

    def test_a_node_restarted_on_another_port_without_rejoining_comes_back_by_gossip(self):
        ds = [self.start(i) for i in range(3)]
        for d in ds[1:]:
            d.ctl("join", self.contact(0))
        self.mesh(ds)
        ds[1].kill()
        ds[1].listen = "[::]:12000"
        ds[1].extra_args = ["--join", self.contact(2)]  # as a config's join list would
        ds[1].start()
        t0 = time.monotonic()
        self.mesh(ds, "the restarted node back")
        print("  restart on another port, join from its config: mesh again in %.2fs"
              % (time.monotonic() - t0))

    def test_a_node_restarted_before_the_others_noticed_it_died_replaces_the_old_one(self):
        ds = [self.start(i) for i in range(2)] + [self.start(2, listen="0.0.0.0:20000")]
        for d in ds[1:]:
            d.ctl("join", self.contact(0))
        self.mesh(ds)
        inbox = self.listen(ds[1], "inbox")
        ds[2].signal(signal.SIGSTOP)  # hung, its links still open: nobody has noticed yet
        new = Daemon(self.c, ds[2].name, self.c.secured(), (), self.bed.prefix(2), "0.0.0.0:15000")
        new.sock = ds[2].sock + ".new"
        new.log = ds[2].log + ".new"
        self.c.daemons.append(new)
        new.start()
        t0 = time.monotonic()
        new.ctl("join", self.contact(0))
        self.mesh([ds[0], ds[1], new], "the new incarnation linked")
        took = time.monotonic() - t0
        self.assertLess(took, 2.0, "the old incarnation's links closed at the new one's hello, "
                        "not after failure_timeout_ms")
        new.ctl("send", ds[1].name, "inbox", "from-the-new-one")
        self.assertEqual(json.loads(inbox.stdout.readline())["message"], "from-the-new-one")
        # The old one wakes up: refused as an older incarnation, or it reads
        # the state that superseded it and stops taking part; the new one stays.
        ds[2].signal(signal.SIGCONT)
        wait_for(lambda: "older incarnation" in ds[2].logtext() or
                 "removed from the cluster" in ds[2].logtext(), 10, "the old incarnation put aside")
        ds[2].kill()
        self.mesh([ds[0], ds[1], new], "still linked to the new incarnation")
        print("  restart before the old process was found dead: linked again in %.2fs" % took)

    def test_a_partition_between_two_groups_heals_with_membership_and_messaging(self):
        ds = [self.start(i) for i in range(self.N)]
        for d in ds[1:]:
            d.ctl("join", self.contact(0))
        self.mesh(ds)
        inbox = self.listen(ds[4], "inbox")
        self.bed.partition([0, 1], [2, 3, 4])
        wait_for(lambda: ds[0].nodes() == [ds[1].name], 15, "the partition seen from n0")
        wait_for(lambda: ds[4].nodes() == sorted([ds[2].name, ds[3].name]), 15, "and from n4")
        r = ds[0].ctl("send", ds[4].name, "inbox", "cut", check=False)
        self.assertEqual(r.returncode, 1, "no link across the partition")
        t0 = time.monotonic()
        self.bed.heal()
        self.mesh(ds, "healed")
        took = time.monotonic() - t0
        for d in ds:
            self.assertEqual(len(d.members()), self.N)
        ds[0].ctl("send", ds[4].name, "inbox", "healed")
        self.assertEqual(json.loads(inbox.stdout.readline())["message"], "healed")
        print("  partition 2|3 healed: full mesh again in %.2fs" % took)

    def test_a_join_whose_contact_dies_midway_is_done_through_the_member_it_learned(self):
        # The contact answers the join (its first link passes) but no other
        # link from the joiner to it can open (host 0 takes one connection
        # from host 2, nftables ct count), so the join waits for its bulk
        # channel; then the contact dies. What the contact told is the
        # cluster: the join is done once the joiner is linked to n1.
        cfg = {"channels": {"bulk": {"parallelism": 2}}}
        ds = [self.start(i, cfg) for i in range(3)]
        ds[1].ctl("join", self.contact(0))
        self.mesh(ds[:2])
        self.bed._rules(0, ["ip saddr %s tcp dport %d ct count over 1 drop" % (self.bed.ip[2], PORT),
                            "ip6 saddr %s tcp dport %d drop" % (self.bed.ip6[2], PORT)])
        t0 = time.monotonic()
        join = subprocess.Popen([PARTISANCTL, "-s", ds[2].sock, "join", self.contact(0), "--timeout", "30000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(join)
        wait_for(lambda: ds[1].name in ds[2].nodes(), 15, "the joiner linked to the member it learned")
        self.assertIsNone(join.poll(), "the join ended before the contact died")
        ds[0].kill()
        out, err = join.communicate(timeout=25)
        took = time.monotonic() - t0
        self.assertEqual(join.returncode, 0, "join: %s %s" % (out, err))
        self.assertLess(took, 20, "the join waited for its timeout")
        self.assertIn(ds[2].name, ds[1].nodes())
        print("  contact killed mid-join: done through n1 %.2fs after it began" % took)

    def test_a_spec_with_no_usable_address_is_refused_at_join_with_a_clear_error(self):
        a = self.start(0)
        # A node that advertises only loopback, dialling from its host address.
        b = self.start(1, listen="0.0.0.0:10200")
        b.stop()
        b.extra_args = ["--advertise", "127.0.0.1:10200"]
        b.start()
        r = b.ctl("join", self.contact(0), "--timeout", "3000", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("advertises no address other nodes can dial", r.stderr)
        self.assertIn("advertise_addrs", r.stderr)
        self.assertIn("advertises no address", a.logtext())
        self.assertEqual(a.nodes(), [])


@unittest.skipIf(REASON is not None, "multi-host tests skipped: %s" % REASON)
class Ipv6OnlyHostsTest(HostsTestCase):
    N = 5
    IPV4 = False

    def test_five_ipv6_only_hosts_join_by_address_and_carry_messages(self):
        ds = [self.start(i) for i in range(self.N)]
        self.assertEqual([a["ip"] for a in ds[0].ctl_json("spec")["listen_addrs"]], [self.bed.ip6[0]])
        t0 = time.monotonic()
        for d in ds[1:3]:
            d.ctl("join", self.contact(0))
        for d in ds[3:]:
            d.ctl("join", "[%s]:%d" % (self.bed.ip6[1], PORT))  # by address alone
        self.mesh(ds)
        took = time.monotonic() - t0
        inbox = self.listen(ds[4], "inbox")
        ds[0].ctl("send", ds[4].name, "inbox", "over-ipv6", "--ack")
        self.assertEqual(json.loads(inbox.stdout.readline())["message"], "over-ipv6")
        print("  5 IPv6-only hosts: full mesh in %.2fs" % took)


@unittest.skipIf(REASON is not None, "multi-host tests skipped: %s" % REASON)
class HyParViewHostsTest(HostsTestCase):
    N = 10
    HV = {"peer_service_manager": "hyparview", "hyparview": {"active_max_size": 3, "passive_max_size": 6}}

    def overlay(self):
        ds = [self.start(i, self.HV) for i in range(self.N)]
        for i, d in enumerate(ds[1:], 1):
            d.ctl("join", self.contact((i - 1) // 2))  # a tree of contacts
        for d in ds:
            wait_for(lambda: len(d.nodes()) >= 1, 10, "%s linked" % d.name)
        return ds

    def test_ten_hosts_form_an_overlay_and_a_broadcast_reaches_all(self):
        ds = self.overlay()
        subs = []
        for d in ds:
            p = subprocess.Popen([PARTISANCTL, "-s", d.sock, "--json", "subscribe", "news"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.procs.append(p)
            subs.append(p)
            # the subscriber's session is open (status counts it) once it subscribed
            wait_for(lambda: d.ctl_json("status").get("sessions", 0) >= 2, 5, "subscriber on " + d.name)
        ds[7].ctl("broadcast", "news", "hello-all")
        for p in subs:
            self.assertEqual(json.loads(p.stdout.readline())["message"], "hello-all")

    def test_a_node_restarted_on_a_lower_port_is_linked_again(self):
        ds = [self.start(i, self.HV) for i in range(3)]
        ds[2].stop()
        ds[2].listen = "0.0.0.0:20000"
        ds[2].start()
        for d in ds[1:]:
            d.ctl("join", self.contact(0))
        wait_for(lambda: ds[2].name in ds[0].nodes(), 10, "n2 in n0's active view")
        ds[2].kill()
        ds[2].listen = "0.0.0.0:15000"
        ds[2].start()
        t0 = time.monotonic()
        ds[2].ctl("join", self.contact(0), "--timeout", "5000")
        wait_for(lambda: ds[2].name in ds[0].nodes() and ds[0].name in ds[2].nodes(), 10,
                 "n0 and the restarted n2 linked")
        print("  hyparview: restart on a lower port linked again in %.2fs" % (time.monotonic() - t0))

    def test_the_registry_is_cluster_wide_and_a_dead_nodes_names_go_everywhere(self):
        ds = self.overlay()
        self.listen(ds[9], "svc", "--echo")
        t0 = time.monotonic()
        for d in ds:
            wait_for(lambda: d.ctl_json("registry", "svc").get("registry"), 10,
                     "%s sees svc" % d.name)
        seen = time.monotonic() - t0
        self.assertEqual(ds[0].ctl_json("registry", "svc")["registry"][0]["refs"][0].split(":")[2],
                         ds[9].name)
        # Calls to "the name wherever it is", and transitive calls and sends.
        # A call is not retransmitted: one sent on a link the overlay drops at
        # that moment (a shuffle right after forming) times out, as the SPEC
        # allows; the name must still answer the next call.
        def call(d, *args):
            r = d.ctl("call", *args, check=False)
            if r.returncode != 0 and "timed out" in r.stderr:
                print("  (call %s timed out on a changing overlay; called again)" % " ".join(args))
                r = d.ctl("call", *args, check=False)
            return r.returncode, r.stdout.strip(), r.stderr.strip()
        self.assertEqual(call(ds[0], "--any", "svc", "ping")[:2], (0, "ping"))
        far = [d for d in ds[:9] if ds[9].name not in d.nodes()][0]
        self.assertEqual(call(far, ds[9].name, "svc", "hop", "--transitive")[:2], (0, "hop"))
        r = far.ctl("call", "--any", "nobody", "x", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("nobody holds that name", r.stderr)
        # A node that dies takes its names with it, everywhere.
        ds[9].kill()
        t1 = time.monotonic()
        for d in ds[:9]:
            wait_for(lambda: d.ctl_json("registry", "svc").get("registry") == [], 10,
                     "%s forgets svc" % d.name)
        gone = time.monotonic() - t1
        print("  hyparview, 10 hosts: a name seen everywhere in %.2fs, gone everywhere %.2fs "
              "after kill -9" % (seen, gone))


@unittest.skipIf(REASON is not None, "multi-host tests skipped: %s" % REASON)
class ClientServerHostsTest(HostsTestCase):
    N = 6

    def test_two_servers_four_clients_views_and_transitive_messages(self):
        srv = {"peer_service_manager": "client_server", "client_server": {"role": "server"}}
        cli = {"peer_service_manager": "client_server", "client_server": {"role": "client"}}
        ds = [self.start(i, srv if i < 2 else cli) for i in range(self.N)]
        for d in ds[1:]:
            d.ctl("join", self.contact(0))
        servers = sorted(d.name for d in ds[:2])
        everyone = sorted(d.name for d in ds)
        for s in ds[:2]:
            wait_for(lambda: s.members() == everyone, 15, "%s sees everyone" % s.name)
            wait_for(lambda: s.nodes() == sorted(set(everyone) - {s.name}), 15, "%s linked to all" % s.name)
        for c in ds[2:]:
            wait_for(lambda: c.members() == sorted(servers + [c.name]), 15,
                     "%s sees the servers and itself" % c.name)
            wait_for(lambda: c.nodes() == servers, 15, "%s linked to the servers" % c.name)
        inbox = self.listen(ds[5], "inbox", "--echo")
        wait_for(lambda: ds[2].ctl_json("registry", "inbox").get("registry"), 10, "a client sees it")
        # Until gossip has told n2 that n5 is a client, a send fails as "not connected".
        r = wait_for(lambda: (lambda r: r if "only through a server" in r.stderr else None)(
            ds[2].ctl("send", ds[5].name, "inbox", "direct", check=False)), 10,
            "a client-to-client send to fail with the hint")
        self.assertEqual(r.returncode, 1)
        ds[2].ctl("send", ds[5].name, "inbox", "via-server", "--transitive")
        self.assertEqual(json.loads(inbox.stdout.readline())["message"], "via-server")
        self.assertEqual(ds[3].ctl("call", ds[5].name, "inbox", "rt", "--transitive").stdout.strip(), "rt")


class SecurityHostsTest(HostsTestCase):
    """The three ways to run across hosts: protected mode (the default)
    refuses other hosts, cluster.insecure admits them, certificates bind a
    node's name to its host."""
    N = 3

    def test_protected_mode_refuses_other_hosts_and_insecure_admits_them(self):
        a, b = self.start(0, secured=False), self.start(1, secured=False)
        r = b.ctl("join", self.contact(0), check=False)
        self.assertNotEqual(r.returncode, 0)
        wait_for(lambda: "protected mode: set cluster.secret_file or tls, or cluster.insecure" in a.logtext(),
                 10, "the refusal logged")
        self.assertEqual(a.logtext().count("protected mode"), 1, "once per peer, however often it tries")
        self.assertEqual(a.ctl_json("status")["security"], "protected")
        for d in (a, b):
            d.stop()
        self.c.daemons = []
        insecure = {"cluster": {"insecure": True}}
        a, b = self.start(0, insecure, secured=False), self.start(1, insecure, secured=False)
        self.assertIn("cluster.insecure", a.logtext())
        b.ctl("join", self.contact(0))
        self.mesh([a, b])

    def test_a_hello_claiming_a_member_linked_from_another_address_is_refused(self):
        ds = [self.start(i) for i in range(2)]
        ds[1].ctl("join", self.contact(0))
        self.mesh(ds)
        # host 2 holds the secret and says it is n1, which is linked from host 1
        impostor = Daemon(self.c, ds[1].name, self.c.secured(), (), self.bed.prefix(2), None)
        impostor.sock, impostor.log = ds[1].sock + ".impostor", ds[1].log + ".impostor"
        self.c.daemons.append(impostor)
        impostor.start()
        r = impostor.ctl("join", self.contact(0), check=False)
        self.assertNotEqual(r.returncode, 0)
        wait_for(lambda: "n1@%s is linked from %s already" % (self.bed.ip[1], self.bed.ip[1])
                 in ds[0].logtext(), 10, "the refusal, at notice")
        self.assertEqual(ds[0].nodes(), [ds[1].name])
        ds[0].ctl("send", ds[1].name, "nobody", "still-linked")  # the real n1 is undisturbed

    def test_a_tls_cluster_across_hosts_binds_each_name_to_its_host(self):
        pki = Pki(self.c.dir)
        certs = [pki.node("n%d@%s" % (i, self.bed.ip[i]), ips=[self.bed.ip[i], self.bed.ip6[i]])
                 for i in range(self.N)]
        ds = [self.start(i, tls_config(*certs[i], pki.crt), secured=False) for i in range(2)]
        ds[1].ctl("join", self.contact(0))
        self.mesh(ds)
        inbox = self.listen(ds[0], "inbox")
        ds[1].ctl("send", ds[0].name, "inbox", "over-tls", "--ack")
        self.assertEqual(json.loads(inbox.stdout.readline())["message"], "over-tls")
        subj = {x["peer_subject"] for x in ds[0].ctl_json("connections")["connections"]}
        self.assertEqual(subj, {"CN=n1@%s" % self.bed.ip[1]})
        # host 2 with host 1's certificate: a valid certificate, the wrong host
        thief = self.start(2, tls_config(*certs[1], pki.crt), secured=False)
        r = thief.ctl("join", self.contact(0), check=False)
        self.assertNotEqual(r.returncode, 0)
        wait_for(lambda: "does not name n2@%s" % self.bed.ip[2] in ds[0].logtext(), 10, "the refusal")
        self.assertEqual(ds[0].nodes(), [ds[1].name])


if __name__ == "__main__":
    unittest.main()

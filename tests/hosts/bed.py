"""bed.py: a multi-host test bed. N test hosts, each a network namespace with
its own IPv4 and IPv6 address on one bridge (the bridge in a namespace of its
own), as machines on one LAN. Everything is created by the test and removed
by close(); traffic only flows between the namespaces' own addresses.

Host i has interface eth0 with 10.233.T.(i+1)/24 and fd00:233:T::(i+1)/64
(T: a per-bed number, so beds of parallel runs never share addresses).
nftables rules (this kernel has no netem) make partitions and loss on the
receiving side's input."""
import itertools
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fault"))
import netns  # noqa: E402
from netns import run  # noqa: E402

_beds = itertools.count()


def available():
    """None if the bed can be built here, else the reason it can't."""
    reason = netns.available()
    if reason is not None:
        return reason
    probe = "pthprobe%d" % os.getpid()
    run("ip", "netns", "add", probe)
    r = run("ip", "-n", probe, "link", "add", "br0", "type", "bridge", check=False)
    run("ip", "netns", "del", probe, check=False)
    if r.returncode != 0:
        return "cannot create a bridge: " + r.stderr.strip()
    return None


class Bed:
    def __init__(self, n, ipv4=True):
        """ipv4=False: the hosts have IPv6 addresses only."""
        self.ipv4 = ipv4
        tag = "%d%d" % (os.getpid() % 10000, next(_beds))
        t = (os.getpid() * 7 + int(tag[-1])) % 200 + 1
        self.n = n
        self.bridge_ns = "ptbr%s" % tag
        self.ns = ["pth%s_%d" % (tag, i) for i in range(n)]
        self.ip = ["10.233.%d.%d" % (t, i + 1) for i in range(n)]
        self.ip6 = ["fd00:233:%x::%x" % (t, i + 1) for i in range(n)]
        self.made = []
        try:
            self._make(tag)
        except Exception:
            self.close()
            raise

    def _make(self, tag):
        br = self.bridge_ns
        run("ip", "netns", "add", br)
        self.made.append(br)
        run("ip", "-n", br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        run("ip", "-n", br, "link", "set", "br0", "up")
        for i, ns in enumerate(self.ns):
            run("ip", "netns", "add", ns)
            self.made.append(ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "link", "add", "pth%s%d" % (tag, i), "netns", ns, "type", "veth", "peer",
                "name", "h%d" % i, "netns", br)
            run("ip", "-n", ns, "link", "set", "pth%s%d" % (tag, i), "name", "eth0")
            run("ip", "-n", br, "link", "set", "h%d" % i, "master", "br0", "up")
            if self.ipv4:
                run("ip", "-n", ns, "addr", "add", self.ip[i] + "/24", "dev", "eth0")
            run("ip", "-n", ns, "addr", "add", self.ip6[i] + "/64", "dev", "eth0", "nodad")
            run("ip", "-n", ns, "link", "set", "eth0", "up")

    def prefix(self, i):
        """The command prefix that runs a program on host i."""
        return ["ip", "netns", "exec", self.ns[i]]

    def _rules(self, i, rules):
        run("ip", "netns", "exec", self.ns[i], "nft", "-f", "-", input="""
            table inet ptbed
            delete table inet ptbed
            table inet ptbed {
              chain input {
                type filter hook input priority 0; policy accept;
                %s
              }
            }""" % "\n".join(rules))

    def clear(self, i):
        run("ip", "netns", "exec", self.ns[i], "nft", "delete", "table", "inet", "ptbed", check=False)

    def partition(self, group_a, group_b):
        """Drop everything between the hosts of group_a and those of group_b
        (host indexes), both ways: each side drops what arrives from the other."""
        for mine, theirs in ((group_a, group_b), (group_b, group_a)):
            v4 = ", ".join(self.ip[j] for j in theirs)
            v6 = ", ".join(self.ip6[j] for j in theirs)
            for i in mine:
                self._rules(i, ["ip saddr { %s } drop" % v4, "ip6 saddr { %s } drop" % v6])

    def heal(self):
        for i in range(self.n):
            self.clear(i)

    def close(self):
        for ns in reversed(self.made):
            run("ip", "netns", "del", ns, check=False)
        self.made = []

    # Faults for the fault campaign (tests/campaign), all on the receiving
    # side's input like partition(); each call replaces host i's rules.

    def drop_from(self, i, theirs):
        """Host i drops everything arriving from the hosts theirs (one way)."""
        v4 = ", ".join(self.ip[j] for j in theirs)
        v6 = ", ".join(self.ip6[j] for j in theirs)
        self._rules(i, ["ip saddr { %s } drop" % v4, "ip6 saddr { %s } drop" % v6])

    def loss(self, i, percent):
        """Host i drops percent % of the packets arriving from the other hosts
        (nftables numgen: this kernel has no netem)."""
        v4 = ", ".join(self.ip[j] for j in range(self.n) if j != i)
        v6 = ", ".join(self.ip6[j] for j in range(self.n) if j != i)
        self._rules(i, ["ip saddr { %s } numgen random mod 100 < %d drop" % (v4, percent),
                        "ip6 saddr { %s } numgen random mod 100 < %d drop" % (v6, percent)])

    def reset(self, i):
        """Host i answers every TCP segment from the other hosts with a reset."""
        v4 = ", ".join(self.ip[j] for j in range(self.n) if j != i)
        v6 = ", ".join(self.ip6[j] for j in range(self.n) if j != i)
        self._rules(i, ["ip saddr { %s } meta l4proto tcp reject with tcp reset" % v4,
                        "ip6 saddr { %s } meta l4proto tcp reject with tcp reset" % v6])

    def no_offloads(self):
        """No segmentation or receive offload on the hosts' interfaces: every
        TCP segment is one packet for the loss rule, as on a real wire."""
        for ns in self.ns:
            run("ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tso", "off", "gso", "off",
                "gro", "off", check=False)

"""netns.py: two test hosts in network namespaces joined by a veth pair, and
nftables rules for loss (numgen random), resets and partitions. Everything is
created by the test and removed at the end; traffic only flows between the
namespaces' own addresses."""
import os
import subprocess

SUBNET = "10.231.0"


def run(*args, check=True, input=None):
    r = subprocess.run(list(args), capture_output=True, text=True, input=input)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def available():
    """None if namespaces work here, else the reason they don't."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = "ptf-probe-%d" % os.getpid()
    r = run("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return "cannot create a network namespace: " + r.stderr.strip()
    run("ip", "netns", "del", probe, check=False)
    if run("sh", "-c", "command -v nft", check=False).returncode != 0:
        return "nft is not installed"
    if run("sh", "-c", "command -v ethtool", check=False).returncode != 0:
        return "ethtool is not installed"
    return None


class Hosts:
    """Host i (0 or 1) lives in namespace self.ns[i] at address self.ip[i]."""

    def __init__(self):
        tag = "%d" % (os.getpid() % 100000)
        self.ns = ["ptfa%s" % tag, "ptfb%s" % tag]
        self.ip = ["%s.1" % SUBNET, "%s.2" % SUBNET]
        veth = ["pta%s" % tag, "ptb%s" % tag]
        for ns in self.ns:
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "link", "add", veth[0], "netns", self.ns[0], "type", "veth", "peer", "name", veth[1],
            "netns", self.ns[1])
        for i in (0, 1):
            run("ip", "-n", self.ns[i], "addr", "add", self.ip[i] + "/24", "dev", veth[i])
            run("ip", "-n", self.ns[i], "link", "set", veth[i], "up")
            # No segmentation or receive offload: every TCP segment (at most
            # one MTU) is one packet for the loss rule, as on a real wire;
            # with offloads a 64 KiB burst would be a single "packet".
            run("ip", "netns", "exec", self.ns[i], "ethtool", "-K", veth[i], "tso", "off", "gso", "off",
                "gro", "off")

    def prefix(self, i):
        return ["ip", "netns", "exec", self.ns[i]]

    def _rules(self, i, rule):
        run("ip", "netns", "exec", self.ns[i], "nft", "-f", "-", input="""
            table inet ptfault
            delete table inet ptfault
            table inet ptfault {
              chain input {
                type filter hook input priority 0; policy accept;
                %s
              }
            }""" % rule)

    def clear(self, i):
        run("ip", "netns", "exec", self.ns[i], "nft", "delete", "table", "inet", "ptfault", check=False)

    def loss(self, i, percent):
        """Drop percent % of packets arriving at host i from the other host."""
        self._rules(i, "ip saddr %s.0/24 numgen random mod 100 < %d counter drop" % (SUBNET, percent))

    def dropped(self, i):
        """Packets the loss rule of host i has dropped so far."""
        import re
        out = run("ip", "netns", "exec", self.ns[i], "nft", "list", "table", "inet", "ptfault",
                  check=False).stdout
        m = re.search(r"counter packets (\d+)", out)
        return int(m.group(1)) if m else 0

    def partition(self, i):
        self._rules(i, "ip saddr %s.0/24 drop" % SUBNET)

    def reset(self, i):
        """Answer every TCP segment arriving at host i with a reset."""
        rule = "ip saddr %s.0/24 meta l4proto tcp reject with tcp reset" % SUBNET
        self._rules(i, rule)

    def close(self):
        for ns in self.ns:
            run("ip", "netns", "del", ns, check=False)

"""Fault tests: real daemons on two network namespaces joined by veth, with
loss, resets and partitions made by nftables (this kernel has no netem)."""
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Client, Cluster, kill_all, wait_for  # noqa: E402
import netns  # noqa: E402

REASON = netns.available()
FAILURE_TIMEOUT_S = 2.0


@unittest.skipIf(REASON is not None, "fault tests skipped: %s" % REASON)
class NetnsFaultTest(unittest.TestCase):
    def setUp(self):
        self.hosts = netns.Hosts()
        self.c = Cluster()
        self.procs = []
        self.a = self.c.add("a", self.c.secured(), host=self.hosts.ip[0], prefix=self.hosts.prefix(0))
        self.b = self.c.add("b", self.c.secured(), host=self.hosts.ip[1], prefix=self.hosts.prefix(1))
        self.b.ctl("join", self.a.addr)
        wait_for(lambda: self.a.nodes() == [self.b.name], 10, "a and b connected")

    def tearDown(self):
        kill_all(self.procs)
        try:
            self.c.close()
        finally:
            self.hosts.close()

    def client(self, daemon, mode, *args):
        cl = Client(daemon, mode, *args)
        self.procs.append(cl)
        return cl

    def test_10000_acked_messages_arrive_exactly_once_under_loss_and_resets(self):
        a, b, h = self.a, self.b, self.hosts
        sink = self.client(b, "usink", "inbox", 10000)
        h.loss(0, 10)
        h.loss(1, 10)
        t0 = time.monotonic()
        # one message per packet (a flush after each send), so the loss hits messages
        src = self.client(a, "source", b.name, "inbox", 10000, "--ack", "--id", "a", "--wait",
                          "--flush-every", 1)
        resets = 0
        dropped = 0
        for threshold in (2000, 6000):
            wait_for(lambda: b.ctl_json("status").get("messages_in", 0) >= threshold, 120,
                     "%d messages through" % threshold)
            dropped += h.dropped(1)
            h.reset(1)
            wait_for(lambda: b.name not in a.nodes(), 20, "the reset to break the link")
            h.loss(1, 10)
            resets += 1
        rc, out, err = sink.finish(300)
        took = time.monotonic() - t0
        dropped += h.dropped(0) + h.dropped(1)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split()[:4], ["ok", "10000", "duplicates", "0"], out)
        self.assertGreater(dropped, 0, "the loss rule really dropped packets")
        print("  10000 acked messages, 10%% loss both ways (%d packets dropped), %d resets: "
              "all exactly once in %.1fs" % (dropped, resets, took))
        h.clear(0)
        h.clear(1)
        wait_for(lambda: a.ctl_json("status")["outstanding_acks"] == 0, 30, "every ack to come back")

    def test_calls_fail_with_noconnection_during_a_partition_and_work_after_it_heals(self):
        a, b, h = self.a, self.b, self.hosts
        echo = subprocess.Popen([os.path.join(os.environ.get("PARTISAN_BUILD", "build"), "partisanctl"),
                                 "-s", b.sock, "listen", "echo", "--echo"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(echo)
        wait_for(lambda: any("echo" in e["names"] for e in b.ctl_json("status")["endpoints"]), 5, "echo")
        caller = self.client(a, "caller", b.name, "echo", 10000)

        def next_result():
            line = caller.proc.stdout.readline().split()
            return line[1], time.monotonic()

        while next_result()[0] != "ok":
            pass
        h.partition(0)
        h.partition(1)
        cut = time.monotonic()
        while True:
            result, when = next_result()
            if result != "ok":
                break
        self.assertEqual(result, "E10", "the failure is PARTISAN_ENOCONNECTION")
        detected = when - cut
        print("  partition: first call failure after %.2fs" % detected)
        self.assertLess(detected, FAILURE_TIMEOUT_S + 1.0, "calls fail within failure_timeout")
        h.clear(0)
        h.clear(1)
        healed = time.monotonic()
        while True:
            result, when = next_result()
            if result == "ok":
                break
            self.assertLess(when - healed, 15, "calls work again after the partition heals")
        print("  healed: calls work again after %.2fs" % (when - healed))
        caller.close_cleanly()


if __name__ == "__main__":
    unittest.main()

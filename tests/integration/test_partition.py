"""Partition injection: a node treats another as unreachable until the
partition is resolved."""
import unittest

from harness import Client, Cluster, wait_for


class PartitionTest(unittest.TestCase):
    def test_injected_partition_cuts_a_node_off_until_resolved(self):
        with Cluster() as c:
            a, b, x = c.add("a"), c.add("b"), c.add("x")
            for d in (b, x):
                d.ctl("join", a.addr)
            for d in (a, b, x):
                wait_for(lambda: len(d.nodes()) == 2, 10, "%s connected" % d.name)
            ref = a.ctl_json("partition", "inject", b.name)
            ref = ref.get("ref") or next(iter(ref.values()))
            self.assertTrue(ref.startswith("partisan:ref:"), ref)
            wait_for(lambda: b.name not in a.nodes(), 5, "a to drop b")
            wait_for(lambda: a.name not in b.nodes(), 5, "b to lose a")
            self.assertIn(b.name, a.members(), "a partition does not remove a member")
            listed = a.ctl_json("partition", "list")
            self.assertIn(b.name, str(listed))
            r = a.ctl("send", b.name, "anyone", "hello", check=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("partition", r.stderr)
            self.assertEqual(a.nodes(), [x.name], "other links are untouched")
            a.ctl("partition", "resolve", ref)
            wait_for(lambda: b.name in a.nodes(), 10, "a to reconnect b")
            wait_for(lambda: a.name in b.nodes(), 10, "b to reconnect a")
            self.assertNotIn(b.name, str(a.ctl_json("partition", "list")))

    def test_transitive_message_crosses_a_partition_through_the_overlay(self):
        with Cluster() as c:
            a, b, x = c.add("a"), c.add("b"), c.add("x")
            for d in (b, x):
                d.ctl("join", a.addr)
            for d in (a, b, x):
                wait_for(lambda: len(d.nodes()) == 2, 10, "%s connected" % d.name)
            a.ctl("partition", "inject", x.name)
            wait_for(lambda: x.name not in a.nodes(), 5, "a to drop x")
            sink = Client(x, "sink", "inbox", 20)
            try:
                direct = Client(a, "source", x.name, "inbox", 1)
                rc, out, err = direct.finish()
                self.assertNotEqual(rc, 0, "a plain send cannot cross the partition")
                relayed = Client(a, "source", x.name, "inbox", 20, "--transitive")
                rc, out, err = relayed.finish()
                self.assertEqual(rc, 0, err)
                rc, out, err = sink.finish(20)
                self.assertEqual(rc, 0, err)
                self.assertTrue(out.startswith("ok 20"), out)
            finally:
                sink.kill()


if __name__ == "__main__":
    unittest.main()

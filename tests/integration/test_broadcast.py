"""Plumtree broadcast through real daemons: every subscriber on every live
node gets each broadcast exactly once."""
import json
import os
import subprocess
import unittest

from harness import Cluster, wait_for


def ctl_path():
    return os.path.join(os.environ.get("PARTISAN_BUILD", "build"), "partisanctl")


class BroadcastTest(unittest.TestCase):
    def test_every_subscriber_gets_each_broadcast_once(self):
        with Cluster() as c:
            ds = [c.add("n%d" % i) for i in range(5)]
            for d in ds[1:]:
                d.ctl("join", ds[0].addr)
            for d in ds:
                wait_for(lambda: len(d.nodes()) == 4, 10, "%s connected" % d.name)
            subs = []
            try:
                for d in ds:
                    p = subprocess.Popen([ctl_path(), "-s", d.sock, "--json", "subscribe", "news"],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    subs.append(p)
                for d in ds:
                    wait_for(lambda: d.ctl_json("status").get("sessions", 0) >= 2, 5, "subscriber on " + d.name)
                for i in range(10):
                    ds[i % 5].ctl("broadcast", "news", "item-%d" % i)
                for p in subs:
                    got = [json.loads(p.stdout.readline())["message"] for _ in range(10)]
                    self.assertEqual(sorted(got), sorted("item-%d" % i for i in range(10)))
            finally:
                for p in subs:
                    p.terminate()
                    p.wait()


if __name__ == "__main__":
    unittest.main()

"""30 real daemons in HyParView mode on loopback: the overlay forms and
stays connected, broadcasts reach every subscriber, also after 10 daemons
are killed -9, and a node that leaves is gone from every view."""
import random
import unittest

from harness import Client, Cluster, wait_for

N = 30
CONFIG = {
    "peer_service_manager": "hyparview",
    "hyparview": {"shuffle_interval_ms": 2000, "random_promotion_interval_ms": 1000},
    "broadcast": {"lazy_tick_ms": 200, "exchange_tick_ms": 2000},
}


def connected(daemons):
    """Is the overlay of active views connected, over these live daemons?"""
    names = {d.name for d in daemons}
    adj = {}
    for d in daemons:
        st = d.ctl_json("status")
        adj[d.name] = set(st.get("active_view", [])) & names
    seen, todo = set(), [next(iter(names))]
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        todo.extend(adj[n] - seen)
    return seen == names


class HyParViewTest(unittest.TestCase):
    def setUp(self):
        self.c = Cluster()
        self.subs = {}

    def tearDown(self):
        for s in self.subs.values():
            s.kill()
        self.c.close()

    def expect_broadcast(self, origin, live, text):
        origin.ctl("broadcast", "news", text)
        for d in live:
            line = self.subs[d.name].proc.stdout.readline().strip()
            self.assertEqual(line, text, "subscriber on %s" % d.name)

    def test_broadcast_survives_a_third_of_the_cluster_dying_and_a_leaver_vanishes(self):
        rnd = random.Random(7)
        ds = [self.c.add("h%02d" % i, CONFIG) for i in range(N)]
        for d in ds[1:]:
            d.ctl("join", ds[rnd.randrange(0, ds.index(d))].addr)
        wait_for(lambda: connected(ds), 30, "the overlay to connect", interval=0.5)
        for d in ds:
            st = d.ctl_json("status")
            self.assertLessEqual(len(st["active_view"]), 5, "active view bounded")
            self.assertNotIn(d.name, st["active_view"])
        for d in ds:
            self.subs[d.name] = Client(d, "subscribe", "news")
        for i in range(3):
            self.expect_broadcast(rnd.choice(ds), ds, "before-%d" % i)

        victims = rnd.sample(ds[1:], 10)
        for v in victims:
            self.subs.pop(v.name).kill()
            v.kill()
        live = [d for d in ds if d not in victims]
        wait_for(lambda: connected(live), 60, "the survivors' overlay to reconnect", interval=0.5)
        for i in range(3):
            self.expect_broadcast(rnd.choice(live), live, "after-%d" % i)

        leaver = live[-1]
        leaver.ctl("leave")
        rest = live[:-1]

        def gone():
            holders = [d.name for d in rest
                       if leaver.name in d.ctl_json("status")["active_view"] + d.ctl_json("status")["passive_view"]]
            return True if not holders else holders == []
        wait_for(gone, 30, "the leaver to vanish from every view", interval=0.5)


if __name__ == "__main__":
    unittest.main()

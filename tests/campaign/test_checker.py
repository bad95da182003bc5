"""The campaign checker (tests/campaign/checker.py) on hand-made histories:
a clean one passes, and each kind of violation, alone, is flagged as exactly
that kind; faults that allow a loss or excuse a DOWN do. No daemons."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402

NODES = ["n0@10.0.0.1", "n1@10.0.0.2", "n2@10.0.0.3"]


def victim_ref(h):
    return "partisan:pid:%s:7" % NODES[h]


class History:
    """A small clean campaign history: host 0 sends acked messages 1..3 to
    host 1, calls host 2's echo, monitors host 1's victim (which closes and
    gets its DOWN normal), every host subscribes and host 2 broadcasts once;
    then the final heal and everyone sees everyone. Tests edit it."""

    def __init__(self):
        self.r = [{"kind": "run", "t": 0.0, "nodes": NODES, "seed": 1, "membership_bound_s": 30.0}]
        for h in range(3):
            self.add(0.1, h, "sub_up", sid="h%d.sub1" % h)
        for seq in (1, 2, 3):
            self.add(1.0 + seq / 10, 0, "send", sid="h0.sender1", to_host=1, seq=seq, ok=True)
            self.add(1.05 + seq / 10, 1, "deliver", rid="h1.inbox1", sender="h0.sender1", to_host=1, seq=seq)
        self.add(2.0, 0, "call_start", cid="c1", to_host=2, timeout_ms=1000)
        self.add(2.01, 0, "call_end", cid="c1", to_host=2, result="ok", latency_ms=10.0)
        self.add(2.1, 0, "call_start", cid="c2", to_host=2, timeout_ms=1000)
        self.add(3.1, 0, "call_end", cid="c2", to_host=2, result="ETIMEDOUT", latency_ms=1000.0)
        self.add(2.99, 1, "session_up", role="victim", sid="h1.victim1", ref=victim_ref(1))
        self.add(3.0, 1, "victim_up", sid="h1.victim1", ref=victim_ref(1))
        self.add(3.5, 0, "mon_set", sid="h0.monitor1", mref="m1", target=victim_ref(1), to_host=1)
        self.add(5.0, 1, "victim_bye", sid="h1.victim1", ref=victim_ref(1))
        self.add(5.01, 0, "mon_down", sid="h0.monitor1", mref="m1", target=victim_ref(1), reason="normal")
        self.add(6.0, 2, "bcast", sid="h2.bcast1", bid="B1", ok=True)
        for h in range(3):
            self.add(6.01, h, "bcast_recv", sid="h%d.sub1" % h, bid="B1", origin=NODES[2])
        self.r.append({"kind": "nemesis", "event": "final_heal", "phase": "end", "nid": 0, "t": 30.0})
        for h in range(3):
            self.add(31.0, h, "membership", alive=NODES, nodes=[n for n in NODES if n != NODES[h]])
        self.r.append({"kind": "end", "t": 60.0})

    def add(self, t, host, kind, **rec):
        rec.update(t=t, host=host, kind=kind)
        self.r.append(rec)
        return rec

    def drop(self, **match):
        """Remove the records with all these fields."""
        self.r = [r for r in self.r if not all(r.get(k) == v for k, v in match.items())]

    def fault(self, nid, event, t0, t1, **rec):
        self.r.append(dict(rec, kind="nemesis", event=event, phase="start", nid=nid, t=t0))
        self.r.append({"kind": "nemesis", "event": event, "phase": "end", "nid": nid, "t": t1})

    def check(self):
        return checker.check(sorted(self.r, key=lambda r: r["t"]))


class CheckerTest(unittest.TestCase):
    def assertFlags(self, h, *kinds):
        res = h.check()
        self.assertEqual(sorted(set(res.kinds())), sorted(kinds), res.violations)
        return res

    def test_a_clean_history_has_no_violations(self):
        res = self.assertFlags(History())
        self.assertEqual(res.summary["delivered (distinct)"], "3")
        self.assertEqual(res.summary["broadcast receipts due / missing / duplicated"], "3 / 0 / 0")

    # ---- acked messages ---------------------------------------------------

    def test_an_acked_message_lost_while_both_daemons_lived(self):
        h = History()
        h.drop(kind="deliver", seq=2)
        self.assertFlags(h, "lost")

    def test_a_loss_is_allowed_when_the_senders_daemon_died_after_the_send(self):
        h = History()
        h.drop(kind="deliver", seq=3)
        h.fault(1, "kill_same_port", 1.4, 2.5, host=0)
        self.assertFlags(h)

    def test_a_loss_is_allowed_when_the_receiver_died_and_the_sender_got_ack_lost(self):
        h = History()
        h.drop(kind="deliver", seq=3)
        h.fault(1, "kill_new_port", 1.35, 2.5, host=1)
        self.assertFlags(h, "lost")  # no ack_lost yet: not allowed
        h.add(7.0, 0, "ack_lost", sid="h0.sender1", to="partisan:name:%s:inbox" % NODES[1],
              reason="noproc", count=1)
        self.assertFlags(h)

    def test_a_receiver_that_died_before_the_send_allows_nothing(self):
        h = History()
        h.drop(kind="deliver", seq=3)
        h.fault(1, "kill_same_port", 0.5, 0.9, host=1)  # back before seq 3 was sent
        h.add(7.0, 0, "ack_lost", sid="h0.sender1", to="partisan:name:%s:inbox" % NODES[1],
              reason="noproc", count=1)
        self.assertFlags(h, "lost")

    def test_a_duplicate_delivery(self):
        h = History()
        h.add(1.5, 1, "deliver", rid="h1.inbox1", sender="h0.sender1", to_host=1, seq=3)
        self.assertFlags(h, "duplicate")

    def test_a_second_delivery_by_the_receivers_next_incarnation_is_counted_not_flagged(self):
        h = History()
        h.add(1.5, 1, "deliver", rid="h1.inbox2", sender="h0.sender1", to_host=1, seq=3)
        h.fault(1, "kill_same_port", 1.36, 1.45, host=1)  # died before its Ack left
        res = self.assertFlags(h)
        self.assertEqual(res.summary["duplicated across a receiver daemon restart (allowed)"], "1")
        h.fault(2, "kill_same_port", 0.2, 0.3, host=1)  # a death before both: no excuse
        h.drop(kind="nemesis", nid=1)
        self.assertFlags(h, "duplicate")

    def test_a_delivery_stamped_just_after_the_kill_was_the_old_incarnations(self):
        # campaign seed 15: the inbox read seq 89 0.1 ms after the nemesis
        # stamped the kill; the restarted daemon handed it over again.
        h = History()
        h.add(0.5, 1, "session_up", role="inbox", sid="h1.inbox1", ref="partisan:pid:%s:3" % NODES[1])
        h.fault(1, "kill_same_port", 1.349, 1.45, host=1)
        h.add(1.5, 1, "deliver", rid="h1.inbox2", sender="h0.sender1", to_host=1, seq=3)
        self.assertFlags(h)
        h.drop(kind="deliver", rid="h1.inbox2")  # the same session twice: no excuse
        h.add(1.5, 1, "deliver", rid="h1.inbox1", sender="h0.sender1", to_host=1, seq=3)
        self.assertFlags(h, "duplicate")

    def test_the_next_incarnation_handing_over_again_is_not_out_of_order(self):
        h = History()
        h.fault(1, "kill_same_port", 1.36, 1.45, host=1)  # after seq 3, before its Ack left
        for seq in (2, 3):
            h.add(1.5 + seq / 100, 1, "deliver", rid="h1.inbox2", sender="h0.sender1", to_host=1, seq=seq)
        self.assertFlags(h)

    def test_deliveries_out_of_order(self):
        h = History()
        for r in h.r:
            if r["kind"] == "deliver" and r["seq"] == 1:
                r["t"] = 1.4  # after seq 2 and 3
        self.assertFlags(h, "out_of_order")

    def test_a_message_delivered_although_its_send_failed(self):
        h = History()
        for r in h.r:
            if r["kind"] == "send" and r["seq"] == 2:
                r.update(ok=False, err="ENOCONNECTION")
        self.assertFlags(h, "delivered_after_error")

    # ---- calls ------------------------------------------------------------

    def test_a_call_that_never_returned(self):
        h = History()
        h.drop(kind="call_end", cid="c2")
        self.assertFlags(h, "call_hung")

    def test_a_call_ending_with_an_undefined_error(self):
        h = History()
        for r in h.r:
            if r.get("cid") == "c2" and r["kind"] == "call_end":
                r["result"] = "EINVAL"
        self.assertFlags(h, "call_error")

    def test_a_call_answered_long_after_its_timeout_unless_the_caller_was_paused(self):
        h = History()
        for r in h.r:
            if r.get("cid") == "c2" and r["kind"] == "call_end":
                r.update(latency_ms=2600.0, t=4.7)
        self.assertFlags(h, "call_late")
        h.fault(1, "pause_clients", 2.5, 4.5, host=0)
        self.assertFlags(h)

    def test_a_late_call_is_excused_only_by_as_much_cpu_starvation_as_it_was_late(self):
        h = History()
        for r in h.r:
            if r.get("cid") == "c2" and r["kind"] == "call_end":
                r.update(latency_ms=2600.0, t=4.7, daemon_wait_ms=900.0, caller_wait_ms=800.0)
        self.assertFlags(h, "call_late")  # 1100 ms late beyond the slack, 900 of it starved
        for r in h.r:
            if r.get("cid") == "c2" and r["kind"] == "call_end":
                r["daemon_wait_ms"] = 1200.0
        res = self.assertFlags(h)
        self.assertEqual(res.summary["calls late only by CPU starvation"], "1")

    def test_a_call_with_a_wrong_reply(self):
        h = History()
        for r in h.r:
            if r.get("cid") == "c1" and r["kind"] == "call_end":
                r["result"] = "wrong_reply"
        self.assertFlags(h, "wrong_reply")

    # ---- monitors -----------------------------------------------------------

    def test_two_downs_for_one_monitor(self):
        h = History()
        h.add(5.5, 0, "mon_down", sid="h0.monitor1", mref="m1", target=victim_ref(1), reason="normal")
        self.assertFlags(h, "down_duplicate")

    def test_no_down_for_an_endpoint_that_went_away(self):
        h = History()
        h.drop(kind="mon_down")
        self.assertFlags(h, "down_missing")

    def test_no_down_is_due_when_the_monitors_own_daemon_died(self):
        h = History()
        h.drop(kind="mon_down")
        h.fault(1, "kill_same_port", 4.0, 4.5, host=0)
        h.add(4.0, 0, "session_lost", role="monitor", sid="h0.monitor1", err="closed")
        self.assertFlags(h)

    def test_a_later_death_of_the_monitors_daemon_does_not_excuse_a_missing_down(self):
        h = History()
        h.drop(kind="mon_down")
        h.fault(1, "kill_same_port", 40.0, 41.0, host=0)  # long after the DOWN was due
        h.add(40.0, 0, "session_lost", role="monitor", sid="h0.monitor1", err="closed")
        self.assertFlags(h, "down_missing")

    def test_a_down_normal_while_the_endpoint_lives(self):
        h = History()
        for r in h.r:
            if r["kind"] == "mon_down":
                r["t"] = 4.0  # before the victim's bye
        self.assertFlags(h, "down_reason")

    def test_a_down_noconnection_fits_only_with_a_fault(self):
        h = History()
        for r in h.r:
            if r["kind"] == "mon_down":
                r.update(t=4.0, reason="noconnection")
        self.assertFlags(h, "down_reason")
        h.fault(1, "partition_halves", 3.8, 4.5, a=[0], b=[1, 2])
        self.assertFlags(h)

    def test_a_down_noconnection_fits_a_monitor_set_while_not_linked(self):
        h = History()
        for r in h.r:
            if r["kind"] == "mon_down":
                r.update(t=3.5, reason="noconnection")
        h.add(2.0, 0, "nodeup", sid="h0.nodemon1", node=NODES[1], reason="")
        self.assertFlags(h, "down_reason")  # linked before, still linked
        h.add(3.6, 0, "nodeup", sid="h0.nodemon1", node=NODES[1], reason="")  # linked only later
        self.assertFlags(h)

    def test_a_down_noconnection_fits_a_link_its_daemon_saw_go_down(self):
        h = History()
        for r in h.r:
            if r["kind"] == "mon_down":
                r.update(t=4.0, reason="noconnection")
        h.add(3.9, 2, "nodedown", sid="h2.nodemon1", node=NODES[1], reason="timeout")  # another host's
        self.assertFlags(h, "down_reason")
        h.add(3.95, 0, "nodedown", sid="h0.nodemon1", node=NODES[1], reason="timeout")
        self.assertFlags(h)

    # ---- membership -----------------------------------------------------------

    def test_a_node_missing_from_a_members_view_after_the_final_heal(self):
        h = History()
        for r in h.r:
            if r["kind"] == "membership" and r["host"] == 2:
                r["alive"] = NODES[1:]
        self.assertFlags(h, "membership")

    def test_membership_settled_only_after_the_bound(self):
        h = History()
        for r in h.r:
            if r["kind"] == "membership" and r["host"] == 0:
                r["t"] = 61.0
        self.assertFlags(h, "membership")

    # ---- broadcasts -------------------------------------------------------------

    def test_a_subscriber_that_missed_a_broadcast(self):
        h = History()
        h.drop(kind="bcast_recv", host=0)
        self.assertFlags(h, "bcast_missing")

    def test_a_broadcast_missed_across_a_partition_is_not_due(self):
        h = History()
        h.drop(kind="bcast_recv", host=0)
        h.fault(1, "partition_oneway", 5.0, 8.0, deaf=[0], unheard=[1, 2])
        self.assertFlags(h)

    def test_a_broadcast_received_twice(self):
        h = History()
        h.add(6.5, 1, "bcast_recv", sid="h1.sub1", bid="B1", origin=NODES[2])
        self.assertFlags(h, "bcast_duplicate")

    # ---- daemons ----------------------------------------------------------------

    def test_a_daemon_that_exited_by_itself(self):
        h = History()
        h.add(10.0, 2, "daemon_exit", rc=-11)
        self.assertFlags(h, "daemon_crash")

    def test_every_kind_at_once(self):
        h = History()
        h.drop(kind="deliver", seq=2)
        h.add(1.5, 1, "deliver", rid="h1.inbox1", sender="h0.sender1", to_host=1, seq=3)
        h.drop(kind="call_end", cid="c2")
        h.drop(kind="mon_down")
        h.drop(kind="bcast_recv", host=0)
        self.assertFlags(h, "lost", "duplicate", "call_hung", "down_missing", "bcast_missing")


if __name__ == "__main__":
    unittest.main()

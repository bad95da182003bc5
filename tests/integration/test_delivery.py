"""Delivery guarantees with real daemons: call/reply semantics, acknowledged
delivery across link loss, ack_lost when the target leaves, causal order."""
import os
import subprocess
import time
import unittest

from harness import ClusterTestCase, wait_for

def CTL():
    return os.path.join(os.environ.get("PARTISAN_BUILD", "build"), "partisanctl")


class DeliveryTest(ClusterTestCase):
    def echo_server(self, daemon, name):
        p = subprocess.Popen([CTL(), "-s", daemon.sock, "listen", name, "--echo"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        wait_for(lambda: any(name in e["names"] for e in daemon.ctl_json("status")["endpoints"]), 5,
                 "%s to register" % name)
        return p

    def test_call_returns_the_reply(self):
        a, b = self.cluster(2)
        self.echo_server(b, "echo")
        r = a.ctl_json("call", b.name, "echo", "ping")
        self.assertEqual(r.get("reply"), "ping")

    def test_call_to_a_missing_name_fails_fast_with_noproc(self):
        a, b = self.cluster(2)
        t0 = time.monotonic()
        r = a.ctl("call", b.name, "nobody", "ping", "--timeout", "10000", check=False)
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 1)
        self.assertIn("no such endpoint", r.stderr)
        self.assertLess(took, 2.0, "noproc comes back at once, not at the timeout")

    def test_call_to_an_unconnected_node_fails_with_noconnection(self):
        a, = self.cluster(1)
        r = a.ctl("call", "ghost@127.0.0.1", "echo", "ping", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not connected", r.stderr)

    def test_call_that_gets_no_reply_times_out(self):
        a, b = self.cluster(2)
        self.client(b, "hold", "mute")
        t0 = time.monotonic()
        r = a.ctl("call", b.name, "mute", "ping", "--timeout", "300", check=False)
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 1)
        self.assertIn("timed out", r.stderr)
        self.assertGreaterEqual(took, 0.3)
        self.assertLess(took, 3.0)

    def test_call_in_flight_fails_with_noconnection_when_the_node_dies(self):
        a, b = self.cluster(2)
        self.client(b, "hold", "mute")
        call = subprocess.Popen([CTL(), "-s", a.sock, "call", b.name, "mute", "x", "--timeout", "20000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(call)
        wait_for(lambda: b.ctl_json("status").get("messages_in", 0) >= 1, 5, "the call to arrive")
        t0 = time.monotonic()
        b.kill()
        out, err = call.communicate(timeout=10)
        self.assertEqual(call.returncode, 1)
        self.assertRegex(err, "not connected|connection to the node was lost")
        self.assertLess(time.monotonic() - t0, 3.0)

    def test_call_in_flight_fails_with_noproc_when_the_callee_dies(self):
        a, b = self.cluster(2)
        callee = self.client(b, "hold", "mute")
        call = subprocess.Popen([CTL(), "-s", a.sock, "call", b.name, "mute", "x", "--timeout", "20000"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(call)
        self.assertEqual(callee.proc.stdout.readline().strip(), "got", "the call arrived")
        t0 = time.monotonic()
        callee.kill()
        out, err = call.communicate(timeout=10)
        self.assertEqual(call.returncode, 1)
        self.assertRegex(err, "no such endpoint|went away before replying")
        self.assertLess(time.monotonic() - t0, 3.0, "at once, not at the 20 s timeout")
        self.assertEqual(a.ctl_json("nodes")["nodes"], [b.name], "the node itself is still up")

    def test_acked_messages_arrive_exactly_once_across_a_link_outage(self):
        a, b = self.cluster(2)
        sink = self.client(b, "usink", "inbox", 5000)
        ref = a.ctl_json("partition", "inject", b.name)["ref"]
        src = self.client(a, "source", b.name, "inbox", 5000, "--ack", "--id", "a")
        rc, out, err = src.finish()
        self.assertEqual(rc, 0, err)
        self.assertGreater(a.ctl_json("status")["outstanding_acks"], 0, "held while partitioned")
        a.ctl("partition", "resolve", ref)
        rc, out, err = sink.finish(60)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split()[:4], ["ok", "5000", "duplicates", "0"])
        wait_for(lambda: a.ctl_json("status")["outstanding_acks"] == 0, 10, "every ack to come back")

    def test_sender_is_told_when_acked_messages_can_never_be_delivered(self):
        a, b = self.cluster(2)
        b.kill()
        wait_for(lambda: b.name not in a.nodes(), 5, "b down")
        src = self.client(a, "source", b.name, "inbox", 10, "--ack", "--wait-lost")
        a.ctl("leave", b.name)
        rc, out, err = src.finish(30)
        self.assertEqual(rc, 0, err)
        self.assertIn("lost 10 to " + b.name, out)

    def test_an_acked_message_waits_for_its_target_then_arrives_once_in_order(self):
        """An ack means handed to an application: messages that reach b
        before anybody there holds their name wait (ack_hold_ms), and those
        sent after the name is registered queue behind them."""
        a, b = self.cluster(2)
        src = self.client(a, "source", b.name, "late", 400, "--ack", "--pace-us", "2000", "--id", "a")
        wait_for(lambda: a.ctl_json("status")["outstanding_acks"] >= 50, 10, "acked sends waiting at b")
        sink = self.client(b, "sink", "late", 400)
        rc, out, err = sink.finish(60)
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith("ok 400"), out)
        rc, out, err = src.finish()
        self.assertEqual(rc, 0, err)
        wait_for(lambda: a.ctl_json("status")["outstanding_acks"] == 0, 10, "every ack back")
        self.assertEqual(b.ctl_json("status")["dropped"], 0, "none dropped for want of an endpoint")

    def test_an_acked_message_nobody_takes_is_reported_lost_as_noproc(self):
        a, b = self.cluster(2, {"ack_hold_ms": 500})
        src = self.client(a, "source", b.name, "nobody", 5, "--ack", "--wait-lost")
        rc, out, err = src.finish(30)
        self.assertEqual(rc, 0, err)
        self.assertIn("lost 5 to %s (noproc)" % b.name, out)
        wait_for(lambda: a.ctl_json("status")["outstanding_acks"] == 0, 5, "nothing outstanding")

    def test_causal_order_holds_across_three_nodes(self):
        """a sends m1 to c (held back by a partition, acked), then m2 to b; b
        relays it to c. c must deliver m1 before b's relay, though the relay
        arrives first."""
        a, b, c = self.cluster(3)
        printer = self.client(c, "print", "inbox", 2)
        self.client(b, "relay", "relay", c.name, "inbox", "L")
        ref = a.ctl_json("partition", "inject", c.name)["ref"]
        m1 = self.client(a, "source", c.name, "inbox", 1, "--ack", "--causal", "L", "--id", "m1", "--size", "8")
        self.assertEqual(m1.finish()[0], 0)
        m2 = self.client(a, "source", b.name, "relay", 1, "--causal", "L", "--id", "m2", "--size", "8")
        self.assertEqual(m2.finish()[0], 0)
        wait_for(lambda: c.ctl_json("status").get("messages_in", 0) >= 1, 5, "the relay to reach c")
        a.ctl("partition", "resolve", ref)
        rc, out, err = printer.finish(20)
        self.assertEqual(rc, 0, err)
        lines = out.split()
        self.assertTrue(lines[0].startswith("m1:0:"), lines)
        self.assertTrue(lines[1].startswith("relayed-m2:0:"), lines)


if __name__ == "__main__":
    unittest.main()

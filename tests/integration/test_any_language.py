"""Any language can attach: a Python program using only protoc-generated code
registers a name, receives a message from a C client on another node, and
monitors that client."""
import subprocess
import unittest

from harness import Cluster, PTCLIENT, wait_for


class AnyLanguageTest(unittest.TestCase):
    def test_python_client_receives_from_a_c_client_and_monitors_it(self):
        from pyclient import PyClient
        with Cluster() as c:
            a = c.add("a")
            b = c.add("b")
            b.ctl("join", a.addr)
            wait_for(lambda: b.nodes() == [a.name], 10, "b connected to a")
            py = PyClient(b.sock)
            py.register("pyinbox")
            src = subprocess.Popen([PTCLIENT, "source", a.sock, b.name, "pyinbox", "1", "--id", "c"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.assertEqual(src.stdout.readline().strip(), "ready")
            ev = py.event()
            self.assertEqual(ev.WhichOneof("body"), "message")
            self.assertTrue(ev.message.payload.startswith(b"c:0:"))
            sender = getattr(ev.message, "from")
            self.assertTrue(sender.startswith("partisan:pid:" + a.name + ":"), sender)
            mref = py.monitor(sender)
            src.communicate(timeout=10)   # the C client finishes and closes cleanly
            ev = py.event()
            self.assertEqual(ev.WhichOneof("body"), "down")
            self.assertEqual(ev.down.mref, mref)
            self.assertIn(ev.down.reason, ("normal", "noproc"))
            py.close()


if __name__ == "__main__":
    unittest.main()

"""TLS on peer links: mutual TLS with certificates made here (pki.py), the
cluster secret as a TLS pre-shared key, and every way a link is refused:
wrong CA, expired, not yet valid, another node's name, no certificate, plain
against TLS, another secret, garbage and replayed bytes. Each refusal is
logged with its reason and disturbs nothing else."""
import json
import os
import signal
import socket
import subprocess
import threading
import unittest

from harness import PARTISAND, Cluster, ClusterTestCase, wait_for
from pki import Pki, tls_config

NAMES = ["n%d@127.0.0.1" % i for i in range(4)]


def write_secret(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


class TlsCase(ClusterTestCase):
    def setUp(self):
        super().setUp()
        self.pki = Pki(self.c.dir)

    def node_config(self, short, pki=None, **kw):
        crt, key = (pki or self.pki).node("%s@127.0.0.1" % short, **kw)
        return tls_config(crt, key, self.pki.crt)

    def tls_node(self, short, extra=None, **kw):
        cfg = self.node_config(short, **kw)
        cfg.update(extra or {})
        return self.c.add(short, cfg)

    def join_fails(self, joiner, target):
        r = joiner.ctl("join", target.addr, check=False)
        self.assertNotEqual(r.returncode, 0, "the join must fail")
        self.assertNotIn(target.name, joiner.nodes())
        return r.stderr

    def assert_logged(self, d, text, what):
        wait_for(lambda: text in d.logtext(), 10, "%s: %r in %s's log" % (what, text, d.name))


class TestTlsCluster(TlsCase):
    def test_a_tls_cluster_carries_sends_calls_acks_broadcasts_and_parallel_links(self):
        extra = {"channels": {"default": {}, "bulk": {"parallelism": 3}}}
        a, b, c = (self.tls_node(s, extra) for s in ("n0", "n1", "n2"))
        for d in (b, c):
            d.ctl("join", a.addr)
        for d in (a, b, c):
            wait_for(lambda: len(d.nodes()) == 2, 10, "%s linked to both" % d.name)
        for d in (a, b, c):
            wait_for(lambda: all(x["connected"] == x["wanted"]
                                 for x in d.ctl_json("connections")["connections"]),
                     10, "every channel slot of %s open" % d.name)
        conns = a.ctl_json("connections")["connections"]
        bulk = [x for x in conns if x["channel"] == "bulk"]
        self.assertEqual(sorted(x["connected"] for x in bulk), [3, 3])
        for x in conns:
            self.assertEqual(x["transport"], "tls")
            self.assertEqual(x["peer_subject"], "CN=" + x["node"])
        self.assertEqual(a.ctl_json("status")["security"], "certificates")

        # acked messages over the parallel channel, with a key
        sink = self.client(b, "usink", "inbox", 2000)
        src = self.client(a, "source", b.name, "inbox", 2000, "--ack", "--channel", "bulk")
        rc, _, err = src.finish()
        self.assertEqual(rc, 0, err)
        rc, out, err = sink.finish(60)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split()[:4], ["ok", "2000", "duplicates", "0"])
        wait_for(lambda: a.ctl_json("status")["outstanding_acks"] == 0, 10, "every ack back")

        # a call and its reply
        echo = subprocess.Popen([os.path.join(os.path.dirname(PARTISAND), "partisanctl"), "-s", c.sock,
                                 "listen", "echo", "--echo"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.procs.append(echo)
        wait_for(lambda: "echo" in json.dumps(c.ctl_json("status")["endpoints"]), 5, "echo registered")
        r = a.ctl("call", c.name, "echo", "over-tls", "--timeout", "5000")
        self.assertEqual(r.stdout.strip(), "over-tls")

        # a broadcast reaches a subscriber on another node
        sub = subprocess.Popen([os.path.join(os.path.dirname(PARTISAND), "partisanctl"), "-s", c.sock,
                                "--json", "subscribe", "news"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        self.procs.append(sub)
        wait_for(lambda: c.ctl_json("status").get("sessions", 0) >= 3, 5, "subscriber attached")
        b.ctl("broadcast", "news", "hello-tls")
        got = []
        t = threading.Thread(target=lambda: got.append(sub.stdout.readline()), daemon=True)
        t.start()
        t.join(10)
        self.assertTrue(got and "hello-tls" in got[0], got)


    def test_a_hung_tls_peer_is_found_by_the_failure_detector(self):
        a, b = self.tls_node("n0"), self.tls_node("n1")
        b.ctl("join", a.addr)
        wait_for(lambda: a.nodes() == [b.name], 10, "linked")
        b.signal(signal.SIGSTOP)
        try:
            wait_for(lambda: a.nodes() == [], 6, "the hung peer marked down (failure_timeout_ms 2000)")
        finally:
            b.signal(signal.SIGCONT)
        wait_for(lambda: a.nodes() == [b.name], 10, "linked again once it runs")


class TestTlsRefusals(TlsCase):
    def setUp(self):
        super().setUp()
        self.a = self.tls_node("n0")

    def refused(self, cfg, short="n1"):
        b = self.c.add(short, cfg)
        err = self.join_fails(b, self.a)
        self.assertEqual(self.a.ctl_json("members")["members"][0]["name"], self.a.name)
        return b, err

    def test_a_certificate_of_another_ca_is_refused(self):
        other = Pki(self.c.dir, "other-ca")
        crt, key = other.node("n1@127.0.0.1")
        b, err = self.refused(tls_config(crt, key, self.pki.crt))
        self.assert_logged(self.a, "not correctly signed by the trusted CA", "wrong CA")

    def test_an_expired_certificate_is_refused(self):
        b, err = self.refused(self.node_config("n1", expired=True))
        self.assert_logged(self.a, "validity has expired", "expired")

    def test_a_certificate_not_yet_valid_is_refused(self):
        b, err = self.refused(self.node_config("n1", future=True))
        self.assert_logged(self.a, "validity starts in the future", "not yet valid")

    def test_a_node_cannot_claim_a_name_its_certificate_does_not_give(self):
        crt, key = self.pki.node("n9@127.0.0.1")  # valid, of this CA, but for n9
        b, err = self.refused(tls_config(crt, key, self.pki.crt))
        self.assertIn("does not name n1@127.0.0.1", err)
        self.assert_logged(self.a, "does not name n1@127.0.0.1", "wrong name")
        # and the dialler checks the acceptor the same way
        c = self.c.add("n2", tls_config(*self.pki.node("n7@127.0.0.1"), self.pki.crt))
        d = self.tls_node("n3")
        self.join_fails(d, c)
        self.assert_logged(d, "does not name n2@127.0.0.1", "the acceptor's name")

    def test_a_client_without_a_certificate_is_refused(self):
        subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.a.port,
                        "-CAfile", self.pki.crt, "-tls1_2"],
                       input="", capture_output=True, text=True, timeout=20)
        self.assert_logged(self.a, "No client certification received", "no client certificate")
        self.assertEqual(self.a.nodes(), [], "nothing was let in")
        b = self.tls_node("n1")
        b.ctl("join", self.a.addr)
        wait_for(lambda: self.a.nodes() == [b.name], 10, "a good node still joins")

    def test_plain_and_tls_nodes_refuse_each_other(self):
        plain = self.c.add("n1")
        self.join_fails(plain, self.a)
        self.assert_logged(self.a, "no TLS handshake from the peer (a plain-TCP node?)",
                           "a plain node dialling a TLS one")
        self.assert_logged(plain, "no challenge from the peer (busy or stopped, or a TLS node?", "the plain side's reason")
        b = self.tls_node("n2")
        self.join_fails(b, plain)
        self.assert_logged(plain, "the peer speaks TLS and links here are plain TCP", "TLS dialling plain")
        self.assert_logged(b, "does not speak TLS", "the TLS side's reason")

    def test_garbage_and_replayed_bytes_are_refused_and_disturb_nothing(self):
        b = self.tls_node("n1")
        # a proxy that records what b sends while it joins a
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen(4)
        captured = bytearray()

        def proxy():
            cl, _ = lst.accept()
            up = socket.create_connection(("127.0.0.1", self.a.port))

            def pump(src, dst, rec):
                while True:
                    data = src.recv(65536)
                    if not data:
                        dst.close()
                        return
                    if rec:
                        captured.extend(data)
                    dst.sendall(data)
            threading.Thread(target=pump, args=(up, cl, False), daemon=True).start()
            pump(cl, up, True)

        threading.Thread(target=proxy, daemon=True).start()
        b.ctl("join", "%s:%d" % (self.a.name, lst.getsockname()[1]))
        wait_for(lambda: self.a.name in b.nodes(), 10, "b joined through the proxy")
        wait_for(lambda: len(captured) > 500, 5, "a handshake captured")
        before = self.a.logtext().count("TLS handshake failed")
        for payload in (bytes(captured), os.urandom(4096), b"\x16\x03\x01\xff\xff" + os.urandom(300)):
            s = socket.create_connection(("127.0.0.1", self.a.port))
            s.sendall(payload)
            s.settimeout(10)
            try:
                while s.recv(65536):
                    pass
            except OSError:
                pass
            s.close()
        wait_for(lambda: self.a.logtext().count("TLS handshake failed") >= before + 3, 10,
                 "three handshakes refused")
        self.assertEqual(sorted(self.a.nodes()), [b.name], "the real link stays up")
        self.assertEqual(len(self.a.ctl_json("members")["members"]), 2)
        lst.close()


class TestReload(TlsCase):
    def test_sighup_loads_a_new_certificate_for_new_links_and_keeps_the_old_ones(self):
        a = self.tls_node("n0")
        bcfg = self.node_config("n1")
        b = self.c.add("n1", bcfg)
        b.ctl("join", a.addr)
        wait_for(lambda: a.nodes() == [b.name], 10, "linked")
        sink = self.client(a, "usink", "inbox", 3000)
        src = self.client(b, "source", a.name, "inbox", 3000, "--ack", "--pace-us", "500")
        # b's certificate replaced while it sends: same name, a new subject
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", bcfg["tls"]["key"] + ".new",
                        "-out", bcfg["tls"]["key"] + ".csr", "-subj", "/O=rotated/CN=n1@127.0.0.1"],
                       check=True, capture_output=True)
        subprocess.run(["openssl", "ca", "-batch", "-notext", "-config", self.pki.conf, "-cert", self.pki.crt,
                        "-keyfile", self.pki.key, "-in", bcfg["tls"]["key"] + ".csr", "-out",
                        bcfg["tls"]["cert"] + ".new", "-days", "30", "-policy", "anything"],
                       check=True, capture_output=True)
        # a broken pair first: refused whole, the running one kept
        bad = dict(bcfg["tls"], key=a.config["tls"]["key"])
        with open(os.path.join(self.c.dir, "n1.json"), "w") as f:
            json.dump({"tls": bad}, f)
        b.signal(signal.SIGHUP)
        self.assert_logged(b, "reload refused", "a key that is not the certificate's")
        good = dict(bcfg["tls"], cert=bcfg["tls"]["cert"] + ".new", key=bcfg["tls"]["key"] + ".new")
        with open(os.path.join(self.c.dir, "n1.json"), "w") as f:
            json.dump({"tls": good}, f)
        b.signal(signal.SIGHUP)
        self.assert_logged(b, "reloaded", "the new certificate")
        self.assertEqual(a.nodes(), [b.name], "the existing link stayed up")
        c = self.tls_node("n2")
        c.ctl("join", b.addr)
        wait_for(lambda: any(x["node"] == b.name and x["peer_subject"] == "O=rotated, CN=n1@127.0.0.1"
                             for x in c.ctl_json("connections")["connections"]), 10,
                 "a new link sees the new certificate")
        rc, _, err = src.finish()
        self.assertEqual(rc, 0, err)
        rc, out, err = sink.finish(60)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split()[:4], ["ok", "3000", "duplicates", "0"])


class TestSecret(TlsCase):
    def secret_node(self, short, path):
        return self.c.add(short, {"cluster": {"secret_file": path}})

    def test_a_secret_makes_every_link_tls_and_another_secret_is_refused(self):
        s1 = write_secret(os.path.join(self.c.dir, "s1"), "correct horse battery staple\n")
        a, b = self.secret_node("n0", s1), self.secret_node("n1", s1)
        b.ctl("join", a.addr)
        wait_for(lambda: a.nodes() == [b.name], 10, "linked with the secret")
        x = a.ctl_json("connections")["connections"][0]
        self.assertEqual((x["transport"], x["peer_subject"]), ("tls", "psk"))
        self.assertEqual(a.ctl_json("status")["security"], "secret")
        # the same first 256 bytes are not the same secret
        long1 = write_secret(os.path.join(self.c.dir, "l1"), "x" * 300 + "1")
        long2 = write_secret(os.path.join(self.c.dir, "l2"), "x" * 300 + "2")
        c, d = self.secret_node("n2", long1), self.secret_node("n3", long2)
        self.join_fails(d, c)
        self.assert_logged(c, "another cluster secret", "another secret")
        self.join_fails(c, a)

    def test_rotating_the_secret_loses_no_acked_message(self):
        pa, pb = os.path.join(self.c.dir, "sa"), os.path.join(self.c.dir, "sb")
        write_secret(pa, "old-secret\n")
        write_secret(pb, "old-secret\n")
        a, b = self.secret_node("n0", pa), self.secret_node("n1", pb)
        b.ctl("join", a.addr)
        wait_for(lambda: a.nodes() == [b.name], 10, "linked")
        sink = self.client(a, "usink", "inbox", 3000)
        src = self.client(b, "source", a.name, "inbox", 3000, "--ack", "--pace-us", "500")
        for text in ("old-secret\nnew-secret\n", "new-secret\nold-secret\n", "new-secret\n"):
            for p, d in ((pa, a), (pb, b)):
                n = d.logtext().count("reloaded")
                write_secret(p, text)
                d.signal(signal.SIGHUP)
                wait_for(lambda: d.logtext().count("reloaded") > n, 10, "%s reloaded" % d.name)
        rc, _, err = src.finish()
        self.assertEqual(rc, 0, err)
        rc, out, err = sink.finish(60)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split()[:4], ["ok", "3000", "duplicates", "0"])
        # only the new secret opens links now
        c = self.secret_node("n2", write_secret(os.path.join(self.c.dir, "sc"), "new-secret"))
        c.ctl("join", a.addr)
        wait_for(lambda: sorted(c.nodes()) == sorted([a.name, b.name]), 10, "a new node with the new secret")
        old = self.secret_node("n3", write_secret(os.path.join(self.c.dir, "sd"), "old-secret"))
        self.join_fails(old, a)


def check_config(cfg, directory):
    path = os.path.join(directory, "check.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = subprocess.run([PARTISAND, "--check-config", "-c", path], capture_output=True, text=True)
    return r.returncode, r.stderr.strip()


class TestStrictFiles(unittest.TestCase):
    def setUp(self):
        self.c = Cluster()

    def tearDown(self):
        self.c.close()

    def expect(self, cfg, code, *texts):
        rc, err = check_config(cfg, self.c.dir)
        self.assertEqual(rc, code, err)
        for t in texts:
            self.assertIn(t, err)
        if code == 78:  # start refuses the same file, the same way
            path = os.path.join(self.c.dir, "check.json")
            r = subprocess.run([PARTISAND, "-f", "-c", path, "--socket", os.path.join(self.c.dir, "x.sock"),
                                "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 78, r.stderr)
            self.assertEqual(r.stderr.strip(), err)

    def test_secret_files_are_whole_private_and_bounded(self):
        d = self.c.dir
        sec = lambda name, text, mode=0o600: {"cluster": {"secret_file": write_secret(os.path.join(d, name), text, mode)}}
        self.expect(sec("ok", "one\ntwo\n"), 0)
        self.expect(sec("open", "one\n", 0o644), 78, "cluster.secret_file", "open to group or others")
        self.expect(sec("empty", ""), 78, "cluster.secret_file", "empty")
        self.expect(sec("blank", "\n"), 78, "cluster.secret_file", "line 1 is empty")
        self.expect(sec("three", "a\nb\nc\n"), 78, "cluster.secret_file", "more than 2 secrets")
        self.expect(sec("long", "x" * 1025), 78, "cluster.secret_file", "over 1024 bytes")
        self.expect({"cluster": {"secret_file": os.path.join(d, "missing")}}, 78, "cluster.secret_file",
                    "No such file")

    def test_tls_files_are_checked_at_check_time(self):
        pki = Pki(self.c.dir)
        crt, key = pki.node("n1@127.0.0.1")
        crt2, key2 = pki.node("n2@127.0.0.1")
        junk = os.path.join(self.c.dir, "junk.pem")
        with open(junk, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        self.expect(tls_config(crt, key, pki.crt), 0)
        self.expect(tls_config(os.path.join(self.c.dir, "nope.crt"), key, pki.crt), 78, "tls.cert", "nope.crt")
        self.expect(tls_config(junk, key, pki.crt), 78, "tls.cert", "junk.pem", "not a certificate")
        self.expect(tls_config(crt, junk, pki.crt), 78, "tls.key", "junk.pem", "not a private key")
        self.expect(tls_config(crt, key2, pki.crt), 78, "tls.key", "not the key of")
        self.expect(tls_config(crt, key, junk), 78, "tls.ca", "junk.pem")
        self.expect(tls_config(crt, key, None), 78, "tls.ca", "required when tls.verify_peer is true")
        self.expect(tls_config(crt, key, None, verify_peer=False), 0)


if __name__ == "__main__":
    unittest.main()

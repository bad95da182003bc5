"""Operations: what an operator and a service manager see of partisand:
journald priorities, the socket's directory and group, reload on SIGHUP,
members' status and the status counters, and the Prometheus endpoint
(checked by promtool and scraped by a real prometheus server)."""
import grp
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from harness import PARTISANCTL, PARTISAND, ClusterTestCase, wait_for


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(url, method="GET"):
    """(status, body) of one request."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


class LogTest(unittest.TestCase):
    def test_under_journald_each_line_carries_its_syslog_priority(self):
        tmp = tempfile.mkdtemp(prefix="partisan-log-")
        r, w = os.pipe()
        st = os.fstat(w)
        env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
        p = subprocess.Popen([PARTISAND, "-f", "--name", "j@127.0.0.1", "--listen", "127.0.0.1:0",
                              "--socket", os.path.join(tmp, "j.sock")], stderr=w, env=env)
        os.close(w)
        try:
            f = os.fdopen(r)
            lines = []
            while not lines or " running" not in lines[-1]:  # the start-up lines, then stop
                line = f.readline()
                self.assertTrue(line, "the daemon ended: %r" % lines)
                lines.append(line)
            p.terminate()
            p.wait(10)
            rest = f.read()
        finally:
            if p.poll() is None:
                p.kill()
            shutil.rmtree(tmp, ignore_errors=True)
        self.assertTrue(lines[0].startswith("<6>info peer: listening on "), lines)
        self.assertIn("<5>notice main: j@127.0.0.1 running", "".join(lines) + rest)

    def test_elsewhere_each_line_starts_with_the_utc_time(self):
        tmp = tempfile.mkdtemp(prefix="partisan-log-")
        try:
            r = subprocess.run([PARTISAND, "-f", "--name", "t@127.0.0.1", "--socket",
                                os.path.join(tmp, "nodir", "deeper", "t.sock"), "--listen",
                                "127.0.0.1:0"], capture_output=True, text=True, timeout=10,
                               env={k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        # A socket that cannot be made: an error naming the path and why, exit non-zero.
        self.assertNotEqual(r.returncode, 0)
        err = [l for l in r.stderr.splitlines() if " error ipc: " in l]
        self.assertEqual(len(err), 1, r.stderr)
        self.assertRegex(err[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z error ipc: cannot listen on "
                                 r".*/nodir/deeper/t\.sock: No such file or directory$")


class SocketTest(ClusterTestCase):
    def test_a_missing_socket_directory_is_made(self):
        d = self.c.add("a", start=False)
        d.sock = os.path.join(self.c.dir, "run", "partisan", "a.sock")
        os.makedirs(os.path.join(self.c.dir, "run"))
        d.start()
        self.assertTrue(os.path.isdir(os.path.join(self.c.dir, "run", "partisan")))
        self.assertIn("made the socket directory", d.logtext())

    @unittest.skipIf(os.geteuid() != 0, "needs root to make a group and switch users")
    def test_members_of_ipc_group_attach_and_others_are_not_permitted(self):
        group = "ptg%d" % (os.getpid() % 100000)
        subprocess.run(["groupadd", "-f", group], check=True)
        self.addCleanup(subprocess.run, ["groupdel", group])
        gid = grp.getgrnam(group).gr_gid
        os.chmod(self.c.dir, 0o755)  # the harness's directory: let nobody reach the socket
        d = self.c.add("a", {"ipc": {"group": group, "mode": "0660"}})
        st = os.stat(d.sock)
        self.assertEqual((st.st_gid, st.st_mode & 0o777), (gid, 0o660))

        def as_nobody(groups):
            return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup",
                                   "--groups=" + groups if groups else "--clear-groups",
                                   PARTISANCTL, "-s", d.sock, "spec"],
                                  capture_output=True, text=True, timeout=10)
        member = as_nobody(str(gid))
        self.assertEqual(member.returncode, 0, member.stderr)
        self.assertIn(d.name, member.stdout)
        stranger = as_nobody(None)
        self.assertEqual(stranger.returncode, 69, stranger.stderr)

    def test_an_ipc_group_that_does_not_exist_is_a_config_error(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump({"ipc": {"group": "no-such-group-here"}}, f)
            f.flush()
            r = subprocess.run([PARTISAND, "-c", f.name, "--check-config"], capture_output=True,
                               text=True, timeout=10)
        self.assertEqual(r.returncode, 78)
        self.assertEqual(r.stderr.strip(),
                         'partisand: config: ipc.group: no such group "no-such-group-here"')


class ReloadTest(ClusterTestCase):
    def test_sighup_applies_log_level_and_new_joins_and_refuses_a_broken_file(self):
        a = self.c.add("a")
        b = self.c.add("b", {"log": {"level": "info"}})
        conf = os.path.join(self.c.dir, "b.json")
        with open(conf, "w") as f:
            json.dump({"log": {"level": "debug"}, "join": [a.addr], "gossip_interval_ms": 500}, f)
        b.signal(signal.SIGHUP)
        wait_for(lambda: b.nodes() == [a.name], 10, "b to join a from its reloaded join list")
        log = b.logtext()
        self.assertIn("reloaded %s: join, log" % conf, log)
        self.assertIn("reload: gossip_interval_ms changed but take effect only at a restart", log)
        self.assertIn("debug ", log[log.index("reloaded"):], "the new log level applies")
        with open(conf, "w") as f:
            f.write('{"log": {"level": "loud"}}')
        b.signal(signal.SIGHUP)
        wait_for(lambda: "reload refused, the running config stays" in b.logtext(), 10, "refusal")
        self.assertIn('log.level: expected one of debug|info|notice|warning|error, got "loud"',
                      b.logtext())
        self.assertEqual(b.nodes(), [a.name], "the daemon goes on, still joined")


class MetricsTest(ClusterTestCase):
    def metrics_node(self, short):
        port = free_port()
        return self.c.add(short, {"metrics": {"listen": "127.0.0.1:%d" % port}}), port

    def test_metrics_pass_promtool_and_only_get_metrics_is_served(self):
        a, pa = self.metrics_node("a")
        b, _ = self.metrics_node("b")
        b.ctl("join", a.addr)
        wait_for(lambda: a.nodes() == [b.name], 10, "a and b linked")
        code, body = http("http://127.0.0.1:%d/metrics" % pa)
        self.assertEqual(code, 200)
        for series in ('partisan_members 2', 'partisan_members_by_status{status="alive"} 2',
                       'partisan_connections{channel="default"} 1',
                       'partisan_failure_detector_verdicts_total{verdict="timeout"} 0'):
            self.assertIn(series, body)
        sent = [l for l in body.splitlines()
                if l.startswith('partisan_peer_sent_bytes_total{channel="default"} ')]
        self.assertEqual(len(sent), 1, body)
        self.assertGreater(int(sent[0].split()[1]), 0, "the join's hello and gossip were counted")
        if shutil.which("promtool"):
            r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(http("http://127.0.0.1:%d/" % pa)[0], 404)
        self.assertEqual(http("http://127.0.0.1:%d/metrics" % pa, "POST")[0], 405)
        self.assertEqual(http("http://127.0.0.1:%d/metrics" % pa, "DELETE")[0], 405)
        # A client that opens a connection and sends nothing holds that only.
        idle = socket.create_connection(("127.0.0.1", pa))
        self.addCleanup(idle.close)
        self.assertEqual(http("http://127.0.0.1:%d/metrics" % pa)[0], 200)
        self.assertEqual(a.nodes(), [b.name])

    @unittest.skipIf(shutil.which("prometheus") is None, "the prometheus package is not installed")
    def test_a_real_prometheus_server_scrapes_the_cluster(self):
        nodes = [self.metrics_node("n%d" % i) for i in range(3)]
        for d, _ in nodes[1:]:
            d.ctl("join", nodes[0][0].addr)
        wait_for(lambda: len(nodes[0][0].nodes()) == 2, 10, "the cluster")
        web = free_port()
        conf = os.path.join(self.c.dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: partisan\n"
                    "    static_configs:\n      - targets: [%s]\n"
                    % ", ".join("'127.0.0.1:%d'" % p for _, p in nodes))
        prom = subprocess.Popen(["prometheus", "--config.file=" + conf,
                                 "--storage.tsdb.path=" + os.path.join(self.c.dir, "tsdb"),
                                 "--web.listen-address=127.0.0.1:%d" % web],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(prom)

        def query(q):
            code, body = http("http://127.0.0.1:%d/api/v1/query?query=%s" % (web, q))
            return json.loads(body)["data"]["result"] if code == 200 else []
        wait_for(lambda: len(query("partisan_members")) == 3 and
                 all(r["value"][1] == "3" for r in query("partisan_members")), 30,
                 "prometheus to have partisan_members from all three")
        self.assertEqual(len(query("partisan_peer_sent_bytes_total")), 3)
        self.assertEqual(sorted(r["value"][1] for r in query("up")), ["1", "1", "1"])


class GraphTest(ClusterTestCase):
    def test_graph_draws_members_by_status_and_links_with_their_channels(self):
        cfg = {"channels": {"default": {"parallelism": 1}, "bulk": {"parallelism": 2}}}
        ds = self.cluster(3, cfg)
        dot = wait_for(lambda: (lambda t: t if t.count("bulk 2") == 3 else None)(
            ds[0].ctl("graph").stdout), 10, "every bulk connection open")
        self.assertTrue(dot.startswith("digraph partisan {"), dot)
        for d in ds:
            self.assertIn('"%s" [fillcolor=palegreen' % d.name, dot)
        # every pair linked, each drawn once, with both channels' counts
        links = [l for l in dot.splitlines() if "dir=none" in l]
        self.assertEqual(len(links), 3, dot)
        for l in links:
            self.assertIn('label="default 1\\nbulk 2"', l)
        ds[2].kill()
        wait_for(lambda: '"%s" [fillcolor=tomato' % ds[2].name in ds[0].ctl("graph").stdout, 10,
                 "the killed node drawn down")
        if shutil.which("dot"):
            svg = os.path.join(self.c.dir, "g.svg")
            ds[0].ctl("graph", "--svg", svg)
            with open(svg) as f:
                self.assertIn("<svg", f.read())

"""partisanctl as a command line that explains itself: help for every
command and option, --version, argument errors that name the argument (exit
2), errors in JSON with --json, "daemon not reachable" (exit 69) that says
why, bash completion, and man pages that render without warnings."""
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import unittest

from harness import PARTISANCTL, PARTISAND, ClusterTestCase, wait_for

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
COMPLETION = os.path.join(ROOT, "client", "partisanctl.bash-completion")
MAN_PAGES = [os.path.join(ROOT, p) for p in ("client/partisanctl.8", "client/libpartisan-client.3",
                                             "daemon/partisand.8", "daemon/partisand.json.5")]

# Every command with its arguments and options, as the SPEC and the man page
# describe them; each is checked against the binary's help below.
COMMANDS = {
    "status": ([], []),
    "spec": ([], []),
    "members": ([], ["--status"]),
    "nodes": (["visible|all"], []),
    "connections": (["NODE"], []),
    "join": (["NAME@HOST:PORT|HOST:PORT"], ["--timeout"]),
    "leave": (["NODE"], []),
    "send": (["NODE", "NAME", "MESSAGE"],
             ["--channel", "--ack", "--key", "--transitive", "--causal-label"]),
    "call": (["NODE", "NAME", "MESSAGE"], ["--timeout", "--transitive", "--any"]),
    "listen": (["NAME"], ["--echo"]),
    "monitor-nodes": ([], []),
    "monitor": (["REF"], []),
    "broadcast": (["TOPIC", "MESSAGE"], []),
    "subscribe": (["TOPIC"], []),
    "registry": (["NAME"], []),
    "partition inject": (["NODE"], []),
    "partition resolve": (["REF"], []),
    "partition list": ([], []),
    "peer start": ([], ["--name", "--config", "--detached", "--timeout"]),
    "peer stop": (["NAME"], ["--timeout"]),
    "peer list": ([], []),
    "help": (["COMMAND"], []),
}


def ctl(*args, env=None, user=None):
    cmd = [PARTISANCTL] + list(args)
    if user is not None:
        cmd = ["setpriv", "--reuid=" + user, "--regid=nogroup", "--clear-groups"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)


def help_options(text):
    """The options an "options:" section of help lists."""
    if "\noptions:\n" not in text:
        return []
    section = text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^  (--[a-z-]+)", section, re.M)


def complete(*words, line=None, env=None):
    """Run the completion function on words (the last one is being
    completed); line: also set COMP_LINE/COMP_POINT as bash does."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
              '%s _partisanctl; printf "%%s\\n" "${COMPREPLY[@]}"'
              % ('COMP_LINE="$LINE"; COMP_POINT=${#COMP_LINE};' if line is not None else ""))
    e = dict(env if env is not None else os.environ)
    if line is not None:
        e["LINE"] = line
    r = subprocess.run(["bash", "-c", script, "_", COMPLETION, PARTISANCTL] + list(words),
                       capture_output=True, text=True, timeout=30, env=e)
    if r.returncode != 0 or r.stderr:
        raise AssertionError("completion failed: %d %s" % (r.returncode, r.stderr))
    return [w for w in r.stdout.split("\n") if w]


def no_daemon_env():
    """An environment whose default socket does not exist."""
    e = dict(os.environ)
    e["PARTISAN_SOCKET"] = "/nonexistent/partisan-test.sock"
    return e


class HelpTest(unittest.TestCase):
    def test_help_lists_every_command_with_a_description(self):
        r = ctl("help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, ctl("--help").stdout, "help and --help say the same")
        for name in COMMANDS:
            line = re.search(r"^  %s +(\S.*)$" % re.escape(name), r.stdout, re.M)
            self.assertIsNotNone(line, "help lists %s with a description:\n%s" % (name, r.stdout))
            self.assertGreater(len(line.group(1)), 10)
        self.assertIn("--version", r.stdout)
        self.assertIn("69", r.stdout, "the exit codes are explained")

    def test_help_command_describes_its_arguments_and_every_option(self):
        for name, (args, opts) in COMMANDS.items():
            with self.subTest(command=name):
                h = ctl("help", *name.split())
                d = ctl(*(name.split() + ["--help"]))
                self.assertEqual(h.returncode, 0, h.stderr)
                self.assertEqual(d.returncode, 0, d.stderr)
                self.assertEqual(h.stdout, d.stdout, "help CMD and CMD --help agree")
                self.assertTrue(h.stdout.startswith("usage: partisanctl %s" % name), h.stdout)
                self.assertEqual(sorted(help_options(h.stdout)), sorted(opts),
                                 "the options of %s, each with its help" % name)
                for a in args:
                    self.assertRegex(h.stdout, r"(?m)^  %s\s+\S" % re.escape(a),
                                     "argument %s is described" % a)
                desc = h.stdout.split("\n\n", 2)[1]
                self.assertGreater(len(desc), 30, "a description of %s" % name)

    def test_call_help_shows_both_forms(self):
        out = ctl("help", "call").stdout
        self.assertIn("partisanctl call NODE NAME MESSAGE [--timeout MS] [--transitive]", out)
        self.assertIn("partisanctl call --any NAME MESSAGE", out)

    def test_help_of_a_group_lists_its_subcommands(self):
        for group, subs in (("partition", ("inject", "resolve", "list")),
                            ("peer", ("start", "stop", "list"))):
            h, d = ctl("help", group), ctl(group, "--help")
            self.assertEqual((h.returncode, d.returncode), (0, 0))
            self.assertEqual(h.stdout, d.stdout)
            for s in subs:
                self.assertRegex(h.stdout, r"(?m)^  %s %s +\S" % (group, s))

    def test_version_matches_the_daemon(self):
        r = ctl("--version")
        self.assertEqual(r.returncode, 0)
        daemon = subprocess.run([PARTISAND, "--version"], capture_output=True, text=True)
        self.assertEqual(daemon.returncode, 0)
        self.assertEqual(r.stdout, daemon.stdout.replace("partisand", "partisanctl", 1))
        self.assertRegex(r.stdout, r"^partisanctl \d+\.\d+\.\d+\n$")


# (arguments, what stderr must say): each a usage error, exit 2.
USAGE_ERRORS = [
    ((), "missing COMMAND"),
    (("--bogus", "status"), 'unknown option "--bogus"'),
    (("-s",), "-s: missing SOCKET"),
    (("frobnicate",), 'unknown command "frobnicate"'),
    (("partition",), "partition: missing SUBCOMMAND (inject, resolve or list)"),
    (("peer", "restart"), 'peer: unknown subcommand "restart"'),
    (("send", "a@h", "inbox"), "send: missing MESSAGE"),
    (("send", "a@h"), "send: missing NAME"),
    (("send", "a@h", "inbox", "hi", "more"), 'send: extra argument "more"'),
    (("send", "a@h", "inbox", "hi", "--bogus"), 'send: unknown option "--bogus"'),
    (("send", "a@h", "inbox", "hi", "--channel"), "send: --channel: missing C"),
    (("send", "a@h", "inbox", "hi", "--channel="), '--channel: expected C, got ""'),
    (("send", "a@h", "inbox", "hi", "--ack=yes"), '--ack takes no value, got "yes"'),
    (("call", "a@h", "echo", "x", "--timeout", "x"),
     'call: --timeout: expected a positive number of milliseconds, got "x"'),
    (("call", "a@h", "echo", "x", "--timeout=-5"),
     'call: --timeout: expected a positive number of milliseconds, got "-5"'),
    (("call", "--any", "echo"), "call: missing MESSAGE"),
    (("call", "--any", "echo", "x", "y"), 'call: extra argument "y"'),
    (("join",), "join: missing NAME@HOST:PORT|HOST:PORT"),
    (("nodes", "some"), 'nodes: expected visible or all, got "some"'),
    (("members", "--status", "gone"), 'members: --status: expected one of alive|suspect|down|left, got "gone"'),
    (("peer", "stop"), "peer stop: missing NAME"),
    (("peer", "start", "--timeout", "0"), "peer start: --timeout: expected a positive number"),
    (("help", "frobnicate"), 'help: unknown command "frobnicate"'),
    (("-s", "", "status"), "-s: expected a socket path"),
]


class ArgumentErrorTest(unittest.TestCase):
    def test_each_argument_error_exits_2_and_names_the_argument(self):
        for args, says in USAGE_ERRORS:
            with self.subTest(args=args):
                r = ctl(*args, env=no_daemon_env())
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertTrue(r.stderr.startswith("partisanctl: "), r.stderr)
                self.assertIn(says, r.stderr.splitlines()[0])
                self.assertIn("usage: partisanctl", r.stderr)
                self.assertEqual(r.stdout, "")

    def test_with_json_each_argument_error_is_one_json_object(self):
        for args, says in USAGE_ERRORS:
            with self.subTest(args=args):
                r = ctl("--json", *args, env=no_daemon_env())
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
                err = json.loads(r.stderr)
                self.assertEqual(err["code"], "usage")
                self.assertIn(says, err["error"])

    def test_json_after_the_command_counts_for_errors_too(self):
        r = ctl("send", "a@h", "--json", env=no_daemon_env())
        self.assertEqual(r.returncode, 2)
        self.assertEqual(json.loads(r.stderr), {"error": "send: missing NAME", "code": "usage"})


class UnreachableTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="partisan-cli-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_missing_socket_says_no_such_socket_with_the_path(self):
        path = os.path.join(self.dir, "none.sock")
        r = ctl("-s", path, "status")
        self.assertEqual(r.returncode, 69, r.stderr)
        self.assertEqual(r.stderr, "partisanctl: cannot reach the daemon at %s: no such socket "
                                   "(is partisand running?)\n" % path)
        j = ctl("--json", "-s", path, "status")
        self.assertEqual(j.returncode, 69)
        self.assertEqual(json.loads(j.stderr)["code"], "unavailable")
        self.assertIn("no such socket", json.loads(j.stderr)["error"])

    def test_socket_from_the_environment_is_named(self):
        path = os.path.join(self.dir, "env.sock")
        e = dict(os.environ, PARTISAN_SOCKET=path)
        r = ctl("members", env=e)
        self.assertEqual(r.returncode, 69)
        self.assertIn(path + ": no such socket", r.stderr)

    def test_stale_socket_says_refused(self):
        path = os.path.join(self.dir, "stale.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()  # the file stays, nobody listens
        r = ctl("-s", path, "status")
        self.assertEqual(r.returncode, 69)
        self.assertIn("%s: connection refused: nobody is listening" % path, r.stderr)

    def test_not_a_socket(self):
        r = ctl("-s", self.dir, "spec")
        self.assertEqual(r.returncode, 69)
        self.assertIn("%s: not a socket" % self.dir, r.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to make a socket another user may not open")
    def test_socket_the_user_may_not_open_says_not_permitted(self):
        pwd.getpwnam("nobody")
        os.chmod(self.dir, 0o755)
        path = os.path.join(self.dir, "root.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.listen()
        os.chmod(path, 0o600)
        try:
            r = ctl("-s", path, "status", user="nobody")
            j = ctl("--json", "-s", path, "status", user="nobody")
        finally:
            s.close()
        self.assertEqual(r.returncode, 69, r.stderr)
        self.assertIn("cannot reach the daemon at %s: not permitted" % path, r.stderr)
        self.assertEqual(j.returncode, 69)
        self.assertEqual(json.loads(j.stderr)["code"], "unavailable")


class DaemonErrorTest(ClusterTestCase):
    def test_library_refusals_name_the_argument(self):
        a = self.c.add("a")
        cases = [
            (("send", "nohost", "inbox", "hi"), 'send: NODE: expected a node name, NAME@HOST, got "nohost"'),
            (("send", a.name, "in:box", "hi"), 'send: NAME: expected a name'),
            (("listen", "bad:name"), 'listen: NAME: expected a name'),
            (("join", "nowhere"), 'join: expected NAME@HOST:PORT or HOST:PORT, got "nowhere"'),
            (("monitor", "partisan:what"), 'monitor: REF: expected a reference'),
            (("partition", "inject", "x"), 'partition inject: NODE: expected a node name'),
        ]
        for args, says in cases:
            with self.subTest(args=args):
                r = a.ctl(*args, check=False)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertTrue(r.stderr.startswith("partisanctl: "), r.stderr)
                self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
                self.assertIn(says, r.stderr)
                j = a.ctl("--json", *args, check=False)
                self.assertEqual(j.returncode, 1)
                self.assertEqual(json.loads(j.stderr)["code"], "PARTISAN_EINVAL")
                self.assertIn(says, json.loads(j.stderr)["error"])

    def test_daemon_errors_keep_exit_1_with_their_code_in_json(self):
        a = self.c.add("a")
        r = a.ctl("--json", "call", a.name, "nobody", "ping", check=False)
        self.assertEqual(r.returncode, 1)
        err = json.loads(r.stderr)
        self.assertEqual(err["code"], "PARTISAN_ENOPROC")
        self.assertIn("no such endpoint", err["error"])
        r = a.ctl("call", "ghost@127.0.0.1", "echo", "ping", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("partisanctl: call: ", r.stderr)
        self.assertIn("not connected", r.stderr)


class OutputTest(ClusterTestCase):
    def test_members_show_their_status_and_filter_by_it(self):
        a, b = self.cluster(2)
        members = a.ctl_json("members")["members"]
        self.assertEqual(sorted((m["name"], m["status"]) for m in members),
                         [(a.name, "alive"), (b.name, "alive")])
        self.assertRegex(a.ctl("members").stdout, r"(?m)^NAME +STATUS +LISTEN")
        self.assertEqual(a.ctl_json("members", "--status", "down")["members"], [])
        b.kill()
        wait_for(lambda: [m["name"] for m in a.ctl_json("members", "--status", "down")["members"]]
                 == [b.name], 10, "b down")
        self.assertEqual([m["name"] for m in a.ctl_json("members", "--status", "alive")["members"]],
                         [a.name])

    def test_status_shows_the_counters(self):
        a = self.c.add("a")
        st = a.ctl_json("status")
        for k in ("bytes_in", "bytes_out", "retransmits", "connections_opened", "fd_timeouts"):
            self.assertIsInstance(st["counters"][k], int)
        self.assertRegex(a.ctl("status").stdout, r"(?m)^links: +\d+ opened, \d+ failed$")


class CompletionTest(ClusterTestCase):
    def test_commands_and_subcommands(self):
        self.assertEqual(complete("se"), ["send"])
        self.assertEqual(complete("partition", ""), ["inject", "resolve", "list"])
        self.assertEqual(complete("help", "pe"), ["peer"])
        self.assertEqual(complete("nodes", ""), ["visible", "all"])
        self.assertEqual(complete("members", "--status", "d"), ["down"])
        self.assertEqual(complete("-"), ["-s", "--socket", "--json", "--help", "--version"])

    def test_options_of_each_command_follow_its_help(self):
        for name, (_, opts) in COMMANDS.items():
            with self.subTest(command=name):
                got = complete(*(name.split() + ["--"]))
                self.assertEqual(sorted(got), sorted(opts + ["--json", "--help"]))
                self.assertEqual(sorted(help_options(ctl("help", *name.split()).stdout)),
                                 sorted(opts))

    def test_node_names_from_the_daemon_named_by_s(self):
        a, b = self.cluster(2)
        self.assertEqual(sorted(complete("-s", a.sock, "send", "")), sorted([a.name, b.name]))
        self.assertEqual(complete("-s", a.sock, "partition", "inject", "n1"), [b.name])
        self.assertEqual(complete("--socket=%s" % a.sock, "connections", "n0"), [a.name])
        # bash splits "n1@12" at '@'; only the part after it is replaced
        got = complete("-s", a.sock, "send", "n1", "@", "12",
                       line="%s -s %s send n1@12" % (PARTISANCTL, a.sock))
        self.assertEqual(got, [b.name.split("@", 1)[1]])
        # no daemon there: nothing, and no error
        self.assertEqual(complete("-s", "/nonexistent.sock", "send", ""), [])

    def test_node_names_from_the_socket_in_the_environment(self):
        a = self.c.add("solo")
        e = dict(os.environ, PARTISAN_SOCKET=a.sock)
        self.assertEqual(complete("leave", "", env=e), [a.name])

    def test_registered_names_where_a_name_goes(self):
        a = self.c.add("a")
        listener = subprocess.Popen([PARTISANCTL, "-s", a.sock, "listen", "inbox"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(listener)
        wait_for(lambda: "inbox" in a.ctl("registry").stdout, 10, "inbox registered")
        self.assertEqual(complete("-s", a.sock, "call", "--any", "in"), ["inbox"])
        self.assertEqual(complete("-s", a.sock, "send", a.name, ""), ["inbox"])
        self.assertEqual(complete("-s", a.sock, "send", "--channel", "x", a.name, "i"), ["inbox"])
        self.assertEqual(complete("-s", a.sock, "registry", ""), ["inbox"])
        self.assertEqual(complete("-s", a.sock, "send", a.name, "inbox", ""), [],
                         "nothing to offer for MESSAGE")


def man_text(page):
    r = subprocess.run(["man", "-l", page], capture_output=True, text=True,
                       env=dict(os.environ, MANWIDTH="200", MAN_KEEP_FORMATTING="0"))
    return re.sub(r".\x08", "", r.stdout)


@unittest.skipUnless(shutil.which("man"), "man is not installed")
class ManPageTest(unittest.TestCase):
    def test_pages_render_without_warnings(self):
        for page in MAN_PAGES:
            with self.subTest(page=os.path.basename(page)):
                r = subprocess.run(["man", "--warnings", "-l", page], capture_output=True,
                                   text=True, env=dict(os.environ, MANWIDTH="80"))
                self.assertEqual(r.returncode, 0)
                self.assertEqual(r.stderr, "")
                self.assertGreater(len(r.stdout), 1000)

    def test_every_page_has_the_sections(self):
        for page in MAN_PAGES:
            with self.subTest(page=os.path.basename(page)):
                text = man_text(page)
                for section in ("EXAMPLES", "ENVIRONMENT", "FILES", "SEE ALSO"):
                    self.assertTrue(re.search(r"(?m)^%s$" % section, text), section)
        self.assertTrue(re.search(r"(?m)^EXIT STATUS$", man_text(MAN_PAGES[0])))

    def test_partisanctl_page_documents_every_command_and_option(self):
        text = man_text(MAN_PAGES[0])
        for name, (args, opts) in COMMANDS.items():
            with self.subTest(command=name):
                entry = re.search(r"(?m)^ {7}%s\b(.*)$" % re.escape(name), text)
                self.assertIsNotNone(entry, "an entry for %s" % name)
                for o in opts:
                    self.assertTrue(re.search(r"(?m)^ {7}%s\b.*%s" % (re.escape(name), o), text),
                                    "%s %s in its entry" % (name, o))
                    self.assertTrue(re.search(r"(?m)^ {14}%s\b" % o, text),
                                    "%s described" % o)
        for word in ("--version", "--json", "PARTISAN_SOCKET", "call --any NAME MESSAGE",
                     "[--causal-label L]", "no such socket", "69"):
            self.assertTrue(word in text, "%s in partisanctl(8)" % word)

    def test_peer_start_entry_renders_on_one_line(self):
        text = man_text(MAN_PAGES[0])
        self.assertTrue(re.search(r"(?m)^ {7}peer start \[--name N\] \[--config F\] \[--detached\] "
                                  r"\[--timeout MS\]$", text), "the peer start entry")

    def test_library_page_lists_every_public_function(self):
        with open(os.path.join(ROOT, "client", "include", "partisan", "client.h")) as f:
            header = f.read()
        funcs = sorted(set(re.findall(r"^[a-z][\w ]*?[ *](partisan_\w+)\(", header, re.M)))
        self.assertGreater(len(funcs), 70)
        text = man_text(MAN_PAGES[1])
        synopsis = text.split("\nDESCRIPTION\n")[0]
        described = set(re.findall(r"(?m)(?:^ {7}|, )(partisan_\w+)\(\)", text))
        self.assertEqual([fn for fn in funcs if "%s(" % fn not in synopsis], [],
                         "every function of client.h in the SYNOPSIS")
        self.assertEqual([fn for fn in funcs if fn not in described], [],
                         "every function of client.h has an entry")
        for section in ("RETURN VALUE", "ERRORS", "SESSION", "MESSAGES", "REQUEST/REPLY",
                        "MONITORING", "CLUSTER", "BROADCAST", "REGISTRY", "PEER CONTROLLER"):
            self.assertRegex(text, r"(?m)^%s$" % re.escape(section))


if __name__ == "__main__":
    unittest.main()

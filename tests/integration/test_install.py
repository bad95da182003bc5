"""make install into a DESTDIR, then build a client program against the
installed pkg-config file and run it against a real daemon; install for a
distribution (PREFIX=/usr, a multiarch LIBDIR) and check the paths written
into the unit and the .pc, then uninstall; check that the static library
exports nothing but the API; verify the systemd unit where systemd-analyze
exists."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from harness import BUILD, Cluster

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

MULTIARCH = "/usr/lib/x86_64-linux-gnu"

PROGRAM = r"""
#include <stdio.h>
#include <partisan/client.h>
int main(int argc, char **argv)
{
	partisan_t *c;
	char node[PARTISAN_NODE_MAX];
	int rc = partisan_connect(argv[1], &c);
	if (rc < 0) { fprintf(stderr, "%s\n", partisan_strerror(rc)); return 1; }
	if ((rc = partisan_node(c, node, sizeof(node))) < 0) return 1;
	printf("%s\n", node);
	return partisan_close(c);
}
"""


# A program with the names of the library's internals as its own functions:
# it links statically only if the library keeps those names to itself.
CLASH = r"""
#include <stdio.h>
#include <partisan/client.h>
%s
int main(void)
{
	partisan_t *c;
	int rc = partisan_connect("/nonexistent/partisand.sock", &c);
	printf("%%s\n", rc < 0 ? partisan_strerror(rc) : "connected");
	return rc < 0 ? 0 : 1;
}
"""


def make(*args):
    b = os.path.relpath(BUILD, ROOT)
    return subprocess.run(["make", "-s", "-C", ROOT, "B=" + b] + list(args),
                          capture_output=True, text=True)


def defined_globals(path, dynamic=False):
    """The global symbols an object, archive or (dynamic) shared library defines."""
    r = subprocess.run(["nm", "-g", "--defined-only"] + (["-D"] if dynamic else []) + [path],
                       capture_output=True, text=True, check=True)
    syms = set()
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] != "A":  # A: the version nodes of the .so
            syms.add(f[2].split("@")[0])
    return syms


def files_under(top):
    return sorted(os.path.relpath(os.path.join(d, f), top)
                  for d, _, fs in os.walk(top) for f in fs)


@unittest.skipIf("asan" in BUILD, "install is exercised once, on the normal build")
class InstallTest(unittest.TestCase):
    def setUp(self):
        self.dest = tempfile.mkdtemp(prefix="partisan-install-")

    def tearDown(self):
        shutil.rmtree(self.dest, ignore_errors=True)

    def test_install_for_a_distribution_then_uninstall(self):
        # `make` first (PREFIX=/usr/local), as a packager would: the install
        # with other paths must not ship the files generated for the first.
        r = make("all")
        self.assertEqual(r.returncode, 0, r.stderr)
        dirs = ["PREFIX=/usr", "LIBDIR=" + MULTIARCH, "DESTDIR=" + self.dest]
        r = make("install", *dirs)
        self.assertEqual(r.returncode, 0, r.stderr)
        root = lambda p: os.path.join(self.dest, p.lstrip("/"))
        installed = files_under(self.dest)
        for f in ("usr/sbin/partisand", "usr/bin/partisanctl", "usr/include/partisan/client.h",
                  "usr/lib/x86_64-linux-gnu/libpartisan-client.so.0.1.0",
                  "usr/lib/x86_64-linux-gnu/libpartisan-client.so.0",
                  "usr/lib/x86_64-linux-gnu/libpartisan-client.so",
                  "usr/lib/x86_64-linux-gnu/libpartisan-client.a",
                  "usr/lib/x86_64-linux-gnu/pkgconfig/libpartisan-client.pc",
                  "usr/lib/systemd/system/partisand.service", "usr/lib/sysusers.d/partisan.conf",
                  "usr/lib/tmpfiles.d/partisan.conf", "usr/share/man/man8/partisand.8",
                  "etc/partisan/partisand.json.example"):
            self.assertIn(f, installed)
        self.assertEqual([f for f in installed if f.startswith("usr/local")
                          or re.match(r"usr/lib/[^/]*partisan-client", f)], [], installed)
        if os.path.exists(os.path.join(ROOT, "client/partisanctl.bash-completion")):
            self.assertIn("usr/share/bash-completion/completions/partisanctl", installed)

        with open(root("/usr/lib/systemd/system/partisand.service")) as f:
            unit = f.read().splitlines()
        self.assertIn("ExecStart=/usr/sbin/partisand --foreground", unit)
        for line in ("User=partisan", "Group=partisan", "RuntimeDirectory=partisan",
                     "UMask=0007", "SystemCallFilter=@system-service", "CapabilityBoundingSet=",
                     "AmbientCapabilities="):
            self.assertIn(line, unit)
        with open(root("/usr/lib/sysusers.d/partisan.conf")) as f:
            self.assertTrue(any(re.match(r"u\s+partisan\s", l) for l in f), "no partisan user")
        with open(root("/usr/lib/tmpfiles.d/partisan.conf")) as f:
            self.assertTrue(any(re.match(r"d\s+/run/partisan\s+\d+\s+partisan\s+partisan", l)
                                for l in f), "/run/partisan not partisan:partisan")

        self.check_sysusers_and_tmpfiles(root("/usr/lib/sysusers.d/partisan.conf"),
                                         root("/usr/lib/tmpfiles.d/partisan.conf"))

        pcdir = root(MULTIARCH + "/pkgconfig")
        env = dict(os.environ, PKG_CONFIG_PATH=pcdir)
        env.pop("PKG_CONFIG_SYSROOT_DIR", None)
        var = lambda v: subprocess.run(["pkg-config", "--variable=" + v, "libpartisan-client"],
                                       capture_output=True, text=True, env=env).stdout.strip()
        self.assertEqual(var("prefix"), "/usr")
        self.assertEqual(var("libdir"), MULTIARCH)
        self.assertEqual(var("includedir"), "/usr/include")

        r = make("uninstall", *dirs)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(files_under(self.dest), [])

    def check_sysusers_and_tmpfiles(self, sysusers, tmpfiles):
        """Apply the two files to an empty root, as a package's postinst would:
        the partisan user and group appear, /run/partisan is theirs, 0750."""
        tools = [shutil.which(t) for t in ("systemd-sysusers", "systemd-tmpfiles")]
        if None in tools:
            return
        top = tempfile.mkdtemp(prefix="partisan-root-")
        try:
            os.makedirs(os.path.join(top, "etc"))
            r = subprocess.run([tools[0], "--root=" + top, sysusers], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(top, "etc/passwd")) as f:
                user = [l.split(":") for l in f if l.startswith("partisan:")]
            with open(os.path.join(top, "etc/group")) as f:
                group = [l.split(":") for l in f if l.startswith("partisan:")]
            self.assertTrue(user and group, "sysusers made no partisan user and group")
            self.assertEqual(user[0][3], group[0][2])
            r = subprocess.run([tools[1], "--root=" + top, "--create", tmpfiles],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            st = os.stat(os.path.join(top, "run/partisan"))
            self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777),
                             (int(user[0][2]), int(group[0][2]), 0o750))
        finally:
            shutil.rmtree(top, ignore_errors=True)

    def test_static_library_exports_only_the_api(self):
        lib = os.path.join(BUILD, "libpartisan-client.a")
        exported = defined_globals(lib)
        api = defined_globals(os.path.join(BUILD, "libpartisan-client.so"), dynamic=True)
        self.assertTrue(api and all(s.startswith("partisan_") for s in api), sorted(api)[:5])
        self.assertEqual(sorted(exported - api), [])
        self.assertEqual(sorted(api - exported), [])

        # Every global the client's own objects define, less the API: the
        # shared proto/ code (frame_*, ref_*), pc_* and the protobuf messages.
        objs = [os.path.join(d, f) for sub in ("obj/client", "obj/proto", "proto")
                for d, _, fs in os.walk(os.path.join(BUILD, sub)) for f in fs
                if f.endswith(".o") and f != "partisanctl.o"]
        internal = set().union(*(defined_globals(o) for o in objs)) - api
        self.assertTrue({"ref_parse", "frame_peek"} <= internal, sorted(internal)[:10])
        src = os.path.join(self.dest, "clash.c")
        with open(src, "w") as f:
            f.write(CLASH % "\n".join("void %s(void) {}" % s for s in sorted(internal)))
        exe = os.path.join(self.dest, "clash")
        cc = subprocess.run(["cc", "-w", "-I" + os.path.join(ROOT, "client/include"), src, "-o", exe,
                             lib, "-lprotobuf-c"], capture_output=True, text=True)
        self.assertEqual(cc.returncode, 0, cc.stderr[-2000:])
        run = subprocess.run([exe], capture_output=True, text=True)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertTrue(run.stdout.strip(), "no error message from partisan_strerror")

    def test_installed_library_builds_a_client_through_pkg_config(self):
        b = os.path.relpath(BUILD, ROOT)
        r = subprocess.run(["make", "-s", "-C", ROOT, "install", "B=" + b, "PREFIX=/usr/local",
                            "DESTDIR=" + self.dest], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        pre = os.path.join(self.dest, "usr/local")
        for f in ("sbin/partisand", "bin/partisanctl", "lib/libpartisan-client.so.0",
                  "lib/libpartisan-client.a", "include/partisan/client.h",
                  "lib/pkgconfig/libpartisan-client.pc", "share/man/man8/partisand.8",
                  "share/man/man8/partisanctl.8", "share/man/man5/partisand.json.5",
                  "share/man/man3/libpartisan-client.3", "lib/systemd/system/partisand.service",
                  "lib/tmpfiles.d/partisan.conf"):
            self.assertTrue(os.path.exists(os.path.join(pre, f)), f)
        self.assertTrue(os.path.exists(os.path.join(self.dest, "etc/partisan/partisand.json.example")))
        soname = subprocess.run(["objdump", "-p", os.path.join(pre, "lib/libpartisan-client.so.0")],
                                capture_output=True, text=True).stdout
        self.assertIn("SONAME               libpartisan-client.so.0", soname)
        dyn = subprocess.run(["nm", "-D", "--defined-only", os.path.join(pre, "lib/libpartisan-client.so.0")],
                             capture_output=True, text=True).stdout.split("\n")
        exported = [l.split()[-1] for l in dyn if " T " in l]
        self.assertTrue(exported and all(s.startswith("partisan_") for s in exported), exported[:5])

        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(pre, "lib/pkgconfig"),
                   PKG_CONFIG_SYSROOT_DIR=self.dest)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libpartisan-client"],
                               capture_output=True, text=True, env=env)
        self.assertEqual(flags.returncode, 0, flags.stderr)
        src = os.path.join(self.dest, "hello.c")
        with open(src, "w") as f:
            f.write(PROGRAM)
        exe = os.path.join(self.dest, "hello")
        cc = subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", src, "-o", exe] + flags.stdout.split(),
                            capture_output=True, text=True)
        self.assertEqual(cc.returncode, 0, cc.stderr)
        with Cluster() as c:
            a = c.add("installed")
            run = subprocess.run([exe, a.sock], capture_output=True, text=True,
                                 env=dict(os.environ, LD_LIBRARY_PATH=os.path.join(pre, "lib")))
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertEqual(run.stdout.strip(), a.name)

    def test_systemd_unit_verifies(self):
        tool = shutil.which("systemd-analyze")
        if tool is None:
            self.skipTest("systemd-analyze is not installed here")
        unit = os.path.join(BUILD, "partisand.service")
        r = subprocess.run([tool, "verify", "--man=no", unit], capture_output=True, text=True)
        # verify complains when the ExecStart binary is not installed; that is
        # the only message allowed here.
        problems = [l for l in (r.stdout + r.stderr).splitlines()
                    if l.strip() and "is not executable" not in l and "No such file" not in l]
        self.assertEqual(problems, [], r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()

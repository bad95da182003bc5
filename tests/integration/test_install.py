"""make install into a DESTDIR, then build a client program against the
installed pkg-config file and run it against a real daemon; verify the
systemd unit where systemd-analyze exists."""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import BUILD, Cluster

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

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


@unittest.skipIf("asan" in BUILD, "install is exercised once, on the normal build")
class InstallTest(unittest.TestCase):
    def setUp(self):
        self.dest = tempfile.mkdtemp(prefix="partisan-install-")

    def tearDown(self):
        shutil.rmtree(self.dest, ignore_errors=True)

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

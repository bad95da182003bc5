"""run.py: run every integration test module (test_*.py) and print the
closing line "N passed, N failed"."""
import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
fault = os.path.join(here, "..", "fault")
hosts = os.path.join(here, "..", "hosts")
sys.path.insert(0, here)
sys.path.insert(0, fault)
sys.path.insert(0, hosts)
pattern = sys.argv[1] if len(sys.argv) > 1 else "test_*.py"
suite = unittest.TestSuite()
for d in (here, fault, hosts):
    suite.addTests(unittest.defaultTestLoader.discover(d, pattern=pattern, top_level_dir=d))
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
failed = len(result.failures) + len(result.errors)
skipped = len(result.skipped)
passed = result.testsRun - failed - skipped
print("integration: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed or result.testsRun == 0 else 0)

#!/usr/bin/python3
"""Real migrations of the embedded guest between two local QEMUs (TCG).

Every case checks the guest's memory with amwork's verifier afterwards:
on the destination after a completed migration, on the source after a
cancelled or broken one.
"""
# SPDX-License-Identifier: GPL-2.0-or-later
import os
import sys
import time
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'scripts'))
from amig.migrate import (run_case, migrate, VmPair,  # noqa: E402
                          verify_workloads, wait_migration, MiB)
from amig.vm import VM  # noqa: E402

WORKLOADS = ['hold 32', 'write 8']


class MigrationTest(unittest.TestCase):

    def check_completed(self, res):
        self.assertEqual(res['status'], 'completed', res)
        self.assertEqual(res['integrity'], 'ok', res)
        self.assertEqual(len(res['verify']), len(WORKLOADS))
        self.assertGreater(res['bytes'], 32 * MiB)
        self.assertIsNotNone(res.get('stop-to-resume-ms'))

    def test_precopy(self):
        res = run_case(WORKLOADS, 'precopy', bandwidth_mib=64)
        self.check_completed(res)
        self.assertEqual(res['postcopy-requests'], 0)
        self.assertGreaterEqual(res['dirty-sync-count'], 2)

    def test_postcopy(self):
        res = run_case(WORKLOADS, 'postcopy', bandwidth_mib=64)
        self.check_completed(res)
        self.assertGreater(res['postcopy-requests'], 0)
        self.assertGreater(res['postcopy-bytes'], 0)
        # QEMU's own figure is the pause, not the post-copy phase
        # (patch "do not take a 0 ms post-copy downtime for an unset one")
        self.assertLess(res['downtime-ms'], res['total-time-ms'] / 2, res)

    def pair(self):
        p = VmPair(WORKLOADS)
        self.addCleanup(p.close)
        self.wd, self.src, self.dst = p.wd, p.src, p.dst
        return p

    def test_cancel_then_migrate(self):
        """A cancelled migration loses nothing; a retry completes."""
        p = self.pair()
        p.start_migration(src_caps={'events': True},
                          params={'max-bandwidth': 4 * MiB})
        time.sleep(1.5)
        self.assertEqual(self.src.cmd('query-migrate')['status'], 'active')
        self.src.cmd('migrate_cancel')
        info = wait_migration(self.src, 30)
        self.assertEqual(info['status'], 'cancelled')
        self.assertEqual(self.src.status(), 'running')
        ok, lines = verify_workloads(self.src, len(WORKLOADS))
        self.assertTrue(ok, lines)
        # the destination gave up; start a fresh one and migrate for real
        self.dst.stop()
        self.dst = p.dst = VM('dst2', self.wd.path, incoming=True).start()
        res = migrate(self.src, self.dst, 'precopy', bandwidth_mib=64)
        self.assertEqual(res['status'], 'completed', res)
        ok, lines = verify_workloads(self.dst, len(WORKLOADS))
        self.assertTrue(ok, lines)

    def test_broken_destination(self):
        """The destination dies mid-migration: the source runs on intact."""
        self.pair().start_migration(params={'max-bandwidth': 4 * MiB})
        time.sleep(1.5)
        self.dst.proc.kill()
        self.dst.proc.wait()
        info = wait_migration(self.src, 60)
        self.assertEqual(info['status'], 'failed', info)
        self.assertEqual(self.src.status(), 'running')
        ok, lines = verify_workloads(self.src, len(WORKLOADS))
        self.assertTrue(ok, lines)


if __name__ == '__main__':
    unittest.main(verbosity=2)

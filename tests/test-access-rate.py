#!/usr/bin/python3
"""The access-rate tracker (QMP calc/query/cancel-access-rate, HMP) on the
embedded Linux guest under TCG, with the tcg backend.

K distinct pages read in a loop must give a read working set within 10%
of K and a write rate near zero, and the reverse for writes; a mixed
guest shows both; bad parameters are refused; a migration with the
tracker running completes and the guest's memory checks out on the
destination.
"""
# SPDX-License-Identifier: GPL-2.0-or-later
import os
import sys
import time
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'scripts'))
from amig.migrate import (migrate, start_workloads,  # noqa: E402
                          verify_workloads)
from amig.vm import VM, Workdir  # noqa: E402

K = 8192           # 32 MiB of distinct pages; the idle guest adds ~250


def measure(vm, **args):
    vm.cmd('calc-access-rate', **args)
    deadline = time.monotonic() + 60
    while True:
        r = vm.cmd('query-access-rate')
        if r['status'] != 'measuring':
            return r
        if time.monotonic() > deadline:
            raise AssertionError('measurement did not finish: %s' % r)
        time.sleep(0.2)


class AccessRateTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir()
        cls.vm = VM('src', cls.wd.path).start()
        cls.vm.wait_boot()

    @classmethod
    def tearDownClass(cls):
        cls.vm.stop()
        cls.wd.done(True)

    def run_workload(self, *wls):
        self.vm.console.run('kill $(pidof amwork) 2>/dev/null; sleep 0.3')
        start_workloads(self.vm, wls)
        return measure(self.vm, **{'window-ms': 3000})

    def test_a_read_guest(self):
        r = self.run_workload('pages %d read' % K)
        self.assertEqual(r['status'], 'measured')
        self.assertEqual(r['backend'], 'tcg')
        self.assertTrue(r['read-rate-available'])
        self.assertEqual(len(r['samples']), 3)
        self.assertEqual(r['scans'], 60)
        self.assertLess(abs(r['read-working-set'] - K), 0.10 * K, r)
        self.assertLess(r['write-rate'], 0.05 * r['read-rate'], r)
        self.assertLess(r['write-working-set'], 0.05 * K, r)
        for s in r['samples']:
            self.assertLess(abs(s['read-distinct'] - K), 0.10 * K, s)

    def test_b_write_guest(self):
        r = self.run_workload('pages %d write' % K)
        self.assertLess(abs(r['write-working-set'] - K), 0.10 * K, r)
        self.assertLess(r['read-rate'], 0.05 * r['write-rate'], r)
        self.assertLess(r['read-working-set'], 0.05 * K, r)
        # predictions of a steady guest stay near its mean
        self.assertLess(abs(r['write-rate-predicted'] - r['write-rate']),
                        0.2 * r['write-rate'])

    def test_c_mixed_guest(self):
        # A page read and written in the same 50 ms scan counts as written
        # (A and D set), so a mixed guest reads one region, writes another.
        r = self.run_workload('pages %d read' % (K // 2),
                              'pages %d write' % (K // 2))
        top = max(r['read-rate'], r['write-rate'])
        self.assertGreater(r['read-rate'], 0.2 * top, r)
        self.assertGreater(r['write-rate'], 0.2 * top, r)
        self.assertLess(abs(r['read-working-set'] - K // 2), 0.1 * K, r)
        self.assertLess(abs(r['write-working-set'] - K // 2), 0.1 * K, r)

    def test_d_bad_parameters(self):
        bad = [({'scan-period-ms': 5}, 'scan-period-ms must be between'),
               ({'scan-period-ms': 20000}, 'scan-period-ms must be between'),
               ({'sample-period-ms': 1030}, 'must be a multiple of scan'),
               ({'sample-period-ms': 40}, 'must be a multiple of scan'),
               ({'window-ms': 1500}, 'must be a multiple of sample'),
               ({'window-ms': 601000}, 'of at most 600 periods')]
        for args, msg in bad:
            res, err = self.vm.try_cmd('calc-access-rate', **args)
            self.assertIsNotNone(err, args)
            self.assertIn(msg, err)
        res, err = self.vm.try_cmd('calc-access-rate', backend='nonsense')
        self.assertIn("'nonsense'", err or '')
        out = self.vm.hmp('calc_access_rate 7')
        self.assertIn('scan-period-ms must be between', out)

    def test_e_hmp_and_cancel(self):
        out = self.vm.hmp('calc_access_rate -c 50 500 1000')
        self.assertIn('Started', out)
        time.sleep(2.5)
        out = self.vm.hmp('info access_rate')
        self.assertIn('Status: tracking', out)
        self.assertIn('Backend: tcg', out)
        self.assertIn('Read rate:', out)
        self.assertIn('Write rate:', out)
        self.vm.hmp('cancel_access_rate')
        r = self.vm.cmd('query-access-rate')
        self.assertEqual(r['status'], 'cancelled')
        self.assertEqual(len(r['samples']), 2)
        scans = r['scans']
        time.sleep(0.5)
        self.assertEqual(self.vm.cmd('query-access-rate')['scans'], scans)


class TrackerMigrationTest(unittest.TestCase):

    def test_migration_with_tracker_on(self):
        """Migration sees every dirty page while the tracker runs."""
        wd = Workdir()
        src = VM('src', wd.path)
        dst = VM('dst', wd.path, incoming=True)
        try:
            src.start()
            src.wait_boot()
            wls = ['hold 32', 'write 8', 'pages 2048 read']
            start_workloads(src, wls)
            src.cmd('calc-access-rate', continuous=True,
                    **{'window-ms': 2000})
            time.sleep(2.5)
            self.assertEqual(src.cmd('query-access-rate')['status'],
                             'tracking')
            dst.start()
            for mode in ('precopy',):
                res = migrate(src, dst, mode, bandwidth_mib=64)
                self.assertEqual(res['status'], 'completed', res)
            ok, lines = verify_workloads(dst, len(wls))
            self.assertTrue(ok, lines)
            self.assertEqual(len(lines), 3)
        finally:
            src.stop()
            dst.stop()
            wd.done(True)


if __name__ == '__main__':
    unittest.main(verbosity=2)

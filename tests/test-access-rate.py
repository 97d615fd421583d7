#!/usr/bin/python3
"""The access-rate tracker (QMP calc/query/cancel-access-rate, HMP) on the
embedded Linux guest under TCG, with the tcg and dirty-log backends.

tcg: K distinct pages read in a loop must give a read working set within
10% of K and a write rate near zero, and the reverse for writes; a mixed
guest shows both; bad parameters are refused.

dirty-log: K distinct pages written in a loop give a write working set
within 10% of K; reads are reported as unavailable (the read figures are
absent, not zero), also by HMP; a reading guest writes next to nothing;
its global dirty logging is shared, reference-counted, with the other
users; auto-selection under TCG still picks tcg.

With either backend, a migration with the tracker running completes and
the guest's memory checks out on the destination.

A 64 GiB guest measured with the largest window costs the tracker 4 bytes
a page, not a bitmap per sample period, and its periods stay on time.
"""
# SPDX-License-Identifier: GPL-2.0-or-later
import os
import re
import sys
import time
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'scripts'))
from amig.migrate import (migrate, start_workloads,  # noqa: E402
                          verify_workloads)
from amig.vm import VM, Workdir, proc_status_kib  # noqa: E402

K = 8192           # 32 MiB of distinct pages; the idle guest adds ~250
READ_KEYS = ('read-rate', 'read-bytes-per-sec', 'read-rate-predicted',
             'read-working-set')
SAMPLE_READ_KEYS = ('read-pages', 'read-distinct')


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


def trace_dirty_changes(vm):
    """Enable the trace of QEMU's global dirty logging flags."""
    r = vm.qmp.cmd_raw('trace-event-set-state',
                       {'name': 'global_dirty_changed', 'enable': True})
    assert 'error' not in r, r


def dirty_changes(vm):
    """The global dirty logging flags QEMU went through, from its log
    (GLOBAL_DIRTY_MIGRATION 0x1, DIRTY_RATE 0x2, ACCESS_RATE 0x8)."""
    with open(os.path.join(vm.dir, 'qemu.log'), errors='replace') as f:
        return [int(m, 16) for m in
                re.findall(r'global_dirty_changed bitmask 0x([0-9a-f]+)',
                           f.read())]


def wait_dirty_off(vm, timeout=10):
    """Wait until no global dirty logging is on; return the number of
    changes logged so far."""
    deadline = time.monotonic() + timeout
    while True:
        ch = dirty_changes(vm)
        if not ch or ch[-1] == 0:
            return len(ch)
        if time.monotonic() > deadline:
            raise AssertionError('dirty logging still on: %s' % ch)
        time.sleep(0.1)


def wait_dirty_changes(vm, n, timeout=10):
    """Wait until the log shows N changes (the tracker stops its logging
    from the main loop, shortly after it stopped); return them."""
    deadline = time.monotonic() + timeout
    while len(dirty_changes(vm)) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    return dirty_changes(vm)


class GuestTestCase(unittest.TestCase):
    """One booted guest for the whole class; run_workload() replaces its
    workloads and measures a 3 s window with the class's BACKEND (None:
    the tracker's own choice)."""
    BACKEND = None

    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir()
        cls.vm = VM('src', cls.wd.path).start()
        cls.vm.wait_boot()

    @classmethod
    def tearDownClass(cls):
        cls.vm.stop()
        cls.wd.done(True)

    def run_workload(self, *wls, **args):
        self.vm.console.run('kill $(pidof amwork) 2>/dev/null; sleep 0.3')
        start_workloads(self.vm, wls)
        if self.BACKEND:
            args['backend'] = self.BACKEND
        return measure(self.vm, **dict({'window-ms': 3000}, **args))


class AccessRateTest(GuestTestCase):

    def test_a_read_guest(self):
        r = self.run_workload('pages %d read' % K)
        self.assertEqual(r['status'], 'measured')
        self.assertEqual(r['backend'], 'tcg')
        self.assertTrue(r['read-rate-available'])
        self.assertEqual(len(r['samples']), 3)
        # 3 periods of 1 s at S = 50 ms: 60 scans, give or take the
        # scans a loaded host delays across a period boundary
        self.assertTrue(57 <= r['scans'] <= 63, r['scans'])
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


class DirtyLogTest(GuestTestCase):
    """The dirty-log backend under TCG (QEMU's own dirty tracking)."""
    BACKEND = 'dirty-log'

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        trace_dirty_changes(cls.vm)

    def setUp(self):
        # the previous test's tracker stops its logging asynchronously
        self.n = wait_dirty_off(self.vm)

    def assertNoReads(self, r):
        self.assertIs(r['read-rate-available'], False)
        for k in READ_KEYS:
            self.assertNotIn(k, r)
        for s in r['samples']:
            for k in SAMPLE_READ_KEYS:
                self.assertNotIn(k, s)

    def test_a_write_guest(self):
        n = self.n
        r = self.run_workload('pages %d write' % K)
        print('dirty-log, pages %d write: write working set %d, '
              'distinct per sample %s, %.0f pages/s'
              % (K, r['write-working-set'],
                 [s['write-distinct'] for s in r['samples']],
                 r['write-rate']), file=sys.stderr)
        self.assertEqual(r['status'], 'measured')
        self.assertEqual(r['backend'], 'dirty-log')
        self.assertNoReads(r)
        self.assertEqual(len(r['samples']), 3)
        # 3 periods of 1 s at S = 50 ms: 60 scans, give or take the
        # scans a loaded host delays across a period boundary
        self.assertTrue(57 <= r['scans'] <= 63, r['scans'])
        self.assertLess(abs(r['write-working-set'] - K), 0.10 * K, r)
        for s in r['samples']:
            self.assertLess(abs(s['write-distinct'] - K), 0.10 * K, s)
        # its own logging flag, dropped when the measurement ended
        self.assertEqual(wait_dirty_changes(self.vm, n + 2)[n:], [0x8, 0])

    def test_b_read_guest(self):
        r = self.run_workload('pages %d read' % K)
        print('dirty-log, pages %d read: write working set %d, %.0f pages/s'
              % (K, r['write-working-set'], r['write-rate']),
              file=sys.stderr)
        self.assertEqual(r['status'], 'measured')
        self.assertNoReads(r)
        # the idle guest's own writes only: far below a writer of K pages
        self.assertLess(r['write-working-set'], 0.05 * K, r)
        self.assertLess(r['write-rate'], 0.05 * K * 20, r)

    def test_c_hmp(self):
        self.vm.cmd('calc-access-rate', backend='dirty-log', continuous=True,
                    **{'sample-period-ms': 500, 'window-ms': 1000})
        out = self.vm.hmp('info access_rate')
        self.assertIn('Backend: dirty-log (read rate unavailable)', out)
        time.sleep(2)
        out = self.vm.hmp('info access_rate')
        self.assertIn('Status: tracking', out)
        self.assertIn('Backend: dirty-log (read rate unavailable)', out)
        self.assertIn('Read rate: unavailable with this backend', out)
        self.assertIn('Write rate:', out)
        self.assertNotIn(' read ', out)
        self.vm.hmp('cancel_access_rate')
        r = self.vm.cmd('query-access-rate')
        self.assertEqual(r['status'], 'cancelled')
        self.assertNoReads(r)

    def test_d_shared_logging(self):
        """Stopping the tracker drops only its own dirty logging flag."""
        n = self.n
        self.vm.cmd('calc-dirty-rate', mode='dirty-bitmap',
                    **{'calc-time': 3})
        # calc-dirty-rate starts its logging in a thread of its own
        self.assertEqual(wait_dirty_changes(self.vm, n + 1)[n:], [0x2])
        self.vm.cmd('calc-access-rate', backend='dirty-log', continuous=True,
                    **{'window-ms': 1000})
        time.sleep(1)
        self.vm.cmd('cancel-access-rate')
        self.assertEqual(wait_dirty_changes(self.vm, n + 3)[n:],
                         [0x2, 0xa, 0x2])
        deadline = time.monotonic() + 10
        while self.vm.cmd('query-dirty-rate')['status'] != 'measured':
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.2)
        self.assertEqual(wait_dirty_changes(self.vm, n + 4)[n:],
                         [0x2, 0xa, 0x2, 0])
        # and the other way round: the tracker's flag outlives the other
        self.vm.cmd('calc-access-rate', backend='dirty-log', continuous=True,
                    **{'window-ms': 1000})
        self.vm.cmd('calc-dirty-rate', mode='dirty-bitmap',
                    **{'calc-time': 1})
        time.sleep(2)
        self.assertEqual(self.vm.cmd('query-dirty-rate')['status'],
                         'measured')
        self.assertEqual(self.vm.cmd('query-access-rate')['status'],
                         'tracking')
        self.vm.cmd('cancel-access-rate')
        self.assertEqual(wait_dirty_changes(self.vm, n + 8)[n + 4:],
                         [0x8, 0xa, 0x8, 0])

    def test_e_auto_is_still_tcg(self):
        r = measure(self.vm, **{'window-ms': 1000})
        self.assertEqual(r['backend'], 'tcg')
        self.assertTrue(r['read-rate-available'])


class TrackerMigrationTest(unittest.TestCase):

    def migrate_with_tracker(self, backend):
        """Migration sees every dirty page while the tracker runs."""
        wd = Workdir()
        src = VM('src', wd.path)
        dst = VM('dst', wd.path, incoming=True)
        try:
            src.start()
            src.wait_boot()
            trace_dirty_changes(src)
            wls = ['hold 32', 'write 8', 'pages 2048 read']
            start_workloads(src, wls)
            src.cmd('calc-access-rate', continuous=True, backend=backend,
                    **{'window-ms': 2000})
            time.sleep(2.5)
            r = src.cmd('query-access-rate')
            self.assertEqual(r['status'], 'tracking')
            # 'write 8' writes its 2048 pages over and over
            self.assertGreater(r['write-working-set'], 0.9 * 2048, r)
            dst.start()
            for mode in ('precopy',):
                res = migrate(src, dst, mode, bandwidth_mib=64)
                self.assertEqual(res['status'], 'completed', res)
            # The tracker went on seeing those writes during the migration
            # (over 2 s at 64 MiB/s, just ended): its last two samples.
            r = src.cmd('query-access-rate')
            self.assertEqual(r['status'], 'tracking')
            self.assertGreater(max(s['write-distinct']
                                   for s in r['samples'][-2:]),
                               0.9 * 2048, r)
            ok, lines = verify_workloads(dst, len(wls))
            self.assertTrue(ok, lines)
            self.assertEqual(len(lines), 3)
            return dirty_changes(src)
        finally:
            src.stop()
            dst.stop()
            wd.done(True)

    def test_migration_with_tracker_on(self):
        # (migration's dirty logging stops when the stopped source runs)
        self.assertEqual(self.migrate_with_tracker('tcg'), [0x1])

    def test_migration_with_dirty_log_tracker_on(self):
        # both dirty logging flags on at once: the tracker's, migration's
        self.assertEqual(self.migrate_with_tracker('dirty-log'),
                         [0x8, 0x9])


def vcpu_wakeups(pid, tids):
    """Voluntary context switches of the given threads of PID: a halted
    vCPU thread switches once each time it is woken."""
    n = 0
    for tid in tids:
        with open('/proc/%d/task/%d/status' % (pid, tid)) as f:
            for line in f:
                if line.startswith('voluntary_ctxt_switches:'):
                    n += int(line.split()[1])
    return n


class TcgIdleVcpuTest(unittest.TestCase):
    """The tcg backend flushes the TLBs of the vCPUs that run at every
    scan, and leaves halted ones asleep: a halted vCPU flushes its TLB
    when it next enters guest code.  Before, every scan queued a flush
    on every vCPU and woke idle ones 20 times a second."""

    def test_idle_vcpus_not_woken(self):
        wd = Workdir()
        vm = VM('idle', wd.path, extra_args=['-smp', '2'])
        vm.start()
        ok = False
        try:
            vm.wait_boot()
            vm.console.run('sleep 1')
            pid = vm.proc.pid
            tids = [c['thread-id'] for c in vm.cmd('query-cpus-fast')]
            self.assertEqual(len(tids), 2)
            span = 3.0
            w0 = vcpu_wakeups(pid, tids)
            time.sleep(span)
            idle = (vcpu_wakeups(pid, tids) - w0) / span / len(tids)
            vm.cmd('calc-access-rate', **{'scan-period-ms': 50,
                                          'window-ms': 10000})
            time.sleep(0.5)
            w0 = vcpu_wakeups(pid, tids)
            time.sleep(span)
            tracked = (vcpu_wakeups(pid, tids) - w0) / span / len(tids)
            info = vm.cmd('query-access-rate')
            vm.cmd('cancel-access-rate')
            print('idle guest, 2 vCPUs: %.1f wakeups/s a vCPU untracked, '
                  '%.1f tracked (20 scans/s)' % (idle, tracked))
            self.assertEqual(info['backend'], 'tcg')
            # woken by each scan, it was idle + 20/s
            self.assertLess(tracked - idle, 5, (idle, tracked))
            # the guest still runs and is measured: a workload's pages
            # are seen after a halt, through the flush on entry
            start_workloads(vm, ['pages %d read' % K])
            r = measure(vm, **{'window-ms': 3000})
            self.assertLess(abs(r['read-working-set'] - K), K * 0.1, r)
            ok = True
        finally:
            vm.stop()
            wd.done(ok)


def lazy_guest(name, wd, gib):
    """A guest of GIB GiB whose RAM is reserved lazily, not started (-S):
    the tracker's costs grow with its pages, QEMU's RSS does not."""
    return VM(name, wd.path, mem_mib=gib * 1024,
              extra_args=['-S', '-object',
                          'memory-backend-ram,id=big,size=%dG,reserve=off'
                          % gib, '-machine', 'memory-backend=big'])


def qmp_latency_ms(vm, name, **args):
    t0 = time.monotonic()
    vm.cmd(name, **args)
    return (time.monotonic() - t0) * 1000


class LargeGuestBqlTest(unittest.TestCase):
    """What the tracker costs the BQL on a 16 GiB guest (RAM reserved
    lazily, the guest not started), per backend: the monitor's commands
    (which run with the BQL) must not wait for the tracker's passes over
    every page (per scan, and per sample period: the working sets), the
    dirty-log backend's fetch under the BQL is measured by QEMU and
    reported, and a cancel does not wait for a period's pass."""

    def run_backend(self, backend):
        wd = Workdir()
        vm = lazy_guest('bql', wd, 16)
        vm.start()
        ok = False
        try:
            vm.cmd('calc-access-rate', backend=backend,
                   **{'window-ms': 60000})
            lat_q, lat_s = [], []
            t_end = time.monotonic() + 4.5
            while time.monotonic() < t_end:
                lat_q.append(qmp_latency_ms(vm, 'query-access-rate'))
                lat_s.append(qmp_latency_ms(vm, 'query-status'))
            info = vm.cmd('query-access-rate')
            # cancel right after a period ends, when its pass runs
            n = len(info['samples'])
            while len(vm.cmd('query-access-rate')['samples']) == n:
                time.sleep(0.005)
            lat_c = qmp_latency_ms(vm, 'cancel-access-rate')
            lat_q.sort()
            lat_s.sort()
            print('16 GiB guest, %s backend: %d pages; query-access-rate '
                  'p50 %.2f / max %.2f ms, query-status p50 %.2f / max '
                  '%.2f ms (%d of each); cancel %.1f ms; the tracker: '
                  'scan up to %s us, BQL held up to %s us a scan, scan '
                  'period %s ms (asked %s)'
                  % (backend, info['guest-pages'], lat_q[len(lat_q) // 2],
                     lat_q[-1], lat_s[len(lat_s) // 2], lat_s[-1],
                     len(lat_q), lat_c, info.get('scan-time-max-us'),
                     info.get('bql-hold-max-us'),
                     info.get('effective-scan-period-ms'),
                     info['scan-period-ms']))
            self.assertGreaterEqual(info['guest-pages'], 4 << 20)
            self.assertGreaterEqual(len(info['samples']), 3, info)
            # the BQL waits seen from the monitor: no O(pages) pass runs
            # under a lock that the monitor's commands take (before the
            # fix every scan held it for 58-78 ms).  The 99.9th
            # percentile, not the maximum: on 2 busy cores one command
            # in a few thousand waits 30-40 ms for reasons of the host's
            p999 = len(lat_q) * 999 // 1000
            self.assertLess(lat_q[p999], 35, lat_q[-10:])
            self.assertLess(lat_s[len(lat_s) * 999 // 1000], 35, lat_s[-10:])
            self.assertLess(lat_c, 50)
            self.assertIn('bql-hold-max-us', info)
            if backend == 'tcg':
                self.assertEqual(info['bql-hold-max-us'], 0)
            else:
                self.assertGreater(info['bql-hold-max-us'], 0)
                self.assertLess(info['bql-hold-max-us'], 25000)
            self.assertGreater(info['scan-time-max-us'], 0)
            self.assertGreaterEqual(info['effective-scan-period-ms'],
                                    info['scan-period-ms'])
            ok = True
        finally:
            vm.stop()
            wd.done(ok)

    def test_tcg(self):
        self.run_backend('tcg')

    def test_dirty_log(self):
        self.run_backend('dirty-log')


class LargeGuestTest(unittest.TestCase):
    """The tracker's memory is O(guest pages), whatever the window: a
    64 GiB guest (RAM reserved lazily, the guest not started) measured
    with the largest window (600 sample periods) adds 4 bytes a page and
    a few bitmaps, where a bitmap per period took 2.4 GiB; and the
    per-period work keeps the periods on time."""

    def test_64g_largest_window(self):
        wd = Workdir()
        vm = lazy_guest('big', wd, 64)
        vm.start()
        ok = False
        try:
            pid = vm.proc.pid
            size0 = proc_status_kib(pid, 'VmSize')
            rss0 = proc_status_kib(pid, 'VmRSS')
            t0 = time.monotonic()
            vm.cmd('calc-access-rate', **{'scan-period-ms': 50,
                                          'sample-period-ms': 1000,
                                          'window-ms': 600000})
            time.sleep(3.6)
            info = vm.cmd('query-access-rate')
            took = time.monotonic() - t0
            dsize = (proc_status_kib(pid, 'VmSize') - size0) / 1024
            drss = (proc_status_kib(pid, 'VmRSS') - rss0) / 1024
            vm.cmd('cancel-access-rate')
            durs = [x['duration-ms'] for x in info['samples']]
            print('64 GiB guest, window of 600 periods: %d pages; VmSize '
                  '+%.0f MiB, VmRSS +%.0f MiB; %d scans in %.1f s; '
                  'periods %s ms' % (info['guest-pages'], dsize, drss,
                                     info['scans'], took, durs))
            self.assertGreaterEqual(info['guest-pages'], 16 << 20)
            # 4 bytes a page (64 MiB), the scan/period bitmaps (8 MiB),
            # and the tracker thread's stack and malloc arena (72 MiB of
            # address space); a bitmap per period was +2.4 GiB
            self.assertLess(dsize, 256, dsize)
            self.assertLess(drss, 160, drss)
            self.assertGreaterEqual(len(durs), 2, info)
            for d in durs:
                self.assertLess(d, 1500, durs)
            ok = True
        finally:
            vm.stop()
            wd.done(ok)


if __name__ == '__main__':
    unittest.main(verbosity=2)

#!/usr/bin/python3
"""Soak: many consecutive adaptive migrations of one guest.

The same guest is migrated SOAK_N times (default 6; SOAK_N=30 for the
long run), each time into a freshly started incoming QEMU, the old
source being stopped once the migration completed.  Inside the guest a
cold region ('hold 32'), a reader ('read 8') and a writer ('write 8')
live through every migration; before each one either the writer or the
reader is stopped (SIGSTOP), so that the guest is read-heavy and
write-heavy in turn and the capability (policy 'fcm') chooses pre-copy
and post-copy in turn.  Every migration must complete, with the memory
of all three regions verified on its destination.  The RSS and the open
file descriptors of each destination right after its migration, and of
each source just before it is stopped, must not grow from migration to
migration: after a warm-up, the last three within 64 MiB and 2 fds of
the first three.  Both algorithms must have been chosen (N >= 4).
"""
# SPDX-License-Identifier: GPL-2.0-or-later
import os
import re
import sys
import time
import unittest
from collections import Counter

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'scripts'))
from amig.migrate import migrate, verify_workloads  # noqa: E402
from amig.vm import VM, HarnessError, Workdir, proc_status_kib  # noqa: E402

N = int(os.environ.get('SOAK_N', '6'))
PARAMS = {'adaptive-window': 3000, 'adaptive-policy': 'fcm'}
WORKLOADS = ['hold 32', 'read 8', 'write 8']
# the phase of each migration: which workload runs (the other is stopped)
PHASES = ['read', 'write']
EXPECTED = {'read': 'precopy', 'write': 'postcopy'}
WARMUP = 1
RSS_SLACK_KIB = 64 * 1024
FD_SLACK = 2


def log(*args):
    print(*args, flush=True)


def usage(vm):
    """(VmRSS in KiB, open fds) of VM's QEMU."""
    pid = vm.proc.pid
    return (proc_status_kib(pid, 'VmRSS'),
            len(os.listdir('/proc/%d/fd' % pid)))


def start_workload(vm, w, timeout=120):
    """Start 'amwork W' in VM; return its pid once its region is filled."""
    start = vm.console.mark()
    rc, out = vm.console.run('amwork %s >/dev/null 2>&1 & echo AM""PID=$!'
                             % w)
    m = re.search(r'AMPID=(\d+)', out)
    if rc != 0 or not m:
        raise HarnessError('cannot start amwork %s: %s' % (w, out))
    pid = int(m.group(1))
    vm.console.wait_for(r'AMWORK START pid=%d ' % pid, timeout, start)
    return pid


def run(vm, cmd):
    rc, out = vm.console.run(cmd)
    if rc != 0:
        raise HarnessError('%s: %r failed: %s' % (vm.name, cmd, out))


class SoakTest(unittest.TestCase):

    def set_phase(self, vm, pids, phase):
        """Only PHASE's workload (and the cold region) runs."""
        other = 'write' if phase == 'read' else 'read'
        run(vm, 'kill -STOP %d; kill -CONT %d' % (pids[other], pids[phase]))

    def verify(self, vm, pids):
        """Every region verified on VM (stopped workloads continued)."""
        run(vm, 'kill -CONT %d %d' % (pids['read'], pids['write']))
        ok, lines = verify_workloads(vm, len(WORKLOADS))
        self.assertTrue(ok, lines)
        self.assertEqual(len(lines), len(WORKLOADS), lines)
        return ok

    def check_growth(self, what, values, slack, unit):
        """The last three of VALUES (after the warm-up) within SLACK of
        the first three."""
        v = values[WARMUP:]
        if len(v) < 3:
            return
        first, last = max(v[:3]), max(v[-3:])
        self.assertLessEqual(last, first + slack,
                             '%s grew: first %s, last %s (%s), all %s'
                             % (what, v[:3], v[-3:], unit, values))

    def test_soak(self):
        wd = Workdir(keep=bool(os.environ.get('AMIG_KEEP')))
        ok = False
        src = dst = None
        rows = []
        t_all = time.monotonic()
        try:
            src = VM('vm0', wd.path).start()
            src.wait_boot()
            pids = {}
            for w in WORKLOADS:
                pids[w.split()[0]] = start_workload(src, w)
            log('soak: %d migrations, workloads %s (pids %s)'
                % (N, WORKLOADS, pids))
            for i in range(N):
                phase = PHASES[i % 2]
                self.set_phase(src, pids, phase)
                time.sleep(0.5)
                dst = VM('vm%d' % (i + 1), wd.path, incoming=True).start()
                res = migrate(src, dst, 'adaptive', timeout=180,
                              adaptive_params=PARAMS)
                self.assertEqual(res['status'], 'completed', res)
                a = res['adaptive']
                self.assertEqual(a['phase'], 'decided', a)
                d_rss, d_fds = usage(dst)
                verified = self.verify(dst, pids)
                s_rss, s_fds = usage(src)
                src.stop()
                src, dst = dst, None
                row = {'i': i, 'phase': phase,
                       'algorithm': a.get('algorithm'), 'ran': a.get('ran'),
                       'class': a.get('class'),
                       'total-ms': res['total-time-ms'],
                       'downtime-ms': res['downtime-ms'],
                       'stop-to-resume-ms': res.get('stop-to-resume-ms'),
                       'dst-rss': d_rss, 'dst-fds': d_fds,
                       'src-rss': s_rss, 'src-fds': s_fds,
                       'verified': verified}
                rows.append(row)
                log('soak %2d: %-5s -> %-8s (ran %-8s) total %5d ms, '
                    'downtime %4d ms (stop to resume %s ms); '
                    'dst rss %4d MiB fds %3d; src rss %4d MiB fds %3d; '
                    'verified'
                    % (i, phase, row['algorithm'], row['ran'],
                       row['total-ms'], row['downtime-ms'],
                       row['stop-to-resume-ms'],
                       d_rss // 1024, d_fds, s_rss // 1024, s_fds))
            ok = True
        finally:
            for vm in (src, dst):
                if vm:
                    vm.stop()
            wd.done(ok)
        took = time.monotonic() - t_all
        chosen = Counter(r['algorithm'] for r in rows)
        mismatched = [r['i'] for r in rows
                      if r['algorithm'] != EXPECTED[r['phase']]]
        log('soak summary: %d migrations in %.0f s; chosen %s; '
            'not the phase\'s algorithm: %s'
            % (len(rows), took, dict(chosen), mismatched or 'none'))
        log('  %-12s %10s %10s' % ('', 'max RSS', 'max fds'))
        for side in ('dst', 'src'):
            log('  %-12s %6d MiB %10d'
                % ('destinations' if side == 'dst' else 'sources',
                   max(r[side + '-rss'] for r in rows) // 1024,
                   max(r[side + '-fds'] for r in rows)))
        log('  all verified: %s' % all(r['verified'] for r in rows))
        self.assertEqual(len(rows), N)
        if N >= 4:
            self.assertGreaterEqual(chosen['precopy'], 1, rows)
            self.assertGreaterEqual(chosen['postcopy'], 1, rows)
        for side in ('dst', 'src'):
            self.check_growth(side + ' RSS', [r[side + '-rss'] for r in rows],
                              RSS_SLACK_KIB, 'KiB')
            self.check_growth(side + ' fds', [r[side + '-fds'] for r in rows],
                              FD_SLACK, 'fds')


if __name__ == '__main__':
    unittest.main(verbosity=2)

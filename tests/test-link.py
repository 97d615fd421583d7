#!/usr/bin/python3
"""The emulated network link of make bench (scripts/amig/link.py and the
amlink relay), and a migration through it.

- amlink refuses bad arguments;
- a link set to 16 MiB/s and a 20 ms round trip measures within 10% of
  both, in both directions, and a 2 ms link's round trip is far below it
  (the delay is what was asked, not a constant of the relay);
- a post-copy migration (with postcopy-preempt) of a guest writing 8 MiB
  in a loop, through a 32 MiB/s link with a 20 ms round trip, completes
  with the guest's memory verified on the destination, and the
  destination reports the time its vCPU was blocked on page faults;
- the same guest migrated back by pre-copy completes too, verified;
- the 'adaptive' capability, migrating that guest through the same link,
  measures the link on the migration stream itself (the round trip of a
  PING within 50% of the link's, the stream's throughput within 40% of
  the link's rate), decides, and reports predicted against measured with
  the total time within 50% (a check that the models are sane, not of
  their accuracy: make bench prints that).
"""
# SPDX-License-Identifier: GPL-2.0-or-later
import os
import subprocess
import sys
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'scripts'))
from amig import schemes  # noqa: E402
from amig.link import AMLINK, Link, build_amlink  # noqa: E402
from amig.migrate import MiB, start_workloads, verify_workloads  # noqa: E402
from amig.vm import VM, Workdir  # noqa: E402


WRITER = ['hold 16', 'write 8']


def boot_and_migrate(link, wd, scheme, *extra):
    """Boot a source running WRITER and a destination through LINK, and
    migrate by SCHEME at 32 MiB/s.  Returns (result, [src, dst, and an
    incoming VM on side 'a' for each name in EXTRA]); the caller stops
    them (they are stopped here if this fails)."""
    src = VM('src', wd.path, wrap=link.wrap('a'))
    dst = VM('dst', wd.path, incoming=True, wrap=link.wrap('b'))
    more = [VM(n, wd.path, incoming=True, wrap=link.wrap('a'))
            for n in extra]
    vms = [src, dst] + more
    try:
        src.start()
        src.wait_boot()
        start_workloads(src, WRITER)
        dst.start()
        r = schemes.run(scheme, src, dst, link.uri(4444, 'a'),
                        link.incoming_uri(4444, 'b'), 256, 32, 120)
    except BaseException:
        for vm in vms:
            vm.stop()
        raise
    return r, vms


class LinkTest(unittest.TestCase):

    def test_amlink_arguments(self):
        build_amlink()
        for args in ([], ['-l', '127.0.0.1:1'], ['-c', '127.0.0.1:1'],
                     ['-l', '127.0.0.1:1', '-c', '127.0.0.1:2', '-d', 'x'],
                     ['-l', '127.0.0.1:1', '-c', '127.0.0.1:2', '-r', '-1'],
                     ['-l', 'nocolon', '-c', '127.0.0.1:2']):
            p = subprocess.run([AMLINK] + args, capture_output=True,
                               text=True)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
            self.assertTrue(p.stderr.strip(), args)

    def test_link_figures(self):
        with Link(16, 10, [4444]) as link:
            for side in ('a', 'b'):
                m = link.measure(side)
                print('link 16 MiB/s, rtt 20 ms, from %s: %s' % (side, m))
                self.assertLess(abs(m['rtt-ms'] - 20) / 20, 0.10, m)
                self.assertLess(abs(m['throughput-mibs'] - 16) / 16, 0.10,
                                m)
        with Link(16, 1, [4444]) as link:
            m = link.measure('a')
            print('link 16 MiB/s, rtt 2 ms: %s' % m)
            self.assertLess(m['rtt-ms'], 4, m)

    def test_postcopy_through_link(self):
        wd = Workdir()
        ok = False
        with Link(32, 10, [4444]) as link:
            print('link: %s' % link.measure('a'))
            r, vms = boot_and_migrate(link, wd, 'postcopy-preempt', 'back')
            src, dst, back = vms
            try:
                print('post-copy: %s' % r)
                self.assertEqual(r['status'], 'completed', r)
                good, lines = verify_workloads(dst, len(WRITER))
                self.assertTrue(good, lines)
                self.assertGreater(r['postcopy-requests'], 0, r)
                # the cost local sockets hide: the vCPU waited on faults
                self.assertIn('blocktime-ms', r)
                self.assertGreater(r['blocktime-ms'], 0, r)
                src.stop()
                back.start()
                r = schemes.run('precopy', dst, back, link.uri(4444, 'b'),
                                link.incoming_uri(4444, 'a'), 256, 32, 120)
                print('pre-copy back: %s' % r)
                self.assertEqual(r['status'], 'completed', r)
                self.assertEqual(r['postcopy-requests'], 0, r)
                good, lines = verify_workloads(back, len(WRITER))
                self.assertTrue(good, lines)
                ok = True
            finally:
                for vm in vms:
                    vm.stop()
                wd.done(ok)

    def test_adaptive_through_link(self):
        wd = Workdir()
        ok = False
        with Link(32, 10, [4444]) as link:
            fig = link.measure('a')
            print('link: %s' % fig)
            r, vms = boot_and_migrate(link, wd, 'adaptive-model')
            src, dst = vms
            try:
                a = r['adaptive']
                print('adaptive: %s' % a)
                self.assertEqual(r['status'], 'completed', r)
                good, lines = verify_workloads(dst, len(WRITER))
                self.assertTrue(good, lines)
                self.assertEqual(a['policy'], 'model', a)
                self.assertEqual(a['objective'], 'guest-stall', a)
                self.assertIn(a['trigger'], ('first-pass', 'window'), a)
                m = a['inputs']
                self.assertTrue(m['bandwidth-measured'], m)
                self.assertTrue(m['preempt'], m)
                self.assertLess(abs(m['rtt-ms'] - fig['rtt-ms']),
                                0.5 * fig['rtt-ms'], (m, fig))
                # behind the pages queued in the stream, never faster
                self.assertGreaterEqual(m['rtt-loaded-ms'],
                                        0.9 * m['rtt-ms'], m)
                # (QMP: bytes/s)
                self.assertLess(abs(m['bandwidth'] / MiB - 32), 0.4 * 32, m)
                self.assertLess(abs(a['total-time-error']), 0.5, a)
                self.assertIn('downtime-error', a)
                if a['algorithm'] == 'postcopy':
                    self.assertIn('predicted-blocktime', a)
                out = src.hmp('info migrate')
                self.assertRegex(out, r'measured: stream [0-9.]+ MiB/s, '
                                 r'([0-9.]+ us a zero page, )?'
                                 r'round trip [0-9.]+ ms \([0-9.]+ ms '
                                 r'behind the stream\)')
                ok = True
            finally:
                for vm in vms:
                    vm.stop()
                wd.done(ok)

if __name__ == '__main__':
    if os.geteuid() != 0:
        print('needs root (network namespaces)')
        sys.exit(77)
    unittest.main(verbosity=2)

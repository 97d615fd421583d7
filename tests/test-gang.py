#!/usr/bin/python3
"""The gang coordinator (gang/amgang.c) over QMP sockets.

Two small VMs, one read-heavy and one write-heavy, plus one that cannot be
reached: the coordinator measures both live ones, classifies them as a
gang, migrates them in parallel with the bandwidth split, and reports the
unreachable one without stopping the others.  Each guest's memory is then
verified on its destination.
"""
# SPDX-License-Identifier: GPL-2.0-or-later
import json
import os
import subprocess
import sys
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'scripts'))
from amig.migrate import start_workloads, verify_workloads  # noqa: E402
from amig.vm import (VM, Workdir, extra_qmp_args as gang_qmp,  # noqa: E402
                     extra_qmp_sock as gang_sock)

AMGANG = os.path.join(TOP, 'out', 'amgang')
GUESTS = {'reader': ['hold 16', 'read 8'], 'writer': ['hold 16', 'write 8']}


class GangTest(unittest.TestCase):

    def test_two_vms_and_an_unreachable_one(self):
        wd = Workdir()
        vms = {}
        try:
            specs = []
            for name, wls in GUESTS.items():
                # QMP serves one client per socket: the coordinator gets
                # sockets of its own, beside the harness's.
                src = VM(name + '-src', wd.path, extra_args=gang_qmp(
                    wd.path, name + '-src')).start()
                dst = VM(name + '-dst', wd.path, incoming=True,
                         extra_args=gang_qmp(wd.path, name + '-dst')).start()
                vms[name] = (src, dst)
            for name, wls in GUESTS.items():
                src, dst = vms[name]
                src.wait_boot()
                start_workloads(src, wls)
                specs += ['--vm', '%s,%s,%s,unix:%s' % (
                    name, gang_sock(wd.path, name + '-src'),
                    gang_sock(wd.path, name + '-dst'),
                    os.path.join(dst.dir, 'mig.sock'))]
            specs += ['--vm', 'ghost,%s/none.sock,%s/none2.sock,unix:/x'
                      % (wd.path, wd.path)]
            out = os.path.join(wd.path, 'gang.json')
            p = subprocess.run([AMGANG, '--window', '3000', '--bandwidth',
                                '128', '--json', out] + specs,
                               capture_output=True, text=True, errors='replace',
                               timeout=300)
            print(p.stdout, p.stderr)
            self.assertEqual(p.returncode, 1)      # ghost did not migrate
            self.assertIn('ghost: source unreachable', p.stderr)
            with open(out) as f:
                res = json.load(f)
            by = {v['name']: v for v in res['vms']}
            self.assertEqual(res['completed'], 2)
            self.assertEqual(by['ghost']['status'], 'failed')
            for name, cls, alg in (('reader', 'read', 'precopy'),
                                   ('writer', 'write', 'postcopy')):
                v = by[name]
                self.assertEqual(v['status'], 'completed', v)
                a = v['query-migrate']['adaptive']
                self.assertEqual(a['class'], cls, a)
                self.assertEqual(a['algorithm'], alg, a)
                self.assertEqual(a['peers'], 1)
                self.assertTrue(a['warm-window'])
                self.assertEqual(v['bandwidth-mbps'], 64)
            overall = max(by[n]['query-migrate']['total-time']
                          for n in GUESTS)
            self.assertEqual(res['overall-time-ms'], overall)
            self.assertIn('overall: 2 of 3 completed', p.stdout)
            for name, wls in GUESTS.items():
                ok, lines = verify_workloads(vms[name][1], len(wls))
                self.assertTrue(ok, lines)
        finally:
            for src, dst in vms.values():
                src.stop()
                dst.stop()
            wd.done(True)


if __name__ == '__main__':
    unittest.main(verbosity=2)

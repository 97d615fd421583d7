#!/usr/bin/python3
"""The gang coordinator (gang/amgang.c) over libvirt: a gang of four
domains migrated between the two libvirt hosts of scripts/libvirt-hosts
by libvirt's own migration API.

Four small persistent domains (the project's QEMU, the test guest, 192
MiB, TCG) run on amhost-a: two read-heavy ('hold 32', 'read 8') and two
write-heavy ('hold 16', 'write 32').  out/amgang runs inside host A (its
network, mount and UTS namespaces, as virsh would), given each domain as
`--vm NAME,libvirt:DOMAIN,qemu+tcp://amhost-b/system,tcp://127.0.0.1:PORT`
(a migration port of its own, through the link's relay).  It measures the
four together and sets 'adaptive' and 'adaptive-peers' through QMP
passthrough (virDomainQemuMonitorCommand: libvirt has no API for them),
then migrates all four at once with virDomainMigrate3 (live, post-copy
allowed, the gang's equal bandwidth share, persistent on B, undefined on
A), one thread per domain, reading query-migrate's 'adaptive' member
while each job runs and libvirt's completed-job statistics after.

A fifth --vm names a domain that does not exist: it is reported, the
exit status is 1, and the four others go on.

Checked: all four complete, run on B and are gone from A; the readers are
classed 'read' and the writers 'write' (or 'mixed', writes predicted at
or above reads: see the test), each with three peers; the
writers went to post-copy by QEMU's decision (libvirt never asked for
it); every guest's memory verifies on B.
"""
# SPDX-License-Identifier: GPL-2.0-or-later
import importlib.util
import json
import os
import sys
import time
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'scripts'))
from amig.hosts import HostsTestCase  # noqa: E402
AMGANG = os.path.join(TOP, 'out', 'amgang')
LOGS = os.path.join(TOP, 'out', 'test-logs', 'gang-libvirt')

_spec = importlib.util.spec_from_file_location(
    'test_libvirt_hosts', os.path.join(TOP, 'tests', 'test-libvirt-hosts.py'))
lvh = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lvh)

RATE_MIBS, DELAY_MS = 64, 5
MEM_MIB = 192
READ = ['hold 32', 'read 8']
WRITE = ['hold 16', 'write 32']
GANG = [('amgang-r1', 'read', READ), ('amgang-r2', 'read', READ),
        ('amgang-w1', 'write', WRITE), ('amgang-w2', 'write', WRITE)]


def missing():
    why = lvh.missing()
    if why:
        return why
    if not os.access(AMGANG, os.X_OK):
        return 'no %s (make gang)' % AMGANG
    return None


def domain_xml(name):
    from amig.vm import libvirt_domain_xml
    return libvirt_domain_xml(name, lvh.CONSOLE.replace(lvh.NAME, name),
                              MEM_MIB, on_poweroff='destroy')


class GangLibvirtTest(HostsTestCase):

    LOGS = LOGS
    KEEP = ('console-', 'gang')
    RATE_MIBS, DELAY_MS = RATE_MIBS, DELAY_MS

    def domains(self, host):
        return self.h.virsh(host, 'list', '--all', '--name').split()

    def console(self, host, name):
        """The domain on HOST, its console attached and its shell up."""
        from amig.lvgang import Domain
        d = Domain(self.h, name, MEM_MIB, self.h.base)
        d.side = host
        d.attach()
        self.addCleanup(d.console.close)
        d.wait_boot()
        return d

    def cleanup_domains(self):
        for x in ('a', 'b'):
            have = self.domains(x)
            for name, _, _ in GANG:
                if name in have:
                    self.h.virsh(x, 'destroy', name, check=False)
                    self.h.virsh(x, 'undefine', name, check=False)

    def test_four_domain_gang(self):
        from amig.migrate import start_workloads, verify_workloads
        t0 = time.monotonic()
        self.addCleanup(self.cleanup_domains)
        for name, _, _ in GANG:
            xml = os.path.join(self.h.base, name + '.xml')
            with open(xml, 'w') as f:
                f.write(domain_xml(name))
            self.h.virsh('a', 'define', xml)
            self.h.virsh('a', 'start', name)
        for name, _, wls in GANG:
            g = self.console('a', name)
            start_workloads(g, wls)
        print('four domains booted, workloads on, in %.1f s' % (
            time.monotonic() - t0))

        link = self.h.state['link']
        ports = link['ports']
        self.assertGreaterEqual(len(ports), len(GANG))
        host = '127.0.0.1' if link['mechanism'] == 'relay' else \
            self.h.name('b')
        out = os.path.join(self.h.base, 'gang.json')
        cmd = [AMGANG, '--connect', 'qemu:///system', '--window', '3000',
               '--bandwidth', str(RATE_MIBS), '--timeout', '200',
               '--json', out]
        for (name, _, _), port in zip(GANG, ports):
            cmd += ['--vm', '%s,libvirt:%s,%s,tcp://%s:%d' % (
                name, name, self.h.uri('b'), host, port)]
        # a domain that does not exist: reported, the others go on
        cmd += ['--vm', 'ghost,libvirt:amgang-ghost,%s,tcp://%s:%d' % (
            self.h.uri('b'), host, ports[0])]
        print('amhost-a: %s' % ' '.join(cmd))
        t1 = time.monotonic()
        p = self.h.run('a', *cmd, check=False, timeout=280)
        dt = time.monotonic() - t1
        print(p.stdout, p.stderr)
        print('amgang: rc %d in %.1f s' % (p.returncode, dt))
        with open(out) as f:
            res = json.load(f)
        by = {v['name']: v for v in res['vms']}
        for name, cls, _ in GANG:
            v = by[name]
            q = v.get('query-migrate', {})
            a = q.get('adaptive', {})
            print('%s: %s; class %s, algorithm %s, post-copy seen %s '
                  '(post-copy requests %s); total %s ms, downtime %s ms '
                  '(%s); %s' % (
                      name, v['status'], a.get('class'), a.get('algorithm'),
                      q.get('postcopy-seen'),
                      q.get('ram', {}).get('postcopy-requests'),
                      q.get('total-time'), q.get('downtime'),
                      q.get('source-of-times'),
                      a.get('reason') or v.get('error')))
        self.assertEqual(p.returncode, 1, p.stderr)     # the ghost
        self.assertIn("ghost: source unreachable: libvirt domain "
                      "'amgang-ghost'", p.stderr)
        self.assertEqual(by['ghost']['status'], 'failed')
        self.assertEqual(res['completed'], len(GANG))
        self.assertIn('overall: 4 of 5 completed', p.stdout)
        self.assertEqual(self.domains('a'), [])
        self.assertEqual(sorted(self.domains('b')),
                         sorted(n for n, _, _ in GANG))
        for name, cls, wls in GANG:
            v = by[name]
            q = v['query-migrate']
            a = q['adaptive']
            self.assertEqual(v['status'], 'completed', v)
            self.assertEqual(v['bandwidth-mbps'], RATE_MIBS / len(GANG))
            self.assertEqual(a['peers'], len(GANG) - 1, a)
            if 'class' not in a:
                # amgang reads the decision by polling query-migrate
                # through libvirt, a domain after the other, about a
                # second a call under load: once in four runs a
                # reader's pre-copy ended before a poll saw the decided
                # state, and the source QEMU, which holds it, was gone
                # (docs/development.md).  Its algorithm is checked below.
                print('%s: amgang saw no decision before the source '
                      'ended: %s' % (name, a))
                self.assertEqual(cls, 'read', a)
                self.assertFalse(q['postcopy-seen'], q)
            elif cls == 'read':
                self.assertEqual(a['class'], 'read', a)
            else:
                # Two near-identical writers and two near-identical
                # readers: QEMU's fuzzy C-means (three clusters, the
                # 'mixed' centre seeded by the sample nearest in angle to
                # (max read, max write)) may seed it on a writer, which
                # then comes out 'mixed' ("predicted writes at or above
                # reads": post-copy all the same).  Seen in some runs.
                self.assertIn(a['class'], ('write', 'mixed'), a)
                if a['class'] == 'mixed':
                    self.assertIn('writes at or above reads', a['reason'])
            self.assertGreater(q['total-time'], 0, q)
            if cls == 'read':
                # pre-copy: libvirt's completed-job statistics (on B)
                self.assertEqual(q['source-of-times'],
                                 'libvirt completed-job statistics', q)
                self.assertGreater(q['downtime'], 0, q)
            if cls == 'write':
                # QEMU's own switch: libvirt was only allowed post-copy
                self.assertEqual(a['algorithm'], 'postcopy', a)
                self.assertTrue(q['postcopy-seen'], q)
            self.assertTrue(self.h.virsh('b', 'domstate', name).startswith(
                'running'))
            self.assertRegex(self.h.virsh('b', 'dominfo', name),
                             r'Persistent:\s+yes')
        for name, _, wls in GANG:
            g = self.console('b', name)
            ok, lines = verify_workloads(g, len(wls))
            print('\n'.join(lines))
            self.assertTrue(ok, lines)
        print('gang test: %.1f s (amgang %.1f s)' % (
            time.monotonic() - t0, dt))


if __name__ == '__main__':
    why = missing()
    if why:
        print(why)
        sys.exit(77)
    unittest.main(verbosity=2)

#!/usr/bin/python3
"""`virsh migrate` between two libvirt hosts on this machine, with the
project's QEMU choosing pre-copy or post-copy by itself ('adaptive').

scripts/libvirt-hosts up makes hosts amhost-a and amhost-b (namespaces,
a libvirtd 9.0 and a virtlogd each, joined by the emulated link at
64 MiB/s with a 10 ms round trip through the amlink relay).  A persistent
domain (the project's QEMU as <emulator>, the test guest, 256 MiB, TCG)
is defined and started on A, and then:

- 'adaptive' on (HMP through `virsh qemu-monitor-command --hmp`) but
  `virsh migrate` without --postcopy: libvirt fails with QEMU's error,
  which says what to add, and the domain runs on A, its memory intact,
  with nothing left on B;
- read-heavy guest (amwork 'hold 32', 'read 8'; adaptive-policy 'fcm',
  set through HMP, as tests/test-adaptive.py does for this guest: the
  default 'model' policy sends it to post-copy, why in the test): `virsh
  migrate --live --postcopy --persistent --undefinesource` to B
  completes, QEMU stays in pre-copy, no post-copy event or state on
  either side, the domain runs on B and is gone from A, its memory
  verified on B;
- the same guest made write-heavy ('hold 16', 'write 32'), 'adaptive' on
  through QMP JSON (default policy 'model'), migrated back to A: QEMU
  switches to post-copy by itself (libvirt never calls
  migrate-start-postcopy) and libvirt 9.0 follows: the source's domain
  goes 'paused (post-copy)' with a 'Suspended Post-copy' event, the
  destination's 'Resumed Post-copy' then 'Resumed Migrated', `virsh
  migrate` returns success, the memory is verified on A.

During each migration a thread polls the source with `virsh domjobinfo`,
`domstate --reason` and `qemu-monitor-command ... query-migrate` (the
'adaptive' member while the job runs); the final decision (with what ran
and the measured outcome) is read from the source libvirtd's log of the
QMP replies it received: libvirt's own last query-migrate, after QEMU
completed and before it kills the source QEMU.
"""
# SPDX-License-Identifier: GPL-2.0-or-later
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'scripts'))
from amig.hosts import HostsTestCase  # noqa: E402

RATE_MIBS, DELAY_MS = 64, 5
READ = ['hold 32', 'read 8']
WRITE_BIG = ['hold 16', 'write 32']
NAME = 'amhosts-dom'
CONSOLE = '/var/lib/libvirt/qemu/%s.console' % NAME
LOGS = os.path.join(TOP, 'out', 'test-logs', 'libvirt-hosts')


def missing():
    """Why this test cannot run here, or None."""
    if os.geteuid() != 0:
        return 'needs root (namespaces)'
    for tool in ('libvirtd', 'virtlogd', 'virsh', 'nsenter', 'unshare',
                 'ip', 'tc', 'cc'):
        if not shutil.which(tool):
            return '%s not installed (scripts/setup-host.sh)' % tool
    from amig.vm import GUEST_DIR, QEMU_BIN
    if not os.access(QEMU_BIN, os.X_OK):
        return 'no QEMU built (%s)' % QEMU_BIN
    for f in ('vmlinuz', 'initramfs.gz'):
        if not os.path.exists(os.path.join(GUEST_DIR, f)):
            return 'no test guest (%s; make guest)' % GUEST_DIR
    return None


def domain_xml(mem_mib=256):
    from amig.vm import libvirt_domain_xml
    # the serial console's socket is under /var/lib/libvirt, private to
    # each host: the same XML gives a socket of its own on each side
    return libvirt_domain_xml(NAME, CONSOLE, mem_mib, on_poweroff='destroy')


class Watch:
    """Events on both hosts (`virsh event --all --loop`) and a thread
    polling the source (domjobinfo, domstate --reason, query-migrate)
    while a migration runs."""

    POLL = ("echo @@JOB; domjobinfo {d}; echo @@STATE; domstate {d} "
            "--reason; echo @@QMP; qemu-monitor-command {d} "
            "'{{\"execute\":\"query-migrate\"}}'")

    def __init__(self, hosts, src):
        self.h, self.src = hosts, src
        self.t0 = time.monotonic()
        self.polls = []
        self.stop = threading.Event()
        self.ev = {}
        for x in ('a', 'b'):
            path = os.path.join(hosts.base, 'events-%s.log' % x)
            out = open(path, 'w')
            self.ev[x] = (subprocess.Popen(
                hosts.wrap(x) + ['virsh', '-c', 'qemu:///system', 'event',
                                 '--all', '--loop', '--timestamp'],
                stdout=out, stderr=subprocess.STDOUT), out, path)
        time.sleep(0.3)     # the event loops registered
        self.th = threading.Thread(target=self._poll, daemon=True)
        self.th.start()

    def _poll(self):
        cmd = self.POLL.format(d=NAME)
        while not self.stop.is_set():
            p = self.h.virsh(self.src, cmd, check=False, timeout=30)
            t = time.monotonic() - self.t0
            parts = re.split(r'^@@(JOB|STATE|QMP)$', p.stdout, flags=re.M)
            d = dict(zip(parts[1::2], (x.strip() for x in parts[2::2])))
            try:
                q = json.loads(d.get('QMP') or '{}').get('return', {})
            except ValueError:
                q = {}
            self.polls.append({'t': round(t, 2), 'job': d.get('JOB', ''),
                               'state': d.get('STATE', ''), 'qmp': q})
            self.stop.wait(0.1)

    def finish(self):
        self.stop.set()
        self.th.join(30)
        time.sleep(0.5)     # the last events
        events = {}
        for x, (p, out, path) in self.ev.items():
            p.terminate()
            p.wait(10)
            out.close()
            with open(path) as f:
                events[x] = f.read()
        return events

    def seen(self, pred):
        return [p for p in self.polls if pred(p)]


def lifecycle(events):
    """The lifecycle events of the domain, in order ('Suspended
    Post-copy'...)."""
    return re.findall(r"event 'lifecycle' for domain '%s': (.*)" % NAME,
                      events)


class LibvirtHostsTest(HostsTestCase):

    LOGS = LOGS
    KEEP = ('events-',)
    RATE_MIBS, DELAY_MS = RATE_MIBS, DELAY_MS

    # -- helpers -----------------------------------------------------------
    def virsh(self, host, *args):
        return self.h.virsh(host, *args)

    def console(self, host):
        from amig.vm import Console
        con = Console(self.h.path(host, 'lib', 'qemu',
                                  os.path.basename(CONSOLE)),
                      os.path.join(self.h.base, 'console-%s.log' % host))
        con.connect(timeout=30)
        self.addCleanup(con.close)
        # a prompt may have gone by before we connected: poll the shell
        deadline = time.monotonic() + 120
        while True:
            try:
                con.run('stty -echo 2>/dev/null; true', timeout=5)
                return type('G', (), {'console': con, 'name': NAME})
            except Exception:
                if time.monotonic() > deadline:
                    raise

    def domains(self, host):
        return self.virsh(host, 'list', '--all', '--name').split()

    def migrate(self, frm, to, *flags):
        """virsh migrate (run on FRM) of the domain to TO; returns
        (completed process, events by host, polls, seconds)."""
        mu = self.h.migrate_uri(frm, to)
        args = ['migrate', '--live', '--verbose', '--persistent',
                '--undefinesource'] + list(flags)
        if mu:
            args += ['--migrateuri', mu]
        args += [NAME, self.h.uri(to)]
        print('%s: virsh %s' % (self.h.name(frm), ' '.join(args)))
        w = Watch(self.h, frm)
        t0 = time.monotonic()
        try:
            p = self.h.virsh(frm, *args, check=False, timeout=240)
        finally:
            dt = time.monotonic() - t0
            events = w.finish()
        print('virsh migrate: rc %d in %.1f s; %s' % (
            p.returncode, dt, (p.stderr or '').strip()[-300:]))
        for x in ('a', 'b'):
            print('events on %s:\n%s' % (self.h.name(x), events[x]))
        return p, events, w, dt

    def migrate_adaptive(self, frm, to, label):
        """`virsh migrate --postcopy` from FRM to TO, which must succeed
        with QEMU's decision taken: (the source's last query-migrate, its
        'adaptive' member, the events, the Watch, the time)."""
        start = self.h.log_offset(frm)
        p, events, w, dt = self.migrate(
            frm, to, '--postcopy', '--bandwidth', str(RATE_MIBS),
            '--postcopy-bandwidth', str(RATE_MIBS))
        self.show_polls(w)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('Migration: [100 %]', p.stderr + p.stdout)
        ret = self.decision(frm, start)
        a = ret['adaptive']
        print('%s: %s; %s' % (label, ret['status'], a.get('reason')))
        self.assertEqual(ret['status'], 'completed', ret)
        self.assertEqual(a['phase'], 'decided', a)
        return ret, a, events, w, dt

    def decision(self, host, start):
        """The last 'adaptive' member the source QEMU on HOST answered
        with, after log offset START, and the whole answer."""
        last = None
        for ts, r in self.h.qmp_replies(host, start):
            ret = r.get('return')
            if isinstance(ret, dict) and isinstance(ret.get('adaptive'),
                                                     dict):
                last = ret
        self.assertIsNotNone(last, 'no query-migrate with an adaptive '
                             'member in %s' % self.h.log_path(host))
        return last

    def show_polls(self, w):
        for p in w.polls:
            q = p['qmp']
            a = q.get('adaptive') or {}
            m = re.search(r'Data remaining:\s*(.*)', p['job'])
            print('  poll %5.2f s: %-22s job: %-14s remaining %-12s '
                  'qemu: %-16s adaptive: %s %s' % (
                      p['t'], p['state'] or '-',
                      (re.search(r'Job type:\s*(\S+)', p['job']) or
                       [None, '-'])[1],
                      m.group(1) if m else '-', q.get('status', '-'),
                      a.get('phase', '-'), a.get('algorithm', '')))

    def check_progress(self, w):
        """domjobinfo showed the job running, with progress."""
        running = w.seen(lambda p: 'Outgoing migration' in p['job'] and
                         'Data processed' in p['job'])
        self.assertTrue(running, 'domjobinfo never showed the migration')
        done = [float(re.search(r'Data processed:\s*([0-9.]+)',
                                p['job']).group(1)) for p in running]
        self.assertGreater(max(done), 0, done)
        print('domjobinfo during the job (%.2f s):\n%s' % (
            running[-1]['t'], running[-1]['job']))
        # the decision over QMP while the job ran
        seen = w.seen(lambda p: 'adaptive' in p['qmp'])
        self.assertTrue(seen, 'query-migrate never had an adaptive member')
        return running, seen

    def verify(self, guest, n):
        from amig.migrate import verify_workloads
        ok, lines = verify_workloads(guest, n)
        print('\n'.join(lines))
        self.assertTrue(ok, lines)

    # -- tests -------------------------------------------------------------
    def test_hosts(self):
        """Two hosts: names, UUIDs, each other's libvirtd, the link."""
        caps = {x: self.virsh(x, 'capabilities') for x in ('a', 'b')}
        uuids = {x: re.search(r'<uuid>([^<]+)</uuid>', c).group(1)
                 for x, c in caps.items()}
        self.assertNotEqual(uuids['a'], uuids['b'])
        for x, y in (('a', 'b'), ('b', 'a')):
            self.assertEqual(uuids[x], self.h.state['hosts'][x]['uuid'])
            self.assertEqual(self.virsh(x, '-c', self.h.uri(y), 'hostname'),
                             self.h.name(y))
        m = self.h.measure('a')
        print('link from amhost-a: %s' % m)
        self.assertLess(abs(m['throughput-mibs'] - RATE_MIBS) / RATE_MIBS,
                        0.15, m)
        self.assertLess(abs(m['rtt-ms'] - 2 * DELAY_MS), DELAY_MS, m)

    def test_virsh_migrate_adaptive(self):
        t0 = time.monotonic()
        xml = os.path.join(self.h.base, 'dom.xml')
        with open(xml, 'w') as f:
            f.write(domain_xml())
        self.virsh('a', 'define', xml)
        self.addCleanup(self.cleanup_domain)
        self.virsh('a', 'start', NAME)
        g = self.console('a')
        print('booted on amhost-a in %.1f s' % (time.monotonic() - t0))
        from amig.migrate import start_workloads
        start_workloads(g, READ)

        # 'adaptive' on through HMP; refused without --postcopy
        self.assertEqual(self.virsh('a', 'qemu-monitor-command', NAME,
                                    '--hmp',
                                    'migrate_set_capability adaptive on'),
                         '')
        p, events, w, dt = self.migrate('a', 'b', '--bandwidth',
                                        str(RATE_MIBS))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("The 'adaptive' capability needs the 'postcopy-ram' "
                      "capability", p.stderr)
        self.assertIn('virsh migrate --postcopy', p.stderr)
        # never paused: still 'running (booted)'
        self.assertEqual(self.virsh('a', 'domstate', NAME, '--reason'),
                         'running (booted)')
        self.assertEqual(self.domains('b'), [])
        self.assertEqual(self.domains('a'), [NAME])
        self.verify(g, len(READ))
        print('refused without --postcopy in %.1f s' % dt)

        # read-heavy: stays pre-copy under the paper's rule ('fcm', as
        # tests/test-adaptive.py's read-heavy case).  Under the default
        # 'model' policy this guest goes to post-copy, through libvirt or
        # not: what is left after the first pass (12-16 MiB here) costs
        # pre-copy a stop of ~290 ms, and post-copy about as much (a
        # 0.283 s against 0.286 s prediction in one run): a coin toss.
        self.assertEqual(self.virsh('a', 'qemu-monitor-command', NAME,
                                    '--hmp', 'migrate_set_parameter '
                                    'adaptive-policy fcm'), '')
        self.assertIn('adaptive-policy: fcm',
                      self.virsh('a', 'qemu-monitor-command', NAME, '--hmp',
                                 'info migrate_parameters'))
        ret, a, events, w, dt = self.migrate_adaptive('a', 'b', 'read-heavy')
        self.assertEqual(a['policy'], 'fcm', a)
        self.assertEqual(a['class'], 'read', a)
        self.assertEqual(a['algorithm'], 'precopy', a)
        self.assertEqual(a.get('ran', 'precopy'), 'precopy', a)
        self.assertEqual(ret['ram']['postcopy-requests'], 0, ret)
        self.check_progress(w)
        self.assertFalse(w.seen(lambda p: 'post-copy' in p['state']))
        self.assertNotIn('Post-copy', events['a'] + events['b'])
        self.assertIn('Stopped Migrated', lifecycle(events['a']))
        self.assertIn('Resumed Migrated', lifecycle(events['b']))
        self.assertEqual(self.domains('a'), [])
        self.assertEqual(self.virsh('b', 'domstate', NAME, '--reason'),
                         'running (migrated)')
        self.assertRegex(self.virsh('b', 'dominfo', NAME),
                         r'Persistent:\s+yes')
        g = self.console('b')
        self.verify(g, len(READ))
        print('read-heavy migrated in %.1f s' % dt)

        # write-heavy, back to A: QEMU switches to post-copy by itself
        g.console.run('kill $(pidof amwork); while pidof amwork; do '
                      'sleep 0.1; done', timeout=30)
        start_workloads(g, WRITE_BIG)
        out = json.loads(self.virsh(
            'b', 'qemu-monitor-command', NAME, json.dumps(
                {'execute': 'migrate-set-capabilities', 'arguments': {
                    'capabilities': [{'capability': 'adaptive',
                                      'state': True}]}})))
        self.assertEqual(out.get('return'), {}, out)
        ret, a, events, w, dt = self.migrate_adaptive('b', 'a', 'write-heavy')
        self.assertEqual(a['policy'], 'model', a)
        self.assertEqual(a['algorithm'], 'postcopy', a)
        self.assertEqual(a['ran'], 'postcopy', a)
        self.assertGreater(ret['ram']['postcopy-bytes'], 0, ret)
        self.check_progress(w)
        # libvirt's view of the switch it did not ask for
        src_ev, dst_ev = lifecycle(events['b']), lifecycle(events['a'])
        self.assertIn('Suspended Post-copy', src_ev)
        self.assertIn('Stopped Migrated', src_ev)
        self.assertIn('Resumed Post-copy', dst_ev)
        self.assertIn('Resumed Migrated', dst_ev)
        self.assertLess(dst_ev.index('Resumed Post-copy'),
                        dst_ev.index('Resumed Migrated'), dst_ev)
        m = re.search(r'memory_postcopy_requests: (\d+)', events['b'])
        self.assertTrue(m, events['b'])
        pc = w.seen(lambda p: p['qmp'].get('status') == 'postcopy-active'
                    or 'post-copy' in p['state'])
        if pc:
            print('polled in post-copy (%.2f s): state %s, qemu %s\n%s' % (
                pc[0]['t'], pc[0]['state'], pc[0]['qmp'].get('status'),
                pc[0]['job']))
        self.assertEqual(self.domains('b'), [])
        self.assertEqual(self.virsh('a', 'domstate', NAME, '--reason'),
                         'running (migrated)')
        g = self.console('a')
        self.verify(g, len(WRITE_BIG))
        print('write-heavy migrated in %.1f s; the domain test took %.1f s'
              % (dt, time.monotonic() - t0))

    def cleanup_domain(self):
        for x in ('a', 'b'):
            if NAME in self.domains(x):
                self.h.virsh(x, 'destroy', NAME, check=False)
                self.h.virsh(x, 'undefine', NAME, check=False)


if __name__ == '__main__':
    sys.path.insert(0, os.path.join(TOP, 'scripts'))
    why = missing()
    if why:
        print(why)
        sys.exit(77)
    unittest.main(verbosity=2)

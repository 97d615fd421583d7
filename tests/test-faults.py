#!/usr/bin/python3
"""Faults and odd states around the 'adaptive' capability, on real TCG
guests.

A post-copy that QEMU itself chose survives a broken link: paused with
migrate-pause once the destination runs the guest, it is recovered with
migrate-recover (out of band: under TCG the destination's main loop may
be blocked meanwhile by a vCPU that faults on a missing page with the BQL
held) and a resumed migrate on a new socket, and completes; a guest
stopped with 'stop' before the migration, or while it measures, is
migrated by pre-copy with a closed decision and its memory intact, and
stays stopped on the destination (post-copy would start it);
migrate_cancel at each phase of the decision (measuring before the
start, measuring while pre-copy runs, decided pre-copy but not
completed) leaves the source running intact with the decision closed,
and a second migration to a fresh destination completes; a destination
without
'postcopy-ram' makes the migration fail at once with the source running
intact; 'max-bandwidth' 0 (unlimited) is accepted and the decision
assumes 10 Gbit/s; calc-dirty-rate works and calc-access-rate is refused
while the migration measures.

Every case checks the guest's memory with amwork's verifier on the side
that owns the guest at the end: the destination after a completed
migration, the source after a cancelled or failed one.  AMIG_KEEP=1 keeps
the work directories (QEMU logs, consoles) under /tmp/amig.
"""
# SPDX-License-Identifier: GPL-2.0-or-later
import os
import sys
import time
import unittest
from types import SimpleNamespace

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'scripts'))
from amig.migrate import (VmPair, migrate, set_caps,  # noqa: E402
                          verify_workloads, wait_migration, MiB)
from amig.vm import VM, Workdir  # noqa: E402

FAST = {'adaptive-window': 3000}
READ = ['hold 32', 'read 8']
# a write loop pre-copy cannot finish at 64 MiB/s: post-copy, decided at
# the end of the first pass (test-adaptive.py's WRITE_BIG)
WRITE_BIG = ['hold 16', 'write 32']
ENDED = ('cancelled', 'failed', 'completed')


def log(*args):
    print(*args, flush=True)


def short(a):
    """The adaptive section's decision, for the log."""
    return {k: a.get(k) for k in ('phase', 'start', 'trigger', 'algorithm',
                                  'ran', 'samples', 'decided-after',
                                  'reason') if k in a}


def start_adaptive(p, params, dst_caps=None, uri=None):
    """Start an adaptive migration of the pair P by hand (post-copy
    allowed on both sides unless DST_CAPS says otherwise), with the
    migration parameters FAST + PARAMS; return its URI."""
    set_caps(p.src, {'adaptive': True, 'postcopy-ram': True,
                     'events': True})
    set_caps(p.dst, {'postcopy-ram': True} if dst_caps is None
             else dst_caps)
    p.src.cmd('migrate-set-parameters', **dict(FAST, **params))
    uri = uri or 'unix:%s' % os.path.join(p.dst.dir, 'mig.sock')
    p.dst.cmd('migrate-incoming', uri=uri)
    p.src.cmd('migrate', uri=uri)
    return uri


def wait_for(vm, pred, timeout, what, poll=0.1):
    """Poll query-migrate on VM until PRED(info); return that info."""
    deadline = time.monotonic() + timeout
    while True:
        info = vm.cmd('query-migrate')
        if pred(info):
            return info
        if time.monotonic() > deadline:
            raise AssertionError('%s: no %s within %d s; last: %s'
                                 % (vm.name, what, timeout, info))
        time.sleep(poll)


def wait_status(vm, status, timeout=60):
    return wait_for(vm, lambda i: i.get('status') == status, timeout,
                    "status '%s'" % status)


def oob(vm, cmd, timeout=30, **args):
    """Run the QMP command CMD out of band (exec-oob: in the monitor's own
    thread, without the BQL).  The qemu.qmp client beneath the harness's
    legacy one negotiated the 'oob' capability."""
    return vm.qmp._sync(vm.qmp._qmp.execute(cmd, args, oob=True), timeout)


def wait_event(vm, name, timeout, status=None):
    """Wait for the QMP event NAME (a MIGRATION event with STATUS) from
    VM, without a command: events still come when the main loop is
    blocked."""
    deadline = time.monotonic() + timeout
    while True:
        for ev in vm.qmp.get_events(wait=False):
            vm.events.append(ev)
            if ev.get('event') == name and (
                    status is None or ev['data'].get('status') == status):
                return ev
        if time.monotonic() > deadline:
            raise AssertionError('%s: no event %s %s within %d s'
                                 % (vm.name, name, status or '', timeout))
        time.sleep(0.05)


def main_loop_blocked(vm):
    """Whether VM's main thread waits on a lock while one of its threads
    waits on a userfault (a vCPU faulting on a missing post-copy page
    with the BQL held)."""
    chans = []
    for t in sorted(os.listdir('/proc/%d/task' % vm.proc.pid), key=int):
        try:
            with open('/proc/%d/task/%s/wchan' % (vm.proc.pid, t)) as f:
                chans.append(f.read())
        except OSError:
            pass
    return bool(chans) and 'futex' in chans[0] and \
        'handle_userfault' in chans


def fresh_dst(p):
    """Replace P's destination by a new incoming QEMU."""
    n = getattr(p, 'ndst', 1) + 1
    p.ndst = n
    p.dst.stop()
    p.dst = VM('dst%d' % n, p.wd.path, incoming=True).start()
    return p.dst


def wait_for_dirty_rate(vm, timeout):
    deadline = time.monotonic() + timeout
    while True:
        dr = vm.cmd('query-dirty-rate')
        # 'unstarted' until its thread starts
        if dr['status'] not in ('unstarted', 'measuring') or \
                time.monotonic() > deadline:
            return dr
        time.sleep(0.2)


class FaultsTest(unittest.TestCase):

    def pair(self, workloads):
        p = VmPair(workloads)
        p.wd.keep = bool(os.environ.get('AMIG_KEEP'))
        self.addCleanup(p.close)
        return p

    def intact(self, vm, workloads):
        ok, lines = verify_workloads(vm, len(workloads))
        self.assertTrue(ok, lines)
        self.assertEqual(len(lines), len(workloads), lines)

    def closed(self, info):
        """The decision is closed: phase 'decided', with an algorithm
        and a reason."""
        a = info.get('adaptive')
        self.assertIsNotNone(a, info)
        self.assertEqual(a['phase'], 'decided', a)
        self.assertIn(a.get('algorithm'), ('precopy', 'postcopy'), a)
        self.assertTrue(a.get('reason'), a)
        return a

    def migrate_again(self, p, workloads):
        """A second adaptive migration of P's source, to a fresh
        destination, completes with the memory intact (nothing of the
        first one is left stuck)."""
        dst = fresh_dst(p)
        res = migrate(p.src, dst, 'adaptive', timeout=120,
                      adaptive_params=dict(FAST, **{
                          'adaptive-start': 'precopy',
                          'adaptive-policy': 'model'}))
        self.assertEqual(res['status'], 'completed', res)
        self.assertEqual(res['adaptive']['phase'], 'decided', res)
        log('  again: %s in %s ms' % (res['mode'], res['total-time-ms']))
        self.intact(dst, workloads)

    # 1. post-copy recovery

    def test_postcopy_recovery_after_adaptive_switch(self):
        """QEMU chose post-copy; the link is broken with migrate-pause as
        soon as the destination runs the guest; migrate-recover on the
        destination and a resumed migrate on the source, on a new socket,
        complete it with the memory intact."""
        p = self.pair(WRITE_BIG)
        # no QMP command may hang the test: a timeout is an error
        p.src.qmp.settimeout(60)
        p.dst.qmp.settimeout(60)
        # post-copy's background pages slow, so that it is still running
        # when paused
        start_adaptive(p, {'max-bandwidth': 64 * MiB,
                           'max-postcopy-bandwidth': 4 * MiB,
                           'downtime-limit': 300},
                       dst_caps={'postcopy-ram': True, 'events': True})
        info = wait_for(p.src, lambda i: i['status'] in
                        ('postcopy-active',) + ENDED, 60,
                        "'postcopy-active'", poll=0.05)
        self.assertEqual(info['status'], 'postcopy-active', info)
        a = self.closed(info)
        self.assertEqual(a['algorithm'], 'postcopy', a)
        log('  switched: %s' % short(a))
        # the destination runs the guest (before that, in its LISTENING
        # stage, a broken link fails the destination: QEMU recovers a
        # post-copy only once the guest runs there)
        wait_event(p.dst, 'RESUME', 30)
        p.src.cmd('migrate-pause')
        src = wait_status(p.src, 'postcopy-paused', 30)
        self.assertEqual(src['error-desc'],
                         'Postcopy migration is paused by the user', src)
        # the decision is kept through the pause
        self.assertEqual(short(src['adaptive']), short(a))
        # the destination: by its event, and out of band from now on (its
        # main loop may be blocked until pages come again)
        wait_event(p.dst, 'MIGRATION', 30, 'postcopy-paused')
        blocked = main_loop_blocked(p.dst)
        log('  paused; destination main loop %s'
            % ('blocked by a vCPU faulting with the BQL held' if blocked
               else 'free'))
        # recover on a new socket (the old one is gone)
        uri = 'unix:%s' % os.path.join(p.wd.path, 'recover.sock')
        self.assertEqual(oob(p.dst, 'migrate-recover', uri=uri), {})
        p.src.cmd('migrate', uri=uri, resume=True)
        info = wait_migration(p.src, 120)
        self.assertEqual(info['status'], 'completed', info)
        a = self.closed(info)
        self.assertEqual((a['algorithm'], a['ran']),
                         ('postcopy', 'postcopy'), a)
        self.assertGreater(info['ram']['postcopy-bytes'], 0, info)
        log('  recovered: %s, total %d ms, %d page requests'
            % (info['status'], info['total-time'],
               info['ram']['postcopy-requests']))
        wait_status(p.dst, 'completed', 30)
        self.assertEqual(p.dst.status(), 'running')
        self.assertEqual(p.src.status(), 'postmigrate')
        self.intact(p.dst, WRITE_BIG)

    # 2. a stopped source

    def stopped_migration(self, workloads, params, stop_while_measuring):
        """Migrate a source stopped with 'stop' before the migration, or
        (STOP_WHILE_MEASURING) once it measures; return (pair, last
        query-migrate, destination run state at the completion)."""
        p = self.pair(workloads)
        if not stop_while_measuring:
            p.src.cmd('stop')
            self.assertEqual(p.src.status(), 'paused')
        start_adaptive(p, params)
        if stop_while_measuring:
            time.sleep(1.0)
            info = p.src.cmd('query-migrate')
            self.assertEqual(info['status'], 'active', info)
            self.assertEqual(info['adaptive']['phase'], 'measuring', info)
            p.src.cmd('stop')
        info = wait_migration(p.src, 120)
        self.assertEqual(info['status'], 'completed', info)
        wait_status(p.dst, 'completed', 30)
        dst_state = p.dst.status()
        a = self.closed(info)
        log('  decision: %s; source %s, destination %s'
            % (short(a), p.src.status(), dst_state))
        self.assertIn(p.src.status(), ('paused', 'postmigrate'))
        return p, info, dst_state

    def check_stopped(self, workloads, params, stop_while_measuring):
        p, info, dst_state = self.stopped_migration(
            workloads, params, stop_while_measuring)
        a = info['adaptive']
        self.assertIn(a['trigger'], ('first-pass', 'window', 'ended'), a)
        # a stopped guest goes by pre-copy, and stays stopped
        self.assertEqual((a['algorithm'], a.get('ran')),
                         ('precopy', 'precopy'), a)
        if a['trigger'] != 'ended':
            self.assertIn('the guest is stopped', a['reason'])
        self.assertEqual(dst_state, 'paused')
        p.dst.cmd('cont')
        self.assertEqual(p.dst.status(), 'running')
        self.intact(p.dst, workloads)

    # Found by this file: a VM stopped with 'stop' and migrated with
    # 'adaptive' was switched to post-copy (its still guest made
    # post-copy's predicted stall the smaller), and post-copy starts the
    # destination's vCPUs whatever the source's run state was
    # (loadvm_postcopy_handle_run_bh() looks at autostart only; pre-copy's
    # process_incoming_migration_bh() honours the migrated run state): the
    # guest the operator stopped ran again on the destination.  The
    # capability now keeps a stopped guest on pre-copy (QEMU patch 24);
    # a plain migrate-start-postcopy still does the same upstream.
    def test_stopped_before_start(self):
        self.check_stopped(READ, {'max-bandwidth': 32 * MiB}, False)

    def test_stopped_while_measuring(self):
        self.check_stopped(WRITE_BIG, {'max-bandwidth': 32 * MiB}, True)

    # 3. migrate_cancel at each phase of the decision

    def cancelled(self, p, workloads, failed_ok=False):
        """migrate_cancel now: the migration ends cancelled (or failed, if
        FAILED_OK and its decision says so), the source runs intact and
        the decision is closed.  Returns the last query-migrate."""
        p.src.cmd('migrate_cancel')
        info = wait_migration(p.src, 30)
        if failed_ok:
            # test-adaptive.py's test_cancel_while_deciding_during_precopy:
            # QEMU 10.0's cancel can race the return path's error
            self.assertIn(info['status'], ('cancelled', 'failed'), info)
        else:
            self.assertEqual(info['status'], 'cancelled', info)
        a = self.closed(info)
        log('  %s: %s' % (info['status'], short(a)))
        self.assertEqual(p.src.status(), 'running')
        self.intact(p.src, workloads)
        return info

    def check_cancel_ended(self, info):
        """A cancel before the decision: closed as 'ended', pre-copy."""
        a = info['adaptive']
        self.assertEqual((a['trigger'], a['algorithm']),
                         ('ended', 'precopy'), a)
        self.assertIn('the migration was cancelled'
                      if info['status'] == 'cancelled'
                      else 'the migration failed', a['reason'])

    def test_cancel_measuring_before_start(self):
        """Cancelled while it measures, nothing sent yet ('adaptive-start'
        'after-measuring'): the decision is closed, the source runs on
        intact and migrates again."""
        p = self.pair(READ)
        start_adaptive(p, {'adaptive-start': 'after-measuring'})
        time.sleep(1.0)
        info = p.src.cmd('query-migrate')
        self.assertEqual(info['status'], 'setup', info)
        self.assertEqual(info['adaptive']['phase'], 'measuring', info)
        # nothing sent yet
        self.assertEqual((info.get('ram') or {}).get('transferred', 0), 0,
                         info)
        p.src.cmd('migrate_cancel')
        info = wait_migration(p.src, 30)
        self.assertEqual(info['status'], 'cancelled', info)
        log('  cancelled: %s' % short(info['adaptive']))
        self.closed(info)
        self.check_cancel_ended(info)
        self.assertIn('the migration was cancelled before a decision',
                      info['adaptive']['reason'])
        self.assertEqual(p.src.status(), 'running')
        self.assertEqual(p.src.cmd('query-access-rate')['status'],
                         'cancelled')
        self.intact(p.src, READ)
        self.migrate_again(p, READ)

    # Found by this file (fixed in QEMU patch 24): migrate_cancel while
    # the capability measures before the start ('adaptive-start'
    # 'after-measuring', and always under KVM) ended the migration
    # 'cancelled' with its adaptive section 'measuring' for good:
    # adaptive_run_before_start() published a 'measuring' section and,
    # when the measurement returned nothing (cancelled, or failed), freed
    # it without publishing a closed one.  No guest is needed to show it.
    def test_cancel_before_start_closes_decision(self):
        wd = Workdir(keep=bool(os.environ.get('AMIG_KEEP')))
        src = VM('src', wd.path).start()
        dst = VM('dst', wd.path, incoming=True).start()
        try:
            start_adaptive(SimpleNamespace(src=src, dst=dst),
                           {'adaptive-start': 'after-measuring'})
            time.sleep(1.0)
            self.assertEqual(src.cmd('query-migrate')['adaptive']['phase'],
                             'measuring')
            src.cmd('migrate_cancel')
            info = wait_migration(src, 30)
            self.assertEqual(info['status'], 'cancelled', info)
            time.sleep(1.0)
            info = src.cmd('query-migrate')
            self.assertEqual(info['status'], 'cancelled', info)
            self.assertEqual(info['adaptive']['phase'], 'decided',
                             info['adaptive'])
        finally:
            src.stop()
            dst.stop()
            wd.done(True)

    def test_cancel_measuring_during_precopy(self):
        p = self.pair(READ)
        start_adaptive(p, {'max-bandwidth': 4 * MiB})
        time.sleep(1.5)
        info = p.src.cmd('query-migrate')
        self.assertEqual(info['status'], 'active', info)
        self.assertEqual(info['adaptive']['phase'], 'measuring', info)
        self.assertGreater(info['ram']['transferred'], 0, info)
        self.check_cancel_ended(self.cancelled(p, READ, failed_ok=True))
        self.migrate_again(p, READ)

    def test_cancel_decided_precopy(self):
        """Decided pre-copy (a reader, by FCM), still running at a low
        bandwidth: the cancel keeps the decision as it was."""
        p = self.pair(READ)
        start_adaptive(p, {'max-bandwidth': 8 * MiB,
                           'adaptive-policy': 'fcm'})
        info = wait_for(p.src, lambda i: i['status'] in ENDED or
                        i.get('adaptive', {}).get('phase') == 'decided', 30,
                        'decision')
        self.assertEqual(info['status'], 'active', info)
        before = self.closed(info)
        self.assertEqual(before['algorithm'], 'precopy', before)
        self.assertEqual(before['class'], 'read', before)
        self.assertIn(before['trigger'], ('window', 'first-pass'), before)
        info = self.cancelled(p, READ)
        a = info['adaptive']
        self.assertEqual(short(a), short(before))
        self.migrate_again(p, READ)

    # 4. a destination without 'postcopy-ram'

    def test_destination_without_postcopy_ram(self):
        """The source has adaptive + postcopy-ram, the destination no
        postcopy-ram: the destination refuses the stream's post-copy
        advice at the start and exits; the source fails at once with its
        guest running intact."""
        p = self.pair(READ)
        start_adaptive(p, {}, dst_caps={'postcopy-ram': False})
        info = wait_migration(p.src, 60)
        self.assertEqual(info['status'], 'failed', info)
        self.assertTrue(info.get('error-desc'), info)
        a = self.closed(info)
        self.assertEqual((a['trigger'], a['algorithm']),
                         ('ended', 'precopy'), a)
        self.assertIn('the migration failed', a['reason'])
        log('  source: %s: %r; %s' % (info['status'], info['error-desc'],
                                      short(a)))
        self.assertEqual(p.src.status(), 'running')
        self.intact(p.src, READ)
        rc = p.dst.proc.wait(timeout=30)
        dlog = p.dst.qemu_log()
        log('  destination: exit %d: %s' % (rc, dlog.strip()))
        self.assertNotEqual(rc, 0)
        self.assertIn('RAM postcopy is disabled', dlog)

    # 5. max-bandwidth 0

    def test_max_bandwidth_zero(self):
        p = self.pair(READ)
        r, err = p.src.try_cmd('migrate-set-parameters',
                               **{'max-bandwidth': 0})
        if err is not None:
            log('  max-bandwidth 0 refused: %s' % err)
            self.assertIn('max_bandwidth', err.replace('-', '_'))
            return
        self.assertEqual(p.src.cmd('query-migrate-parameters')
                         ['max-bandwidth'], 0)
        start_adaptive(p, {'max-bandwidth': 0})
        info = wait_migration(p.src, 120)
        self.assertEqual(info['status'], 'completed', info)
        a = self.closed(info)
        # unlimited: the decision assumes 10 Gbit/s (1192 MiB/s), and
        # measures the stream for the loop models (QMP: bytes/s)
        self.assertAlmostEqual(a['bandwidth'] / MiB, 1192.0, delta=0.5,
                               msg=a)
        if a['trigger'] != 'ended':
            self.assertTrue(a['inputs']['bandwidth-measured'], a)
            self.assertGreater(a['inputs']['bandwidth'], 0, a)
        measured = a.get('inputs', {}).get('bandwidth')
        log('  max-bandwidth 0 accepted (unlimited): %s in %d ms, '
            'downtime %d ms, assumed %.0f MiB/s, measured %s MiB/s; %s'
            % (info['status'], info['total-time'], info['downtime'],
               a['bandwidth'] / MiB,
               None if measured is None else measured / MiB, short(a)))
        self.intact(p.dst, READ)

    # 6. the monitor's rate commands while the migration measures

    def test_rate_commands_while_measuring(self):
        p = self.pair(['hold 16', 'write 8'])
        start_adaptive(p, {'max-bandwidth': 32 * MiB})
        time.sleep(0.5)
        info = p.src.cmd('query-migrate')
        self.assertEqual(info['adaptive']['phase'], 'measuring', info)
        # the dirty-page rate (page sampling, 1 s): works beside it
        r, err = p.src.try_cmd('calc-dirty-rate',
                               **{'calc-time': 1, 'sample-pages': 4096})
        self.assertIsNone(err, err)
        # the access-rate tracker: busy with the migration
        r, err = p.src.try_cmd('calc-access-rate', **{'window-ms': 1000})
        self.assertIsNotNone(err)
        self.assertIn('measuring for a migration', err)
        dr = wait_for_dirty_rate(p.src, 10)
        log('  query-dirty-rate: %s' % dr)
        self.assertEqual((dr['status'], dr['mode'], dr['calc-time']),
                         ('measured', 'page-sampling', 1), dr)
        # a writer of 8 MiB in 256: about 1 sampled page in 32 is dirty
        self.assertGreater(dr['dirty-rate'], 0, dr)
        info = wait_migration(p.src, 120)
        self.assertEqual(info['status'], 'completed', info)
        a = self.closed(info)
        self.assertGreaterEqual(a['samples'], 1, a)
        log('  migration: %s' % short(a))
        # the tracker is the monitor's again
        r, err = p.src.try_cmd('calc-access-rate', **{'window-ms': 1000})
        self.assertIsNone(err, err)
        self.intact(p.dst, ['hold 16', 'write 8'])


if __name__ == '__main__':
    unittest.main(verbosity=2)

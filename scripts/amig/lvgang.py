"""A gang of libvirt domains migrated between the two libvirt hosts of
amig/hosts.py by the gang coordinator (out/amgang, virDomainMigrate3),
measured as the benchmark measures QEMU's own migrations.

libvirt hides what the benchmark needs from QEMU: it holds the domain's
QMP monitor, does not know the `postcopy-blocktime` capability (libvirt
9.0), and keeps no completed-job statistics on the destination after a
post-copy migration.  So each domain gets a second QMP monitor of its
own (`-chardev socket ... -mon`, in the domain XML: the destination QEMU
that libvirt starts from the migrated XML listens on the same path on the
other host).  Through it the harness

  - turns `postcopy-blocktime` on in the destination QEMU as soon as it
    exists (before the switch to post-copy, when QEMU sets up its fault
    thread) and reads the vCPUs' wait on page faults after the job;
  - reads QEMU's own STOP (source) and RESUME (destination) events: the
    guest's real pause, whatever libvirt's downtime figure says (it has
    none after post-copy).

Nothing migration-related is done through that monitor: libvirt's API
moves the domains (amgang: virDomainMigrate3 with the gang's bandwidth
share, post-copy allowed, virDomainMigrateStartPostCopy for the fixed
post-copy schemes), and the `adaptive` capability is set through
libvirt's QMP passthrough, as an operator would.
"""
# SPDX-License-Identifier: GPL-2.0-or-later

import json
import os
import queue
import socket
import subprocess
import threading
import time

from .vm import TOP, Console, HarnessError, libvirt_domain_xml

AMGANG = os.path.join(TOP, 'out', 'amgang')
LIB = '/var/lib/libvirt/qemu'
# the bench's scheme: (amgang --scheme, --policy).  The others cannot go
# through libvirt 9.0: postcopy-preempt (libvirt does not know it and
# hands QEMU an fd: URI, which preempt refuses), and the QMP-driven switch
# rules of Ganeti, Nova, KubeVirt and auto-converge, which this harness
# implements on QEMU's monitor, not libvirt's API.
SCHEMES = {
    'precopy': ('precopy', 'guarded'),
    'postcopy': ('postcopy', 'guarded'),
    'libvirt': ('postcopy-after-precopy', 'guarded'),
    'adaptive-guarded': ('adaptive', 'guarded'),
    'adaptive-fcm': ('adaptive', 'fcm'),
    'adaptive-model': ('adaptive', 'model'),
}


class RawQmp:
    """A QMP client on a unix socket, usable from any thread: a reader
    thread keeps every event (QEMU's time stamp) and hands replies to the
    caller.  It lives as long as its QEMU."""

    def __init__(self, path, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise HarnessError('cannot connect to QMP %s' % path)
                time.sleep(0.01)
        self.path, self.sock = path, s
        self.events, self.replies = [], queue.Queue()
        self.lock = threading.Lock()
        self.f = s.makefile('rb')
        greeting = json.loads(self.f.readline() or b'{}')
        if 'QMP' not in greeting:
            raise HarnessError('%s: no QMP greeting: %r' % (path, greeting))
        threading.Thread(target=self._reader, daemon=True).start()
        self.cmd('qmp_capabilities')

    def _reader(self):
        try:
            for line in self.f:
                msg = json.loads(line)
                if 'event' in msg:
                    self.events.append(msg)
                else:
                    self.replies.put(msg)
        except (OSError, ValueError):
            pass
        self.replies.put(None)

    def cmd(self, name, timeout=30, **args):
        with self.lock:
            msg = {'execute': name}
            if args:
                msg['arguments'] = args
            self.sock.sendall(json.dumps(msg).encode() + b'\n')
            try:
                r = self.replies.get(timeout=timeout)
            except queue.Empty:
                raise HarnessError('%s: %s: no reply' % (self.path, name))
        if r is None:
            raise HarnessError('%s: %s: QEMU went away' % (self.path, name))
        if 'error' in r:
            raise HarnessError('%s: %s: %s' % (self.path, name,
                                               r['error'].get('desc')))
        return r['return']

    def event_time(self, name, since=0.0):
        """Time (host clock, s) of the last event NAME at or after SINCE."""
        ts = [e['timestamp']['seconds'] + e['timestamp']['microseconds'] /
              1e6 for e in list(self.events) if e['event'] == name]
        ts = [t for t in ts if t >= since]
        return ts[-1] if ts else None

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Domain:
    """A libvirt domain of the gang, on whichever host it runs."""

    def __init__(self, hosts, name, mem_mib, logdir):
        self.h, self.name, self.mem = hosts, name, mem_mib
        self.logdir = logdir
        self.side = 'a'
        self.console = None

    def path(self, host, what):
        return self.h.path(host, 'lib', 'qemu', '%s.%s' % (self.name, what))

    def xml(self):
        return libvirt_domain_xml(
            self.name, '%s/%s.console' % (LIB, self.name), self.mem,
            on_poweroff='destroy', qmp='%s/%s.qmp' % (LIB, self.name))

    def define_start(self):
        xml = os.path.join(self.h.base, self.name + '.xml')
        with open(xml, 'w') as f:
            f.write(self.xml())
        self.h.virsh('a', 'define', xml)
        self.h.virsh('a', 'start', self.name)

    def attach(self):
        """The serial console of the QEMU on the domain's current side."""
        if self.console:
            self.console.close()
        self.console = Console(self.path(self.side, 'console'), os.path.join(
            self.logdir, 'console-%s.log' % self.name))
        self.console.connect(timeout=30)

    def wait_boot(self, timeout=180):
        """The guest's shell answers (its banner may have gone by before
        the console was attached)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.console.run('stty -echo 2>/dev/null; true', timeout=5)
                return
            except HarnessError:
                if time.monotonic() > deadline:
                    raise

    def destroy(self):
        if self.console:
            self.console.close()
            self.console = None
        for x in ('a', 'b'):
            if self.name in self.h.virsh(x, 'list', '--all', '--name',
                                         check=False).stdout.split():
                self.h.virsh(x, 'destroy', self.name, check=False)
                self.h.virsh(x, 'undefine', self.name, check=False)


def watch_destination(dom, other, stop, out):
    """Connect to the destination QEMU's second monitor as soon as libvirt
    starts it on OTHER, and turn `postcopy-blocktime` on there (QEMU sets
    its fault accounting up when post-copy starts listening, so any time
    before the switch will do).  OUT['qmp'] is the connection."""
    path = dom.path(other, 'qmp')
    while not stop.is_set():
        if os.path.exists(path):
            try:
                q = RawQmp(path, timeout=2)
                q.cmd('migrate-set-capabilities', capabilities=[
                    {'capability': 'postcopy-blocktime', 'state': True}])
                out['qmp'] = q
                out['at'] = time.time()
                return
            except HarnessError as e:
                out['error'] = str(e)
        time.sleep(0.01)


def migrate(hosts, doms, scheme, rate_mibs, timeout_s, window_ms, workdir,
            log):
    """Migrate DOMS (each on its .side, all on the same one) to the other
    host by SCHEME with amgang; RATE_MIBS is the gang's bandwidth (each
    domain gets its share).  Returns (per-domain results in the
    benchmark's terms, amgang's output)."""
    gscheme, policy = SCHEMES[scheme]
    side = doms[0].side
    other = 'b' if side == 'a' else 'a'
    link = hosts.state['link']
    host = '127.0.0.1' if link['mechanism'] == 'relay' else \
        hosts.name(other)
    srcq, watch, threads = [], [], []
    stop = threading.Event()
    for d in doms:
        # a socket file left by the QEMU that ran there before
        try:
            os.unlink(d.path(other, 'qmp'))
        except OSError:
            pass
        srcq.append(RawQmp(d.path(side, 'qmp')))
        w = {}
        watch.append(w)
        t = threading.Thread(target=watch_destination,
                             args=(d, other, stop, w), daemon=True)
        t.start()
        threads.append(t)
    out = os.path.join(workdir, 'amgang-%s.json' % scheme)
    cmd = [AMGANG, '--connect', 'qemu:///system', '--window',
           str(window_ms), '--bandwidth', '%g' % rate_mibs, '--timeout',
           str(int(timeout_s)), '--scheme', gscheme, '--policy', policy,
           '--json', out, '--quiet']
    for d, port in zip(doms, link['ports']):
        cmd += ['--vm', '%s,libvirt:%s,%s,tcp://%s:%d' % (
            d.name, d.name, hosts.uri(other), host, port)]
    wall0 = time.time()
    proc = subprocess.Popen(hosts.wrap(side) + cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        text, _ = proc.communicate(timeout=3 * timeout_s + 120)
    except subprocess.TimeoutExpired:
        # post-copy must end, and amgang aborts what outlives --timeout:
        # a hang is a bug somewhere; where it hangs goes to the log
        bt = subprocess.run(['gdb', '-p', str(proc.pid), '-batch', '-ex',
                             'thread apply all bt'], capture_output=True,
                            text=True, timeout=60).stdout
        proc.kill()
        text, _ = proc.communicate()
        raise HarnessError('amgang hung (%s): %s\n%s' % (
            scheme, text[-2000:], bt[-6000:]))
    finally:
        stop.set()
        for t in threads:
            t.join()
    if not os.path.exists(out):
        raise HarnessError('amgang wrote no results (rc %d): %s' % (
            proc.returncode, text[-2000:]))
    with open(out) as f:
        res = json.load(f)
    by = {v['name']: v for v in res['vms']}
    results = []
    for d, q_src, w in zip(doms, srcq, watch):
        v = by[d.name]
        q = v.get('query-migrate', {})
        ram = q.get('ram', {})
        post = bool(q.get('postcopy-seen') or ram.get('postcopy-requests'))
        r = {'vm': d.name, 'scheme': scheme, 'via': 'libvirt',
             'status': v['status'], 'error': v.get('error'),
             'total-time-ms': q.get('total-time'),
             'downtime-ms': q.get('downtime'),
             'source-of-times': q.get('source-of-times'),
             'bytes': ram.get('transferred'),
             'postcopy-requests': ram.get('postcopy-requests'),
             'postcopy-bytes': None,
             'algorithm': 'postcopy' if post else 'precopy',
             'switched-at-s': None, 'switch-reason': None}
        if q.get('adaptive'):
            r['adaptive'] = q['adaptive']
            r['adaptive-choice'] = q['adaptive'].get('algorithm')
        dq = w.get('qmp')
        if v['status'] == 'completed':
            stop_t = q_src.event_time('STOP', wall0 - 1)
            resume_t = dq.event_time('RESUME', wall0 - 1) if dq else None
            if stop_t is not None and resume_t is not None:
                r['paused-ms'] = round((resume_t - stop_t) * 1000, 1)
            if r['downtime-ms'] is None:
                # libvirt has none after post-copy: the pause it is
                r['downtime-ms'] = r.get('paused-ms')
            if r['downtime-ms'] is None:
                raise HarnessError('%s/%s: neither libvirt nor QEMU\'s '
                                   'events gave the pause' % (d.name, scheme))
            if not post:
                r['blocktime-ms'] = 0
            elif dq:
                info = dq.cmd('query-migrate')
                r['blocktime-ms'] = info.get('postcopy-blocktime')
            if r.get('blocktime-ms') is None:
                log('%s/%s: no post-copy blocktime (%s)' % (
                    d.name, scheme, w.get('error', 'no destination QMP')))
            d.side = other
        results.append(r)
        q_src.close()
        if dq:
            dq.close()
    return results, text


def regather(hosts, doms, log):
    """After a run that left some domains behind (a pre-copy that did not
    converge in time and was aborted), bring them to where the others
    went, as an operator would (virsh migrate --postcopy-after-precopy,
    which ends): not a run of the benchmark."""
    sides = [d.side for d in doms]
    if len(set(sides)) < 2:
        return
    to = max(set(sides), key=sides.count)
    for d in doms:
        if d.side == to:
            continue
        args = ['migrate', '--live', '--persistent', '--undefinesource',
                '--postcopy', '--postcopy-after-precopy']
        mu = hosts.migrate_uri(d.side, to)
        if mu:
            args += ['--migrateuri', mu]
        t = time.monotonic()
        hosts.virsh(d.side, *(args + [d.name, hosts.uri(to)]), timeout=600)
        log('%s: left on host %s; moved to %s after the run (virsh '
            'migrate --postcopy-after-precopy, %.1f s)' % (
                d.name, d.side, to, time.monotonic() - t))
        d.side = to
        d.attach()

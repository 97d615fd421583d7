"""Migrate a guest between two local QEMUs and check its memory.

A "case" boots a source guest, starts amwork workloads in it, starts an
incoming destination, migrates by pre-copy or post-copy over a unix socket,
and then asks every workload on the destination to verify its region.
"""
# SPDX-License-Identifier: GPL-2.0-or-later

import os
import time

from .vm import VM, HarnessError, Workdir

MiB = 1024 * 1024


def start_workloads(vm, workloads, timeout=120):
    """Start 'amwork' with each argument string; wait until populated."""
    start = vm.console.mark()
    for w in workloads:
        rc, out = vm.console.run('amwork %s >/dev/null 2>&1 &' % w)
        if rc != 0:
            raise HarnessError('cannot start amwork %s: %s' % (w, out))
    vm.console.wait_for(r'AMWORK START pid=\d+', timeout, start,
                        count=len(workloads))


def verify_workloads(vm, n, timeout=120):
    """Ask every amwork in VM to verify its region: (ok, lines)."""
    start = vm.console.mark()
    rc, out = vm.console.run('kill -USR1 $(pidof amwork)', timeout)
    if rc != 0:
        raise HarnessError('no amwork running in %s: %s' % (vm.name, out))
    found = vm.console.wait_for(r'AMWORK VERIFY [^\r\n]* (OK|FAIL[^\r\n]*)',
                                timeout, start, count=n)
    lines = [m.group(0).decode() for m in found]
    ok = all(m.group(1) == b'OK' for m in found)
    return ok, lines


def set_caps(vm, caps):
    vm.cmd('migrate-set-capabilities', capabilities=[
        {'capability': k, 'state': v} for k, v in caps.items()])


def wait_migration(src, timeout, poll=0.1, on_poll=None):
    """Poll query-migrate on SRC until it ends; return its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        info = src.cmd('query-migrate')
        st = info.get('status')
        if on_poll:
            on_poll(info)
        if st in ('completed', 'failed', 'cancelled'):
            return info
        if time.monotonic() > deadline:
            src.try_cmd('migrate_cancel')
            info = src.cmd('query-migrate')
            info['harness-timeout'] = True
            return info
        time.sleep(poll)


def migrate(src, dst, mode, bandwidth_mib=64, downtime_ms=300,
            timeout=300, uri=None, adaptive_params=None):
    """Migrate SRC into DST (started with -incoming defer).

    MODE is 'precopy', 'postcopy' (post-copy starts right away, as
    'migrate-start-postcopy' issued at the start of the migration) or
    'adaptive' (the 'adaptive' capability chooses; ADAPTIVE_PARAMS are
    extra migration parameters for it).  Returns a result dictionary."""
    uri = uri or 'unix:%s' % os.path.join(dst.dir, 'migrate.sock')
    caps = {'events': True}
    if mode in ('postcopy', 'adaptive'):
        caps['postcopy-ram'] = True
    set_caps(src, dict(caps, adaptive=True) if mode == 'adaptive' else caps)
    set_caps(dst, caps)
    params = {'max-bandwidth': int(bandwidth_mib * MiB),
              'downtime-limit': int(downtime_ms)}
    if mode in ('postcopy', 'adaptive'):
        params['max-postcopy-bandwidth'] = int(bandwidth_mib * MiB)
    params.update(adaptive_params or {})
    src.cmd('migrate-set-parameters', **params)
    dst.cmd('migrate-incoming', uri=uri)
    t0 = time.monotonic()
    src.cmd('migrate', uri=uri)
    if mode == 'postcopy':
        src.cmd('migrate-start-postcopy')
    info = wait_migration(src, timeout)
    wall = time.monotonic() - t0
    adaptive = info.get('adaptive')
    stop_t = event_time(src, 'STOP')
    res = dict(result_of(info, wall), **{
        'mode': mode,
        'timed-out': bool(info.get('harness-timeout')),
        'bandwidth-mib': bandwidth_mib,
        'downtime-limit-ms': downtime_ms,
    })
    if adaptive:
        res['adaptive'] = adaptive
        res['mode'] = 'adaptive:%s' % adaptive.get('algorithm', '?')
    if res['status'] == 'completed':
        wait_running(dst)
        resume_t = event_time(dst, 'RESUME')
        if stop_t is not None and resume_t is not None:
            res['stop-to-resume-ms'] = round((resume_t - stop_t) * 1000, 1)
    return res


def result_of(info, wall):
    """The figures of a finished migration from its last query-migrate
    answer INFO; WALL: seconds the harness waited."""
    ram = info.get('ram') or {}
    return {
        'status': info.get('status'),
        'error': info.get('error-desc'),
        'total-time-ms': info.get('total-time'),
        'downtime-ms': info.get('downtime'),
        'setup-time-ms': info.get('setup-time'),
        'wall-s': round(wall, 3),
        'bytes': ram.get('transferred'),
        'precopy-bytes': ram.get('precopy-bytes'),
        'postcopy-bytes': ram.get('postcopy-bytes'),
        'postcopy-requests': ram.get('postcopy-requests'),
        'dirty-sync-count': ram.get('dirty-sync-count'),
    }


def wait_running(dst, timeout=30, poll=0.05):
    """Wait until the destination of a completed migration runs."""
    deadline = time.monotonic() + timeout
    while dst.status() != 'running':
        if time.monotonic() > deadline:
            raise HarnessError('destination not running after migration')
        time.sleep(poll)


def event_time(vm, name, since=None):
    """Host time (s) of the first event NAME that VM sent (at or after
    SINCE, host time, if given), or None.

    Source and destination run on the same host, so the source's STOP and
    the destination's RESUME time-stamps measure the real pause of the
    guest, whatever QEMU's own 'downtime' figure says."""
    for ev in vm.qmp.get_events(wait=False):
        vm.events.append(ev)
    for ev in vm.events:
        if ev.get('event') == name:
            ts = ev['timestamp']
            t = ts['seconds'] + ts['microseconds'] / 1e6
            if since is None or t >= since:
                return t
    return None


class VmPair:
    """A booted source running WORKLOADS and an incoming destination."""

    def __init__(self, workloads, mem_mib=256):
        self.wd = Workdir()
        self.workloads = workloads
        self.src = VM('src', self.wd.path, mem_mib=mem_mib)
        self.dst = VM('dst', self.wd.path, mem_mib=mem_mib, incoming=True)
        try:
            self.src.start()
            self.src.wait_boot()
            start_workloads(self.src, workloads)
            self.dst.start()
        except Exception:
            self.close()
            raise

    def start_migration(self, src_caps=None, dst_caps=None, params=None):
        """Set capabilities and parameters, start the migration by hand
        (no waiting) and return its URI."""
        if src_caps:
            set_caps(self.src, src_caps)
        if dst_caps:
            set_caps(self.dst, dst_caps)
        if params:
            self.src.cmd('migrate-set-parameters', **params)
        uri = 'unix:%s' % os.path.join(self.wd.path, 'mig.sock')
        self.dst.cmd('migrate-incoming', uri=uri)
        self.src.cmd('migrate', uri=uri)
        return uri

    def close(self):
        self.src.stop()
        self.dst.stop()
        self.wd.done(True)


def run_case(workloads, mode, mem_mib=256, bandwidth_mib=64,
             downtime_ms=300, warmup_s=2.0, timeout=300, keep=False,
             log=print, adaptive_params=None):
    """Boot, load, migrate, verify.  Returns the result dictionary."""
    wd = Workdir(keep=keep)
    src = VM('src', wd.path, mem_mib=mem_mib)
    dst = VM('dst', wd.path, mem_mib=mem_mib, incoming=True)
    ok = False
    try:
        src.start()
        t = time.monotonic()
        src.wait_boot()
        boot = time.monotonic() - t
        start_workloads(src, workloads)
        time.sleep(warmup_s)
        dst.start()
        res = migrate(src, dst, mode, bandwidth_mib, downtime_ms, timeout,
                      adaptive_params=adaptive_params)
        res['workloads'] = list(workloads)
        res['boot-s'] = round(boot, 1)
        if res['status'] == 'completed':
            good, lines = verify_workloads(dst, len(workloads))
            res['integrity'] = 'ok' if good else 'FAIL'
            res['verify'] = lines
        else:
            res['integrity'] = 'n/a'
            # a failed migration must leave the source guest intact
            good, lines = verify_workloads(src, len(workloads))
            res['source-integrity'] = 'ok' if good else 'FAIL'
        ok = res['status'] == 'completed' and res['integrity'] == 'ok'
        res['workdir'] = None if (ok and not keep) else wd.path
        return res
    finally:
        src.stop()
        dst.stop()
        wd.done(ok)

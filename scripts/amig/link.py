"""An emulated network link between two network namespaces.

    with Link(rate_mibs=32, delay_ms=5, ports=[4444]) as link:
        src = VM(..., wrap=link.wrap('a'))        # QEMU runs in namespace A
        dst = VM(..., wrap=link.wrap('b'))        # and B
        dst.cmd('migrate-incoming', uri=link.incoming_uri(4444, 'b'))
        src.cmd('migrate', uri=link.uri(4444, 'a'))

Two namespaces made for the run (`am<pid>a<n>`, `am<pid>b<n>`) are joined
by a veth pair; nothing is routed out of them, so the traffic stays on
this machine.  The rate comes from `tc tbf` on both veth ends.  The
one-way delay comes from `tc netem` where the kernel has sch_netem; where
it has not (the build machines' kernel) from `amlink` (scripts/amlink.c),
a relay in each namespace that holds each chunk for the delay and paces
it at the rate: a sender connects to the relay on its own namespace's
loopback, which forwards to the other namespace across the veth (both
ways, so a guest can be migrated back and forth).  `measure()` probes the path
the migration uses (round trip, bulk throughput) so every run records the
link it really got, with the mechanisms that made it.
"""
# SPDX-License-Identifier: GPL-2.0-or-later

import itertools
import json
import os
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class HarnessError(Exception):
    pass

AMLINK = os.path.join(TOP, 'out', 'amlink')
PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                     'linkprobe.py')
ADDR_A, ADDR_B = '10.233.0.1', '10.233.0.2'
PROBE_PORT = 4999
_seq = itertools.count()


def sh(*args, check=True):
    p = subprocess.run(args, capture_output=True, text=True)
    if check and p.returncode:
        raise HarnessError('%s: %s' % (' '.join(args), p.stderr.strip()))
    return p


def build_amlink():
    src = os.path.join(TOP, 'scripts', 'amlink.c')
    if (not os.path.exists(AMLINK) or
            os.path.getmtime(AMLINK) < os.path.getmtime(src)):
        os.makedirs(os.path.dirname(AMLINK), exist_ok=True)
        sh('cc', '-O2', '-Wall', '-Wextra', '-Werror', '-o', AMLINK, src)


_netem = None


def have_netem():
    """Whether this kernel can run sch_netem (tried once, in a scratch
    namespace)."""
    global _netem
    if _netem is None:
        sh('modprobe', 'sch_netem', check=False)
        ns = 'amnt%d' % os.getpid()
        sh('ip', 'netns', 'add', ns)
        try:
            _netem = sh('ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'add',
                        'dev', 'lo', 'root', 'netem', 'delay', '1ms',
                        check=False).returncode == 0
        finally:
            sh('ip', 'netns', 'del', ns, check=False)
    return _netem


class Link:
    """RATE_MIBS (MiB/s, each direction) and DELAY_MS (one way) between
    namespace A (source) and B (destination), for the TCP PORTS the
    destination listens on.  MECHANISM: 'auto' (netem if the kernel has
    it, else the relay), 'relay' or 'netem'."""

    def __init__(self, rate_mibs, delay_ms, ports, mechanism='auto',
                 log=None):
        self.rate = float(rate_mibs)
        self.delay = float(delay_ms)
        self.ports = list(ports)
        n = next(_seq)
        self.ns = {'a': 'am%da%d' % (os.getpid(), n),
                   'b': 'am%db%d' % (os.getpid(), n)}
        self.ns['src'], self.ns['dst'] = self.ns['a'], self.ns['b']
        self.log = log or (lambda *a: None)
        if mechanism == 'auto':
            mechanism = 'netem' if have_netem() else 'relay'
        self.mechanism = mechanism
        self.relays = []
        self.probes = []
        self.dir = None
        self.measured = None

    # -- set-up and tear-down -------------------------------------------
    def __enter__(self):
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc):
        self.down()

    def _ns(self, side, *args, check=True):
        return sh('ip', 'netns', 'exec', self.ns[side], *args, check=check)

    def up(self):
        a, b = self.ns['a'], self.ns['b']
        va, vb = a + 'v', b + 'v'
        sh('ip', 'netns', 'add', a)
        sh('ip', 'netns', 'add', b)
        sh('ip', 'link', 'add', va, 'netns', a, 'type', 'veth', 'peer',
           'name', vb, 'netns', b)
        for side, dev, addr in (('a', va, ADDR_A), ('b', vb, ADDR_B)):
            self._ns(side, 'ip', 'link', 'set', 'lo', 'up')
            self._ns(side, 'ip', 'addr', 'add', addr + '/30', 'dev', dev)
            self._ns(side, 'ip', 'link', 'set', dev, 'up')
            # rate: a token bucket on each end's egress
            # tbf counts headers too: 5% above the payload rate, so that
            # the relay's pacing (payload) is what binds
            bits = int(self.rate * 1048576 * 8 * 1.05)
            # twice the relay's own burst (5 ms), so tbf never drops a burst
            burst = max(128 * 1024, int(self.rate * 1048576 / 100))
            if self.mechanism == 'netem':
                # netem delays and limits the rate itself; a bounded queue
                # of twice the bandwidth-delay product
                limit = max(1000, int(2 * self.rate * 1048576 *
                                      self.delay / 1000 / 1500))
                self._ns(side, 'tc', 'qdisc', 'add', 'dev', dev, 'root',
                         'handle', '1:', 'netem', 'delay',
                         '%.3fms' % self.delay, 'rate', '%dbit' % bits,
                         'limit', str(limit))
            else:
                self._ns(side, 'tc', 'qdisc', 'add', 'dev', dev, 'root',
                         'tbf', 'rate', '%dbit' % bits, 'burst', str(burst),
                         'latency', '50ms')
        self.dir = tempfile.mkdtemp(prefix='amlink-')
        for side, other in (('a', ADDR_B), ('b', ADDR_A)):
            if self.mechanism == 'relay':
                build_amlink()
                ready = os.path.join(self.dir, 'ready-' + side)
                args = self.wrap(side) + [
                    AMLINK, '-d', str(self.delay), '-r', str(self.rate),
                    '-R', ready]
                for p in self.ports + [PROBE_PORT]:
                    args += ['-l', '127.0.0.1:%d' % p,
                             '-c', '%s:%d' % (other, p)]
                with open(os.path.join(self.dir, 'amlink-%s.log' % side),
                          'w') as errlog:
                    self.relays.append(subprocess.Popen(
                        args, stdin=subprocess.DEVNULL, stderr=errlog))
                self._wait_file(ready, self.relays[-1], 'amlink')
            probe = subprocess.Popen(
                self.wrap(side) + [sys.executable, PROBE, 'serve',
                                   self.addr(side), str(PROBE_PORT)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True)
            self.probes.append(probe)
            if probe.stdout.readline().strip() != 'ready':
                raise HarnessError('link probe server did not start')

    @staticmethod
    def _wait_file(path, proc, what):
        deadline = time.monotonic() + 10
        while not os.path.exists(path):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise HarnessError('%s did not start' % what)
            time.sleep(0.02)

    def down(self):
        for p in self.relays + self.probes:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for p in self.probes:
            p.stdout.close()
        self.relays, self.probes = [], []
        for ns in self.ns.values():
            sh('ip', 'netns', 'del', ns, check=False)
        if self.dir:
            subprocess.run(['rm', '-rf', self.dir])
            self.dir = None

    # -- use --------------------------------------------------------------
    def wrap(self, side):
        """Command prefix that runs a program in SIDE's namespace."""
        return ['ip', 'netns', 'exec', self.ns[side]]

    @staticmethod
    def addr(side):
        return ADDR_A if side in ('a', 'src') else ADDR_B

    def _connect_host(self, frm):
        if self.mechanism == 'relay':
            return '127.0.0.1'
        return self.addr('b' if frm in ('a', 'src') else 'a')

    def uri(self, port, frm='a'):
        """The URI a sender in namespace FRM migrates to (the other one)."""
        return 'tcp:%s:%d' % (self._connect_host(frm), port)

    def incoming_uri(self, port, at='b'):
        """The URI a destination in namespace AT listens on."""
        return 'tcp:%s:%d' % (self.addr(at), port)

    def measure(self, frm='a', nbytes=None):
        """Probe the path from FRM: round trip and receiver-side bulk
        throughput."""
        nbytes = nbytes or max(4 << 20, int(self.rate * 1048576 * 1.5))
        p = self._ns(frm, sys.executable, PROBE, 'measure',
                     self._connect_host(frm), str(PROBE_PORT), '--bytes',
                     str(nbytes))
        m = json.loads(p.stdout)
        m.update({'set-rate-mibs': self.rate,
                  'set-rtt-ms': 2 * self.delay,
                  'rate-by': 'amlink pacing + tc tbf' if
                  self.mechanism == 'relay' else 'tc netem rate',
                  'delay-by': 'amlink relay' if self.mechanism == 'relay'
                  else 'tc netem'})
        self.measured = m
        return m

"""Two libvirt "hosts" on one machine, joined by the emulated link.

Each host is a network namespace (named, `ip netns`), with a mount and a
UTS namespace of its own held by its init (amig/hostinit.py, a child
subreaper that reaps the QEMUs libvirtd daemonizes) and daemons:
libvirtd (listening on TCP 16509 of its namespace's address, no TLS, no
authentication) and virtlogd.  Private directories are bind-mounted, in
the host's mount namespace only, over /run/libvirt (= /var/run/libvirt),
/var/lib/libvirt, /etc/libvirt, /var/log/libvirt and /var/cache/libvirt,
and private copies over /etc/hosts (both hosts named) and /etc/hostname.
Each host has its own host UUID (libvirtd.conf host_uuid) and hostname,
so libvirt takes them for two machines.  The two network namespaces are
the two ends of the project's emulated link (amig/link.py: a veth pair,
tc tbf for the rate on both ends, and for a delay the amlink relay on
the migration ports, since this kernel has no sch_netem).

    hosts = Hosts.load()              # after scripts/libvirt-hosts up
    hosts.virsh('a', 'list')          # virsh run inside host A
    hosts.migrate_uri('a', 'b')       # '' or the --migrateuri to use

The state of a running pair is in BASE/state.json (BASE: AMHOSTS_DIR, by
default /run/amhosts); each host's private directories are BASE/a/...
and BASE/b/..., so its files (pid files, logs, sockets under
/var/lib/libvirt) can be read from outside as BASE/HOST/run, .../lib,
.../log.
"""
# SPDX-License-Identifier: GPL-2.0-or-later

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest
import uuid

from .link import ADDR_A, ADDR_B, Link, build_amlink, have_netem

BASE = os.environ.get('AMHOSTS_DIR', '/run/amhosts')
# the command that brings the hosts up and down
SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), 'libvirt-hosts')
NAMES = {'a': 'amhost-a', 'b': 'amhost-b'}
ADDRS = {'a': ADDR_A, 'b': ADDR_B}
TCP_PORT = 16509
# libvirt's migration ports (qemu.conf): few, so that the relay can
# carry each of them
MIG_PORTS = list(range(49152, 49156))
# (real directory in the host, private directory name)
PRIVATE = [('/run/libvirt', 'run'), ('/var/lib/libvirt', 'lib'),
           ('/etc/libvirt', 'etc'), ('/var/log/libvirt', 'log'),
           ('/var/cache/libvirt', 'cache')]

QEMU_CONF = '''# written by adaptive-migration scripts/libvirt-hosts
# as scripts/libvirt-up writes it (no security driver, no cgroups here)
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
cgroup_controllers = [ ]
remember_owner = 0
# incoming migrations listen on this host's address only (the amlink
# relay holds 127.0.0.1 on the same ports), under this host's name
migration_address = "%(addr)s"
migration_host = "%(name)s"
migration_port_min = %(pmin)d
migration_port_max = %(pmax)d
'''

LIBVIRTD_CONF = '''# written by adaptive-migration scripts/libvirt-hosts
listen_tls = 0
listen_tcp = 1
auth_tcp = "none"
tcp_port = "%(port)d"
listen_addr = "%(addr)s"
host_uuid = "%(uuid)s"
# QMP traffic (QEMU_MONITOR_SEND_MSG / RECV_REPLY / RECV_EVENT), the
# migration and process code at debug level: what libvirt saw of a
# migration can be read back from /var/log/libvirt/libvirtd.log
log_filters = "%(filters)s"
log_outputs = "1:file:/var/log/libvirt/libvirtd.log"
'''

LOG_FILTERS = ('1:qemu.qemu_migration 1:qemu.qemu_process '
               '2:qemu.qemu_monitor 2:qemu.qemu_monitor_json 3:*')

VIRTLOGD_CONF = '''# written by adaptive-migration scripts/libvirt-hosts
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
'''


class HostsError(Exception):
    pass


def sh(*args, check=True, timeout=60, **kw):
    p = subprocess.run(args, capture_output=True, text=True,
                       timeout=timeout, **kw)
    if check and p.returncode:
        raise HostsError('%s: %s' % (' '.join(args),
                                     (p.stderr or p.stdout).strip()))
    return p


def alive(pid):
    try:
        os.kill(pid, 0)
    except (OSError, TypeError):
        return False
    # a zombie is not alive
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


class Hosts:
    """The two hosts 'a' and 'b' (their state, and commands in them)."""

    def __init__(self, base=BASE):
        self.base = base
        self.state = None

    # -- paths and state ---------------------------------------------------
    def path(self, host, *parts):
        return os.path.join(self.base, host, *parts)

    @property
    def state_file(self):
        return os.path.join(self.base, 'state.json')

    @classmethod
    def load(cls, base=BASE):
        h = cls(base)
        try:
            with open(h.state_file) as f:
                h.state = json.load(f)
        except OSError:
            raise HostsError('no hosts up (%s missing): run '
                             'scripts/libvirt-hosts up' % h.state_file)
        return h

    def _save(self):
        tmp = self.state_file + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(self.state, f, indent=1)
        os.rename(tmp, self.state_file)

    def name(self, host):
        return NAMES[host]

    def addr(self, host):
        return ADDRS[host]

    def uri(self, host):
        """The libvirt URI of HOST as seen from the other host."""
        return 'qemu+tcp://%s/system' % NAMES[host]

    def libvirtd_pid(self, host):
        return read_pid(self.path(host, 'run', 'libvirtd.pid'))

    def virtlogd_pid(self, host):
        return read_pid(self.path(host, 'run', 'virtlogd.pid'))

    def init_pid(self, host):
        return read_pid(self.path(host, 'run', 'hostinit.pid'))

    # -- commands inside a host -------------------------------------------
    def wrap(self, host):
        """Command prefix running a program in HOST's network, mount and
        UTS namespaces (those of its libvirtd)."""
        pid = self.libvirtd_pid(host)
        if not pid or not alive(pid):
            raise HostsError('libvirtd of host %s is not running' % host)
        return ['nsenter', '-t', str(pid), '-n', '-m', '-u', '--']

    def run(self, host, *argv, check=True, timeout=120, **kw):
        return sh(*(self.wrap(host) + list(argv)), check=check,
                  timeout=timeout, **kw)

    def virsh(self, host, *args, check=True, timeout=120):
        """virsh -c qemu:///system ARGS inside HOST: its output (CHECK), or
        the completed process (not CHECK)."""
        p = self.run(host, 'virsh', '-c', 'qemu:///system', *args,
                     check=False, timeout=timeout)
        if check and p.returncode:
            raise HostsError('virsh (%s) %s: %s' % (
                host, ' '.join(args), (p.stderr or p.stdout).strip()))
        return p.stdout.strip() if check else p

    def log_path(self, host):
        return self.path(host, 'log', 'libvirtd.log')

    def log_offset(self, host):
        try:
            return os.path.getsize(self.log_path(host))
        except OSError:
            return 0

    def qmp_replies(self, host, start=0):
        """What HOST's libvirtd received from its QEMUs since offset START
        of its log (libvirtd.conf logs QMP at info level): a list of
        (time stamp, reply as a dictionary)."""
        out = []
        with open(self.log_path(host), 'rb') as f:
            f.seek(start)
            for line in f:
                if b'QEMU_MONITOR_RECV_REPLY' not in line:
                    continue
                line = line.decode('utf-8', 'replace')
                m = re.search(r'reply=(\{.*\})\s*$', line)
                if not m:
                    continue
                try:
                    out.append((line[:23], json.loads(m.group(1))))
                except ValueError:
                    pass
        return out

    def migrate_uri(self, frm, to):
        """The --migrateuri a migration from FRM to TO needs, or '' when
        libvirt's own (tcp://NAME:PORT, the destination's name and a
        port of its range) goes through the link as it is.  With the
        relay (a delay), QEMU's stream must go to the relay on the
        source's loopback, which forwards it to the destination's
        address on the same port."""
        link = self.state['link']
        if link['mechanism'] != 'relay':
            return ''
        return 'tcp://127.0.0.1:%d' % link['ports'][0]

    # -- up and down -------------------------------------------------------
    def running(self):
        if not os.path.exists(self.state_file):
            return False
        return any(alive(self.libvirtd_pid(h) or 0) for h in NAMES)

    def up(self, rate_mibs=64.0, delay_ms=0.0, log=print):
        if self.running():
            raise HostsError('hosts already up (%s): run scripts/'
                             'libvirt-hosts down first' % self.state_file)
        if os.path.exists(self.base):
            self.down(log=lambda *a: None)
        for tool in ('libvirtd', 'virtlogd', 'virsh', 'nsenter', 'unshare',
                     'ip', 'tc'):
            if not shutil.which(tool):
                raise HostsError('%s not found (scripts/setup-host.sh '
                                 'installs it)' % tool)
        os.makedirs(self.base)
        self.state = {'base': self.base, 'hosts': {}, 'link': None}
        self._save()
        try:
            self._link_up(rate_mibs, delay_ms, log)
            self._user()
            for h in NAMES:
                self._host_up(h, log)
            for h in NAMES:
                self._wait_daemon(h)
            for h, other in (('a', 'b'), ('b', 'a')):
                got = self.virsh(h, '-c', self.uri(other), 'hostname',
                                 timeout=60)
                if got != NAMES[other]:
                    raise HostsError('host %s reaches %s as %r' % (
                        h, self.uri(other), got))
        except BaseException:
            self.down(keep=True, log=lambda *a: None)
            raise
        log('hosts up: %s' % ', '.join(
            '%s (%s, %s, uuid %s)' % (NAMES[h], ADDRS[h], self.uri(h),
                                      self.state['hosts'][h]['uuid'])
            for h in NAMES))
        log('link: %s' % json.dumps(self.state['link']))

    def _link_up(self, rate, delay, log):
        # a delay needs the relay here (no sch_netem in this kernel);
        # without one, the veth with tbf on both ends is the whole link
        if delay > 0:
            mech = 'netem' if have_netem() else 'relay'
        else:
            mech = 'tbf'
        if mech == 'relay':
            build_amlink()
        link = Link(rate, delay, MIG_PORTS, mechanism=mech)
        link.ns = {'a': NAMES['a'], 'b': NAMES['b'],
                   'src': NAMES['a'], 'dst': NAMES['b']}
        self.state['link'] = {'rate-mibs': rate, 'delay-ms': delay,
                              'mechanism': mech, 'ports': MIG_PORTS,
                              'netns': [NAMES['a'], NAMES['b']],
                              'pids': [], 'dir': None}
        self._save()
        # the relays would inherit our standard output: a caller reading
        # it to its end (subprocess.run(capture_output=True)) would wait
        # for them
        sys.stdout.flush()
        saved = os.dup(1)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
        try:
            link.up()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            self.state['link']['pids'] = [p.pid for p in
                                          link.relays + link.probes]
            self.state['link']['dir'] = link.dir
            self._save()
        for p in link.probes:
            p.stdout.close()
        self._link = link

    def measure(self, frm='a'):
        """Probe the link from FRM (round trip, throughput)."""
        link = Link(self.state['link']['rate-mibs'],
                    self.state['link']['delay-ms'],
                    self.state['link']['ports'],
                    mechanism=self.state['link']['mechanism'])
        link.ns = {'a': NAMES['a'], 'b': NAMES['b']}
        return link.measure(frm)

    @staticmethod
    def _user():
        # libvirt 9.0 resolves its built-in default user even when
        # qemu.conf names another one (as scripts/libvirt-up)
        if sh('getent', 'group', 'libvirt-qemu', check=False).returncode:
            sh('groupadd', '-r', 'libvirt-qemu')
        if sh('id', 'libvirt-qemu', check=False).returncode:
            sh('useradd', '-r', '-g', 'libvirt-qemu', '-d',
               '/var/lib/libvirt', '-s', '/usr/sbin/nologin',
               'libvirt-qemu')

    def _host_up(self, h, log):
        u = str(uuid.uuid4())
        self.state['hosts'][h] = {'name': NAMES[h], 'addr': ADDRS[h],
                                  'uri': self.uri(h), 'uuid': u}
        self._save()
        for real, priv in PRIVATE:
            os.makedirs(real, exist_ok=True)
            os.makedirs(self.path(h, priv), exist_ok=True)
        for d in ('lib/qemu', 'log/qemu', 'cache/qemu', 'etc/qemu'):
            os.makedirs(self.path(h, d), exist_ok=True)
        fill = {'addr': ADDRS[h], 'name': NAMES[h], 'port': TCP_PORT,
                'uuid': u, 'pmin': MIG_PORTS[0], 'pmax': MIG_PORTS[-1],
                'filters': LOG_FILTERS}
        for fn, text in (('qemu.conf', QEMU_CONF),
                         ('libvirtd.conf', LIBVIRTD_CONF),
                         ('virtlogd.conf', VIRTLOGD_CONF)):
            with open(self.path(h, 'etc', fn), 'w') as f:
                f.write(text % fill)
        with open(self.path(h, 'hosts'), 'w') as f:
            f.write('127.0.0.1 localhost\n')
            for o in NAMES:
                f.write('%s %s\n' % (ADDRS[o], NAMES[o]))
        with open(self.path(h, 'hostname'), 'w') as f:
            f.write(NAMES[h] + '\n')
        binds = ['mount --bind %s %s' % (self.path(h, priv), real)
                 for real, priv in PRIVATE]
        binds += ['mount --bind %s /etc/hosts' % self.path(h, 'hosts'),
                  'mount --bind %s /etc/hostname' % self.path(h, 'hostname')]
        init = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'hostinit.py')
        ready = self.path(h, 'run', 'hostinit.ready')
        script = ' && '.join(binds + [
            'hostname %s' % NAMES[h],
            'exec %s %s /run/libvirt/hostinit.pid /run/libvirt/hostinit.ready'
            % (sys.executable, init)])
        # ip netns exec: the host's network namespace; unshare: a mount
        # namespace (private propagation: nothing leaks to the machine's)
        # and a UTS namespace, kept alive by hostinit (the host's init, a
        # child subreaper) and the daemons it starts in them
        with open(self.path(h, 'log', 'hostinit.log'), 'w') as errlog:
            proc = subprocess.Popen(
                ['ip', 'netns', 'exec', NAMES[h], 'unshare', '--mount',
                 '--uts', '--propagation', 'private', 'sh', '-ec', script],
                stdin=subprocess.DEVNULL, stdout=errlog, stderr=errlog,
                start_new_session=True)
        deadline = time.monotonic() + 30
        while not os.path.exists(ready):
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(self.path(h, 'log', 'hostinit.log')) as f:
                    raise HostsError('host %s did not start: %s' % (
                        NAMES[h], f.read().strip()))
            time.sleep(0.05)
        log('host %s: init %s, libvirtd %s, virtlogd %s' % (
            NAMES[h], proc.pid, self.libvirtd_pid(h), self.virtlogd_pid(h)))

    def _wait_daemon(self, h, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            p = None
            if self.libvirtd_pid(h):
                p = self.virsh(h, 'hostname', check=False, timeout=30)
                if p.returncode == 0 and p.stdout.strip() == NAMES[h]:
                    return
            if time.monotonic() > deadline:
                raise HostsError('libvirtd of %s does not answer: %s' % (
                    NAMES[h], p.stderr.strip() if p else 'no pid file'))
            time.sleep(0.2)

    def netns_pids(self):
        """Every process in the hosts' network namespaces (daemons, QEMUs,
        the link's relays and probes)."""
        pids = set()
        for ns in NAMES.values():
            p = sh('ip', 'netns', 'pids', ns, check=False)
            pids |= {int(x) for x in p.stdout.split()}
        return pids

    @staticmethod
    def _kill(pids):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + 10
            while (any(alive(p) for p in pids) and
                   time.monotonic() < deadline):
                time.sleep(0.05)
            pids = {p for p in pids if alive(p)}
            if not pids:
                return
        raise HostsError('processes do not end: %s' % sorted(pids))

    def down(self, keep=False, log=print):
        """Destroy the domains, stop the daemons and everything else in
        the namespaces, delete the namespaces; remove BASE unless KEEP."""
        if self.state is None and os.path.exists(self.state_file):
            try:
                with open(self.state_file) as f:
                    self.state = json.load(f)
            except (OSError, ValueError):
                pass
        for h in NAMES:
            pid = self.libvirtd_pid(h)
            if pid and alive(pid):
                p = self.virsh(h, 'list', '--name', check=False, timeout=30)
                for dom in (p.stdout.split() if p.returncode == 0 else []):
                    self.virsh(h, 'destroy', dom, check=False, timeout=30)
        pids = set(self.netns_pids())
        inits = set()
        for h in NAMES:
            for pid in (self.libvirtd_pid(h), self.virtlogd_pid(h)):
                if pid and alive(pid):
                    pids.add(pid)
            pid = self.init_pid(h)
            if pid and alive(pid):
                inits.add(pid)
        link = (self.state or {}).get('link') or {}
        pids |= {p for p in link.get('pids', []) if alive(p)}
        pids -= inits | {os.getpid()}
        # the hosts' inits last, so that they reap the rest
        self._kill(pids)
        self._kill(inits)
        for ns in NAMES.values():
            sh('ip', 'netns', 'del', ns, check=False)
        if link.get('dir'):
            shutil.rmtree(link['dir'], ignore_errors=True)
        if not keep and os.path.exists(self.base):
            shutil.rmtree(self.base, ignore_errors=True)
        log('hosts down%s' % (' (kept %s)' % self.base if keep else ''))


class HostsTestCase(unittest.TestCase):
    """A test class that brings the two hosts up (scripts/libvirt-hosts
    up, RATE_MIBS and DELAY_MS) before its tests and down after them,
    keeping the hosts' logs (libvirtd, virtlogd, QEMU) and the files of
    the hosts' directory that start with KEEP in LOGS after a failed
    run, or after every run with AMHOSTS_KEEP_LOGS=1."""

    RATE_MIBS, DELAY_MS = 64, 5
    LOGS = None
    KEEP = ()

    @classmethod
    def setUpClass(cls):
        cls.t_start = time.monotonic()
        cls.failed = False
        cls.h = None
        p = subprocess.run([SCRIPT, 'up', '--rate', str(cls.RATE_MIBS),
                            '--delay', str(cls.DELAY_MS)],
                           capture_output=True, text=True, timeout=120)
        print(p.stdout, p.stderr)
        if p.returncode:
            subprocess.run([SCRIPT, 'down'], capture_output=True,
                           timeout=120)
            raise AssertionError('libvirt-hosts up: %s' % p.stderr)
        cls.h = Hosts.load()
        print('hosts up in %.1f s' % (time.monotonic() - cls.t_start))

    @classmethod
    def tearDownClass(cls):
        if cls.h and (cls.failed or os.environ.get('AMHOSTS_KEEP_LOGS')):
            shutil.rmtree(cls.LOGS, ignore_errors=True)
            for x in ('a', 'b'):
                shutil.copytree(cls.h.path(x, 'log'),
                                os.path.join(cls.LOGS, x), dirs_exist_ok=True)
            for f in os.listdir(cls.h.base):
                if f.startswith(cls.KEEP):
                    shutil.copy(os.path.join(cls.h.base, f), cls.LOGS)
            print('logs kept in %s' % cls.LOGS)
        p = subprocess.run([SCRIPT, 'down'], capture_output=True, text=True,
                           timeout=120)
        print(p.stdout, p.stderr)
        print('whole test: %.1f s' % (time.monotonic() - cls.t_start))

    def run(self, result=None):
        result = super().run(result)
        if result and (result.failures or result.errors):
            type(self).failed = True
        return result

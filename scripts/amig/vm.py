"""Start QEMU guests and drive them over QMP and their serial console.

Only unix sockets in a private work directory are used: nothing listens on
the network.
"""
# SPDX-License-Identifier: GPL-2.0-or-later

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
QEMU_DIR = os.environ.get('QEMU_DIR', os.path.join(TOP, 'qemu'))
sys.path.insert(0, os.path.join(QEMU_DIR, 'python'))
from qemu.qmp.legacy import QEMUMonitorProtocol  # noqa: E402

BUILD = os.path.join(QEMU_DIR, 'build')
QEMU_BIN = os.environ.get('QEMU_BIN',
                          os.path.join(BUILD, 'qemu-system-x86_64'))
GUEST_DIR = os.environ.get('GUEST_DIR', os.path.join(TOP, 'out', 'guest'))
FIRMWARE_DIRS = [os.path.join(BUILD, 'pc-bios', 'optionrom'),
                 os.path.join(BUILD, 'pc-bios'), '/usr/share/seabios']
KERNEL_APPEND = ('console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off '
                 'tsc=reliable')


class HarnessError(Exception):
    pass


class Console:
    """The guest's serial console, a unix socket chardev of QEMU."""

    def __init__(self, path, log_path):
        self.path = path
        self.buf = b''
        self.cond = threading.Condition()
        self.sock = None
        self.log = open(log_path, 'ab', buffering=0)
        self.closed = False
        self.seq = 0

    def connect(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.path)
                break
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise HarnessError('cannot connect to console %s'
                                       % self.path)
                time.sleep(0.05)
        self.sock = s
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b''
            with self.cond:
                if not data:
                    self.closed = True
                    self.cond.notify_all()
                    return
                self.log.write(data)
                self.buf += data
                self.cond.notify_all()

    def text(self):
        with self.cond:
            return self.buf.decode('utf-8', 'replace')

    def wait_for(self, pattern, timeout, start=0, count=1):
        """Wait until PATTERN matched COUNT times after offset START.

        Returns the list of matches."""
        rx = re.compile(pattern.encode())
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = list(rx.finditer(self.buf, start))
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    tail = self.buf[-600:].decode('utf-8', 'replace')
                    raise HarnessError('timeout waiting for %r on %s; '
                                       'console tail:\n%s'
                                       % (pattern, self.path, tail))
                self.cond.wait(left)

    def mark(self):
        with self.cond:
            return len(self.buf)

    def send(self, line):
        self.sock.sendall(line.encode() + b'\n')

    def run(self, cmd, timeout=60):
        """Run a shell command in the guest; return (status, output)."""
        self.seq += 1
        tag = 'AMDONE%d' % self.seq
        start = self.mark()
        # The marker is split in the command text so that the echo of the
        # command line itself never matches.
        self.send('%s\necho "AM""DONE%d rc=$?"' % (cmd, self.seq))
        m = self.wait_for(tag + r' rc=(\d+)', timeout, start)[0]
        with self.cond:
            out = self.buf[start:m.start()].decode('utf-8', 'replace')
        return int(m.group(1)), out

    def close(self):
        if self.sock:
            try:
                self.sock.close()
            except OSError:
                pass
        self.log.close()


class VM:
    """One QEMU process: source or destination of a migration."""

    def __init__(self, name, workdir, mem_mib=256, incoming=False,
                 accel='tcg', extra_args=None, cpu=None, argv=None,
                 wrap=None):
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.qmp_path = os.path.join(self.dir, 'qmp.sock')
        self.con_path = os.path.join(self.dir, 'console.sock')
        self.mem_mib = mem_mib
        self.incoming = incoming
        self.accel = accel
        self.cpu = cpu
        self.extra_args = extra_args or []
        # a whole command line (e.g. another QEMU's) instead of ours
        self.argv = argv
        # a command prefix, e.g. ['ip', 'netns', 'exec', NS] (it must exec
        # QEMU, so that the process is QEMU's)
        self.wrap = wrap or []
        self.proc = None
        self.qmp = None
        self.events = []
        self.console = Console(self.con_path,
                               os.path.join(self.dir, 'console.log'))

    def args(self):
        if self.argv:
            return self.argv + self.extra_args
        a = [QEMU_BIN, '-name', self.name,
             '-machine', 'pc,accel=%s' % self.accel,
             '-m', str(self.mem_mib), '-smp', '1',
             '-nodefaults', '-display', 'none', '-vga', 'none',
             '-no-reboot',
             '-kernel', os.path.join(GUEST_DIR, 'vmlinuz'),
             '-initrd', os.path.join(GUEST_DIR, 'initramfs.gz'),
             '-append', KERNEL_APPEND,
             '-chardev', 'socket,id=con0,path=%s,server=on,wait=off'
             % self.con_path,
             '-serial', 'chardev:con0',
             '-qmp', 'unix:%s,server=on,wait=off' % self.qmp_path]
        if self.cpu:
            a += ['-cpu', self.cpu]
        for d in FIRMWARE_DIRS:
            if os.path.isdir(d):
                a += ['-L', d]
        if self.incoming:
            a += ['-incoming', 'defer']
        return a + self.extra_args

    def start(self):
        for p in (self.qmp_path, self.con_path):
            if os.path.exists(p):
                os.unlink(p)
        log = open(os.path.join(self.dir, 'qemu.log'), 'wb')
        with log:
            self.proc = subprocess.Popen(self.wrap + self.args(),
                                         stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.qmp_path):
            if self.proc.poll() is not None:
                raise HarnessError('%s: QEMU exited: %s' % (
                    self.name, self.qemu_log()))
            if time.monotonic() > deadline:
                raise HarnessError('%s: no QMP socket' % self.name)
            time.sleep(0.05)
        self.qmp = self._qmp_connect()
        self.console.connect()
        return self

    def _qmp_connect(self, tries=3):
        # Once in about a hundred starts under load (bench-gang, 8 QEMUs
        # on 2 cores), qemu.qmp rejected the first message as not being a
        # greeting.  Not understood yet (see README): retry, but say so.
        for i in range(tries):
            q = QEMUMonitorProtocol(self.qmp_path)
            try:
                q.connect(negotiate=True)
                return q
            except Exception as e:
                print('harness: %s: QMP connect attempt %d failed: %r'
                      % (self.name, i + 1, e), file=sys.stderr)
                try:
                    q.close()
                except Exception:
                    pass
                if i == tries - 1 or self.proc.poll() is not None:
                    raise HarnessError('%s: QMP connect failed: %r; %s'
                                       % (self.name, e, self.qemu_log()))
                time.sleep(0.5)

    def qemu_log(self):
        try:
            with open(os.path.join(self.dir, 'qemu.log'),
                      errors='replace') as f:
                return f.read()[-2000:]
        except OSError:
            return ''

    def cmd(self, name, **args):
        r = self.qmp.cmd_raw(name, args)
        if 'error' in r:
            raise HarnessError('%s: %s: %s' % (self.name, name,
                                               r['error'].get('desc')))
        return r['return']

    def try_cmd(self, name, **args):
        """Run a QMP command; return (result, error description)."""
        r = self.qmp.cmd_raw(name, args)
        if 'error' in r:
            return None, r['error'].get('desc')
        return r['return'], None

    def hmp(self, line):
        return self.cmd('human-monitor-command', **{'command-line': line})

    def wait_boot(self, timeout=180):
        self.console.wait_for(r'AMGUEST READY', timeout)
        # Let the shell come up and make its output predictable.
        self.console.run('stty -echo 2>/dev/null; true', timeout=60)

    def status(self):
        return self.cmd('query-status')['status']

    def stop(self):
        if self.qmp:
            try:
                self.qmp.cmd_raw('quit')
            except Exception:
                pass
            try:
                self.qmp.close()
            except Exception:
                pass
            self.qmp = None
        if self.proc:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.console.close()


def proc_status_kib(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmSize...), in KiB."""
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


def extra_qmp_sock(base, name):
    """Path of a second QMP socket for NAME in BASE (a QMP socket serves
    one client at a time: the coordinator gets one of its own)."""
    return os.path.join(base, name + '.gang.sock')


def extra_qmp_args(base, name):
    return ['-qmp', 'unix:%s,server=on,wait=off' % extra_qmp_sock(base, name)]


class Workdir:
    """A private directory for sockets and logs; kept on failure."""

    def __init__(self, base=None, keep=False):
        # Short paths: unix socket paths are limited to 107 bytes, and a
        # clone may live deep in the file system.
        base = base or os.environ.get('AMIG_RUNDIR', '/tmp/amig')
        os.makedirs(base, exist_ok=True)
        self.path = tempfile.mkdtemp(prefix='%d-' % os.getpid(), dir=base)
        self.keep = keep

    def done(self, ok):
        if ok and not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)


def libvirt_domain_xml(name, console, mem_mib=256, on_poweroff=None,
                       qmp=None):
    """A libvirt domain running the build's QEMU under TCG with the test
    guest: 1 vCPU, MEM_MIB of RAM, the serial port on the unix socket
    CONSOLE, no balloon; SeaBIOS and the built option ROMs through -L.
    QMP: the path of a second QMP socket (a server; libvirt holds the
    first), which the domain keeps when it migrates: its destination
    QEMU listens on the same path on the other host."""
    poweroff = ('  <on_poweroff>%s</on_poweroff>\n' % on_poweroff
                if on_poweroff else '')
    extra = ''
    if qmp:
        extra = ("    <qemu:arg value='-chardev'/><qemu:arg value='socket,"
                 "id=amqmp,path=%s,server=on,wait=off'/>\n"
                 "    <qemu:arg value='-mon'/><qemu:arg value='chardev=amqmp,"
                 "mode=control'/>\n" % qmp)
    return """<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>%d</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s/vmlinuz</kernel>
    <initrd>%s/initramfs.gz</initrd>
    <cmdline>%s</cmdline>
  </os>
  <features><acpi/></features>
%s  <devices>
    <emulator>%s</emulator>
    <serial type='unix'><source mode='bind' path='%s'/>
      <target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
    <qemu:arg value='-L'/><qemu:arg value='%s/pc-bios/optionrom'/>
    <qemu:arg value='-L'/><qemu:arg value='/usr/share/seabios'/>
%s  </qemu:commandline>
</domain>
""" % (name, mem_mib, GUEST_DIR, GUEST_DIR, KERNEL_APPEND, poweroff,
       QEMU_BIN, console, BUILD, extra)

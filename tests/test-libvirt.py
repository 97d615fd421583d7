#!/usr/bin/python3
"""The project's QEMU under a real libvirtd (Debian's 9.0), TCG.

A transient domain whose <emulator> is qemu/build/qemu-system-x86_64:
'virsh qemu-monitor-command' reaches the new QMP commands and the new
HMP commands (--hmp); then the gang coordinator migrates the domain,
talking to it through libvirt's QMP passthrough
(virDomainQemuMonitorCommand), into a plain incoming QEMU, and the
guest's memory is verified there.
"""
# SPDX-License-Identifier: GPL-2.0-or-later
import json
import os
import subprocess
import sys
import time
import unittest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, 'scripts'))
from amig.migrate import start_workloads, verify_workloads  # noqa: E402
from amig.vm import (VM, Console, Workdir,  # noqa: E402
                     libvirt_domain_xml)

URI = 'qemu:///system'
AMGANG = os.path.join(TOP, 'out', 'amgang')
WORKLOADS = ['hold 16', 'read 8']


def virsh(*args, check=True):
    p = subprocess.run(['virsh', '-c', URI] + list(args),
                       capture_output=True, text=True, timeout=120)
    if check and p.returncode:
        raise AssertionError('virsh %s: %s' % (' '.join(args), p.stderr))
    return p.stdout.strip()


def incoming_argv(name, dst):
    """The domain's own QEMU command line, made an incoming one.

    Same devices as libvirt created them (memory backend, USB controller,
    serial...), but the monitor and the serial port on unix sockets of
    DST (libvirt passed them as file descriptors), no -S, and
    -incoming defer."""
    with open('/run/libvirt/qemu/%s.pid' % name) as f:
        pid = int(f.read())
    with open('/proc/%d/cmdline' % pid, 'rb') as f:
        argv = f.read().decode().split('\0')[:-1]
    out = []
    for a in argv:
        if a == '-S':
            continue
        if a.startswith('socket,id=charmonitor,fd='):
            a = 'socket,id=charmonitor,path=%s,server=on,wait=off' % \
                dst.qmp_path
        elif a.startswith('socket,id=charserial0,fd='):
            a = 'socket,id=charserial0,path=%s,server=on,wait=off' % \
                dst.con_path
        elif a.startswith('guest=%s' % name):
            a = 'guest=%s-incoming' % name
        out.append(a)
    return out + ['-incoming', 'defer']


class LibvirtTest(unittest.TestCase):

    def test_libvirt_domain(self):
        subprocess.run([os.path.join(TOP, 'scripts', 'libvirt-up')],
                       check=True, capture_output=True, timeout=120)
        wd = Workdir()
        name = 'amtest-%d' % os.getpid()
        con_path = os.path.join(wd.path, 'console.sock')
        xml = os.path.join(wd.path, 'dom.xml')
        with open(xml, 'w') as f:
            f.write(libvirt_domain_xml(name, con_path))
        dst = None
        con = Console(con_path, os.path.join(wd.path, 'console.log'))
        try:
            virsh('create', xml)
            con.connect()
            # the READY line may come before we connected: poll the shell
            deadline = time.monotonic() + 180
            while True:
                try:
                    con.run('stty -echo 2>/dev/null; true', timeout=5)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise

            def qmp(cmd, **args):
                req = {'execute': cmd}
                if args:
                    req['arguments'] = args
                out = json.loads(virsh('qemu-monitor-command', name,
                                       json.dumps(req)))
                self.assertIn('return', out, out)
                return out['return']

            def hmp(line):
                return virsh('qemu-monitor-command', name, '--hmp', line)

            caps = {c['capability'] for c in
                    qmp('query-migrate-capabilities')}
            self.assertIn('adaptive', caps)
            self.assertIn('Started', hmp('calc_access_rate 50 500 1000'))
            time.sleep(2)
            out = hmp('info access_rate')
            self.assertIn('Status: measured', out)
            self.assertIn('Backend: tcg', out)
            r = qmp('query-access-rate')
            self.assertEqual(r['status'], 'measured')
            self.assertEqual(len(r['samples']), 2)
            self.assertEqual(hmp('migrate_set_parameter adaptive-policy '
                                 'fcm'), '')
            self.assertIn('adaptive-policy: fcm',
                          hmp('info migrate_parameters'))

            # the coordinator drives the domain through libvirt
            vm = type('G', (), {'console': con, 'name': name})
            start_workloads(vm, WORKLOADS)
            gang = os.path.join(wd.path, 'gang.sock')
            dst = VM('dst', wd.path)
            dst.argv = incoming_argv(name, dst)
            dst.extra_args = ['-qmp', 'unix:%s,server=on,wait=off' % gang]
            dst.start()
            out = os.path.join(wd.path, 'gang.json')
            p = subprocess.run(
                [AMGANG, '--window', '3000', '--policy', 'fcm', '--json', out,
                 '--vm',
                 'dom,libvirt:%s,%s,unix:%s' % (
                     name, gang, os.path.join(wd.path, 'mig.sock'))],
                capture_output=True, text=True, errors='replace',
                timeout=300)
            print(p.stdout, p.stderr)
            self.assertEqual(p.returncode, 0)
            with open(out) as f:
                res = json.load(f)
            a = res['vms'][0]['query-migrate']['adaptive']
            self.assertEqual(a['class'], 'read')
            self.assertEqual(a['algorithm'], 'precopy')
            self.assertEqual(a['policy'], 'fcm')
            ok, lines = verify_workloads(dst, len(WORKLOADS))
            self.assertTrue(ok, lines)
            # libvirt still answers for the domain after the migration
            self.assertEqual(qmp('query-migrate')['status'], 'completed')
        finally:
            con.close()
            virsh('destroy', name, check=False)
            if dst:
                dst.stop()
            wd.done(True)


if __name__ == '__main__':
    unittest.main(verbosity=2)

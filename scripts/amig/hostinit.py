"""The init process of one libvirt host of amig/hosts.py.

    python3 hostinit.py PIDFILE READYFILE

Run by scripts/libvirt-hosts inside the host's namespaces, after its
private directories are mounted: makes itself a child subreaper, starts
virtlogd and libvirtd (both daemonize), writes READYFILE, then reaps
whatever is left to it until SIGTERM.

Why: libvirtd daemonizes QEMU, so a QEMU it ends is reparented to the
nearest subreaper, by default PID 1, and libvirtd polls with kill(pid, 0)
(every 200 ms) until the process is gone.  A zombie still answers that
poll: where PID 1 reaps late (as on these machines, whose init is not a
real one), libvirt waited 1-2.5 s for each QEMU it stopped, and every
`virsh migrate` and `virsh destroy` took that much longer.  Here the
host's own init reaps at once, as a real init would.
"""
# SPDX-License-Identifier: GPL-2.0-or-later
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36

DAEMONS = [
    ['virtlogd', '-d', '-f', '/etc/libvirt/virtlogd.conf',
     '-p', '/run/libvirt/virtlogd.pid'],
    ['libvirtd', '-d', '--listen', '-f', '/etc/libvirt/libvirtd.conf',
     '-p', '/run/libvirt/libvirtd.pid'],
]


def main():
    pidfile, ready = sys.argv[1], sys.argv[2]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print('hostinit: prctl(PR_SET_CHILD_SUBREAPER): %s'
              % os.strerror(ctypes.get_errno()), file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    with open(pidfile, 'w') as f:
        f.write('%d\n' % os.getpid())
    for argv in DAEMONS:
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    with open(ready, 'w') as f:
        f.write('ready\n')
    while True:
        try:
            os.wait()
        except ChildProcessError:
            time.sleep(0.2)
        except InterruptedError:
            pass


if __name__ == '__main__':
    sys.exit(main())

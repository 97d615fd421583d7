"""Units of the 'adaptive' member of query-migrate (AdaptiveInfo).

QMP reports rates in bytes per second, amounts in bytes, working sets in
pages (of the target page size) and times in milliseconds.  Before the
schema was made consistent with QEMU's, the same report used MiB/s, MiB,
KiB and seconds under other names; results recorded then (e.g. the
PROFILE.json files under docs/bench/link/) still have them: current()
converts such a record to the names and units of today.
"""
# SPDX-License-Identifier: GPL-2.0-or-later

MiB = 1024 * 1024
# working sets of the adaptive report are counted in target pages
PAGE = 4096

# old name (MiB/s) -> new name (bytes/s)
_RATES = {'read-mbps': 'read-bytes-per-sec',
          'write-mbps': 'write-bytes-per-sec',
          'read-predicted-mbps': 'read-predicted-bytes-per-sec',
          'write-predicted-mbps': 'write-predicted-bytes-per-sec',
          'bandwidth-mbps': 'bandwidth'}
# seconds then, milliseconds now (same names)
_SECONDS = ('predicted-total-time', 'predicted-downtime',
            'predicted-blocktime', 'downtime-error')
_SECONDS_INT = ('total-time', 'downtime')
_WORKING_SETS = ('read-working-set', 'write-working-set')
# AdaptiveInputs: old name -> (new name, factor to the new unit, integer)
_INPUTS = {'bandwidth-mbps': ('bandwidth', MiB, False),
           'switchover-mbps': ('switchover-bandwidth', MiB, False),
           'postcopy-mbps': ('postcopy-bandwidth', MiB, False),
           'remaining-mib': ('remaining', MiB, True),
           'remaining-nonzero-mib': ('remaining-nonzero', MiB, True),
           'state-kib': ('device-state', 1024, True),
           'threshold-mib': ('threshold', MiB, True)}


def is_old(a):
    """Whether the AdaptiveInfo A was recorded before the schema change
    (one of the names only the old schema had is there)."""
    inputs = a.get('inputs') or {}
    return (any(k in a for k in _RATES) or
            any(k in inputs for k in _INPUTS))


def current(a):
    """A, in today's names and units (a copy if it had to be converted;
    A itself if it already was current, or is empty)."""
    if not a or not is_old(a):
        return a
    out = {}
    for k, v in a.items():
        if k in _RATES:
            out[_RATES[k]] = v * MiB
        elif k in _SECONDS:
            out[k] = v * 1000
        elif k in _SECONDS_INT:
            out[k] = int(round(v * 1000))
        elif k in _WORKING_SETS:
            out[k] = int(round(v * MiB / PAGE))
        elif k == 'predicted-faults':
            out[k] = int(round(v))
        elif k == 'inputs':
            out[k] = {}
            for ik, iv in v.items():
                if ik in _INPUTS:
                    name, factor, integer = _INPUTS[ik]
                    iv = iv * factor
                    out[k][name] = int(round(iv)) if integer else iv
                else:
                    out[k][ik] = iv
        elif k == 'estimates':
            out[k] = [{ek: (ev * 1000 if ek in ('total-time', 'downtime',
                                                 'blocktime') else ev)
                       for ek, ev in e.items()} for e in v]
        else:
            out[k] = v
    return out


def mibs(bytes_per_sec):
    """Bytes per second as MiB/s (for people)."""
    return bytes_per_sec / MiB


def pages_mib(pages):
    """A working set in pages as MiB (for people)."""
    return pages * PAGE / MiB

"""Plain-text tables of migration results."""
# SPDX-License-Identifier: GPL-2.0-or-later

from .adaptive import current, mibs, pages_mib

COLUMNS = [
    ('guest', 'guest', '%s'),
    ('algorithm', 'mode', '%s'),
    ('status', 'status', '%s'),
    ('total ms', 'total-time-ms', '%d'),
    ('downtime ms', 'downtime-ms', '%d'),
    ('paused ms', 'stop-to-resume-ms', '%.0f'),
    ('MiB sent', 'bytes', None),
    ('dirty syncs', 'dirty-sync-count', '%d'),
    ('pc requests', 'postcopy-requests', '%d'),
    ('integrity', 'integrity', '%s'),
]


def cell(row, key, fmt):
    v = row.get(key)
    if v is None:
        return '-'
    if key == 'bytes':
        return '%.1f' % (v / 1048576.0)
    return fmt % v


def table(rows, columns=COLUMNS):
    head = [c[0] for c in columns]
    columns = [c for c in columns
               if any(r.get(c[1]) is not None for r in rows) or c[1] != 'guest']
    body = [[cell(r, k, f) for _, k, f in columns] for r in rows]
    w = [max(len(x) for x in col) for col in zip(head, *body)]
    line = '+' + '+'.join('-' * (n + 2) for n in w) + '+'
    out = [line, '| ' + ' | '.join(h.ljust(n) for h, n in zip(head, w))
           + ' |', line]
    for b in body:
        out.append('| ' + ' | '.join(x.rjust(n) for x, n in zip(b, w))
                   + ' |')
    out.append(line)
    return '\n'.join(out)


def decisions(rows):
    """One paragraph per adaptive run: what it measured and why it chose."""
    out = []
    for r in rows:
        a = current(r.get('adaptive'))
        if not a:
            continue
        out.append('%s: %s -> %s (%s)' % (
            r.get('guest', '?'), a.get('class', '-'),
            a.get('algorithm', '-'), a.get('reason', '')))
        if 'read-bytes-per-sec' in a:
            out.append('    rates read %.1f / write %.1f MiB/s, working sets '
                       'read %.1f / write %.1f MiB, memberships r %.2f w %.2f '
                       'm %.2f, window %s' % (
                           mibs(a['read-bytes-per-sec']),
                           mibs(a['write-bytes-per-sec']),
                           pages_mib(a['read-working-set']),
                           pages_mib(a['write-working-set']),
                           a['membership-read'], a['membership-write'],
                           a['membership-mixed'],
                           'warm' if a['warm-window'] else 'measured'))
        for e in a.get('estimates', []):
            if e['converges']:
                # (QMP: milliseconds)
                est = 'total %.2f s' % (e['total-time'] / 1000)
                if 'downtime' in e:
                    est += ', downtime %.3f s' % (e['downtime'] / 1000)
            else:
                est = 'does not converge'
            out.append('    predicted %-8s %-11s %s' % (
                e['algorithm'], e['model'], est))
    return '\n'.join(out)

"""Plain-text tables of migration results."""
# SPDX-License-Identifier: GPL-2.0-or-later

COLUMNS = [
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

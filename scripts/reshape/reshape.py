#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Rebuild the QEMU series from its final tree as new commits, one concern
each: every changed file's -U0 hunks against the base are tagged with the
patch that introduces them (parts of an inserted block may go to
different patches); patch k's tree is the base plus every hunk, or part
of a hunk, tagged <= k.  Writes commits with git plumbing only (the work
tree is not touched)."""
import os, re, subprocess, sys, tempfile

Q = os.environ.get('QEMU_DIR') or os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'qemu')
BASE = 'debian-base'
FINAL = os.environ.get('RESHAPE_FINAL', 'HEAD')
# commit dates: RESHAPE_DATE (seconds since the epoch) plus a minute a
# patch; the default is 2026-11-30 12:00 UTC
DATE = int(os.environ.get('RESHAPE_DATE', '1796040000'))

def git(*a, inp=None, env=None):
    return subprocess.run(['git', '-C', Q] + list(a), input=inp, env=env,
                          capture_output=True, check=True).stdout

def show(rev, path):
    r = subprocess.run(['git', '-C', Q, 'show', '%s:%s' % (rev, path)],
                       capture_output=True)
    return r.stdout.decode() if r.returncode == 0 else None

files = git('diff', '--name-only', '--no-renames', BASE, FINAL).decode().split()

def hunks(path):
    out = git('diff', '-U0', '--no-renames', BASE, FINAL, '--', path).decode()
    hs = []
    for l in out.split('\n'):
        m = re.match(r'@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@', l)
        if m:
            os_, ol, ns, nl = m.groups()
            hs.append([int(os_), 1 if ol is None else int(ol),
                       int(ns), 1 if nl is None else int(nl)])
    return hs

# ---- helpers to find line ranges (1-based, inclusive) in the final file
def find(lines, rx, start=0):
    r = re.compile(rx)
    hits = [i for i in range(start, len(lines)) if r.search(lines[i])]
    if not hits:
        raise SystemExit('no match for %r' % rx)
    return hits[0]

def cfunc(lines, name):
    """A C function with its comment and the blank line before it."""
    s = find(lines, r'^[A-Za-z].*\b%s\(' % re.escape(name))
    while s > 0 and (lines[s - 1].startswith(('/*', ' *', ' */')) or
                     re.match(r'^[A-Za-z].*[,(]$', lines[s - 1])):
        s -= 1
    if s > 0 and lines[s - 1] == '':
        s -= 1
    e = s
    while lines[e] != '}':
        e += 1
    return (s + 1, e + 1)

def line(lines, rx):
    i = find(lines, rx)
    return (i + 1, i + 1)

def span(lines, rx1, rx2):
    i = find(lines, rx1)
    j = find(lines, rx2, i)
    return (i + 1, j + 1)

def qdef(lines, name):
    """A QAPI definition: from its '##' to the blank line after it."""
    i = find(lines, r'^# @%s:$' % re.escape(name))
    s = i - 1
    assert lines[s] == '##', name
    e = find(lines, r'^\s*$', find(lines, r"^\{ '", i))
    return (s + 1, e + 1)

def tags_for(lines, spec):
    """Tag of each final line (1-based index), from the spec."""
    default, rules = spec
    tag = [default] * (len(lines) + 1)
    for rng, t in rules(lines) if rules else []:
        for i in range(rng[0], rng[1] + 1):
            tag[i] = t
    return tag

def version(path, k, spec, base_text, final_lines, hs, tag):
    base = base_text.split('\n') if base_text is not None else ['']
    out = list(base)
    # apply from the bottom so that base line numbers stay valid
    for os_, ol, ns, nl in sorted(hs, key=lambda h: -h[0]):
        new = final_lines[ns - 1:ns - 1 + nl] if nl else ['']
        ntags = [tag[i] for i in range(ns, ns + nl)]
        if ol == 0:
            inc = [t <= k for t in ntags]
            blank = [l.strip() == '' for l in new]
            # a run of blank lines goes with the next non-blank line of
            # the hunk; trailing blanks, with whatever the hunk keeps
            any_inc = any(i for i, b in zip(inc, blank) if not b)
            nxt = None
            for j in range(len(new) - 1, -1, -1):
                if not blank[j]:
                    nxt = inc[j]
                else:
                    inc[j] = any_inc if nxt is None else nxt
            keep = [l for l, i in zip(new, inc) if i]
            # -U0: an insertion at old line os_ goes after it
            out[os_:os_] = keep
        else:
            ts = set(ntags) or {spec[0]}
            if len(ts) != 1:
                raise SystemExit('%s: replacement hunk at %d has tags %s'
                                 % (path, os_, ts))
            if ts.pop() <= k:
                out[os_ - 1:os_ - 1 + ol] = new
    return out

def build(spec_mod, msgs, transforms, npatches):
    env = dict(os.environ)
    fd, idx = tempfile.mkstemp()
    os.close(fd)
    os.unlink(idx)     # git makes the index file itself
    env['GIT_INDEX_FILE'] = idx
    parent = git('rev-parse', BASE).decode().strip()
    data = {}
    for f in files:
        if f not in spec_mod:
            raise SystemExit('no spec for ' + f)
        ft = show(FINAL, f)
        fl = ft.split('\n')
        mode = git('ls-tree', FINAL, '--', f).decode().split()[0]
        data[f] = (show(BASE, f), fl, hunks(f),
                   tags_for(fl, spec_mod[f]), mode)
    commits = []
    for k in range(1, npatches + 1):
        git('read-tree', parent, env=env)
        for f in files:
            bt, fl, hs, tag, mode = data[f]
            lines = version(f, k, spec_mod[f], bt, fl, hs, tag)
            text = '\n'.join(lines)
            if f in transforms:
                text = transforms[f](k, text)
            if k < npatches:
                lint(f, k, text, bt, '\n'.join(fl))
            if bt is None and text.strip() == '':
                continue        # new file, nothing yet
            blob = git('hash-object', '-w', '--stdin', inp=text.encode()).decode().strip()
            git('update-index', '--add', '--cacheinfo', '%s,%s,%s' % (mode, blob, f), env=env)
        tree = git('write-tree', env=env).decode().strip()
        if commits and tree == git('rev-parse', commits[-1] + '^{tree}').decode().strip():
            raise SystemExit('patch %d is empty' % k)
        msg = msgs[k]
        c = git('commit-tree', tree, '-p', commits[-1] if commits else parent,
                inp=msg.encode(), env=dict(env,
                # fixed dates: the same series gives the same commits
                GIT_AUTHOR_DATE='%s +0000' % (DATE + k * 60),
                GIT_COMMITTER_DATE='%s +0000' % (DATE + k * 60),
                GIT_AUTHOR_NAME='Adaptive Migration Build',
                GIT_AUTHOR_EMAIL='build@adaptive-migration.invalid',
                GIT_COMMITTER_NAME='Adaptive Migration Build',
                GIT_COMMITTER_EMAIL='build@adaptive-migration.invalid')).decode().strip()
        commits.append(c)
        print(k, c[:10], msg.split('\n')[0])
    os.unlink(idx)
    final_tree = git('rev-parse', FINAL + '^{tree}').decode().strip()
    last_tree = git('rev-parse', commits[-1] + '^{tree}').decode().strip()
    print('final tree matches' if final_tree == last_tree else 'FINAL TREE DIFFERS')
    return commits[-1]


def lint(f, k, text, bt, ft):
    L = text.split('\n')
    B = set()
    for t in (bt, ft):
        if t is not None:
            bl = t.split('\n')
            B |= {(bl[i], bl[i + 1]) for i in range(len(bl) - 1)}
    for i in range(len(L) - 1):
        a, b = L[i], L[i + 1]
        if (a, b) in B:
            continue
        bad = None
        if a.strip() == '' and b.strip() == '' and i + 2 < len(L):
            bad = 'double blank'
        elif f.endswith(('.c', '.h')) and a == '}' and b and b[0].isalpha():
            bad = 'no blank after }'
        elif f.endswith('.json') and a.rstrip().endswith('}') and b == '##':
            bad = 'no blank before ##'
        if bad:
            print('LINT patch %d %s:%d: %s' % (k, f, i + 1, bad))

# The QEMU series: which patch each hunk of the final tree goes to.
# SPDX-License-Identifier: GPL-2.0-or-later
import re, sys
sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.abspath(__file__)))
from reshape import cfunc, line, span, qdef, find

(FIX, WIN, CORE, TCG, QMP, HMP, MEM, DLOG, HDR, KVM, DAMON, BOOT, ARTEST,
 ENGINE, CAP, PARAMS, DECIDE, REPORT, HMPINFO, DOCS, QTESTS) = range(1, 22)
N = 21

def R(*pairs):
    return lambda lines: [(f(lines), t) for f, t in pairs]

def access_rate_c(l):
    return [(line(l, r'qapi-commands-migration.h'), QMP),
            (line(l, r'"qobject/qdict.h"'), HMP),
            (line(l, r'"monitor/hmp.h"'), HMP),
            (line(l, r'"monitor/monitor.h"'), HMP),
            (cfunc(l, 'qmp_calc_access_rate'), QMP),
            (cfunc(l, 'qmp_cancel_access_rate'), QMP),
            (cfunc(l, 'qmp_query_access_rate'), QMP),
            (cfunc(l, 'hmp_calc_access_rate'), HMP),
            (cfunc(l, 'hmp_cancel_access_rate'), HMP),
            (cfunc(l, 'hmp_info_access_rate'), HMP),
            # the damon backend's hooks: its reason to refuse, its report
            (span(l, r'^        if \(backends\[kind\] && backends\[kind\]->check\)',
                  r'^        \}$'), DAMON),
            (span(l, r'^        if \(ar.backend->fill_info\)', r'^        \}$'), DAMON),
            (span(l, r'^    if \(info->damon\) \{', r'^    \}$'), DAMON)]

def access_rate_h(l):
    c = find(l, r'Optional: the same, with the reason when not')
    f = find(l, r'Optional: add what is particular to the backend')
    return [((c, c + 4), DAMON),        # from the '/*' line to the member
            ((f + 1, f + 2), DAMON)]

def trace(l):
    a = find(l, r'^# access-rate-dirty-log.c')
    d = find(l, r'^# access-rate-damon.c')
    b = find(l, r'^# adaptive.c')
    return [((a, a + 2), DLOG),
            ((d, d + 3), DAMON),
            ((b, b + 3), DECIDE)]

def migration_c(l):
    return [(span(l, r'then that should be the real downtime already.  A post-copy',
                  r'the value, or the whole post-copy phase would count'), FIX),
            (line(l, r'^    if \(!s->downtime_set\) \{'), FIX),
            (line(l, r'^        s->downtime_set = true;'), FIX),
            (line(l, r'^    s->downtime_set = false;'), FIX),
(line(l, r'^#include "adaptive.h"'), DECIDE),
            (line(l, r'info->adaptive = migration_adaptive_query'), REPORT),
            (line(l, r'migration_adaptive_reset\(s\)'), DECIDE),
            (span(l, r'if \(migrate_adaptive\(\) && !migrate_postcopy_ram',
                  r'^$'), CAP),
            (line(l, r'qapi_free_AdaptivePeerList'), PARAMS),
            (line(l, r'qapi_free_AdaptiveInfo\(ms->adaptive_info'), DECIDE)]

def migration_h(l):
    return [(span(l, r'@downtime was measured', r'bool downtime_set;'), FIX),
(span(l, r'the decision of the .adaptive. capability',
                  r'AdaptiveInfo \*adaptive_info'), DECIDE)]

def options_c(l):
    return [(line(l, r'DEFINE_PROP_MIG_CAP\("adaptive"'), CAP),
            (cfunc(l, 'migrate_adaptive'), CAP)]

def hmp_cmds(l):
    return [(line(l, r'#include "exec/target_page.h"'), HMPINFO),
            (cfunc(l, 'hmp_info_adaptive'), HMPINFO),
            (span(l, r'if \(info->adaptive\) \{', r'^    \}$'), HMPINFO)]

def adaptive_c(l):
    return [(cfunc(l, 'migration_adaptive_query'), REPORT)]

def adaptive_h(l):
    i = find(l, r'migration_adaptive_query')
    s = i
    while l[s - 1].startswith(('/*', ' *', ' */')):
        s -= 1
    return [((s + 1, i + 2), REPORT)]   # with the blank line after

def qapi(l):
    r = []
    for name in ('AdaptivePolicy', 'AdaptiveObjective', 'AdaptiveStart',
                 'AdaptivePeer'):
        r.append((qdef(l, name), PARAMS))
    for name in ('AdaptiveVmClass', 'AdaptiveAlgorithm', 'AdaptivePhase',
                 'AdaptiveTrigger', 'AdaptiveModel', 'AdaptiveClassifier',
                 'AdaptiveEstimate', 'AdaptiveInputs', 'AdaptiveInfo'):
        r.append((qdef(l, name), DECIDE))
    # MigrationInfo.adaptive
    a = find(l, r'^# @adaptive: the decision of the @adaptive')
    u = find(l, r'^# @unstable: Member @adaptive is experimental', a)
    r.append(((a, u + 2), REPORT))      # with the '#' lines around
    i = find(l, r"'\*adaptive': \{ 'type': 'AdaptiveInfo',")
    r.append(((i, i + 2), REPORT))      # the line before ends the member
    # the capability
    r.append((span(l, r'^# @adaptive: Measure the guest', r'^#     \(since 10.1\)'), CAP))
    r.append((span(l, r'^# @unstable: Members @x-colo, @x-ignore-shared and @adaptive',
                   r'^#     experimental.'), CAP))
    i = find(l, r"'dirty-limit', 'mapped-ram',$")
    r.append(((i + 1, i + 2), CAP))
    # AccessRate*: core, the backends' values, the commands
    for name in ('AccessRateBackend', 'AccessRateStatus', 'AccessRateSample',
                 'AccessRateWorkingSetPoint', 'AccessRateInfo'):
        r.append((qdef(l, name), CORE))
    k = find(l, r'^# @kvm: the accessed and dirty bits')
    m = find(l, r'^# @damon: for KVM on host kernels without')
    d = find(l, r'^# @dirty-log: the dirty logging')
    r.append(((k, m), KVM))             # @kvm doc and the blank line after
    r.append(((m + 1, d), DAMON))
    r.append((qdef(l, 'AccessRateDamonInfo'), DAMON))
    i = find(l, r'^# @damon: how the damon backend samples')
    r.append(((i + 1, i + 2), DAMON))   # with the '#' line after
    r.append((line(l, r"^            '\*damon': 'AccessRateDamonInfo' \} \}"), DAMON))
    e = find(l, r'^# Since: 10.1', d)
    r.append(((d + 1, e - 1), DLOG))
    for name in ('calc-access-rate', 'cancel-access-rate', 'query-access-rate'):
        r.append((qdef(l, name), QMP))
    return r

def qapi_transform(k, text):
    if k < DAMON:
        text = text.replace("'data': ['tcg', 'kvm', 'damon', 'dirty-log'] }",
                            "'data': ['tcg', 'kvm', 'dirty-log'] }")
        text = text.replace("'*working-set-curve': ['AccessRateWorkingSetPoint'],\n",
                            "'*working-set-curve': ['AccessRateWorkingSetPoint'] } }\n")
    if k < KVM:
        text = text.replace("'data': ['tcg', 'kvm', 'dirty-log'] }",
                            "'data': ['tcg', 'dirty-log'] }")
    if k < DLOG:
        text = text.replace("'data': ['tcg', 'dirty-log'] }",
                            "'data': ['tcg'] }")
    return text

def meson_transform(k, text):
    old = ("                if_true: files('access-rate.c', 'access-rate-dirty-log.c',\n"
           "                               'adaptive.c', 'ram.c', 'target.c'))")
    if old not in text:
        return text
    names = ['access-rate.c']
    if k >= DLOG:
        names.append('access-rate-dirty-log.c')
    if k >= DECIDE:
        names.append('adaptive.c')
    names += ['ram.c', 'target.c']
    q = ["'%s'" % n for n in names]
    first = '                if_true: files(' + q[0]
    rest = q[1:]
    out, cur = [], first
    for x in rest:
        if len(cur) + 2 + len(x) + 2 > 80:
            out.append(cur + ',')
            cur = '                               ' + x
        else:
            cur += ', ' + x
    out.append(cur + '))')
    return text.replace(old, '\n'.join(out))

def framework_h(l):
    return [(span(l, r'^    /\* TCG even where KVM is available', r'^    bool tcg_only;'), QTESTS)]

def framework_c(l):
    i = find(l, r'^    bootpath = bootfile_create\(arch, tmpfs, args->suspend_me,')
    return [((i + 1, i + 2), BOOT)]

def maintainers(l):
    files = {'accel/kvm/kvm-access-rate.c': KVM,
             'accel/tcg/access-track.c': TCG,
             'docs/devel/migration/adaptive.rst': DOCS,
             'include/exec/tcg-access-track.h': TCG,
             'include/migration/access-window.h': WIN,
             'include/migration/adaptive-model.h': ENGINE,
             'include/system/access-rate.h': CORE,
             'migration/access-rate-damon.c': DAMON,
             'migration/access-rate-dirty-log.c': DLOG,
             'migration/access-rate-dirty-log.h': DLOG,
             'migration/access-rate.c': CORE,
             'migration/access-window.c': WIN,
             'migration/adaptive-model.c': ENGINE,
             'migration/adaptive.c': DECIDE,
             'migration/adaptive.h': DECIDE,
             'tests/qtest/access-rate-test.c': ARTEST,
             'tests/qtest/migration/adaptive-tests.c': QTESTS,
             'tests/unit/test-access-window.c': WIN,
             'tests/unit/test-adaptive-model.c': ENGINE}
    return [(line(l, '^F: %s$' % re.escape(f)), t) for f, t in files.items()]

SPEC = {
    'MAINTAINERS': (WIN, maintainers),
    'accel/kvm/kvm-access-rate.c': (KVM, None),
    'accel/kvm/kvm-all.c': (KVM, None),
    'accel/kvm/meson.build': (KVM, None),
    'accel/tcg/access-track.c': (TCG, None),
    'accel/tcg/cpu-exec.c': (TCG, None),
    'accel/tcg/cputlb.c': (TCG, None),
    'accel/tcg/meson.build': (TCG, None),
    'docs/devel/migration/adaptive.rst': (DOCS, None),
    'docs/devel/migration/features.rst': (DOCS, None),
    'hmp-commands-info.hx': (HMP, None),
    'hmp-commands.hx': (HMP, None),
    'hw/virtio/vhost.c': (MEM, None),
    'include/exec/memory.h': (MEM, None),
    'include/exec/ram_addr.h': (MEM, None),
    'include/exec/ramlist.h': (MEM, None),
    'include/exec/tcg-access-track.h': (TCG, None),
    'include/hw/core/cpu.h': (TCG, None),
    'include/migration/access-window.h': (WIN, None),
    'include/migration/adaptive-model.h': (ENGINE, None),
    'include/monitor/hmp.h': (HMP, None),
    'include/system/access-rate.h': (CORE, access_rate_h),
    'include/system/kvm_int.h': (KVM, None),
    'linux-headers/linux/kvm.h': (HDR, None),
    'migration/access-rate-damon.c': (DAMON, None),
    'migration/access-rate-dirty-log.c': (DLOG, None),
    'migration/access-rate-dirty-log.h': (DLOG, None),
    'migration/access-rate.c': (CORE, access_rate_c),
    'migration/access-window.c': (WIN, None),
    'migration/adaptive-model.c': (ENGINE, None),
    'migration/adaptive.c': (DECIDE, adaptive_c),
    'migration/adaptive.h': (DECIDE, adaptive_h),
    'migration/meson.build': (CORE, R((lambda l: line(l, r"^  'adaptive-model.c',"), ENGINE),
                                      (lambda l: line(l, r"^  'access-window.c',"), WIN),
                                      (lambda l: span(l, r"^if host_os == 'linux'$", r'^endif$'), DAMON))),
    'migration/migration-hmp-cmds.c': (PARAMS, hmp_cmds),
    'migration/migration.c': (DECIDE, migration_c),
    'migration/migration.h': (DECIDE, migration_h),
    'migration/options.c': (PARAMS, options_c),
    'migration/options.h': (CAP, None),
    'migration/trace-events': (CORE, trace),
    'qapi/migration.json': (PARAMS, qapi),
    'system/memory.c': (MEM, None),
    'tests/qtest/access-rate-test.c': (ARTEST, None),
    'tests/qtest/meson.build': (ARTEST, R((lambda l: line(l, r"'migration/adaptive-tests.c',"), QTESTS))),
    'tests/qtest/migration-test.c': (QTESTS, None),
    'tests/qtest/migration/adaptive-tests.c': (QTESTS, None),
    'tests/qtest/migration/bootfile.c': (BOOT, None),
    'tests/qtest/migration/bootfile.h': (BOOT, None),
    'tests/qtest/migration/framework.c': (QTESTS, framework_c),
    'tests/qtest/migration/framework.h': (BOOT, R((lambda l: span(l, r'^    /\* TCG even where KVM is available', r'^    bool tcg_only;'), QTESTS),
                                                  (lambda l: (find(l, r'^    bool postcopy_adaptive;') - 3, find(l, r'^    bool postcopy_adaptive;') + 1), QTESTS),
                                                  (lambda l: line(l, r'migration_test_add_adaptive'), QTESTS))),
    'tests/qtest/migration/precopy-tests.c': (BOOT, None),
    'tests/unit/test-access-window.c': (WIN, None),
    'tests/unit/test-adaptive-model.c': (ENGINE, None),
    'tests/unit/meson.build': (WIN, R((lambda l: line(l, r"'test-adaptive-model'"), ENGINE),)),
}
TRANSFORMS = {'qapi/migration.json': qapi_transform,
              'migration/meson.build': meson_transform}

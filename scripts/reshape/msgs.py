# The QEMU series: commit messages, by patch number (see spec.py).
# SPDX-License-Identifier: GPL-2.0-or-later
SOB = "\nSigned-off-by: Adaptive Migration Build <build@adaptive-migration.invalid>\n"
M = {}
M[1] = """migration: do not take a 0 ms post-copy downtime for an unset one

postcopy_start() measures the downtime of a post-copy migration and
migration_downtime_end() keeps it at completion only if s->downtime is
non-zero.  A switch-over that takes less than a millisecond (seen with a
small guest over a local socket) leaves 0 there, and completion then
reports the whole time since the VM stopped, i.e. the entire post-copy
phase, as downtime: query-migrate said 2150 ms for a guest that was
paused for 14 ms (source STOP to destination RESUME events).

Record that the downtime was measured in a flag instead of testing its
value.

Fixes: e22ffad03a32 ("migration: Add migration_downtime_start|end() helpers")
"""
M[2] = """migration: add access-rate window and smoothing arithmetic

A tracker of the guest's memory reads and writes (next patches) keeps,
for each sample period, the pages the guest read and wrote and the
distinct pages behind them, over a window of the last T/P periods.  A
migration that chooses between pre-copy and post-copy needs from it the
window means, an exponentially smoothed prediction of the next period,

  S = sum_{i=1..n} alpha (1 - alpha)^(n - i) x_i + (1 - alpha)^n S_0

with S_0 the window mean, and the working-set curve W(t): the distinct
pages read, written and touched within the last t of the window.

Keep this arithmetic pure, apart from the tracker thread, so that it can
be unit-tested.  The working sets cost O(pages), whatever the window:
each page keeps the sample period in which it was last read and last
written (two 16-bit sequence numbers, 4 bytes a page), and one pass at
the end of a period gives the histogram of ages, hence W(k) for every
k.  For a 64 GiB guest and a 600-period window that is 64 MiB, where a
bitmap per period would take 2.4 GiB.  Entries older than the window
are cleared at each pass, so the cyclic sequence cannot alias; the pass
runs in steps so that its caller can stop between them.

The unit tests cover the means, the smoothing, the curve, the sliding
window and the wrap of the sequence.
"""
M[3] = """migration: add the access-rate tracker

Choosing between pre-copy and post-copy for a VM needs to know how fast
the guest reads and writes its memory.  calc-dirty-rate measures writes
only, over one interval, with no series.

Add a tracker thread that every scan period S (default 50 ms) asks a
backend which guest RAM pages were accessed-and-not-written (read) and
which were written since the previous scan, sums the scans over each
sample period P (default 1 s), and keeps the last T/P samples (T
default 10 s): per-period page counts, the distinct pages behind them,
window means, smoothed predictions, distinct bytes per second over each
period (independent of S) and the working-set curve.

Backends register themselves by kind (AccessRateBackend; the first,
tcg, follows in the next patch); the tracker picks the first usable
with the running accelerator, or the one asked for, and reports it.  A
backend that cannot see reads reports none, and the tracker then omits
every read figure instead of reporting zero.

Nothing here may make the monitor or the migration thread wait for
work proportional to the guest's size:
- the thread's per-page passes run under a lock of their own
  (scan_lock), and publish the sample and the curve under the lock the
  queries take, in O(window) time;
- the first collect of a measurement, which resets what the backend
  recorded, runs in the thread, not in start(), which runs with the
  BQL held;
- a stop waits for one collect or one step of the period's pass;
- where a scan takes longer than the scan period, or a backend holds
  the BQL for more than a quarter of it, the scan period is stretched,
  at most to the sample period, and reported
  (effective-scan-period-ms, scan-time-max-us, bql-hold-max-us, trace
  event access_rate_stretch) instead of falling behind.

A migration may own a measurement (access_rate_start_for_migration(),
..._cancel_for_migration(), ..._end_period_for_migration() for a
decision that cannot wait for the period's end); the monitor's commands
(next patches) are then refused instead of restarting or stopping it.
A control mutex serialises starts and stops; the tracker thread never
takes it.  The scan/sample/window range check is exported, so that
migration parameters feeding the tracker follow the same rules.
"""
M[4] = """accel/tcg: add the tcg backend of the access-rate tracker

Under TCG there are no hardware accessed/dirty bits to read, but the
softmmu TLB gives the same information: a page is accessed in a scan
interval iff it is installed in some vCPU's TLB after the TLBs were
flushed at the start of the interval, and written iff a write goes
through such an entry.

While the tracker runs, mark every RAM page accessed when it is
installed in a TLB, and make the write side of the entry take the
existing TLB_NOTDIRTY slow path until the page is marked written in this
interval; notdirty_write() marks it.  Each scan swaps the bitmaps out
and flushes the TLBs of the running vCPUs asynchronously.  A halted or
stopped vCPU is not woken for that (at 20 scans a second an idle guest's
vCPUs would wake 20 times a second more): each scan bumps a generation,
and a vCPU whose TLB is older than it flushes when it next enters
cpu_exec(); a barrier on both sides makes sure that a vCPU leaving the
halted state either was seen running or sees the new generation.  The
walk of the CPU list runs under the CPU list lock, since the tracker
thread does not hold the BQL and a vCPU may be unplugged meanwhile.

The backend does not touch the dirty memory bitmaps, so it cannot take
dirty pages away from a running migration, and the cost when the
tracker is off is one pointer test per TLB fill and per notdirty write.
Measured with a Linux guest under TCG: an idle guest's vCPUs woke 14.5
times a second more each with the tracker on before the generation
scheme, none after; a memory-bound guest keeps 0.98-1.02 of its
throughput with the tracker on.
"""
M[5] = """migration: add QMP commands for the access-rate tracker

calc-access-rate (S, P, T with range checks, continuous mode, backend),
query-access-rate and cancel-access-rate, marked unstable.

While a migration owns the measurement, calc-access-rate and
cancel-access-rate fail with an error saying why, as calc-dirty-rate
does while a measurement runs, instead of silently restarting or
stopping what the migration is deciding on.
"""
M[6] = """migration: add HMP commands for the access-rate tracker

calc_access_rate, cancel_access_rate and info access_rate, the last
printing the samples, the window's rates and predictions, the distinct
bytes per second and the working-set curve, and what the scans cost.
"""
M[7] = """memory: a dirty memory client for the access-rate tracker

The access-rate tracker's dirty-log backend (next patch) takes writes
from dirty logging, and must not change what a migration running beside
it sees.  Hence:

- a GLOBAL_DIRTY_ACCESS_RATE flag of its own for
  memory_global_dirty_log_start/stop, as calc-dirty-rate has
  GLOBAL_DIRTY_DIRTY_RATE: the flags count the users, and the logging
  stays on until the last one stops;

- a dirty memory client of its own, DIRTY_MEMORY_ACCESS_RATE, that only
  the tracker clears.  Taking the bits of DIRTY_MEMORY_MIGRATION would
  take them from migration, which would then not resend those pages;
  VGA and CODE have users of their own; and a bitmap filled beside the
  clients by hooks would not work under TCG, where a write reaches the
  notdirty slow path only while one of the page's clients is clean, so
  the tracker's bit must be one of those that
  cpu_physical_memory_is_clean() checks and whose clearing resets the
  TLBs.  The flag turns the client on wherever global dirty logging
  turns on DIRTY_MEMORY_MIGRATION (KVM's dirty log sync, device writes
  through memory_region_get_dirty_log_mask()); TCG's notdirty writes set
  it with the others; vhost handles it as it handles migration's.

Costs while the tracker is off: one bit per guest page, one more bitmap
test per TLB fill of a writable RAM page and one more bit set per
notdirty write under TCG, and a flag test per word in KVM's sync.
"""
M[8] = """migration/access-rate: add the dirty-log backend

On a KVM host without accessed/dirty page counts the tracker has no
backend.  What every accelerator that migrates does have is dirty
logging, so add a fallback backend, 'dirty-log', that takes the write
rate from it (the client of the previous patch): KVM's dirty log under
KVM, QEMU's own tracking of writes under TCG (which makes it testable
without KVM).  It cannot see reads, so it says so and the tracker
reports the read rate as unavailable instead of zero.  It is last in
AccessRateBackend, which the tracker walks in order.

Each scan moves the client's bits into the tracker's bitmap with an
atomic exchange, and under TCG then resets the TLB entries of the
blocks it took bits from, as migration's sync does with its own.

The BQL: collect and stop run in the tracker thread, which must not take
it.  Taking the client's bits needs no BQL.  Fetching KVM's dirty log
does (the dirty ring kicks the vCPUs), and so do turning dirty logging
off and, under TCG, resetting the TLB entries after taking bits (vCPU
hot-unplug frees TLBs under the BQL).  So this backend queues all three
in a bottom half in the main loop and never waits for it: each scan
schedules the fetch for the next scan, so under KVM the figures lag one
scan period; stop schedules turning the logging off, which the bottom
half skips when a new measurement started meanwhile.  The time the
bottom half holds the BQL is reported to the tracker.

start must not drop the BQL, which a dirty-ring fetch does in
run_on_cpu(): with a monitor command waiting for the tracker's control
mutex under the BQL, that would deadlock.  start therefore only turns
the logging on; the bottom half does the first fetch and drops what it
finds (the client's bits are all set when RAM is allocated, and
KVM_DIRTY_LOG_INITIALLY_SET reports every page at first).

After each fetch the bottom half re-protects the pages it reported
(memory_region_clear_dirty_bitmap, for KVM's manual dirty log protect),
as calc-dirty-rate does; that only covers pages the fetch has just put
into DIRTY_MEMORY_MIGRATION too, and migration takes its bits under the
BQL and reads a page after, so it loses no write.  While another user
of dirty logging runs (migration, calc-dirty-rate, the dirty limit) the
bottom half does not fetch: their fetches fill this client too, and
extra fetches would inflate calc-dirty-rate's and the dirty limit's
counts and re-queue pages that migration has just sent.

Tested under TCG with a Linux guest: a guest writing 8192 pages in a
loop shows a write working set of 8192 + ~150 pages and no read
figures; calc-dirty-rate and the tracker each keep the logging on for
the other; a pre-copy migration with the tracker running completes and
the guest's memory verifies on the destination.  Under KVM it is tested
in a nested guest.
"""
M[9] = """linux-headers: add KVM_GET_ACCESS_COUNTS and KVM_CAP_ACCESS_COUNTS

The access-rate tracker's kvm backend needs the uapi of a proposed KVM
interface, "KVM: x86: Add KVM_GET_ACCESS_COUNTS to sample A/D bits of a
memslot" and "KVM: x86/mmu: Let access-counting VMs have dirty bits set
only by writes", which is not upstream.  These are the lines
scripts/update-linux-headers.sh brings in from a 6.12 tree with that
series applied; the rest of the file stays at QEMU 10.0's header base,
which is newer than 6.12 and must not be downgraded.

The capability number (1000) and the ioctl number (0xdf) are
provisional, chosen clear of what upstream and the series posted on the
list use (capabilities 239-247, ioctls 0xd6-0xd9); they change when the
KVM series is merged.
"""
M[10] = """accel/kvm: add the kvm backend of the access-rate tracker

Under KVM the tracker could only use the dirty-log backend, which sees
writes and not reads.  With KVM_GET_ACCESS_COUNTS (previous patch), KVM
reports the accessed and dirty bits of the EPT/NPT leaf entries of a
memslot as bitmaps and resets them.

Add a 'kvm' backend that, at every scan, asks KVM for each memslot's
read and written bitmaps with KVM_ACCESS_COUNTS_RESET (in calls of at
most 2^26 pages, as KVM does) and maps them to ram_addr_t pages through
the slot's ram_start_offset.  A page that two slots map (the SMM address
space) and that is read through one and written through the other
counts as written.  start() only checks, on one page, that KVM answers:
it runs with the BQL held, and the tracker thread's first collect
resets the bits of all guest RAM.

kvm_for_each_memslot() walks the slots under the slots lock; the
backend only copies them there and runs the ioctls after, since vCPU
threads (dirty ring full) and memory region commits wait for that lock
and a walk of all guest RAM every scan must not stall them.  A slot
that changes meanwhile costs one scan of accuracy: ENOENT is skipped.

The backend is usable when KVM_CHECK_EXTENSION(KVM_CAP_ACCESS_COUNTS)
reports the reset flag and host and target pages have the same size,
and comes before dirty-log in the enum, so auto-selection prefers it.
Migration is unaffected: KVM leaves the dirty bits of slots with dirty
logging alone and never touches the dirty log; in those slots a page
counts as written until dirty logging resets it, which the schema
documents.

Where KVM offers KVM_ACCESS_COUNTS_DIRTY_ON_WRITE (KVM_ENABLE_CAP of the
capability), start() turns it on: KVM otherwise maps a page that the
guest only reads writable and dirty when it maps it again (after KSM,
compaction or NUMA balancing zapped it), and it would count as written.
It stays on after the measurement.
"""
M[11] = """migration/access-rate: add the damon backend

On a KVM host whose kernel has no KVM_CAP_ACCESS_COUNTS (a stock
distribution kernel) the tracker falls back to the dirty-log backend:
writes only, the read rate unavailable, and the adaptive decision rests
on half the data.  Linux's DAMON (CONFIG_DAMON_VADDR, CONFIG_DAMON_SYSFS,
in Debian's and other distributions' kernels) monitors a process's
virtual memory by sampling accessed bits, and reaches KVM's stage-2
accessed bits through the MMU notifiers (clear_young, test_young).

Add a 'damon' backend, between kvm and dirty-log in the enum, so that
the default choice under KVM is kvm, then damon, then dirty-log.  Its
start() adds a kdamond through DAMON's sysfs interface: one context with
the vaddr operations on QEMU's own pid; as the target's regions, guest
RAM (the migratable RAMBlocks' host ranges) cut into 1000 pieces, which
DAMON then neither merges nor splits (its own region update is pushed
out of the measurement); sampling every 50 ms (the tracker's default
scan period) and aggregating every 500 ms; and a 'stat' scheme that
matches the regions accessed in an aggregation.  A thread asks the
kdamond for those regions in a loop ('update_schemes_tried_regions':
Linux 6.12 polls for the end of each request every 100 ms).  DAMON
checks one page of a region, at random, per sample, so the share of a
region's samples that found an access is the share of its pages
accessed per scan: collect() counts that share of each region's pages
from the newest snapshot, chosen by a fixed per-page rank, less the
pages the dirty log saw written since the snapshot before.  Writes come
from the dirty-log backend's machinery, now exported through a header:
a dirty memory client of its own, so migration keeps every dirty page.
stop() turns the kdamond off and removes it.

DAMON's sysfs interface adds a kdamond only while none runs, so with one
running (the operator's, another QEMU's) the backend is busy.  A
backend may now give its reason to refuse (check()), which
calc-access-rate with an explicit backend reports: DAMON missing, busy,
or not permitted; the default choice skips it then.  Another optional
hook (fill_info()) lets a backend report its own settings:
query-access-rate's 'damon' member gives the sampling settings, the
snapshots taken and the mean size of the accessed regions, the
granularity of the read figures; 'info access_rate' prints them.

Tested nested (Debian's 6.12 kernel under TCG with SVM, its own
unmodified kvm and kvm-amd, an L2 guest under -accel kvm): the default
choice is damon; a guest reading 8 MiB in a loop is told from one
writing 8 MiB by the distinct bytes read and written per second; a
kdamond of somebody else's makes calc-access-rate refuse 'damon' as
busy and the default choice fall back to dirty-log; the adaptive
capability chooses pre-copy for the reader and post-copy for the writer
with damon's figures.
"""
M[12] = """tests/qtest/migration: boot blocks that read, or read and write

The migration tests' x86 boot block writes one byte of every page from
1 MiB to 100 MiB in a loop.  Tests of a tracker of reads and writes,
and of a migration that chooses its algorithm from them, need guests
that read, and guests that do both.

bootfile_x86_sector() builds the sector in three variants: the writer
it is, a reader (its "incb (%eax)" patched into "mov (%eax), %cl") and
a mixed guest (a jump to a loop placed in the sector's free space that
writes every page from 1 MiB to 50 MiB and reads the page 49 MiB above
each).  The patches assert the bytes they replace, so a change of the
boot block fails loudly.  MigrateStart.boot_access picks the variant;
the default is the writer, so the existing tests are unchanged.
"""
M[13] = """tests/qtest: add access-rate-test

Test the access-rate tracker with the boot-sector guests, so that the
working sets can be checked against exact page counts (a Linux guest's
idle kernel adds pages of its own to every figure) and the test runs in
a few seconds under TCG.

For the writer, the reader and the mixed guest (K = 25344, 25344 and
12544 each) the tcg backend must find the working set of each kind of
access within 10% of K and the other kind near zero; the dirty-log
backend must find the same writes and leave the read figures out.  Out
of range scan, sample and window periods are refused with an error
naming the parameter, and nothing starts.

Measured: tcg working sets read/write 1/25344 (write guest), 25345/0
(read guest), 12545/12544 (mixed); dirty-log 25344, 0, 12544.
"""
M[14] = """migration: add the adaptive migration decision engine

A migration that chooses between pre-copy and post-copy per VM (next
patches) has to classify the VM as read-intensive, write-intensive or
mixed from its measured rates, among the other VMs migrating with it
when there are any, and predict what each algorithm would cost.

Add that engine as pure functions, unit-tested on their own:

- fuzzy C-means with c = 3 and m = 2, started from the samples most
  similar (cosine) to CR = (Rmax, 0), then CW = (0, Wmax), then
  CRW = (Rmax, Wmax), each cluster keeping the class of the reference
  point that seeded it; iterate until memberships move by less than
  1e-6.  Defined answers where clustering means nothing: no point
  (error), all-zero rates, fewer than three points or identical points
  (each point on its own against prototypes (S, 0), (0, S), (S, S)
  scaled to the migration bandwidth S; ties go to read);
- the published closed-form models (cited in the header): post-copy
  T2 = V / (alpha beta + (1 - alpha) r), Td = r T2 / beta, checked
  against the paper's worked example; pre-copy T = Rc / (N - Rd) and
  its comparison weight; and the same driven by measured working sets;
- "loop" models of what QEMU's migration loop does from the decision
  on, from measured quantities: pre-copy's rest of the pass and the
  passes over W(previous pass), with auto-converge's throttle when it
  is on, until what is pending fits the threshold (checked after every
  chunk, so a migration that needed another pass stops with about a
  threshold's worth), then the stop-copy at the switch-over bandwidth;
  post-copy switched now: a stop for the device state, the push of the
  rest, and the pages first touched before the push reaches them, each
  blocking a vCPU for a round trip (idle with postcopy-preempt, loaded
  without) plus a page's time, integrated with the guest's progress, so
  that a blocked guest touches nothing new;
- the stream's time per page sent and per zero page, fitted by least
  squares over windows of the stream (non-negative, with a fallback
  when the windows have one mix only): bytes sent per second counts the
  time spent reading zero pages, which is most of a first pass over a
  mostly untouched guest.

The published models were 2x off and more against real migrations in
our measurements (all of RAM assumed sent though QEMU skips zero pages,
a stop-copy at max-bandwidth though it is not rate-limited); they are
kept as references, the loop models decide.
"""
M[15] = """migration: add the 'adaptive' capability

Operators pick pre-copy or post-copy by hand, per cluster, although the
right choice depends on each VM: pre-copy suffers with guests that
write a lot, post-copy with guests that read a lot.  The 'adaptive'
capability will have QEMU choose per VM (the decision follows in the
next patches), and is marked unstable.

It needs 'postcopy-ram', on both sides, to be able to choose post-copy:
without it migrate fails with an error saying so, rather than silently
restricting the choice to pre-copy.  The check is at migrate, not in
migrate_caps_check(): libvirt turns postcopy-ram on just before it
migrates, after an operator may have set 'adaptive'.
"""
M[16] = """migration: add the adaptive-* migration parameters

adaptive-policy (model, guarded, fcm), adaptive-objective (guest-stall,
total-time, downtime, time-product), adaptive-smoothing,
adaptive-scan-period, adaptive-sample-period, adaptive-window,
adaptive-postcopy-share, adaptive-peers (the mean read and write rates
of the other VMs of a gang, in bytes per second) and adaptive-start
(decide while pre-copy runs, or measure first): checked (the periods by
the tracker's own rules, peers finite and non-negative), settable over
QMP and HMP (peers as READ:WRITE,... in MiB/s) and shown by info
migrate_parameters.  All are marked unstable.
"""
M[17] = """migration/adaptive: choose pre-copy or post-copy per VM

With the 'adaptive' capability, the migration starts at once as
pre-copy while the access-rate tracker measures the guest, and decides
in the migration thread, at the end of the window or at the end of the
first pre-copy pass if the window has a sample by then (ending the
tracker's period early when the pass was shorter than one), whichever
comes first.  Measuring first, as the fuzzy C-means selection framework
does, cost a whole window before a page moved: 10 s by default, where
either fixed algorithm migrated a small guest in 2 s.  That order stays
available (adaptive-start 'after-measuring'), as does a warm window of
a continuous calc-access-rate, both decided on at the first iteration
once the stream's round trip is known.  Under KVM the backends do not
see writes as they are beside migration's dirty logging, so the
decision is taken as with 'after-measuring' there.

What the models need is measured on the migration itself: the stream's
rate, split into the time per page sent and per zero page; round trips
of MIG_CMD_PING, answered by a PONG on the return path (every
destination does it), first on an idle stream, later behind the queued
pages, which is what a post-copy page request waits without
postcopy-preempt (the PONGs are consumed where they arrive, so
migration_wait_main_channel() still sees only its own); what is left
of the pass and how much of it is not zero pages, from 8192 pages
sampled at random with a 95% Wilson interval, asking mincore() first
so that untouched guest memory is not faulted in (sampling a 4 GiB
guest otherwise took 14 s and grew the source by 3.7 GiB); QEMU's
threshold and the pending device state; the tracker's working-set
curves.

The VM is classified with fuzzy C-means among the adaptive-peers, and
adaptive-policy applies: 'model' (default) takes the algorithm whose
loop model predicts the lower adaptive-objective (default guest-stall:
the stop plus post-copy's blocktime, what the guest feels); 'fcm' the
class alone (read: pre-copy, write: post-copy, mixed: by the smoothed
rates); 'guarded' the class unless pre-copy is predicted not to
converge.  A pre-copy decision taken before the end of the first pass
is taken again when pre-copy is about to complete there, and
migration_iteration_run() lets a switch asked for by the decision (not
one asked for by migrate-start-postcopy, whose semantics are unchanged)
go before the completion: a switch then may stop the guest for less.
For post-copy the switch is requested as migrate-start-postcopy would.
A guest stopped on the source stays on pre-copy: post-copy would start
it on the destination whatever its run state was.

The adaptive-* parameters are copied when the migration starts, under
the BQL: the migration thread reads only that copy, so
migrate-set-parameters cannot free the peers list from under it.  The
decision is a record (AdaptiveInfo) kept under the BQL: measured
quantities, every model's estimate, the class, the algorithm and the
reason, then the chosen algorithm's predictions, and once the migration
completed the measured total time, downtime and page requests with the
errors and the algorithm that ran.  A decision still pending when the
migration completes, fails or is cancelled is closed, as pre-copy with
trigger 'ended' and what the samples so far said, before the state
becomes final, so that a client reacting to the MIGRATION event sees it
closed.  Trace event migration_adaptive_decision says what was chosen
and why, migration_adaptive_sample_pages what the page sample cost.
"""
M[18] = """migration/adaptive: report the decision in query-migrate

query-migrate gains an 'adaptive' member, unstable, while and after the
capability runs: phase, policy and objective, when and on what it
decided, the rates and working sets measured, the class and
memberships, every model's estimate, the loop models' inputs, the
algorithm and the reason, the chosen algorithm's predictions and, once
completed, what was measured against them.
"""
M[19] = """migration/adaptive: show the decision in 'info migrate'

HMP 'info migrate' prints the adaptive decision: the access rates and
working sets (MiB/s, MiB), the class, each model's estimate, what was
measured for the loop models, the predictions and the outcome (seconds),
the algorithm and why, and when it was decided.
"""
M[20] = """docs/devel/migration: document the adaptive capability

What the capability does, from the measurement to the switch, its
parameters and report, with an example of 'info migrate' taken through
an emulated link, and its limits: the backends of the tracker per
accelerator, the quantities that are assumed rather than measured (the
non-iterable device state, the stream's rate before any page was
sent).
"""
M[21] = """tests/qtest/migration: test the adaptive capability

Add the capability's tests to the migration qtest framework, with the
boot-block guests (MigrateStart.boot_access), under TCG
(MigrateStart.tcg_only: the tracker's reads come from TCG's softmmu):

- needs-postcopy: without postcopy-ram the migration is refused and
  the source runs on (setting the capability alone is allowed);
- fcm/reader: the read class, pre-copy, no page requests;
- model/reader: over a local socket either algorithm may stall a
  reader less; the choice must be the lower predicted guest stall;
- model/writer: pre-copy cannot converge, QEMU switches to post-copy;
- guarded/mixed: the mixed class, sent by post-copy by the guard;
- busy-measuring: adaptive-* parameters changed (the peers list grown,
  then emptied) and calc-/cancel-access-rate issued while the migration
  measures: the parameters are the migration's from its start, the
  tracker's commands are refused;
- postcopy/recovery/plain (MigrateCommon.postcopy_adaptive): the link
  breaks (migrate-pause) after QEMU chose post-copy by itself; both
  sides pause, and the migration resumes on a new channel and
  completes.

Pages the loops never write are marked on the source and checked on
the destination; the writer's memory is checked by migrate_end().

The tests use the i440FX machine: under TCG, SeaBIOS 1.16.2's AHCI
probe of the q35 boot disk times out after 32 s before it boots.  The
seven tests take about a minute.
"""
MSGS = {k: v + SOB for k, v in M.items()}

/*
 * amgang - migrate a gang of VMs together, each with its own algorithm.
 *
 * A process separate from the QEMUs, as in the source paper.  For every VM
 * it talks QMP to the source QEMU and to an incoming destination QEMU
 * (unix sockets), then:
 *
 *  1. measures every VM's memory read and write rates at once
 *     (calc-access-rate, one window);
 *  2. gives each source the other VMs' rates as 'adaptive-peers', so that
 *     fuzzy C-means classifies the gang, and its share of the bandwidth;
 *  3. starts all migrations together (scheme 'adaptive': QEMU chooses per
 *     VM from the window just measured; or a fixed scheme for comparison);
 *  4. shows progress, and prints per-VM and overall results: class,
 *     algorithm and reason, total time, downtime, bytes; overall time
 *     (longest), overall downtime (sum), time product; the seed-001 weight
 *     and predicted pre-copy transfer volume of each VM.
 *
 * A VM that cannot be reached, lacks the capability, or fails is reported
 * and the others go on; the exit status says whether all completed.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libvirt/libvirt.h>
#include <libvirt/libvirt-qemu.h>
#include <libvirt/virterror.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_VMS 64
#define MiB (1024.0 * 1024.0)

typedef struct Qmp {
    int fd;
    FILE *in;
    char path[108];
    /* or a libvirt domain, through virDomainQemuMonitorCommand() */
    virDomainPtr dom;
} Qmp;

static virConnectPtr libvirt_conn;
static const char *libvirt_uri;     /* --connect, for libvirt:DOMAIN */

typedef enum { ST_OK, ST_FAILED, ST_MIGRATING, ST_DONE } VmState;

typedef struct Vm {
    char name[64];
    char src_path[108], dst_path[108], uri[160];
    Qmp src, dst;
    VmState st;
    char error[512];
    double read_mbps, write_mbps;
    bool read_ok;
    double ram_mib;
    /* results */
    char status[32];
    json_t *last;       /* last query-migrate answer */
    bool postcopy_started;
    /*
     * Migrated by libvirt's API (source libvirt:DOMAIN, destination a
     * libvirt connection URI): virDomainMigrate3() in a thread of its own.
     */
    bool lv;
    virConnectPtr dconn;
    virDomainPtr ddom;          /* the domain on the destination */
    pthread_t th;
    bool th_started;
    int th_done;                /* set by the thread (atomic) */
    int th_rc;
    char th_err[400];
    json_t *decision;           /* last 'adaptive' member seen */
    bool saw_postcopy;          /* query-migrate said postcopy-active */
    json_t *jobstats;           /* libvirt's completed-job statistics */
    double th_t0, th_t1;        /* around virDomainMigrate3() */
    double th_share;            /* its bandwidth, MiB/s, set before */
} Vm;

static struct {
    Vm vm[MAX_VMS];
    int n;
    double bandwidth;           /* MiB/s for the whole gang */
    int window_ms;
    int downtime_ms;
    const char *policy;
    const char *scheme;
    const char *json_out;
    double cpu_mhz, n_weight;
    int timeout_s;
    bool quiet;
} g = {
    .bandwidth = 64, .window_ms = 10000, .downtime_ms = 300,
    .policy = "guarded", .scheme = "adaptive", .cpu_mhz = 0, .n_weight = 1,
    .timeout_s = 600,
};

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void vm_fail(Vm *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void vm_fail(Vm *v, const char *fmt, ...)
{
    va_list ap;

    if (v->st == ST_FAILED) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(v->error, sizeof(v->error), fmt, ap);
    va_end(ap);
    v->st = ST_FAILED;
    fprintf(stderr, "amgang: %s: %s\n", v->name, v->error);
}

/* ---- QMP over a unix socket ---- */

static json_t *qmp_read(Qmp *q)
{
    char *line = NULL;
    size_t cap = 0;
    json_t *j = NULL;
    json_error_t err;

    for (;;) {
        if (getline(&line, &cap, q->in) < 0) {
            break;
        }
        j = json_loads(line, 0, &err);
        if (!j) {
            continue;
        }
        if (json_object_get(j, "event")) {
            json_decref(j);
            j = NULL;
            continue;           /* events are not needed here */
        }
        break;
    }
    free(line);
    return j;
}

/* "libvirt:DOMAIN": QMP passthrough of libvirt's QEMU driver. */
static int qmp_open_libvirt(Qmp *q, const char *name, char *err,
                            size_t errlen)
{
    snprintf(q->path, sizeof(q->path), "libvirt:%s", name);
    if (!libvirt_conn) {
        libvirt_conn = virConnectOpen(libvirt_uri ?:
                                      getenv("AMGANG_LIBVIRT_URI") ?:
                                      "qemu:///system");
    }
    if (!libvirt_conn) {
        snprintf(err, errlen, "cannot connect to libvirt: %s",
                 virGetLastErrorMessage());
        return -1;
    }
    q->dom = virDomainLookupByName(libvirt_conn, name);
    if (!q->dom) {
        snprintf(err, errlen, "libvirt domain '%s': %s", name,
                 virGetLastErrorMessage());
        return -1;
    }
    if (virDomainIsActive(q->dom) != 1) {
        snprintf(err, errlen, "libvirt domain '%s' is not running", name);
        return -1;
    }
    return 0;
}

static int qmp_open(Qmp *q, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct timeval tv = { .tv_sec = 10 };
    json_t *greet, *r;

    if (!strncmp(path, "libvirt:", 8)) {
        return qmp_open_libvirt(q, path + 8, err, errlen);
    }
    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "socket path too long: %s", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    snprintf(q->path, sizeof(q->path), "%s", path);
    q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (q->fd < 0 || connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        snprintf(err, errlen, "cannot connect to QMP socket %s: %s", path,
                 strerror(errno));
        if (q->fd >= 0) {
            close(q->fd);
        }
        q->fd = -1;
        return -1;
    }
    setsockopt(q->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    q->in = fdopen(dup(q->fd), "r");
    greet = qmp_read(q);
    if (!greet || !json_object_get(greet, "QMP")) {
        snprintf(err, errlen, "%s: no QMP greeting within %ld s (a QMP "
                 "socket serves one client at a time: give the coordinator "
                 "a -qmp socket of its own)", path, (long)tv.tv_sec);
        json_decref(greet);
        return -1;
    }
    json_decref(greet);
    tv.tv_sec = 60;
    setsockopt(q->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (dprintf(q->fd, "{\"execute\":\"qmp_capabilities\"}\n") < 0 ||
        !(r = qmp_read(q)) || !json_object_get(r, "return")) {
        snprintf(err, errlen, "%s: QMP negotiation failed", path);
        return -1;
    }
    json_decref(r);
    return 0;
}

static void qmp_close(Qmp *q)
{
    if (q->dom) {
        virDomainFree(q->dom);
        q->dom = NULL;
    }
    if (q->in) {
        fclose(q->in);
        q->in = NULL;
    }
    if (q->fd >= 0) {
        close(q->fd);
        q->fd = -1;
    }
}

/*
 * Run a command; returns its "return" value (new reference) or NULL with
 * the error description in @err.
 */
static json_t *qmp_cmd(Qmp *q, const char *cmd, json_t *args, char *err,
                       size_t errlen)
{
    json_t *req = json_pack("{s:s}", "execute", cmd), *r, *ret;
    char *s;

    if (args) {
        json_object_set_new(req, "arguments", args);
    }
    s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (q->dom) {
        char *res = NULL;
        json_error_t jerr;

        if (virDomainQemuMonitorCommand(q->dom, s, &res, 0) < 0) {
            snprintf(err, errlen, "%s: %s: %s", q->path, cmd,
                     virGetLastErrorMessage());
            free(s);
            return NULL;
        }
        free(s);
        r = json_loads(res, 0, &jerr);
        free(res);
        if (!r) {
            snprintf(err, errlen, "%s: %s: bad answer", q->path, cmd);
            return NULL;
        }
        goto answer;
    }
    if (q->fd < 0 || dprintf(q->fd, "%s\n", s) < 0) {
        snprintf(err, errlen, "%s: %s: cannot send", q->path, cmd);
        free(s);
        return NULL;
    }
    free(s);
    r = qmp_read(q);
    if (!r) {
        snprintf(err, errlen, "%s: %s: no answer (QEMU gone?)", q->path, cmd);
        return NULL;
    }
answer:
    ret = json_object_get(r, "return");
    if (!ret) {
        json_t *e = json_object_get(r, "error");
        const char *desc = e ? json_string_value(json_object_get(e, "desc"))
                             : NULL;

        snprintf(err, errlen, "%s: %s", cmd, desc ? desc : "error");
        json_decref(r);
        return NULL;
    }
    json_incref(ret);
    json_decref(r);
    return ret;
}

/* A command whose answer is not needed; on error the VM fails. */
static bool vm_cmd(Vm *v, Qmp *q, const char *cmd, json_t *args)
{
    char err[400];
    json_t *r = qmp_cmd(q, cmd, args, err, sizeof(err));

    if (!r) {
        vm_fail(v, "%s", err);
        return false;
    }
    json_decref(r);
    return true;
}

static double jnum(json_t *o, const char *key, double dflt)
{
    json_t *v = json_object_get(o, key);

    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* ---- the steps ---- */

static void connect_all(void)
{
    char err[400];

    for (int i = 0; i < g.n; i++) {
        Vm *v = &g.vm[i];
        json_t *caps, *c, *mem;
        size_t k;
        bool has = false;

        if (qmp_open(&v->src, v->src_path, err, sizeof(err)) < 0) {
            vm_fail(v, "source unreachable: %s", err);
            continue;
        }
        if (v->lv) {
            v->dconn = virConnectOpen(v->dst_path);
            if (!v->dconn) {
                vm_fail(v, "destination unreachable: %s: %s", v->dst_path,
                        virGetLastErrorMessage());
                continue;
            }
        } else if (qmp_open(&v->dst, v->dst_path, err, sizeof(err)) < 0) {
            vm_fail(v, "destination unreachable: %s", err);
            continue;
        }
        caps = qmp_cmd(&v->src, "query-migrate-capabilities", NULL, err,
                       sizeof(err));
        json_array_foreach(caps, k, c) {
            const char *name = json_string_value(
                json_object_get(c, "capability"));
            has |= name && !strcmp(name, "adaptive");
        }
        json_decref(caps);
        if (!has) {
            vm_fail(v, "this QEMU has no 'adaptive' migration capability");
            continue;
        }
        mem = qmp_cmd(&v->src, "query-memory-size-summary", NULL, err,
                      sizeof(err));
        v->ram_mib = mem ? jnum(mem, "base-memory", 0) / MiB : 0;
        json_decref(mem);
    }
}

/* Measure every VM over the same window. */
static void measure_all(void)
{
    char err[400];
    double deadline;

    for (int i = 0; i < g.n; i++) {
        Vm *v = &g.vm[i];

        if (v->st == ST_FAILED) {
            continue;
        }
        vm_cmd(v, &v->src, "calc-access-rate",
               json_pack("{s:i}", "window-ms", g.window_ms));
    }
    if (!g.quiet) {
        printf("amgang: measuring access rates over %d ms ...\n",
               g.window_ms);
        fflush(stdout);
    }
    deadline = now() + g.window_ms / 1000.0 + 30;
    for (int i = 0; i < g.n; i++) {
        Vm *v = &g.vm[i];

        while (v->st != ST_FAILED) {
            json_t *r = qmp_cmd(&v->src, "query-access-rate", NULL, err,
                                sizeof(err));
            char st[32] = "";

            if (r) {
                snprintf(st, sizeof(st), "%s", json_string_value(
                         json_object_get(r, "status")) ?: "?");
            }
            if (!r) {
                vm_fail(v, "%s", err);
                break;
            }
            if (!strcmp(st, "measured")) {
                v->read_ok = json_is_true(json_object_get(
                    r, "read-rate-available"));
                /* distinct MiB per second (the report's unit) */
                v->read_mbps = jnum(r, "read-bytes-per-sec", 0) / MiB;
                v->write_mbps = jnum(r, "write-bytes-per-sec", 0) / MiB;
                json_decref(r);
                break;
            }
            json_decref(r);
            if (strcmp(st, "measuring") || now() > deadline) {
                vm_fail(v, "access-rate measurement ended as '%s'", st);
                break;
            }
            usleep(200 * 1000);
        }
    }
}

static int alive(void)
{
    int n = 0;

    for (int i = 0; i < g.n; i++) {
        n += g.vm[i].st != ST_FAILED;
    }
    return n;
}

/* Each VM's equal share of --bandwidth, MiB/s. */
static double bw_share(void)
{
    int n = alive();

    return n ? g.bandwidth / n : g.bandwidth;
}

/*
 * One libvirt domain's migration: virDomainMigrate3() (direct, as `virsh
 * migrate` without --p2p: this process holds both connections), which
 * blocks until the job ends.
 */
static void *lv_migrate(void *opaque)
{
    Vm *v = opaque;
    virTypedParameterPtr params = NULL;
    int nparams = 0, maxparams = 0;
    unsigned long long share = (unsigned long long)v->th_share;
    bool pc = strcmp(g.scheme, "precopy") != 0;
    unsigned int flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PERSIST_DEST |
                         VIR_MIGRATE_UNDEFINE_SOURCE;

    if (share < 1) {
        share = 1;
    }
    if (pc) {
        flags |= VIR_MIGRATE_POSTCOPY;
    }
    if (virTypedParamsAddString(&params, &nparams, &maxparams,
                                VIR_MIGRATE_PARAM_URI, v->uri) < 0 ||
        virTypedParamsAddULLong(&params, &nparams, &maxparams,
                                VIR_MIGRATE_PARAM_BANDWIDTH, share) < 0 ||
        (pc && virTypedParamsAddULLong(&params, &nparams, &maxparams,
                                       VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY,
                                       share) < 0)) {
        snprintf(v->th_err, sizeof(v->th_err), "typed parameters: %s",
                 virGetLastErrorMessage());
        v->th_rc = -1;
    } else {
        v->th_t0 = now();
        v->ddom = virDomainMigrate3(v->src.dom, v->dconn, params, nparams,
                                    flags);
        v->th_t1 = now();
        if (!v->ddom) {
            snprintf(v->th_err, sizeof(v->th_err), "virDomainMigrate3: %s",
                     virGetLastErrorMessage());
            v->th_rc = -1;
        }
    }
    virTypedParamsFree(params, nparams);
    __atomic_store_n(&v->th_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* libvirt's statistics of the completed job, as a JSON object. */
static json_t *lv_jobstats(virDomainPtr dom)
{
    virTypedParameterPtr p = NULL;
    int np = 0, type = 0;
    json_t *o;

    if (!dom || virDomainGetJobStats(dom, &type, &p, &np,
                                     VIR_DOMAIN_JOB_STATS_COMPLETED) < 0) {
        return NULL;
    }
    o = json_object();
    for (int i = 0; i < np; i++) {
        json_t *x = NULL;

        switch (p[i].type) {
        case VIR_TYPED_PARAM_INT: x = json_integer(p[i].value.i); break;
        case VIR_TYPED_PARAM_UINT: x = json_integer(p[i].value.ui); break;
        case VIR_TYPED_PARAM_LLONG: x = json_integer(p[i].value.l); break;
        case VIR_TYPED_PARAM_ULLONG:
            x = json_integer((json_int_t)p[i].value.ul);
            break;
        case VIR_TYPED_PARAM_DOUBLE: x = json_real(p[i].value.d); break;
        case VIR_TYPED_PARAM_BOOLEAN: x = json_boolean(p[i].value.b); break;
        case VIR_TYPED_PARAM_STRING: x = json_string(p[i].value.s); break;
        }
        if (x) {
            json_object_set_new(o, p[i].field, x);
        }
    }
    virTypedParamsFree(p, np);
    return o;
}

/*
 * A libvirt migration's thread has ended: its result.  The source QEMU is
 * gone after a success: the decision is the last 'adaptive' member
 * query-migrate gave while the job ran; times and bytes are libvirt's
 * completed-job statistics (on the destination, which libvirt gives them
 * through the migration cookie; else the source's).
 */
static void lv_finish(Vm *v)
{
    json_t *last = v->last ? json_deep_copy(v->last) : json_object();
    json_t *js, *ram;

    pthread_join(v->th, NULL);
    v->th_started = false;
    js = lv_jobstats(v->ddom);
    if (js && !json_object_get(js, VIR_DOMAIN_JOB_TIME_ELAPSED)) {
        /* libvirt 9.0 keeps none on the destination after post-copy */
        json_decref(js);
        js = NULL;
    }
    if (!js && !v->ddom) {
        js = lv_jobstats(v->src.dom);     /* failed: the source has it */
    }
    v->jobstats = js;
    if (v->decision) {
        json_object_set(last, "adaptive", v->decision);
    }
    json_object_set_new(last, "source-of-times",
                        json_string(js ? "libvirt completed-job statistics"
                                    : "amgang's clock around "
                                      "virDomainMigrate3 (libvirt kept no "
                                      "completed-job statistics)"));
    if (!js && v->th_t1 > 0) {
        json_object_set_new(last, "total-time", json_integer(
            (json_int_t)((v->th_t1 - v->th_t0) * 1000)));
        json_object_del(last, "downtime");  /* unknown: the source is gone */
    }
    if (js) {
        json_object_set(last, "libvirt-job-stats", js);
        json_object_set_new(last, "total-time", json_integer(
            (json_int_t)jnum(js, VIR_DOMAIN_JOB_TIME_ELAPSED, -1)));
        if (json_object_get(js, VIR_DOMAIN_JOB_DOWNTIME)) {
            json_object_set_new(last, "downtime", json_integer(
                (json_int_t)jnum(js, VIR_DOMAIN_JOB_DOWNTIME, -1)));
        } else {
            json_object_del(last, "downtime");
        }
        ram = json_object_get(last, "ram");
        if (!json_is_object(ram)) {
            ram = json_object();
            json_object_set_new(last, "ram", ram);
        }
        if (json_object_get(js, VIR_DOMAIN_JOB_MEMORY_PROCESSED)) {
            json_object_set_new(ram, "transferred", json_integer(
                (json_int_t)jnum(js, VIR_DOMAIN_JOB_MEMORY_PROCESSED, 0)));
        }
        if (json_object_get(js, VIR_DOMAIN_JOB_MEMORY_POSTCOPY_REQS)) {
            json_object_set_new(ram, "postcopy-requests", json_integer(
                (json_int_t)jnum(js, VIR_DOMAIN_JOB_MEMORY_POSTCOPY_REQS,
                                 0)));
        }
    }
    json_object_set_new(last, "postcopy-seen", json_boolean(v->saw_postcopy));
    json_decref(v->last);
    v->last = last;
    if (v->th_rc < 0) {
        json_object_set_new(last, "status", json_string("failed"));
        vm_fail(v, "%s", v->th_err);
        return;
    }
    json_object_set_new(last, "status", json_string("completed"));
    snprintf(v->status, sizeof(v->status), "completed");
    v->st = ST_DONE;
}

/* Poll a libvirt migration: query-migrate through QMP while it runs. */
static int lv_poll(Vm *v)
{
    char err[400];
    json_t *r, *a;
    const char *st;

    if (__atomic_load_n(&v->th_done, __ATOMIC_ACQUIRE)) {
        lv_finish(v);
        return 0;
    }
    /* fails once the source QEMU is gone, or between libvirt's steps */
    r = qmp_cmd(&v->src, "query-migrate", NULL, err, sizeof(err));
    if (!r) {
        return 1;
    }
    st = json_string_value(json_object_get(r, "status"));
    if (st && *st) {
        snprintf(v->status, sizeof(v->status), "%s", st);
        v->saw_postcopy |= !strncmp(st, "postcopy", 8);
        a = json_object_get(r, "adaptive");
        if (json_is_object(a)) {
            json_decref(v->decision);
            v->decision = json_incref(a);
            v->saw_postcopy |= !strcmp(json_string_value(json_object_get(
                a, "ran")) ?: "", "postcopy");
        }
        json_decref(v->last);
        v->last = r;
        /*
         * The fixed schemes switch as virsh does (migrate-postcopy,
         * --postcopy-after-precopy: after the first pass), through
         * libvirt's API.
         */
        if (!v->postcopy_started && !strcmp(st, "active") &&
            (!strcmp(g.scheme, "postcopy") ||
             (!strcmp(g.scheme, "postcopy-after-precopy") &&
              jnum(json_object_get(r, "ram"), "dirty-sync-count", 0) >= 2))) {
            v->postcopy_started = virDomainMigrateStartPostCopy(v->src.dom,
                                                                0) == 0;
        }
    } else {
        json_decref(r);
    }
    return 1;
}

static void start_all(void)
{
    double share = bw_share();
    bool adaptive = !strcmp(g.scheme, "adaptive");
    bool pc = strcmp(g.scheme, "precopy") != 0;

    for (int i = 0; i < g.n; i++) {
        Vm *v = &g.vm[i];
        json_t *peers = json_array(), *caps, *params;

        if (v->st == ST_FAILED) {
            json_decref(peers);
            continue;
        }
        for (int k = 0; k < g.n; k++) {
            if (k != i && g.vm[k].st != ST_FAILED) {
                /* AdaptivePeer: bytes per second */
                json_array_append_new(peers, json_pack(
                    "{s:f,s:f}",
                    "read-bytes-per-sec", g.vm[k].read_mbps * MiB,
                    "write-bytes-per-sec", g.vm[k].write_mbps * MiB));
            }
        }
        if (v->lv) {
            /*
             * libvirt has no API for these: 'adaptive' and its
             * parameters through QMP.  postcopy-ram, the bandwidths and
             * the URI are virDomainMigrate3()'s (libvirt sets them at
             * the start of the job); the downtime limit has its API.
             */
            if (!vm_cmd(v, &v->src, "migrate-set-capabilities",
                        json_pack("{s:[{s:s,s:b}]}", "capabilities",
                                  "capability", "adaptive", "state",
                                  adaptive)) ||
                !vm_cmd(v, &v->src, "migrate-set-parameters",
                        json_pack("{s:o,s:s,s:i}", "adaptive-peers", peers,
                                  "adaptive-policy", g.policy,
                                  "adaptive-window", g.window_ms))) {
                continue;
            }
            if (virDomainMigrateSetMaxDowntime(v->src.dom, g.downtime_ms,
                                               0) < 0) {
                vm_fail(v, "virDomainMigrateSetMaxDowntime: %s",
                        virGetLastErrorMessage());
            }
            continue;
        }
        caps = json_pack("[{s:s,s:b},{s:s,s:b}]",
                         "capability", "postcopy-ram", "state", pc,
                         "capability", "adaptive", "state", adaptive);
        params = json_pack("{s:I,s:I,s:I,s:o,s:s,s:i}",
                           "max-bandwidth", (json_int_t)(share * MiB),
                           "max-postcopy-bandwidth",
                           (json_int_t)(share * MiB),
                           "downtime-limit", (json_int_t)g.downtime_ms,
                           "adaptive-peers", peers,
                           "adaptive-policy", g.policy,
                           "adaptive-window", g.window_ms);
        if (!vm_cmd(v, &v->dst, "migrate-set-capabilities",
                    json_pack("{s:[{s:s,s:b}]}", "capabilities",
                              "capability", "postcopy-ram", "state", pc)) ||
            !vm_cmd(v, &v->src, "migrate-set-capabilities",
                    json_pack("{s:o}", "capabilities", caps)) ||
            !vm_cmd(v, &v->src, "migrate-set-parameters", params) ||
            !vm_cmd(v, &v->dst, "migrate-incoming",
                    json_pack("{s:s}", "uri", v->uri))) {
            continue;
        }
    }
    /* Start them together, once all are set up. */
    for (int i = 0; i < g.n; i++) {
        Vm *v = &g.vm[i];

        if (v->st == ST_FAILED) {
            continue;
        }
        if (v->lv) {
            v->th_share = share;
            if (pthread_create(&v->th, NULL, lv_migrate, v)) {
                vm_fail(v, "cannot start a thread");
                continue;
            }
            v->th_started = true;
            v->st = ST_MIGRATING;
            continue;
        }
        if (vm_cmd(v, &v->src, "migrate", json_pack("{s:s}", "uri", v->uri))) {
            v->st = ST_MIGRATING;
            if (!strcmp(g.scheme, "postcopy")) {
                v->postcopy_started =
                    vm_cmd(v, &v->src, "migrate-start-postcopy", NULL);
            }
        }
    }
}

static void wait_all(void)
{
    char err[400];
    double t0 = now(), last_print = 0;

    for (;;) {
        int running = 0;
        char line[1024] = "";
        size_t off = 0;

        for (int i = 0; i < g.n; i++) {
            Vm *v = &g.vm[i];
            json_t *r;
            const char *st;

            if (v->st != ST_MIGRATING) {
                continue;
            }
            if (v->lv) {
                running += lv_poll(v);
                off += snprintf(line + off, sizeof(line) - off, " %s:%s",
                                v->name, v->status);
                continue;
            }
            r = qmp_cmd(&v->src, "query-migrate", NULL, err, sizeof(err));
            if (!r) {
                vm_fail(v, "%s", err);
                continue;
            }
            json_decref(v->last);
            v->last = r;
            st = json_string_value(json_object_get(r, "status"));
            snprintf(v->status, sizeof(v->status), "%s", st ? st : "?");
            if (st && !strcmp(st, "completed")) {
                v->st = ST_DONE;
            } else if (st && (!strcmp(st, "failed") ||
                              !strcmp(st, "cancelled"))) {
                const char *d = json_string_value(
                    json_object_get(r, "error-desc"));
                vm_fail(v, "migration %s%s%s", st, d ? ": " : "",
                        d ? d : "");
            } else {
                running++;
                /* scheme: post-copy after the first pre-copy pass */
                if (!strcmp(g.scheme, "postcopy-after-precopy") &&
                    !v->postcopy_started &&
                    jnum(json_object_get(r, "ram"), "dirty-sync-count",
                         0) >= 2) {
                    v->postcopy_started =
                        vm_cmd(v, &v->src, "migrate-start-postcopy", NULL);
                }
            }
            off += snprintf(line + off, sizeof(line) - off, " %s:%s",
                            v->name, v->status);
        }
        if (!running) {
            break;
        }
        if (!g.quiet && now() - last_print >= 1.0) {
            printf("amgang: %5.1fs%s\n", now() - t0, line);
            fflush(stdout);
            last_print = now();
        }
        if (now() - t0 > g.timeout_s) {
            for (int i = 0; i < g.n; i++) {
                if (g.vm[i].st == ST_MIGRATING && g.vm[i].lv) {
                    /* libvirt's own cancel; its thread then returns */
                    virDomainAbortJob(g.vm[i].src.dom);
                    pthread_join(g.vm[i].th, NULL);
                    g.vm[i].th_started = false;
                    vm_fail(&g.vm[i], "timed out after %d s; aborted",
                            g.timeout_s);
                } else if (g.vm[i].st == ST_MIGRATING) {
                    vm_cmd(&g.vm[i], &g.vm[i].src, "migrate_cancel", NULL);
                    vm_fail(&g.vm[i], "timed out after %d s; cancelled",
                            g.timeout_s);
                }
            }
            break;
        }
        usleep(100 * 1000);
    }
}

/* A number for the table, or "-" when there is none. */
static const char *fmt(double x, const char *f)
{
    static char buf[8][32];
    static int k;
    char *b = buf[k++ % 8];

    if (isnan(x)) {
        return "-";
    }
    if (isinf(x)) {
        return "inf";
    }
    snprintf(b, sizeof(buf[0]), f, x);
    return b;
}

static void report(void)
{
    double overall_time = 0, overall_down = 0;
    int done = 0;
    json_t *out = json_object(), *vms = json_array();
    double share = bw_share();

    printf("\n%-10s %-6s %-9s %9s %11s %9s %10s %11s  %s\n", "vm", "class",
           "algorithm", "total ms", "downtime ms", "MiB sent", "weight",
           "pred. MiB", "reason / error");
    for (int i = 0; i < g.n; i++) {
        Vm *v = &g.vm[i];
        json_t *a = v->last ? json_object_get(v->last, "adaptive") : NULL;
        json_t *ram = v->last ? json_object_get(v->last, "ram") : NULL;
        const char *cls = a ? json_string_value(json_object_get(a, "class"))
                            : NULL;
        const char *alg = a ? json_string_value(json_object_get(a,
                                                                "algorithm"))
                            : NULL;
        const char *reason = a ? json_string_value(json_object_get(a,
                                                                   "reason"))
                               : NULL;
        bool ok = v->st == ST_DONE;
        double total = ok ? jnum(v->last, "total-time", NAN) : NAN;
        double down = ok ? jnum(v->last, "downtime", NAN) : NAN;
        double sent = ram ? jnum(ram, "transferred", NAN) / MiB : NAN;
        /* seed 001: P = V_M + n V_C; V = Rc + Rd T, T = Rc / (N - Rd) */
        double weight = v->ram_mib + g.n_weight * g.cpu_mhz;
        double pred = v->st == ST_FAILED && !v->ram_mib ? NAN :
                      v->write_mbps < share ?
            v->ram_mib + v->write_mbps * v->ram_mib / (share - v->write_mbps)
            : INFINITY;
        json_t *o;

        if (!alg) {
            alg = !strcmp(g.scheme, "adaptive") ? "-" : g.scheme;
        }
        if (v->st == ST_DONE) {
            done++;
            overall_time = fmax(overall_time, total);
            overall_down += isnan(down) ? 0 : down;
        }
        printf("%-10s %-6s %-9s %9s %11s %9s %10.0f %11s  %s\n",
               v->name, cls ? cls : "-", alg, fmt(total, "%.0f"),
               fmt(down, "%.0f"), fmt(sent, "%.1f"), weight,
               fmt(pred, "%.1f"), v->st == ST_FAILED ? v->error :
               (reason ? reason : ""));
        o = json_pack("{s:s,s:s,s:b,s:f,s:f,s:f,s:f,s:f,s:f}",
                      "name", v->name,
                      "status", v->st == ST_DONE ? "completed" : "failed",
                      "read-rate-available", v->read_ok,
                      "read-mbps", v->read_mbps, "write-mbps", v->write_mbps,
                      "ram-mib", v->ram_mib, "weight", weight,
                      "bandwidth-mbps", share,
                      "predicted-precopy-mib", isfinite(pred) ? pred : -1);
        if (v->st == ST_FAILED) {
            json_object_set_new(o, "error", json_string(v->error));
        }
        if (v->last) {
            json_object_set(o, "query-migrate", v->last);
        }
        json_array_append_new(vms, o);
    }
    printf("\noverall: %d of %d completed; time %.0f ms (longest), downtime "
           "%.0f ms (sum), time product %.0f (s x ms)\n", done, g.n,
           overall_time, overall_down, overall_time / 1000.0 * overall_down);
    json_object_set_new(out, "scheme", json_string(g.scheme));
    json_object_set_new(out, "policy", json_string(g.policy));
    json_object_set_new(out, "bandwidth-mbps", json_real(g.bandwidth));
    json_object_set_new(out, "overall-time-ms", json_real(overall_time));
    json_object_set_new(out, "overall-downtime-ms", json_real(overall_down));
    json_object_set_new(out, "time-product",
                        json_real(overall_time / 1000.0 * overall_down));
    json_object_set_new(out, "completed", json_integer(done));
    json_object_set_new(out, "vms", vms);
    if (g.json_out && json_dump_file(out, g.json_out, JSON_INDENT(1)) < 0) {
        fprintf(stderr, "amgang: cannot write %s\n", g.json_out);
    }
    json_decref(out);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: amgang [options] --vm NAME,SRC_QMP,DST_QMP,URI [--vm ...]\n"
        "  --vm NAME,SRC_QMP,DST_QMP,URI  a VM: source and destination QMP\n"
        "                       unix socket paths and the migration URI;\n"
        "                       SRC_QMP may be libvirt:DOMAIN (QMP through\n"
        "                       libvirt, --connect URI, $AMGANG_LIBVIRT_URI or\n"
        "                       qemu:///system)\n"
        "  --vm NAME,libvirt:DOMAIN,DEST_LIBVIRT_URI,MIGRATION_URI\n"
        "                       migrate through libvirt's API\n"
        "                       (virDomainMigrate3: live, post-copy allowed,\n"
        "                       persistent on the destination, undefined on\n"
        "                       the source), e.g. --vm web,libvirt:web,\n"
        "                       qemu+tcp://host-b/system,tcp://host-b:49152\n"
        "  --connect URI        libvirt connection of the sources\n"
        "  --bandwidth MIB      bandwidth of the gang, split equally (64)\n"
        "  --scheme S           adaptive | precopy | postcopy |\n"
        "                       postcopy-after-precopy (adaptive)\n"
        "  --policy P           adaptive-policy: guarded | fcm | model\n"
        "  --window MS          access-rate window (10000)\n"
        "  --downtime-limit MS  (300)\n"
        "  --cpu-mhz F, --weight-n N  seed-001 weight RAM + N x CPU MHz\n"
        "  --timeout S          cancel what still runs after S s (600)\n"
        "  --json FILE          write the results as JSON\n"
        "  --quiet              no progress lines\n");
}

static bool add_vm(const char *spec)
{
    Vm *v;
    char *copy, *f[4], *save = NULL;
    int k = 0;

    if (g.n >= MAX_VMS) {
        return false;
    }
    v = &g.vm[g.n];
    copy = strdup(spec);
    for (char *t = strtok_r(copy, ",", &save); t && k < 4;
         t = strtok_r(NULL, ",", &save)) {
        f[k++] = t;
    }
    if (k != 4 || strtok_r(NULL, ",", &save)) {
        free(copy);
        return false;
    }
    snprintf(v->name, sizeof(v->name), "%s", f[0]);
    snprintf(v->src_path, sizeof(v->src_path), "%s", f[1]);
    snprintf(v->dst_path, sizeof(v->dst_path), "%s", f[2]);
    snprintf(v->uri, sizeof(v->uri), "%s", f[3]);
    v->src.fd = v->dst.fd = -1;
    /* libvirt:DOMAIN to a libvirt URI: libvirt's migration API */
    v->lv = !strncmp(f[1], "libvirt:", 8) && strstr(f[2], "://");
    free(copy);
    g.n++;
    return true;
}

/* libvirt's errors are reported by amgang, not printed by libvirt */
static void lv_quiet(void *opaque, virErrorPtr err)
{
    (void)opaque;
    (void)err;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "vm", required_argument, NULL, 'v' },
        { "bandwidth", required_argument, NULL, 'b' },
        { "scheme", required_argument, NULL, 's' },
        { "policy", required_argument, NULL, 'p' },
        { "window", required_argument, NULL, 'w' },
        { "downtime-limit", required_argument, NULL, 'd' },
        { "cpu-mhz", required_argument, NULL, 'c' },
        { "weight-n", required_argument, NULL, 'n' },
        { "timeout", required_argument, NULL, 't' },
        { "json", required_argument, NULL, 'j' },
        { "connect", required_argument, NULL, 'C' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { 0 }
    };
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'v':
            if (!add_vm(optarg)) {
                fprintf(stderr, "amgang: bad --vm '%s'\n", optarg);
                return 2;
            }
            break;
        case 'b': g.bandwidth = atof(optarg); break;
        case 's': g.scheme = optarg; break;
        case 'p': g.policy = optarg; break;
        case 'w': g.window_ms = atoi(optarg); break;
        case 'd': g.downtime_ms = atoi(optarg); break;
        case 'c': g.cpu_mhz = atof(optarg); break;
        case 'n': g.n_weight = atof(optarg); break;
        case 't': g.timeout_s = atoi(optarg); break;
        case 'j': g.json_out = optarg; break;
        case 'C': libvirt_uri = optarg; break;
        case 'q': g.quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!g.n || g.bandwidth <= 0 || g.window_ms <= 0 ||
        (strcmp(g.scheme, "adaptive") && strcmp(g.scheme, "precopy") &&
         strcmp(g.scheme, "postcopy") &&
         strcmp(g.scheme, "postcopy-after-precopy"))) {
        usage(stderr);
        return 2;
    }

    virSetErrorFunc(NULL, lv_quiet);
    connect_all();
    if (alive()) {
        measure_all();
    }
    if (alive()) {
        start_all();
        wait_all();
    }
    report();
    for (int i = 0; i < g.n; i++) {
        qmp_close(&g.vm[i].src);
        qmp_close(&g.vm[i].dst);
        json_decref(g.vm[i].last);
        json_decref(g.vm[i].decision);
        json_decref(g.vm[i].jobstats);
        if (g.vm[i].ddom) {
            virDomainFree(g.vm[i].ddom);
        }
        if (g.vm[i].dconn) {
            virConnectClose(g.vm[i].dconn);
        }
    }
    if (libvirt_conn) {
        virConnectClose(libvirt_conn);
    }
    for (int i = 0; i < g.n; i++) {
        if (g.vm[i].st != ST_DONE) {
            return 1;
        }
    }
    return 0;
}

/*
 * amwork - guest memory workloads for the adaptive-migration tests.
 *
 *   amwork read  MIB            read loop over MIB MiB
 *   amwork write MIB            write loop over MIB MiB
 *   amwork mixed MIB A B        A read passes then B write passes, repeated
 *   amwork hold  MIB            fill once, then only sleep (cold data)
 *   amwork pages K MODE         touch K distinct 4 KiB pages (MODE read|write)
 *   amwork rread MIB            read random pages of MIB MiB (a large,
 *                               scattered read working set)
 *   amwork phase MIB SECS       read loop for SECS seconds, then write loop;
 *                               SIGHUP starts the reading phase again
 *
 * Options (before the mode): -s SECONDS  stop after SECONDS (default: never)
 *                            -p          print passes/s every second
 *                            -o FILE     write "passes/s" figures to FILE
 *                            -c FILE     keep FILE holding the number of
 *                                        pages touched so far (about every
 *                                        0.1 s): the guest's own throughput,
 *                                        read by the benchmarks
 *
 * Every page of the region holds a header (magic, page index, generation)
 * and a body derived from (index, generation).  Writers rewrite whole pages
 * with the next generation.  On SIGUSR1 the workload finishes the page it is
 * on, verifies the whole region, prints one line
 *
 *   AMWORK VERIFY pid=P mode=M pages=N gen=G OK
 *   AMWORK VERIFY pid=P mode=M pages=N gen=G FAIL bad=B first=I
 *
 * to stdout and to /dev/console, and carries on.  A page whose content is
 * not exactly what the program last wrote to it is reported, so a migration
 * that loses or corrupts a page is caught.  The writer's generations must
 * also be "G over a prefix, G-1 over the rest": a page that was written but
 * reverted to old content on the destination fails that check.
 *
 * SIGUSR2 corrupts one word (used by the tests to prove the check can fail).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / sizeof(uint64_t))
#define MAGIC 0x414d574f524b2121ull /* "AMWORK!!" */

static volatile sig_atomic_t want_verify, want_corrupt, want_stop, want_phase;
static uint64_t *region;
static uint64_t *gen;           /* per-page generation, kept outside region */
static size_t npages;
static const char *mode_name;
static volatile uint64_t sink;
static int counter_fd = -1;
static uint64_t touched;        /* pages read or written so far */
static double counter_due;

static inline uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static inline uint64_t word_val(size_t page, uint64_t g, size_t w)
{
    return mix((page << 20) ^ (g << 8) ^ w ^ 0x5bd1e995ull);
}

static void write_page(size_t i, uint64_t g)
{
    uint64_t *p = region + i * WORDS;

    p[0] = MAGIC;
    p[1] = i;
    p[2] = g;
    for (size_t w = 3; w < WORDS; w++) {
        p[w] = word_val(i, g, w);
    }
    gen[i] = g;
}

static uint64_t read_page(size_t i)
{
    const uint64_t *p = region + i * WORDS;
    uint64_t s = 0;

    for (size_t w = 0; w < WORDS; w++) {
        s += p[w];
    }
    return s;
}

static int page_ok(size_t i)
{
    const uint64_t *p = region + i * WORDS;

    if (p[0] != MAGIC || p[1] != i || p[2] != gen[i]) {
        return 0;
    }
    for (size_t w = 3; w < WORDS; w++) {
        if (p[w] != word_val(i, gen[i], w)) {
            return 0;
        }
    }
    return 1;
}

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    int fd;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fputs(buf, stdout);
    fflush(stdout);
    if (!isatty(STDOUT_FILENO)) {
        fd = open("/dev/console", O_WRONLY | O_NOCTTY);
        if (fd >= 0) {
            (void)!write(fd, buf, strlen(buf));
            close(fd);
        }
    }
}

static void verify(void)
{
    size_t bad = 0, first = (size_t)-1, drops = 0;

    for (size_t i = 0; i < npages; i++) {
        if (!page_ok(i)) {
            if (!bad++) {
                first = i;
            }
        }
        /* generations never rise along the region: G...G, G-1...G-1 */
        if (i && gen[i] > gen[i - 1]) {
            drops++;
        }
    }
    bad += drops;
    if (bad) {
        report("AMWORK VERIFY pid=%d mode=%s pages=%zu gen=%llu FAIL bad=%zu first=%zd\n",
               getpid(), mode_name, npages,
               (unsigned long long)(npages ? gen[0] : 0), bad, (ssize_t)first);
    } else {
        report("AMWORK VERIFY pid=%d mode=%s pages=%zu gen=%llu OK\n",
               getpid(), mode_name, npages,
               (unsigned long long)(npages ? gen[0] : 0));
    }
}

static void on_usr1(int s) { (void)s; want_verify = 1; }
static void on_usr2(int s) { (void)s; want_corrupt = 1; }
static void on_term(int s) { (void)s; want_stop = 1; }
static void on_hup(int s) { (void)s; want_phase = 1; }

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void counter_update(void)
{
    char buf[32];
    int n;

    if (counter_fd < 0) {
        return;
    }
    /* space-padded: busybox awk reads a leading 0 as octal */
    n = snprintf(buf, sizeof(buf), "%20llu\n", (unsigned long long)touched);
    (void)!pwrite(counter_fd, buf, n, 0);
}

/* Called between pages: serve signals.  Returns 1 to stop. */
static int service(void)
{
    touched++;
    if (counter_fd >= 0 && !(touched & 63)) {
        double t = now();

        if (t >= counter_due) {
            counter_update();
            counter_due = t + 0.1;
        }
    }
    if (want_corrupt) {
        want_corrupt = 0;
        region[(npages / 2) * WORDS + 7] ^= 1;
    }
    if (want_verify) {
        want_verify = 0;
        verify();
    }
    return want_stop;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: amwork [-s SEC] [-p] [-o FILE] read|write|hold MIB\n"
            "       amwork [-s SEC] [-p] [-o FILE] mixed MIB READS WRITES\n"
            "       amwork [-s SEC] [-p] [-o FILE] pages K read|write\n"
            "       amwork [-s SEC] [-p] [-o FILE] rread MIB\n"
            "       amwork [-s SEC] [-p] [-o FILE] phase MIB SECS\n"
            "       (-c FILE: keep the count of pages touched in FILE)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    double secs = 0, t0, tlast, tphase;
    int print = 0, opt;
    const char *outfile = NULL, *counter = NULL;
    unsigned long reads = 0, writes = 0;
    uint64_t passes = 0, last_passes = 0, g = 1, rnd = 0x9e3779b97f4a7c15ull;
    double phase_secs = 0;
    enum { M_READ, M_WRITE, M_MIXED, M_HOLD, M_RREAD, M_PHASE } mode;

    while ((opt = getopt(argc, argv, "+s:po:c:")) != -1) {
        switch (opt) {
        case 's': secs = atof(optarg); break;
        case 'p': print = 1; break;
        case 'o': outfile = optarg; break;
        case 'c': counter = optarg; break;
        default: usage();
        }
    }
    if (argc - optind < 2) {
        usage();
    }
    mode_name = argv[optind];
    if (!strcmp(mode_name, "read")) {
        mode = M_READ;
    } else if (!strcmp(mode_name, "write")) {
        mode = M_WRITE;
    } else if (!strcmp(mode_name, "hold")) {
        mode = M_HOLD;
    } else if (!strcmp(mode_name, "rread")) {
        mode = M_RREAD;
    } else if (!strcmp(mode_name, "phase") && argc - optind == 3) {
        mode = M_PHASE;
        phase_secs = atof(argv[optind + 2]);
    } else if (!strcmp(mode_name, "mixed") && argc - optind == 4) {
        mode = M_MIXED;
        reads = strtoul(argv[optind + 2], NULL, 0);
        writes = strtoul(argv[optind + 3], NULL, 0);
    } else if (!strcmp(mode_name, "pages") && argc - optind == 3) {
        mode = !strcmp(argv[optind + 2], "write") ? M_WRITE : M_READ;
    } else {
        usage();
    }
    if (!strcmp(mode_name, "pages")) {
        npages = strtoul(argv[optind + 1], NULL, 0);
        mode_name = mode == M_WRITE ? "pages-write" : "pages-read";
    } else {
        npages = strtoul(argv[optind + 1], NULL, 0) * (1024 * 1024 / PAGE);
    }
    if (!npages) {
        usage();
    }
    region = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    gen = calloc(npages, sizeof(*gen));
    if (region == MAP_FAILED || !gen) {
        perror("amwork: mmap");
        return 1;
    }
    mlock(region, npages * PAGE);
    if (counter) {
        counter_fd = open(counter, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (counter_fd < 0) {
            perror(counter);
            return 1;
        }
        counter_update();
    }
    signal(SIGUSR1, on_usr1);
    signal(SIGUSR2, on_usr2);
    signal(SIGTERM, on_term);
    signal(SIGHUP, on_hup);
    signal(SIGINT, on_term);
    for (size_t i = 0; i < npages; i++) {
        write_page(i, g);
    }
    report("AMWORK START pid=%d mode=%s pages=%zu\n", getpid(), mode_name, npages);

    t0 = tlast = tphase = now();
    for (;;) {
        unsigned long r = 0, w = 0;

        switch (mode) {
        case M_READ: r = 1; break;
        case M_WRITE: w = 1; break;
        case M_MIXED: r = reads; w = writes; break;
        case M_HOLD: usleep(100000); break;
        case M_PHASE:
            if (want_phase) {
                want_phase = 0;
                tphase = now();
            }
            if (now() - tphase < phase_secs) {
                r = 1;
            } else {
                w = 1;
            }
            break;
        case M_RREAD: {
            uint64_t s = 0;

            /* one pass = npages random pages (xorshift64) */
            for (size_t i = 0; i < npages; i++) {
                rnd ^= rnd << 13;
                rnd ^= rnd >> 7;
                rnd ^= rnd << 17;
                s += read_page(rnd % npages);
                if (service()) {
                    goto out;
                }
            }
            sink += s;
            break;
        }
        }
        for (unsigned long k = 0; k < r; k++) {
            uint64_t s = 0;
            for (size_t i = 0; i < npages; i++) {
                s += read_page(i);
                if (service()) {
                    goto out;
                }
            }
            sink += s;
        }
        if (w) {
            for (unsigned long k = 0; k < w; k++) {
                g++;
                for (size_t i = 0; i < npages; i++) {
                    write_page(i, g);
                    if (service()) {
                        goto out;
                    }
                }
            }
        }
        if (mode == M_HOLD && service()) {
            goto out;
        }
        passes++;
        double t = now();
        if (t - tlast >= 1.0) {
            double rate = (passes - last_passes) / (t - tlast);
            if (print) {
                report("AMWORK RATE mode=%s passes/s=%.2f\n", mode_name, rate);
            }
            if (outfile) {
                FILE *f = fopen(outfile, "a");
                if (f) {
                    fprintf(f, "%.3f %.4f\n", t - t0, rate);
                    fclose(f);
                }
            }
            last_passes = passes;
            tlast = t;
        }
        if (secs > 0 && t - t0 >= secs) {
            break;
        }
    }
out:
    verify();
    return 0;
}

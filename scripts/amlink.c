/*
 * amlink - a TCP relay that emulates a network link: one-way delay and rate.
 *
 *   amlink -l HOST:PORT -c HOST:PORT [-l HOST:PORT -c HOST:PORT]...
 *          [-d DELAY_MS] [-r MIB_PER_S] [-b BUFFER_KIB] [-R READY_FILE]
 *
 * Every connection accepted on a -l is forwarded to the -c that follows
 * it (several pairs: several guests migrating over one emulated wire).  Each direction has
 * its own FIFO of chunks: a chunk read at time t may be written out at
 * t + DELAY, no earlier, and the writes of one direction (all connections
 * together, as on one wire) are paced at RATE by a token bucket.  A FIFO
 * holds at most BUFFER bytes (default: twice the bandwidth-delay product,
 * at least 256 KiB); while it is full the relay stops reading from that
 * side, so TCP's flow control pushes back on the sender and memory stays
 * bounded.  Half-closes are forwarded once a FIFO has drained; a reset or
 * error on either side closes both.
 *
 * It exists because the kernel of the build machines has no sch_netem:
 * where netem exists the bench uses it instead (see scripts/amig/link.py).
 * Used by the emulated-link benchmark (scripts/bench-link) and its test
 * (tests/test-link.py).  When ready it writes "ready" to READY_FILE (or
 * stdout).  SIGTERM/SIGINT end it; it then prints one line of totals.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_MAX (64 * 1024)
#define MAX_CONNS 64

struct chunk {
    struct chunk *next;
    uint64_t due_ns;
    size_t len, off;
    char data[];
};

struct dir {
    int from, to;               /* file descriptors (owned by the conn) */
    struct chunk *head, *tail;
    size_t queued;              /* bytes in the FIFO */
    bool eof;                   /* read side closed */
    bool shut;                  /* write side shut down */
    bool blocked;               /* last write hit EAGAIN */
};

struct conn {
    bool used;
    int fd[2];                  /* 0: accepted (client), 1: connected */
    struct dir d[2];            /* 0: client -> server, 1: server -> client */
    uint32_t ev[2];             /* epoll interest registered per fd */
};

struct bucket {
    double tokens, rate;        /* bytes, bytes per ns (0: unlimited) */
    double burst;
    double quantum;             /* least bytes written per wake-up */
    uint64_t last_ns;
};

static struct conn conns[MAX_CONNS];
static struct bucket bucket[2];
static uint64_t delay_ns;
static size_t buf_max;
#define MAX_LISTEN 16

static int epfd, nlisten;
static int lfd[MAX_LISTEN];
static struct sockaddr_storage target[MAX_LISTEN];
static socklen_t target_len[MAX_LISTEN];
static volatile sig_atomic_t stop;
static uint64_t total[2];
static unsigned long accepted;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void parse_addr(const char *arg, struct sockaddr_storage *ss,
                       socklen_t *len)
{
    char host[256];
    const char *colon = strrchr(arg, ':');
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;

    if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof(host)) {
        fprintf(stderr, "amlink: bad address '%s' (HOST:PORT)\n", arg);
        exit(2);
    }
    memcpy(host, arg, colon - arg);
    host[colon - arg] = 0;
    if (getaddrinfo(host, colon + 1, &hints, &res)) {
        fprintf(stderr, "amlink: cannot resolve '%s'\n", arg);
        exit(2);
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
}

static void set_nonblock(int fd)
{
    int one = 1;

    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void bucket_refill(struct bucket *b, uint64_t t)
{
    if (b->rate <= 0) {
        return;
    }
    b->tokens += (t - b->last_ns) * b->rate;
    if (b->tokens > b->burst) {
        b->tokens = b->burst;
    }
    b->last_ns = t;
}

static void watch(struct conn *c, int side, uint32_t ev)
{
    struct epoll_event e = { .events = ev, .data.u64 = (uint64_t)
                             ((c - conns) * 2 + side) };

    if (ev == c->ev[side]) {
        return;
    }
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd[side], &e) < 0) {
        die("epoll_ctl");
    }
    c->ev[side] = ev;
}

static void conn_close(struct conn *c)
{
    for (int i = 0; i < 2; i++) {
        struct chunk *k = c->d[i].head;

        while (k) {
            struct chunk *n = k->next;
            free(k);
            k = n;
        }
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd[i], NULL);
        close(c->fd[i]);
    }
    memset(c, 0, sizeof(*c));
}

/*
 * Read what FROM has into the FIFO of direction D (while there is room).
 * Chunks are allocated at the size read, so that memory stays within
 * BUFFER plus one chunk header per read even for small messages.
 */
static int dir_read(struct dir *d)
{
    static char scratch[CHUNK_MAX];

    while (!d->eof && d->queued < buf_max) {
        size_t want = buf_max - d->queued;
        struct chunk *k;
        ssize_t n;

        if (want > CHUNK_MAX) {
            want = CHUNK_MAX;
        }
        n = read(d->from, scratch, want);
        if (n <= 0) {
            if (n == 0) {
                d->eof = true;
                return 0;
            }
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        }
        k = malloc(sizeof(*k) + n);
        if (!k) {
            die("malloc");
        }
        memcpy(k->data, scratch, n);
        k->next = NULL;
        k->len = n;
        k->off = 0;
        k->due_ns = now_ns() + delay_ns;
        if (d->tail) {
            d->tail->next = k;
        } else {
            d->head = k;
        }
        d->tail = k;
        d->queued += n;
    }
    return 0;
}

/*
 * Write one due chunk (or the part the tokens of bucket B allow) of
 * direction D.  Returns 1 if it wrote, 0 if not (*wake set to when it can),
 * -1 on a socket error.
 */
static int dir_write_one(struct dir *d, struct bucket *b, int idx, uint64_t t,
                         uint64_t *wake)
{
    struct chunk *k = d->head;
    size_t n = k->len - k->off;
    ssize_t w;

    if (b->rate > 0) {
        /* write at least a quantum (or the chunk's rest) at a time: a
         * wake-up per few bytes would spin a core and send tiny segments */
        double need = n < b->quantum ? n : b->quantum;
        uint64_t w_at;

        bucket_refill(b, t);
        if (b->tokens < need) {
            w_at = t + (uint64_t)((need - b->tokens) / b->rate) + 1;
            if (!*wake || w_at < *wake) {
                *wake = w_at;
            }
            return 0;
        }
        if (n > b->tokens) {
            n = b->tokens;
        }
    }
    w = write(d->to, k->data + k->off, n);
    if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            d->blocked = true;
            return 0;
        }
        return -1;
    }
    if (b->rate > 0) {
        b->tokens -= w;
    }
    total[idx] += w;
    k->off += w;
    d->queued -= w;
    if (k->off == k->len) {
        d->head = k->next;
        if (!d->head) {
            d->tail = NULL;
        }
        free(k);
    }
    return 1;
}

/*
 * Direction IDX of all connections shares one wire: write due chunks in the
 * order they arrived, across connections, while the tokens last (a
 * post-copy preempt channel is not starved by the main channel).
 */
static void wire_write(int idx, uint64_t t, uint64_t *wake)
{
    for (int i = 0; i < MAX_CONNS; i++) {
        if (conns[i].used) {
            conns[i].d[idx].blocked = false;
        }
    }
    for (;;) {
        struct conn *best = NULL;
        int r;

        for (int i = 0; i < MAX_CONNS; i++) {
            struct dir *d = &conns[i].d[idx];

            if (!conns[i].used || !d->head || d->blocked) {
                continue;
            }
            if (d->head->due_ns > t) {
                if (!*wake || d->head->due_ns < *wake) {
                    *wake = d->head->due_ns;
                }
                continue;
            }
            if (!best || d->head->due_ns < best->d[idx].head->due_ns) {
                best = &conns[i];
            }
        }
        if (!best) {
            return;
        }
        r = dir_write_one(&best->d[idx], &bucket[idx], idx, t, wake);
        if (r < 0) {
            best->d[idx].blocked = true;
            best->d[idx].eof = true;
            best->d[0].shut = best->d[1].shut = true;   /* close it */
        } else if (r == 0 && !best->d[idx].blocked) {
            return;             /* out of tokens */
        }
    }
}

static void do_accept(int li)
{
    for (;;) {
        int a = accept4(lfd[li], NULL, NULL, SOCK_CLOEXEC), s;
        struct conn *c = NULL;

        if (a < 0) {
            return;
        }
        for (int i = 0; i < MAX_CONNS; i++) {
            if (!conns[i].used) {
                c = &conns[i];
                break;
            }
        }
        s = socket(target[li].ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        /* blocking connect: the target is on the other end of a veth */
        if (!c || s < 0 || connect(s, (struct sockaddr *)&target[li],
                                   target_len[li]) < 0) {
            fprintf(stderr, "amlink: cannot forward a connection: %s\n",
                    c ? strerror(errno) : "too many connections");
            close(a);
            if (s >= 0) {
                close(s);
            }
            continue;
        }
        accepted++;
        set_nonblock(a);
        set_nonblock(s);
        c->used = true;
        c->fd[0] = a;
        c->fd[1] = s;
        c->d[0].from = a;
        c->d[0].to = s;
        c->d[1].from = s;
        c->d[1].to = a;
        for (int i = 0; i < 2; i++) {
            struct epoll_event e = { .events = EPOLLIN,
                                     .data.u64 = (uint64_t)
                                     ((c - conns) * 2 + i) };
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd[i], &e) < 0) {
                die("epoll_ctl");
            }
            c->ev[i] = EPOLLIN;
        }
    }
}

static void on_signal(int s)
{
    (void)s;
    stop = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: amlink -l HOST:PORT -c HOST:PORT [-l .. -c ..]... "
            "[-d DELAY_MS] [-r MIB_PER_S] [-b BUFFER_KIB] [-R READY_FILE]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *listen_at[MAX_LISTEN], *connect_to[MAX_LISTEN];
    const char *ready = NULL;
    int nconnect = 0;
    double delay_ms = 0, rate_mib = 0, buf_kib = 0;
    int opt, one = 1;

    while ((opt = getopt(argc, argv, "l:c:d:r:b:R:")) != -1) {
        char *end;

        switch (opt) {
        case 'l':
            if (nlisten == MAX_LISTEN || nlisten != nconnect) {
                usage();
            }
            listen_at[nlisten++] = optarg;
            break;
        case 'c':
            if (nconnect + 1 != nlisten) {
                usage();
            }
            connect_to[nconnect++] = optarg;
            break;
        case 'R': ready = optarg; break;
        case 'd': case 'r': case 'b': {
            double v = strtod(optarg, &end);

            if (*end || v < 0 || v > 1e7) {
                fprintf(stderr, "amlink: bad value '%s' for -%c\n", optarg,
                        opt);
                exit(2);
            }
            *(opt == 'd' ? &delay_ms : opt == 'r' ? &rate_mib : &buf_kib) = v;
            break;
        }
        default: usage();
        }
    }
    if (!nlisten || nlisten != nconnect || optind != argc) {
        usage();
    }
    delay_ns = (uint64_t)(delay_ms * 1e6);
    for (int i = 0; i < 2; i++) {
        bucket[i].rate = rate_mib * 1048576.0 / 1e9;
        /* 5 ms of line rate (timer wake-ups are late by up to a ms or so),
         * at least 16 KiB: smooth but not per byte */
        bucket[i].burst = rate_mib * 1048576.0 / 200;
        if (bucket[i].burst < 16384) {
            bucket[i].burst = 16384;
        }
        bucket[i].quantum = bucket[i].burst / 4 < 16384 ? bucket[i].burst / 4
                                                        : 16384;
        bucket[i].tokens = bucket[i].burst;
        bucket[i].last_ns = now_ns();
    }
    if (buf_kib > 0) {
        buf_max = (size_t)(buf_kib * 1024);
    } else {
        double bdp = rate_mib > 0 ? rate_mib * 1048576.0 * delay_ms / 1000
                                  : 4.0 * 1048576;
        buf_max = 2 * bdp > 256 * 1024 ? (size_t)(2 * bdp) : 256 * 1024;
    }

    /* the default 50 us timer slack would add to every short delay */
    prctl(PR_SET_TIMERSLACK, 1UL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        die("epoll");
    }
    for (int i = 0; i < nlisten; i++) {
        struct sockaddr_storage la;
        socklen_t la_len;
        struct epoll_event e = { .events = EPOLLIN,
                                 .data.u64 = UINT64_MAX - i };

        parse_addr(listen_at[i], &la, &la_len);
        parse_addr(connect_to[i], &target[i], &target_len[i]);
        lfd[i] = socket(la.ss_family,
                        SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (lfd[i] < 0) {
            die("socket");
        }
        setsockopt(lfd[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(lfd[i], (struct sockaddr *)&la, la_len) < 0 ||
            listen(lfd[i], 16) < 0) {
            fprintf(stderr, "amlink: cannot listen on %s: %s\n",
                    listen_at[i], strerror(errno));
            exit(1);
        }
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd[i], &e) < 0) {
            die("epoll_ctl");
        }
    }
    if (ready) {
        FILE *f = fopen(ready, "w");

        if (!f) {
            die(ready);
        }
        fprintf(f, "ready\n");
        fclose(f);
    } else {
        printf("ready\n");
        fflush(stdout);
    }

    while (!stop) {
        struct epoll_event evs[2 * MAX_CONNS + 1];
        uint64_t t = now_ns(), wake = 0;
        struct timespec ts, *timeout = NULL;
        int n;

        /* move due data, then set each fd's interest from the FIFOs */
        wire_write(0, t, &wake);
        wire_write(1, t, &wake);
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *c = &conns[i];

            if (!c->used) {
                continue;
            }
            for (int k = 0; k < 2; k++) {
                struct dir *d = &c->d[k];

                if (!d->head && d->eof && !d->shut) {
                    shutdown(d->to, SHUT_WR);
                    d->shut = true;
                }
            }
            if (c->d[0].shut && c->d[1].shut) {
                conn_close(c);
                continue;
            }
            for (int side = 0; side < 2; side++) {
                /* fd[side] is read by d[side] and written by d[1 - side] */
                struct dir *rd = &c->d[side], *wr = &c->d[1 - side];
                uint32_t ev = 0;

                if (!rd->eof && rd->queued < buf_max) {
                    ev |= EPOLLIN;
                }
                if (wr->blocked) {
                    ev |= EPOLLOUT;
                }
                /* nothing wanted: edge-triggered, so a hang-up is not
                 * reported over and over while delayed data drains */
                watch(c, side, ev ? ev : EPOLLET);
            }
        }
        if (wake) {
            uint64_t dt = wake > t ? wake - t : 0;

            /* nanosecond timeouts: a 0.1 ms delay must not become 1 ms */
            ts.tv_sec = dt / 1000000000ull;
            ts.tv_nsec = dt % 1000000000ull;
            timeout = &ts;
        }
        n = epoll_pwait2(epfd, evs, 2 * MAX_CONNS + 1, timeout, NULL);
        if (n < 0 && errno != EINTR) {
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            uint64_t id = evs[i].data.u64;
            struct conn *c;
            int side;

            if (id > UINT64_MAX - MAX_LISTEN) {
                do_accept(UINT64_MAX - id);
                continue;
            }
            c = &conns[id / 2];
            side = id % 2;
            if (!c->used) {
                continue;
            }
            if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) &&
                dir_read(&c->d[side]) < 0) {
                conn_close(c);
            }
        }
    }
    fprintf(stderr, "amlink: %lu connections, %llu bytes forward, "
            "%llu bytes back\n", accepted, (unsigned long long)total[0],
            (unsigned long long)total[1]);
    return 0;
}

/*
 * amqmp - a tiny QMP client for places without python (the check-kvm L1
 * initramfs).  Built static.
 *
 *   amqmp [-t SECONDS] SOCKET ARG...
 *
 * Connects to the QMP unix socket SOCKET (retrying for up to SECONDS while
 * it does not exist yet or refuses), reads the greeting, negotiates
 * capabilities, then for each ARG in order:
 *
 *   a JSON command   e.g. '{"execute":"query-status"}': sent; the reply
 *                    (the next line that is not an asynchronous event) is
 *                    printed on one line of stdout
 *   sleep:SECONDS    waits (e.g. between calc-access-rate and
 *                    query-access-rate), SECONDS may be fractional
 *
 * Events are not printed.  Exit status: 0 if every command returned,
 * 1 if one got an "error" reply, 2 on a connection or protocol failure.
 * SECONDS (default 30) also bounds the wait for each reply.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int fd = -1;
static char buf[1 << 20];
static size_t len;
static double timeout_s = 30;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(const char *what)
{
    fprintf(stderr, "amqmp: %s\n", what);
    exit(2);
}

/* Next line (without CR/LF) into out; 0 on success. */
static int read_line(char *out, size_t outsz)
{
    double deadline = now() + timeout_s;

    for (;;) {
        char *nl = memchr(buf, '\n', len);

        if (nl) {
            size_t n = nl - buf;
            size_t c = n;

            while (c > 0 && (buf[c - 1] == '\r')) {
                c--;
            }
            if (c >= outsz) {
                c = outsz - 1;
            }
            memcpy(out, buf, c);
            out[c] = 0;
            memmove(buf, nl + 1, len - n - 1);
            len -= n + 1;
            return 0;
        }
        if (len == sizeof(buf)) {
            fail("reply line too long");
        }
        double left = deadline - now();
        if (left <= 0) {
            fail("timeout waiting for a reply");
        }
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno != EINTR) {
            fail("poll failed");
        }
        if (r <= 0) {
            continue;
        }
        ssize_t got = read(fd, buf + len, sizeof(buf) - len);
        if (got == 0) {
            fail("connection closed by QEMU");
        }
        if (got < 0 && errno != EINTR) {
            fail("read failed");
        }
        if (got > 0) {
            len += got;
        }
    }
}

static void send_all(const char *s)
{
    size_t n = strlen(s);

    while (n) {
        /* MSG_NOSIGNAL: a QEMU that quit gives EPIPE, not SIGPIPE */
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            fail("write failed");
        }
        s += w;
        n -= w;
    }
}

/* Send one command and read its reply (skipping events) into line. */
static void command(const char *cmd, char *line, size_t sz)
{
    /* one write: QEMU acts on a complete JSON object at once, so after
     * "quit" a separate newline could hit a closed socket */
    char *msg;

    if (asprintf(&msg, "%s\n", cmd) < 0) {
        fail("out of memory");
    }
    send_all(msg);
    free(msg);
    for (;;) {
        read_line(line, sz);
        /* QEMU writes a reply as {"return": ...} or {"error": ...}; an
         * event starts with {"timestamp": ... */
        if (!strncmp(line, "{\"return\"", 9) || !strncmp(line, "{\"error\"", 8)) {
            return;
        }
    }
}

int main(int argc, char **argv)
{
    static char line[1 << 20];
    int opt, status = 0;

    while ((opt = getopt(argc, argv, "+t:")) != -1) {
        if (opt == 't') {
            timeout_s = atof(optarg);
        } else {
            fprintf(stderr, "usage: amqmp [-t SECONDS] SOCKET ARG...\n");
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: amqmp [-t SECONDS] SOCKET ARG...\n");
        return 2;
    }

    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(argv[optind]) >= sizeof(sa.sun_path)) {
        fail("socket path too long");
    }
    strcpy(sa.sun_path, argv[optind]);
    double deadline = now() + timeout_s;
    for (;;) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            fail("socket failed");
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            break;
        }
        close(fd);
        if (now() > deadline) {
            fprintf(stderr, "amqmp: cannot connect to %s: %s\n",
                    sa.sun_path, strerror(errno));
            return 2;
        }
        usleep(100000);
    }

    read_line(line, sizeof(line));
    if (!strstr(line, "\"QMP\"")) {
        fprintf(stderr, "amqmp: unexpected greeting: %s\n", line);
        return 2;
    }
    command("{\"execute\":\"qmp_capabilities\"}", line, sizeof(line));
    if (strncmp(line, "{\"return\"", 9)) {
        fprintf(stderr, "amqmp: qmp_capabilities failed: %s\n", line);
        return 2;
    }

    for (int i = optind + 1; i < argc; i++) {
        if (!strncmp(argv[i], "sleep:", 6)) {
            double s = atof(argv[i] + 6);
            struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };
            while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
            }
            continue;
        }
        command(argv[i], line, sizeof(line));
        printf("%s\n", line);
        fflush(stdout);
        if (!strncmp(line, "{\"error\"", 8)) {
            status = 1;
        }
    }
    close(fd);
    return status;
}

/*
 * Pipe-chain benchmark on libev 4 (impl=libev backend=<from ev_backend()>).
 * Protocol: bench-protocol.md, section 1.
 *
 * One ev_io watcher per pipe. Setup: ev_io_stop + ev_io_set + ev_io_start of every
 * watcher (with -t also ev_timer_stop + ev_timer_set with a fresh random 60..120 s
 * timeout + ev_timer_start), then ev_run(EVRUN_NOWAIT). Run: ev_run(EVRUN_ONCE) until
 * every byte was read. With -t the read callback restarts its timer with a fresh random
 * timeout through ev_timer_again (set `repeat`, then again: the documented way to reset
 * an active timer in place).
 *
 * -b picks the backend (epoll, poll, select).
 *
 * Build: gcc -O2 -Wall -Wextra -o pipechain_libev pipechain_libev.c -lev
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

/* ---- options, timing, statistics (same in the three C programs) ---- */

static int opt_n = 100, opt_a = 1, opt_w = 100, opt_t = 0, opt_i = 25;
static const char *opt_b = "epoll";

static void usage(const char *msg)
{
    fprintf(stderr, "error: %s\nusage: pipechain [-n pipes] [-a active] [-w writes] [-t] "
                    "[-i iterations] [-b backend] [--api trait|macro]\n", msg);
    exit(2);
}

static int parse_count(const char *s)
{
    char *end;
    long v;
    if (!s)
        usage("option needs a value");
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 0 || v > 100000000)
        usage("bad number");
    return (int)v;
}

static void parse_options(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-t"))
            opt_t = 1;
        else if (!strcmp(a, "-n"))
            opt_n = parse_count(argv[++i]);
        else if (!strcmp(a, "-a"))
            opt_a = parse_count(argv[++i]);
        else if (!strcmp(a, "-w"))
            opt_w = parse_count(argv[++i]);
        else if (!strcmp(a, "-i"))
            opt_i = parse_count(argv[++i]);
        else if (!strcmp(a, "-b")) {
            if (!(opt_b = argv[++i]))
                usage("option -b needs a value");
        } else if (!strcmp(a, "--api")) {
            /* accepted for command-line compatibility with the Rust binaries */
            if (!argv[++i] || (strcmp(argv[i], "trait") && strcmp(argv[i], "macro")))
                usage("--api must be trait or macro");
        } else {
            fprintf(stderr, "unknown option: %s\n", a);
            usage("unknown option");
        }
    }
    if (opt_n < 1 || opt_a < 1 || opt_i < 1 || opt_a > opt_n)
        usage("need n >= 1, 1 <= a <= n, i >= 1");
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static uint64_t rng_state = 0x0123456789ABCDEFull;

/* xorshift64*: deterministic, good enough for timeouts */
static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* random timeout in 60..120 s, microsecond resolution */
static int64_t random_timeout_us(void)
{
    return 60000000 + (int64_t)(rng_next() % 60000000u);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            perror("setrlimit");
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double *s = malloc(sizeof(double) * n);
    double m;
    memcpy(s, v, sizeof(double) * n);
    qsort(s, n, sizeof(double), cmp_double);
    m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

static double minimum(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        if (v[i] < m)
            m = v[i];
    return m;
}

/* prints the per-iteration lines and the SUMMARY line; returns the exit status */
static int report(const char *impl, const char *backend, const double *setup,
                  const double *run, long fired, long failures)
{
    double run_med = median(run, opt_i);
    for (int i = 0; i < opt_i; i++)
        printf("%.1f %.1f\n", setup[i], run[i]);
    printf("SUMMARY impl=%s backend=%s n=%d a=%d w=%d t=%d iters=%d setup_us_med=%.1f "
           "setup_us_min=%.1f run_us_med=%.1f run_us_min=%.1f run_ns_per_event=%.1f "
           "timeouts_fired=%ld failures=%ld\n",
           impl, backend, opt_n, opt_a, opt_w, opt_t, opt_i, median(setup, opt_i),
           minimum(setup, opt_i), run_med, minimum(run, opt_i),
           run_med * 1000.0 / (opt_a + opt_w), fired, failures);
    return fired || failures ? 1 : 0;
}

/* ---- benchmark state ---- */

struct pipe_watch {
    ev_io io;                   /* first member: an ev_io * is a struct pipe_watch * */
    ev_timer tm;
    int idx;
};

static int *rfd, *wfd;          /* read and write end of each pipe */
static struct pipe_watch *watch;
static long count, expected, writes_left, failures, fired;

static ev_tstamp random_timeout(void)
{
    return random_timeout_us() / 1e6;
}

static void timeout_cb(struct ev_loop *loop, ev_timer *tm, int revents)
{
    (void)loop;
    (void)tm;
    (void)revents;
    fired++;
}

static void read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct pipe_watch *w = (struct pipe_watch *)io;
    char c;
    ssize_t r;

    (void)revents;
    r = read(io->fd, &c, 1);
    if (r != 1) {
        if (r == 0 || (errno != EAGAIN && errno != EINTR))
            failures++;
        return;
    }
    count++;
    if (writes_left > 0) {
        int next = w->idx + 1 == opt_n ? 0 : w->idx + 1;
        if (write(wfd[next], "e", 1) != 1) {
            failures++;
            expected--;
        }
        writes_left--;
    }
    if (opt_t) {
        w->tm.repeat = random_timeout();
        ev_timer_again(loop, &w->tm);
    }
}

static const char *backend_name(unsigned int b)
{
    switch (b) {
    case EVBACKEND_EPOLL:
        return "epoll";
    case EVBACKEND_POLL:
        return "poll";
    case EVBACKEND_SELECT:
        return "select";
    case EVBACKEND_KQUEUE:
        return "kqueue";
    case EVBACKEND_PORT:
        return "port";
#ifdef EVBACKEND_LINUXAIO
    case EVBACKEND_LINUXAIO:
        return "linuxaio";
#endif
#ifdef EVBACKEND_IOURING
    case EVBACKEND_IOURING:
        return "iouring";
#endif
    default:
        return "unknown";
    }
}

int main(int argc, char **argv)
{
    double *setup_us, *run_us;
    struct ev_loop *loop;
    unsigned int flag;

    parse_options(argc, argv);
    if (!strcmp(opt_b, "epoll"))
        flag = EVBACKEND_EPOLL;
    else if (!strcmp(opt_b, "poll"))
        flag = EVBACKEND_POLL;
    else if (!strcmp(opt_b, "select"))
        flag = EVBACKEND_SELECT;
    else
        usage("-b must be epoll, poll or select");
    if (!(ev_supported_backends() & flag))
        usage("backend not supported by this libev");
    raise_nofile();

    rfd = calloc(opt_n, sizeof(int));
    wfd = calloc(opt_n, sizeof(int));
    watch = calloc(opt_n, sizeof(struct pipe_watch));
    setup_us = calloc(opt_i, sizeof(double));
    run_us = calloc(opt_i, sizeof(double));
    if (!rfd || !wfd || !watch || !setup_us || !run_us) {
        perror("calloc");
        return 1;
    }
    loop = ev_loop_new(flag);
    if (!loop) {
        fprintf(stderr, "cannot create an ev_loop\n");
        return 1;
    }
    for (int p = 0; p < opt_n; p++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) {
            perror("socketpair");
            return 1;
        }
        rfd[p] = sv[0];
        wfd[p] = sv[1];
        watch[p].idx = p;
        ev_io_init(&watch[p].io, read_cb, rfd[p], EV_READ);
        ev_io_start(loop, &watch[p].io);
        ev_timer_init(&watch[p].tm, timeout_cb, 0., 0.);
    }

    for (int it = 0; it < opt_i; it++) {
        /* setup: stop, set and start every watcher (fresh timeout), one non-blocking pass */
        double t0 = now_us(), t1, t2;
        for (int p = 0; p < opt_n; p++) {
            ev_io_stop(loop, &watch[p].io);
            ev_io_set(&watch[p].io, rfd[p], EV_READ);
            ev_io_start(loop, &watch[p].io);
            if (opt_t) {
                ev_timer_stop(loop, &watch[p].tm);
                ev_timer_set(&watch[p].tm, random_timeout(), 0.);
                ev_timer_start(loop, &watch[p].tm);
            }
        }
        count = 0;
        ev_run(loop, EVRUN_NOWAIT);
        t1 = now_us();

        /* run: one byte into a evenly spaced pipes, loop until a + w bytes were read */
        count = 0;
        expected = opt_a + opt_w;
        for (int k = 0; k < opt_a; k++) {
            if (write(wfd[k * (opt_n / opt_a)], "e", 1) != 1) {
                failures++;
                expected--;
            }
        }
        writes_left = opt_w;
        while (count < expected)
            ev_run(loop, EVRUN_ONCE);
        t2 = now_us();
        setup_us[it] = t1 - t0;
        run_us[it] = t2 - t1;
    }
    return report("libev", backend_name(ev_backend(loop)), setup_us, run_us, fired, failures);
}

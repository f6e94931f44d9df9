/*
 * Pipe-chain benchmark on libevent 2.1 (impl=libevent backend=<event_base_get_method()>).
 * Protocol: bench-protocol.md, section 1.
 *
 * One persistent read event (EV_READ|EV_PERSIST) per pipe. Setup: event_del + event_add
 * of every event (with -t, with a fresh random 60..120 s timeout), then one
 * event_base_loop(EVLOOP_NONBLOCK). Run: event_base_loop(EVLOOP_ONCE) until every byte
 * was read. With -t the read callback re-adds its event with a fresh timeout, which is how
 * libevent re-arms the timeout of a pending event.
 *
 * -b picks the backend (epoll, poll, select) by avoiding every other supported method.
 *
 * Build: gcc -O2 -Wall -Wextra -o pipechain_libevent pipechain_libevent.c -levent_core
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

#include <event2/event.h>

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

static int *rfd, *wfd;          /* read and write end of each pipe */
static struct event **evs;
static long count, expected, writes_left, failures, fired;

static struct timeval random_timeval(void)
{
    int64_t us = random_timeout_us();
    struct timeval tv;
    tv.tv_sec = (time_t)(us / 1000000);
    tv.tv_usec = (suseconds_t)(us % 1000000);
    return tv;
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    int p = (int)(intptr_t)arg;
    char c;
    ssize_t r;

    if (what & EV_TIMEOUT) {
        fired++;
        if (!(what & EV_READ))
            return;
    }
    r = read(fd, &c, 1);
    if (r != 1) {
        if (r == 0 || (errno != EAGAIN && errno != EINTR))
            failures++;
        return;
    }
    count++;
    if (writes_left > 0) {
        int next = p + 1 == opt_n ? 0 : p + 1;
        if (write(wfd[next], "e", 1) != 1) {
            failures++;
            expected--;
        }
        writes_left--;
    }
    if (opt_t) {
        struct timeval tv = random_timeval();
        if (event_add(evs[p], &tv))
            failures++;
    }
}

/* an event_base whose backend is opt_b */
static struct event_base *make_base(void)
{
    const char **methods = event_get_supported_methods();
    struct event_config *cfg = event_config_new();
    struct event_base *base;
    int found = 0;

    for (int i = 0; methods && methods[i]; i++) {
        if (!strcmp(methods[i], opt_b))
            found = 1;
        else
            event_config_avoid_method(cfg, methods[i]);
    }
    if (!found)
        usage("backend not supported by this libevent");
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

int main(int argc, char **argv)
{
    double *setup_us, *run_us;
    struct event_base *base;

    parse_options(argc, argv);
    raise_nofile();

    rfd = calloc(opt_n, sizeof(int));
    wfd = calloc(opt_n, sizeof(int));
    evs = calloc(opt_n, sizeof(struct event *));
    setup_us = calloc(opt_i, sizeof(double));
    run_us = calloc(opt_i, sizeof(double));
    if (!rfd || !wfd || !evs || !setup_us || !run_us) {
        perror("calloc");
        return 1;
    }
    base = make_base();
    if (!base) {
        fprintf(stderr, "cannot create an event_base\n");
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
        evs[p] = event_new(base, rfd[p], EV_READ | EV_PERSIST, read_cb, (void *)(intptr_t)p);
        if (!evs[p] || event_add(evs[p], NULL)) {
            fprintf(stderr, "event_new/event_add failed\n");
            return 1;
        }
    }

    for (int it = 0; it < opt_i; it++) {
        /* setup: delete and re-add every event (fresh timeout), one non-blocking pass */
        double t0 = now_us(), t1, t2;
        for (int p = 0; p < opt_n; p++) {
            struct timeval tv;
            if (event_del(evs[p]))
                failures++;
            if (opt_t)
                tv = random_timeval();
            if (event_add(evs[p], opt_t ? &tv : NULL))
                failures++;
        }
        count = 0;
        if (event_base_loop(base, EVLOOP_NONBLOCK) < 0)
            failures++;
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
        while (count < expected) {
            if (event_base_loop(base, EVLOOP_ONCE) < 0) {
                failures++;
                break;
            }
        }
        t2 = now_us();
        setup_us[it] = t1 - t0;
        run_us[it] = t2 - t1;
    }
    return report("libevent", event_base_get_method(base), setup_us, run_us, fired, failures);
}

/*
 * Pipe-chain benchmark on a hand-written, level-triggered epoll loop
 * (impl=raw-epoll backend=epoll). Protocol: bench-protocol.md, section 1.
 *
 * This is the "no library" baseline: one epoll_ctl(DEL) + epoll_ctl(ADD) per pipe in
 * setup, epoll_wait in run, one read + one write per event. With -t every pipe has a
 * deadline kept in an indexed binary min-heap (re-armed per event, sifted in place), one
 * clock_gettime per loop pass, and the epoll_wait timeout comes from the heap's top.
 *
 * Build: gcc -O2 -Wall -Wextra -o pipechain_epoll pipechain_epoll.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
static int epfd;
static long count, expected, writes_left, failures, fired;

/* -t: indexed binary min-heap of pipe indices ordered by deadline[] */
static int64_t *deadline;       /* absolute, microseconds (CLOCK_MONOTONIC) */
static int *heap, *heap_pos;    /* heap_pos[p] = position of pipe p in heap[] */
static int heap_len;
static int64_t loop_now;        /* time read once after each epoll_wait returned */

static int64_t clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void heap_swap(int i, int j)
{
    int t = heap[i];
    heap[i] = heap[j];
    heap[j] = t;
    heap_pos[heap[i]] = i;
    heap_pos[heap[j]] = j;
}

static void heap_sift(int i)
{
    while (i > 0 && deadline[heap[(i - 1) / 2]] > deadline[heap[i]]) {
        heap_swap(i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_len && deadline[heap[l]] < deadline[heap[m]])
            m = l;
        if (r < heap_len && deadline[heap[r]] < deadline[heap[m]])
            m = r;
        if (m == i)
            break;
        heap_swap(i, m);
        i = m;
    }
}

/* (re-)arm pipe p's deadline; p is inserted if it is not in the heap */
static void timer_arm(int p, int64_t now)
{
    deadline[p] = now + random_timeout_us();
    if (heap_pos[p] < 0) {
        heap[heap_len] = p;
        heap_pos[p] = heap_len++;
    }
    heap_sift(heap_pos[p]);
}

static void timer_remove_top(void)
{
    heap_pos[heap[0]] = -1;
    if (--heap_len > 0) {
        heap[0] = heap[heap_len];
        heap_pos[heap[0]] = 0;
        heap_sift(0);
    }
}

static void on_readable(int p, int64_t now)
{
    char c;
    ssize_t r = read(rfd[p], &c, 1);
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
    if (opt_t)
        timer_arm(p, now);
}

/*
 * One pass of the loop; timeout_ms < 0 means "until the nearest deadline, or forever".
 * The timeout is computed from the time cached after the previous pass (as libev and
 * libevent do), so there is one clock_gettime per pass.
 */
static void loop_pass(int timeout_ms)
{
    struct epoll_event evs[256];
    int64_t now;
    int nev;

    if (timeout_ms < 0 && opt_t && heap_len > 0) {
        int64_t d = deadline[heap[0]] - loop_now;
        timeout_ms = d <= 0 ? 0 : (int)((d + 999) / 1000);
    }
    nev = epoll_wait(epfd, evs, 256, timeout_ms);
    if (nev < 0) {
        if (errno != EINTR) {
            perror("epoll_wait");
            failures++;
        }
        return;
    }
    now = loop_now = opt_t ? clock_us() : 0;
    for (int i = 0; i < nev; i++)
        on_readable((int)evs[i].data.u32, now);
    while (opt_t && heap_len > 0 && deadline[heap[0]] <= now) {
        fired++;
        timer_remove_top();
    }
}

int main(int argc, char **argv)
{
    double *setup_us, *run_us;
    struct epoll_event ev;

    parse_options(argc, argv);
    if (strcmp(opt_b, "epoll"))
        usage("raw-epoll supports only -b epoll");
    raise_nofile();

    rfd = calloc(opt_n, sizeof(int));
    wfd = calloc(opt_n, sizeof(int));
    deadline = calloc(opt_n, sizeof(int64_t));
    heap = calloc(opt_n, sizeof(int));
    heap_pos = calloc(opt_n, sizeof(int));
    setup_us = calloc(opt_i, sizeof(double));
    run_us = calloc(opt_i, sizeof(double));
    if (!rfd || !wfd || !deadline || !heap || !heap_pos || !setup_us || !run_us) {
        perror("calloc");
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("epoll_create1");
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
        heap_pos[p] = -1;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)p;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, rfd[p], &ev)) {
            perror("epoll_ctl");
            return 1;
        }
    }

    for (int it = 0; it < opt_i; it++) {
        /* setup: delete and re-add every watcher (fresh timeout), one non-blocking pass */
        double t0 = now_us(), t1, t2;
        int64_t now = loop_now = opt_t ? clock_us() : 0;
        for (int p = 0; p < opt_n; p++) {
            if (epoll_ctl(epfd, EPOLL_CTL_DEL, rfd[p], NULL))
                failures++;
            memset(&ev, 0, sizeof ev);
            ev.events = EPOLLIN;
            ev.data.u32 = (uint32_t)p;
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, rfd[p], &ev))
                failures++;
            if (opt_t)
                timer_arm(p, now);
        }
        count = 0;
        loop_pass(0);
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
            loop_pass(-1);
        t2 = now_us();
        setup_us[it] = t1 - t0;
        run_us[it] = t2 - t1;
    }
    return report("raw-epoll", "epoll", setup_us, run_us, fired, failures);
}

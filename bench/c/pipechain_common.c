/*
 * The part of the C pipe-chain programs that does not depend on the event library;
 * see pipechain_common.h.
 */
#define _GNU_SOURCE
#include "pipechain_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

int opt_n = 100, opt_a = 1, opt_w = 100, opt_t = 0, opt_i = 25;
const char *opt_b = "epoll";

int *rfd, *wfd;
double *setup_us, *run_us;
long count, expected, writes_left, failures, fired;
uint64_t rng_state = 0x0123456789ABCDEFull;

void usage(const char *msg)
{
    fprintf(stderr, "error: %s\nusage: pipechain [-n pipes] [-a active] [-w writes] [-t] "
                    "[-i iterations] [-b backend] [--api trait|macro]\n", msg);
    exit(2);
}

/* A whole number in 0..100000000 for an option; s is NULL when the option ended argv. */
static int count_arg(const char *s)
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

void parse_options(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-t"))
            opt_t = 1;
        else if (!strcmp(a, "-n"))
            opt_n = count_arg(argv[++i]);
        else if (!strcmp(a, "-a"))
            opt_a = count_arg(argv[++i]);
        else if (!strcmp(a, "-w"))
            opt_w = count_arg(argv[++i]);
        else if (!strcmp(a, "-i"))
            opt_i = count_arg(argv[++i]);
        else if (!strcmp(a, "-b")) {
            if (!(opt_b = argv[++i]))
                usage("option -b needs a value");
        } else if (!strcmp(a, "--api")) {
            /* the Rust binaries take --api; accept (and ignore) the same values */
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

double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            perror("setrlimit");
    }
}

int alloc_common(void)
{
    rfd = calloc(opt_n, sizeof(int));
    wfd = calloc(opt_n, sizeof(int));
    setup_us = calloc(opt_i, sizeof(double));
    run_us = calloc(opt_i, sizeof(double));
    if (!rfd || !wfd || !setup_us || !run_us) {
        perror("calloc");
        return -1;
    }
    return 0;
}

int open_pipe(int p)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) {
        perror("socketpair");
        return -1;
    }
    rfd[p] = sv[0];
    wfd[p] = sv[1];
    return 0;
}

void start_run(void)
{
    count = 0;
    expected = opt_a + opt_w;
    for (int k = 0; k < opt_a; k++) {
        if (write(wfd[k * (opt_n / opt_a)], "e", 1) != 1) {
            failures++;
            expected--;
        }
    }
    writes_left = opt_w;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median of v[0..n), n >= 1 (the mean of the two middle values when n is even) */
static double median(const double *v, int n)
{
    double *sorted = malloc(sizeof(double) * n);
    double m;
    memcpy(sorted, v, sizeof(double) * n);
    qsort(sorted, n, sizeof(double), by_value);
    m = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    free(sorted);
    return m;
}

/* smallest of v[0..n), n >= 1 */
static double minimum(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        if (v[i] < m)
            m = v[i];
    return m;
}

int report(const char *impl, const char *backend)
{
    double run_med = median(run_us, opt_i);
    for (int i = 0; i < opt_i; i++)
        printf("%.1f %.1f\n", setup_us[i], run_us[i]);
    printf("SUMMARY impl=%s backend=%s n=%d a=%d w=%d t=%d iters=%d setup_us_med=%.1f "
           "setup_us_min=%.1f run_us_med=%.1f run_us_min=%.1f run_ns_per_event=%.1f "
           "timeouts_fired=%ld failures=%ld\n",
           impl, backend, opt_n, opt_a, opt_w, opt_t, opt_i, median(setup_us, opt_i),
           minimum(setup_us, opt_i), run_med, minimum(run_us, opt_i),
           run_med * 1000.0 / (opt_a + opt_w), fired, failures);
    return fired || failures ? 1 : 0;
}

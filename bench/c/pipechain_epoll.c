/*
 * Pipe-chain benchmark on a hand-written, level-triggered epoll loop
 * (impl=raw-epoll backend=epoll). Protocol: bench/README.md, "The pipe chain".
 *
 * This is the "no library" baseline: one epoll_ctl(DEL) + epoll_ctl(ADD) per pipe in
 * setup, epoll_wait in run, one read + one write per event. With -t every pipe has a
 * deadline kept in an indexed binary min-heap (re-armed per event, sifted in place), one
 * clock_gettime per loop pass, and the epoll_wait timeout comes from the heap's top.
 *
 * Build: gcc -O2 -Wall -Wextra -o pipechain_epoll pipechain_epoll.c pipechain_common.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "pipechain_common.h"

/* ---- benchmark state ---- */

static int epfd;

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
    if (relay_byte(rfd[p], p) && opt_t)
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
    struct epoll_event ev;

    parse_options(argc, argv);
    if (strcmp(opt_b, "epoll"))
        usage("raw-epoll supports only -b epoll");
    raise_nofile();

    if (alloc_common())
        return 1;
    deadline = calloc(opt_n, sizeof(int64_t));
    heap = calloc(opt_n, sizeof(int));
    heap_pos = calloc(opt_n, sizeof(int));
    if (!deadline || !heap || !heap_pos) {
        perror("calloc");
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("epoll_create1");
        return 1;
    }
    for (int p = 0; p < opt_n; p++) {
        if (open_pipe(p))
            return 1;
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
        start_run();
        while (count < expected)
            loop_pass(-1);
        t2 = now_us();
        setup_us[it] = t1 - t0;
        run_us[it] = t2 - t1;
    }
    return report("raw-epoll", "epoll");
}

/*
 * Pipe-chain benchmark on libev 4 (impl=libev backend=<from ev_backend()>).
 * Protocol: bench/README.md, "The pipe chain".
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
 * Build: gcc -O2 -Wall -Wextra -o pipechain_libev pipechain_libev.c pipechain_common.c -lev
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "pipechain_common.h"

/* ---- benchmark state ---- */

struct pipe_watch {
    ev_io io;                   /* first member: an ev_io * is a struct pipe_watch * */
    ev_timer tm;
    int idx;
};

static struct pipe_watch *watch;

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

    (void)revents;
    if (!relay_byte(io->fd, w->idx))
        return;
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

    if (alloc_common())
        return 1;
    watch = calloc(opt_n, sizeof(struct pipe_watch));
    if (!watch) {
        perror("calloc");
        return 1;
    }
    loop = ev_loop_new(flag);
    if (!loop) {
        fprintf(stderr, "cannot create an ev_loop\n");
        return 1;
    }
    for (int p = 0; p < opt_n; p++) {
        if (open_pipe(p))
            return 1;
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
        start_run();
        while (count < expected)
            ev_run(loop, EVRUN_ONCE);
        t2 = now_us();
        setup_us[it] = t1 - t0;
        run_us[it] = t2 - t1;
    }
    return report("libev", backend_name(ev_backend(loop)));
}

/*
 * Pipe-chain benchmark on libevent 2.1 (impl=libevent backend=<event_base_get_method()>).
 * Protocol: bench/README.md, "The pipe chain".
 *
 * One persistent read event (EV_READ|EV_PERSIST) per pipe. Setup: event_del + event_add
 * of every event (with -t, with a fresh random 60..120 s timeout), then one
 * event_base_loop(EVLOOP_NONBLOCK). Run: event_base_loop(EVLOOP_ONCE) until every byte
 * was read. With -t the read callback re-adds its event with a fresh timeout, which is how
 * libevent re-arms the timeout of a pending event.
 *
 * -b picks the backend (epoll, poll, select) by avoiding every other supported method.
 *
 * Build: gcc -O2 -Wall -Wextra -o pipechain_libevent pipechain_libevent.c pipechain_common.c \
 *        -levent_core
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include "pipechain_common.h"

/* ---- benchmark state ---- */

static struct event **evs;

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

    if (what & EV_TIMEOUT) {
        fired++;
        if (!(what & EV_READ))
            return;
    }
    if (!relay_byte(fd, p))
        return;
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
    struct event_base *base;

    parse_options(argc, argv);
    raise_nofile();

    if (alloc_common())
        return 1;
    evs = calloc(opt_n, sizeof(struct event *));
    if (!evs) {
        perror("calloc");
        return 1;
    }
    base = make_base();
    if (!base) {
        fprintf(stderr, "cannot create an event_base\n");
        return 1;
    }
    for (int p = 0; p < opt_n; p++) {
        if (open_pipe(p))
            return 1;
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
        start_run();
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
    return report("libevent", event_base_get_method(base));
}

/*
 * What the three C pipe-chain programs (pipechain_epoll.c, pipechain_libev.c,
 * pipechain_libevent.c) have in common: the command line, the clock, the random
 * timeouts, the fd limit, the socketpairs, the start of each run phase, the byte relay
 * done per event and the SUMMARY report. Protocol: bench/README.md, "The pipe chain".
 *
 * Each program defines _GNU_SOURCE before including anything, this header included.
 * The two helpers that run per event (random_timeout_us, relay_byte) are static inline
 * here, so that the event path compiles as it did when each program had its own copy.
 */
#ifndef PIPECHAIN_COMMON_H
#define PIPECHAIN_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#ifdef __GNUC__
#define PC_NORETURN __attribute__((noreturn))
#else
#define PC_NORETURN
#endif

/* Command line: -n pipes, -a active, -w writes, -t (timeouts), -i iterations, -b backend
 * (defaults: 100, 1, 100, off, 25, "epoll"). */
extern int opt_n, opt_a, opt_w, opt_t, opt_i;
extern const char *opt_b;

/* Pipe p is a socketpair: its watcher reads rfd[p], and wfd[p] is written to feed it. */
extern int *rfd, *wfd;

/* Setup and run time of every iteration, in microseconds (opt_i entries each). */
extern double *setup_us, *run_us;

/* count: bytes read in the current phase; expected: bytes the run phase waits for;
 * writes_left: bytes still to forward; failures and fired (timeouts that expired) add up
 * over the whole program and make its exit status non-zero. */
extern long count, expected, writes_left, failures, fired;

/* State of the xorshift64* generator behind random_timeout_us (fixed seed). */
extern uint64_t rng_state;

/* Prints msg and the usage line to stderr, then exits with status 2. */
void usage(const char *msg) PC_NORETURN;

/* Reads the options into opt_*; calls usage() on anything it does not accept. */
void parse_options(int argc, char **argv);

/* CLOCK_MONOTONIC in microseconds, as a double. */
double now_us(void);

/* Raises the soft RLIMIT_NOFILE to the hard limit (a warning if that fails). */
void raise_nofile(void);

/* Allocates rfd, wfd (opt_n entries) and setup_us, run_us (opt_i entries). Returns 0, or
 * -1 after perror("calloc"). */
int alloc_common(void);

/* Creates pipe p: a non-blocking, close-on-exec AF_UNIX stream socketpair whose ends go
 * to rfd[p] and wfd[p]. Returns 0, or -1 after perror("socketpair"). */
int open_pipe(int p);

/* Starts a run phase: resets count, writes one byte into each of opt_a evenly spaced
 * pipes and lets opt_w more be forwarded; the phase is over once count == expected. */
void start_run(void);

/* Prints one "setup run" line per iteration and the SUMMARY line; returns the exit status
 * (1 if any timeout fired or anything failed, else 0). */
int report(const char *impl, const char *backend);

/* A random timeout between 60 and 120 s, in microseconds; deterministic from run to run. */
static inline int64_t random_timeout_us(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return 60000000 + (int64_t)((x * 0x2545F4914F6CDD1Dull) % 60000000u);
}

/*
 * The work of one readable event on pipe p (read end fd): reads one byte and, while
 * writes are left, writes one into the next pipe of the ring. Returns 1 if a byte was
 * read (count was bumped), 0 if not (a failure is counted unless the read would block
 * or was interrupted).
 */
static inline int relay_byte(int fd, int p)
{
    char c;
    ssize_t r = read(fd, &c, 1);
    if (r != 1) {
        if (r == 0 || (errno != EAGAIN && errno != EINTR))
            failures++;
        return 0;
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
    return 1;
}

#endif /* PIPECHAIN_COMMON_H */

//! The backend contract (`evloop_backends::contract`), checked against every backend.
//!
//! Each test body below is generic over `B: Backend`; `backend_tests!` instantiates it
//! once per backend the target has, in modules `epoll_contract` and `uring_contract`
//! (Linux), `poll_contract`,
//! `select_contract`, `kqueue_contract` (macOS, iOS, the BSDs), `event_ports_contract`
//! and `devpoll_contract` (illumos, Solaris), so
//! `cargo test -p evloop-backends --test backend_contract poll_contract::` runs one
//! backend's suite.
//! Real sockets and pipes throughout; nothing sleeps to synchronise (a wait with a
//! timeout is the only clock, and "nothing happens" is checked by a short wait that must
//! last its full timeout).

#![cfg(unix)]

mod util;

use std::collections::HashSet;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use evloop_backends::{Backend, BackendEvent, Interest, Ready, Waker};
use util::*;

/// Instantiate the generic test bodies for one backend: `backend_tests!(Backend)` inside
/// that backend's module (below, one per backend the target has), so every test's name
/// says its backend (`epoll_contract::read_readiness_is_level_triggered`).
///
/// `<mode> <body>`, where mode is `Shared`, `Exclusive` (alone in the process: closes
/// registered fds, forks) or `Isolated` (in a child process: installs signal handlers).
/// See `util::Mode`.
macro_rules! backend_tests {
    ($backend:ty) => {
        backend_tests! { @emit $backend;
            Shared read_readiness_is_level_triggered,
            Shared write_readiness_follows_buffer_space,
            Shared read_and_write_on_one_fd_share_one_event,
            Shared modify_changes_interest_and_token,
            Shared stop_start_in_one_iteration_is_coalesced,
            Shared empty_interest_keeps_the_fd_registered_but_silent,
            Shared deregister_then_register_again,
            Shared registration_errors_are_clear_and_harmless,
            Exclusive closed_fd_is_ebadf_and_harmless,
            Shared fd_above_fd_setsize,
            Shared regular_file,
            Exclusive dup_closed_and_reused_fd,
            Exclusive closed_fd_reused_by_a_new_file_in_one_iteration,
            Exclusive closed_while_registered_does_not_spin,
            Shared peer_close_is_read_closed_and_data_survives,
            Shared shutdown_write_is_read_closed,
            Shared hang_up_is_reported_without_being_asked,
            Shared write_only_watch_hears_hang_up,
            Shared pipe_with_closed_reader_reports_error,
            Shared refused_connect_reports_error,
            Shared write_to_closed_peer_is_epipe,
            Shared edge_interest,
            Shared sub_millisecond_timeouts_round_up,
            Shared zero_timeout_returns_immediately,
            Shared huge_timeouts_are_accepted,
            Isolated eintr_is_retried_with_the_remaining_time,
            Shared more_ready_than_capacity_none_starved,
            Shared capacity_zero_means_one,
            Shared tokens_are_opaque,
            Shared waker_wakes_across_threads_and_coalesces,
            Shared reinit_keeps_every_registration,
            Exclusive reinit_in_a_forked_child,
            Shared pollable_fd_only_for_kernel_backends,
        }
    };
    (@emit $backend:ty; $($mode:ident $body:ident,)*) => {$(
        #[test]
        fn $body() {
            let name = crate::util::test_name(module_path!(), stringify!($body));
            crate::util::run(crate::util::Mode::$mode, &name, crate::$body::<$backend>);
        }
    )*};
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll_contract {
    backend_tests!(evloop_backends::Epoll);
}

#[cfg(target_os = "linux")]
mod uring_contract {
    backend_tests!(evloop_backends::Uring);
}

mod poll_contract {
    backend_tests!(evloop_backends::Poll);
}

mod select_contract {
    backend_tests!(evloop_backends::Select);
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
mod kqueue_contract {
    backend_tests!(evloop_backends::Kqueue);
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod event_ports_contract {
    backend_tests!(evloop_backends::EventPorts);
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod devpoll_contract {
    backend_tests!(evloop_backends::DevPoll);
}

fn new<B: Backend>(capacity: usize) -> B {
    B::new(capacity).unwrap_or_else(|e| panic!("{}: new: {e}", B::NAME))
}

// ---------------------------------------------------------------------------------------
// Readiness
// ---------------------------------------------------------------------------------------

fn read_readiness_is_level_triggered<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, peer) = pair();
    b.register(fd(&a), 1, Interest::READ).unwrap();
    expect_none(&mut b, QUIET);
    send(&peer, b"hello");
    for _ in 0..3 {
        let r = expect_one(&mut b, 1);
        assert!(r.is_readable() && !r.is_writable(), "{}: {r:?}", B::NAME);
    }
    assert_eq!(read_available(&a), b"hello");
    expect_none(&mut b, QUIET);
}

fn write_readiness_follows_buffer_space<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, peer) = pair();
    b.register(fd(&a), 2, Interest::WRITE).unwrap();
    let r = expect_one(&mut b, 2);
    assert!(r.is_writable() && !r.is_readable(), "{}: {r:?}", B::NAME);
    let sent = fill(&a);
    assert!(sent > 0);
    expect_none(&mut b, QUIET);
    assert_eq!(read_available(&peer).len(), sent);
    let r = expect_one(&mut b, 2);
    assert!(r.is_writable(), "{}: {r:?}", B::NAME);
}

fn read_and_write_on_one_fd_share_one_event<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, peer) = pair();
    b.register(fd(&a), 3, Interest::READ | Interest::WRITE)
        .unwrap();
    let r = expect_one(&mut b, 3);
    assert_eq!(r, Ready::WRITABLE, "{}", B::NAME);
    send(&peer, b"x");
    let r = expect_one(&mut b, 3);
    assert_eq!(r, Ready::READABLE | Ready::WRITABLE, "{}", B::NAME);
}

fn modify_changes_interest_and_token<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, peer) = pair();
    b.register(fd(&a), 1, Interest::READ).unwrap();
    send(&peer, b"x");
    b.modify(fd(&a), 2, Interest::WRITE).unwrap();
    assert_eq!(expect_one(&mut b, 2), Ready::WRITABLE, "{}", B::NAME);
    b.modify(fd(&a), 3, Interest::READ).unwrap();
    assert_eq!(expect_one(&mut b, 3), Ready::READABLE, "{}", B::NAME);
    b.modify(fd(&a), 4, Interest::READ | Interest::WRITE)
        .unwrap();
    assert_eq!(
        expect_one(&mut b, 4),
        Ready::READABLE | Ready::WRITABLE,
        "{}",
        B::NAME
    );
    assert_eq!(b.len(), 1);
}

fn stop_start_in_one_iteration_is_coalesced<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, peer) = pair();
    b.register(fd(&a), 1, Interest::READ).unwrap();
    send(&peer, b"x");
    expect_one(&mut b, 1);
    // Stop then start again before the next wait: as if nothing happened.
    b.modify(fd(&a), 1, Interest::NONE).unwrap();
    b.modify(fd(&a), 1, Interest::READ).unwrap();
    assert_eq!(expect_one(&mut b, 1), Ready::READABLE);
    // Stop, applied by flush: silent although still readable.
    b.modify(fd(&a), 1, Interest::NONE).unwrap();
    b.flush().unwrap();
    expect_none(&mut b, QUIET);
    // Start then stop: still silent.
    b.modify(fd(&a), 1, Interest::READ).unwrap();
    b.modify(fd(&a), 1, Interest::NONE).unwrap();
    expect_none(&mut b, QUIET);
    // The last wish wins, token included.
    b.modify(fd(&a), 5, Interest::WRITE).unwrap();
    b.modify(fd(&a), 6, Interest::READ).unwrap();
    assert_eq!(expect_one(&mut b, 6), Ready::READABLE);
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn epoll_modify_stop_start_costs_no_kernel_calls() {
    use evloop_backends::Epoll;
    let _g = shared();
    let mut ep = Epoll::new(8).unwrap();
    let (a, peer) = pair();
    ep.register(fd(&a), 1, Interest::READ).unwrap();
    let base = ep.ctl_calls();
    ep.modify(fd(&a), 1, Interest::NONE).unwrap();
    ep.modify(fd(&a), 1, Interest::READ).unwrap();
    ep.flush().unwrap();
    assert_eq!(ep.ctl_calls(), base, "stop+start must cost no epoll_ctl");
    send(&peer, b"x");
    ep.modify(fd(&a), 1, Interest::NONE).unwrap();
    ep.modify(fd(&a), 1, Interest::READ).unwrap();
    expect_one(&mut ep, 1);
    assert_eq!(ep.ctl_calls(), base, "nor does the wait that follows");
    // Several changes to one fd in one iteration: one call.
    ep.modify(fd(&a), 1, Interest::WRITE).unwrap();
    ep.modify(fd(&a), 1, Interest::READ | Interest::WRITE)
        .unwrap();
    ep.modify(fd(&a), 2, Interest::READ | Interest::WRITE)
        .unwrap();
    assert_eq!(expect_one(&mut ep, 2), Ready::READABLE | Ready::WRITABLE);
    assert_eq!(ep.ctl_calls(), base + 1);
    // A real stop costs one call (DEL), a real start another (ADD).
    ep.modify(fd(&a), 2, Interest::NONE).unwrap();
    expect_none(&mut ep, QUIET);
    assert_eq!(ep.ctl_calls(), base + 2);
    ep.modify(fd(&a), 3, Interest::READ).unwrap();
    assert_eq!(expect_one(&mut ep, 3), Ready::READABLE);
    assert_eq!(ep.ctl_calls(), base + 3);
}

fn empty_interest_keeps_the_fd_registered_but_silent<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, peer) = pair();
    b.register(fd(&a), 1, Interest::NONE).unwrap();
    assert_eq!(b.len(), 1);
    // Readable and hung up, yet nothing is asked for: silent, and no busy loop.
    send(&peer, b"x");
    drop(peer);
    for _ in 0..3 {
        expect_none(&mut b, QUIET);
    }
    assert_eq!(
        b.register(fd(&a), 2, Interest::READ).unwrap_err().kind(),
        io::ErrorKind::AlreadyExists
    );
    b.modify(fd(&a), 1, Interest::READ).unwrap();
    assert!(expect_one(&mut b, 1).is_readable());
    // Stopping a hung-up fd silences it again (poll reports POLLHUP even for events=0,
    // epoll EPOLLHUP for an empty mask: both must be kept out).
    b.modify(fd(&a), 1, Interest::NONE).unwrap();
    expect_none(&mut b, QUIET);
    expect_none(&mut b, QUIET);
    b.deregister(fd(&a)).unwrap();
    assert!(b.is_empty());
}

fn deregister_then_register_again<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, peer) = pair();
    b.register(fd(&a), 1, Interest::READ).unwrap();
    send(&peer, b"x");
    expect_one(&mut b, 1);
    b.deregister(fd(&a)).unwrap();
    assert!(b.is_empty());
    expect_none(&mut b, QUIET);
    b.register(fd(&a), 2, Interest::READ).unwrap();
    assert_eq!(expect_one(&mut b, 2), Ready::READABLE);
    b.deregister(fd(&a)).unwrap();
    b.register(fd(&a), 3, Interest::WRITE).unwrap();
    assert_eq!(expect_one(&mut b, 3), Ready::WRITABLE);
    assert_eq!(b.len(), 1);
}

fn registration_errors_are_clear_and_harmless<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, peer) = pair();
    b.register(fd(&a), 1, Interest::READ).unwrap();

    let e = b.register(fd(&a), 2, Interest::WRITE).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{}: {e}", B::NAME);
    let e = b.modify(fd(&peer), 1, Interest::READ).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{}: {e}", B::NAME);
    let e = b.deregister(fd(&peer)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{}: {e}", B::NAME);
    for bad in [-1, -7, RawFd::MIN] {
        for interest in [Interest::READ, Interest::NONE] {
            let e = b.register(bad, 1, interest).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{}: {e}", B::NAME);
            assert!(e.to_string().contains("negative"), "{}: {e}", B::NAME);
        }
        assert_eq!(
            b.modify(bad, 1, Interest::READ).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            b.deregister(bad).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
    assert_eq!(b.len(), 1);

    // The original registration is untouched.
    send(&peer, b"x");
    assert_eq!(expect_one(&mut b, 1), Ready::READABLE);
    b.deregister(fd(&a)).unwrap();
    assert_eq!(
        b.deregister(fd(&a)).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

fn closed_fd_is_ebadf_and_harmless<B: Backend>() {
    let mut b = new::<B>(16);
    let (x, y) = pair();
    b.register(fd(&x), 1, Interest::READ).unwrap();
    let (a, _peer) = pair();
    let n = fd(&a);
    drop(a); // `n` is closed, and this test runs alone, so it stays closed.
    for interest in [Interest::READ, Interest::NONE] {
        let e = b.register(n, 2, interest).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{}: {e}", B::NAME);
    }
    assert_eq!(b.len(), 1);
    send(&y, b"x");
    assert_eq!(expect_one(&mut b, 1), Ready::READABLE);
}

fn fd_above_fd_setsize<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, peer) = pair();
    let Some(high) = high_fd(fd(&a), libc::FD_SETSIZE as RawFd + 16) else {
        eprintln!("skipped: the fd limit is too low for an fd above FD_SETSIZE");
        return;
    };
    let h = high.as_raw_fd();
    match B::MAX_FD {
        Some(max) => {
            assert!(h > max);
            let e = b.register(h, 1, Interest::READ).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{}: {e}", B::NAME);
            let msg = e.to_string();
            assert!(
                msg.contains("FD_SETSIZE") && msg.contains("poll"),
                "{}: unclear message: {msg}",
                B::NAME
            );
            assert!(b.is_empty());
            assert_eq!(
                b.modify(h, 1, Interest::READ).unwrap_err().kind(),
                io::ErrorKind::NotFound
            );
            // Still works for fds it can watch.
            b.register(fd(&a), 2, Interest::READ).unwrap();
            send(&peer, b"x");
            assert_eq!(expect_one(&mut b, 2), Ready::READABLE);
        }
        None => {
            b.register(h, 1, Interest::READ).unwrap();
            send(&peer, b"x");
            assert_eq!(expect_one(&mut b, 1), Ready::READABLE);
            b.deregister(h).unwrap();
        }
    }
}

fn regular_file<B: Backend>() {
    let mut b = new::<B>(16);
    let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    let r = b.register(fd(&file), 1, Interest::READ);
    if B::NAME == "epoll" {
        // epoll cannot watch regular files: refused by the call itself. (kqueue, event
        // ports, /dev/poll, poll and select all take them and report them ready.)
        let e = r.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
        assert!(b.is_empty());
    } else {
        // The others report regular files as always ready.
        r.unwrap();
        assert!(expect_one(&mut b, 1).is_readable());
        b.deregister(fd(&file)).unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// fd reuse and closed fds
// ---------------------------------------------------------------------------------------

/// libevent's dup_fd case, then the same number taken over by an unrelated file.
fn dup_closed_and_reused_fd<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, pa) = pair();

    // fd2 = dup(fd1); register; deregister; close; dup2 onto the same number; register.
    let fd2 = dup(fd(&a));
    let n = fd2.as_raw_fd();
    b.register(n, 1, Interest::READ).unwrap();
    send(&pa, b"1");
    assert!(expect_one(&mut b, 1).is_readable());
    b.deregister(n).unwrap();
    drop(fd2);
    let fd3 = dup_onto(fd(&a), n);
    b.register(n, 2, Interest::READ).unwrap();
    // Exactly one event, for the new registration (the byte is still unread).
    assert_eq!(expect_one(&mut b, 2), Ready::READABLE);
    assert_eq!(read_available(&a), b"1");
    expect_none(&mut b, QUIET);
    b.deregister(n).unwrap();
    // (The new pair is made while `n` is taken, so neither end can land on it.)
    let (c, pc) = pair();
    drop(fd3);

    // The number now names a different file: the old one never fires for it.
    let c = UnixStream::from(reuse_number(OwnedFd::from(c), n));
    b.register(n, 3, Interest::READ).unwrap();
    send(&pa, b"old");
    expect_none(&mut b, QUIET);
    send(&pc, b"new");
    assert_eq!(expect_one(&mut b, 3), Ready::READABLE);
    assert_eq!(read_available(&c), b"new");
    b.deregister(n).unwrap();
    assert!(b.is_empty());
}

/// A registered fd with a change still pending is deregistered and closed, and a new file
/// takes its number before the next wait: the new registration is what counts.
fn closed_fd_reused_by_a_new_file_in_one_iteration<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, pa) = pair();
    let n = fd(&a);
    b.register(n, 1, Interest::READ).unwrap();
    b.modify(n, 1, Interest::READ | Interest::WRITE).unwrap(); // pending
    b.deregister(n).unwrap();
    let (c, pc) = pair(); // made while `n` is taken, so neither end can land on it
    drop(a);
    let c = UnixStream::from(reuse_number(OwnedFd::from(c), n));
    b.register(n, 2, Interest::READ).unwrap();
    send(&pc, b"x");
    // Readable only: the stale READ|WRITE change must not have reached the new file.
    assert_eq!(expect_one(&mut b, 2), Ready::READABLE, "{}", B::NAME);
    assert_eq!(read_available(&c), b"x");
    expect_none(&mut b, QUIET);
    drop(pa);
}

fn closed_while_registered_does_not_spin<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, pa) = pair();
    let (c, pc) = pair(); // for later; made while `n` is taken
    let n = fd(&a);
    b.register(n, 9, Interest::READ).unwrap();
    send(&pa, b"x");
    assert!(expect_one(&mut b, 9).is_readable());
    drop(a); // closed behind the backend's back, while readable
    let evs = wait_events(&mut b, Some(QUIET));
    if matches!(B::NAME, "epoll" | "kqueue" | "event ports") {
        // The kernel dropped the registration with the file.
        assert!(evs.is_empty(), "{}: {evs:?}", B::NAME);
    } else {
        // Reported once, as an error.
        assert!(
            evs.len() == 1 && evs[0].token == 9 && evs[0].ready.is_error(),
            "{}: {evs:?}",
            B::NAME
        );
    }
    for _ in 0..3 {
        expect_none(&mut b, QUIET);
    }
    b.deregister(n).unwrap();
    assert!(b.is_empty());
    // The backend still works, for a new file under the same number too.
    let c = UnixStream::from(reuse_number(OwnedFd::from(c), n));
    b.register(n, 10, Interest::READ).unwrap();
    send(&pc, b"y");
    assert_eq!(expect_one(&mut b, 10), Ready::READABLE);
    drop(c);
}

// ---------------------------------------------------------------------------------------
// Closing, hang-ups and errors
// ---------------------------------------------------------------------------------------

fn peer_close_is_read_closed_and_data_survives<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, pa) = pair();
    b.register(fd(&a), 1, Interest::READ | Interest::PEER_CLOSED)
        .unwrap();
    send(&pa, b"bye");
    drop(pa);
    let r = expect_one(&mut b, 1);
    assert!(r.is_readable() && !r.is_error(), "{}: {r:?}", B::NAME);
    if closes_with_data::<B>() {
        // Data and close together in one wait, data not dropped.
        assert!(r.is_read_closed(), "{}: {r:?}", B::NAME);
    }
    assert_eq!(read_to_eof(&a), b"bye");
    let r = expect_one(&mut b, 1);
    assert!(
        r.is_read_closed() && r.is_readable() && !r.is_error(),
        "{}: {r:?}",
        B::NAME
    );
}

fn shutdown_write_is_read_closed<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, pa) = pair();
    b.register(fd(&a), 1, Interest::READ | Interest::PEER_CLOSED)
        .unwrap();
    send(&pa, b"tail");
    pa.shutdown(std::net::Shutdown::Write).unwrap();
    let r = expect_one(&mut b, 1);
    assert!(
        r.is_readable() && !r.is_error() && !r.is_hup(),
        "{}: {r:?}",
        B::NAME
    );
    if closes_with_data::<B>() {
        assert!(r.is_read_closed(), "{}: {r:?}", B::NAME);
    }
    assert_eq!(read_to_eof(&a), b"tail");
    let r = expect_one(&mut b, 1);
    assert!(
        r.is_read_closed() && !r.is_error() && !r.is_hup(),
        "{}: {r:?}",
        B::NAME
    );
    // Half-closed: the other direction still works.
    send(&a, b"back");
    assert_eq!(read_available(&pa), b"back");
}

fn hang_up_is_reported_without_being_asked<B: Backend>() {
    let mut b = new::<B>(16);
    let (r, w) = pipe();
    b.register(fd(&r), 1, Interest::READ).unwrap();
    expect_none(&mut b, QUIET);
    drop(w);
    let ready = expect_one(&mut b, 1);
    if reports_hup::<B>() {
        assert!(
            ready.is_hup() && !ready.is_error(),
            "{}: {ready:?}",
            B::NAME
        );
    } else {
        assert!(ready.is_readable(), "{}: {ready:?}", B::NAME);
    }
    assert_eq!(raw_read(fd(&r), &mut [0u8; 8]).unwrap(), 0, "EOF");
}

/// A watch for `WRITE` alone never reads, so it never sees EOF: the backend must report
/// the hang-up itself, even where the OS mechanism (select) has no bit for it.
fn write_only_watch_hears_hang_up<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, pa) = pair();
    b.register(fd(&a), 1, Interest::WRITE).unwrap();
    assert_eq!(expect_one(&mut b, 1), Ready::WRITABLE);
    drop(pa);
    let ready = expect_one(&mut b, 1);
    assert!(ready.is_hup() || ready.is_error(), "{}: {ready:?}", B::NAME);
    b.deregister(fd(&a)).unwrap();
}

fn pipe_with_closed_reader_reports_error<B: Backend>() {
    assert_sigpipe_ignored();
    let mut b = new::<B>(16);
    let (r, w) = pipe();
    b.register(fd(&w), 1, Interest::WRITE).unwrap();
    assert_eq!(expect_one(&mut b, 1), Ready::WRITABLE);
    drop(r);
    let ready = expect_one(&mut b, 1);
    if reports_error_bits::<B>() {
        assert!(ready.is_error(), "{}: {ready:?}", B::NAME);
    } else {
        assert!(ready.is_writable(), "{}: {ready:?}", B::NAME);
    }
    let e = raw_write(fd(&w), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPIPE), "{e}");
}

fn refused_connect_reports_error<B: Backend>() {
    let mut b = new::<B>(16);
    let port = closed_port();
    let (s, res) = connect_nonblocking(port);
    match res {
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            eprintln!("refused synchronously: nothing to wait for");
            return;
        }
        other => panic!("connect to closed port {port}: {other:?}"),
    }
    b.register(fd(&s), 1, Interest::WRITE).unwrap();
    let ready = expect_one(&mut b, 1);
    if reports_error_bits::<B>() {
        assert!(ready.is_error(), "{}: {ready:?}", B::NAME);
    } else {
        assert!(ready.is_writable(), "{}: {ready:?}", B::NAME);
    }
    assert_eq!(so_error(fd(&s)), libc::ECONNREFUSED);
}

fn write_to_closed_peer_is_epipe<B: Backend>() {
    assert_sigpipe_ignored();
    let mut b = new::<B>(16);
    let (a, pa) = pair();
    b.register(
        fd(&a),
        1,
        Interest::READ | Interest::WRITE | Interest::PEER_CLOSED,
    )
    .unwrap();
    drop(pa);
    let r = expect_one(&mut b, 1);
    assert!(r.is_readable(), "{}: {r:?}", B::NAME);
    if closes_with_data::<B>() {
        assert!(r.is_read_closed(), "{}: {r:?}", B::NAME);
    }
    // An error value, never a SIGPIPE death: through std ...
    let e = (&a).write(b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPIPE), "{e}");
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    // ... and through a raw send that asks for no signal (`MSG_NOSIGNAL`; Apple's systems
    // say it per socket, with `SO_NOSIGPIPE`).
    // SAFETY: sends one byte from a valid buffer.
    let n = unsafe { libc::send(fd(&a), b"x".as_ptr().cast(), 1, no_signal_flags(fd(&a))) };
    assert_eq!(n, -1);
    assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EPIPE));
}

fn edge_interest<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, peer) = pair();
    b.register(fd(&a), 1, Interest::READ | Interest::EDGE)
        .unwrap();
    send(&peer, b"x");
    assert!(expect_one(&mut b, 1).is_readable());
    if B::NATIVE_EDGE {
        // No new edge: nothing, although still readable.
        expect_none(&mut b, QUIET);
        send(&peer, b"y");
        assert!(expect_one(&mut b, 1).is_readable());
    } else {
        // Delivered level-triggered: a superset.
        assert!(expect_one(&mut b, 1).is_readable());
    }
    assert_eq!(read_available(&a).len(), if B::NATIVE_EDGE { 2 } else { 1 });
}

// ---------------------------------------------------------------------------------------
// Timeouts and EINTR
// ---------------------------------------------------------------------------------------

fn sub_millisecond_timeouts_round_up<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, _peer) = pair();
    b.register(fd(&a), 1, Interest::READ).unwrap();
    for d in [
        Duration::from_nanos(1),
        Duration::from_micros(1),
        Duration::from_micros(100),
        Duration::from_micros(999),
        Duration::from_micros(1500),
    ] {
        let start = Instant::now();
        assert_eq!(b.wait(Some(d)).unwrap(), 0);
        let took = start.elapsed();
        assert!(
            took >= d,
            "{}: a {d:?} wait returned after {took:?}",
            B::NAME
        );
    }
    // Rounded down to zero, 50 waits of 100 µs would take a few microseconds in all.
    let start = Instant::now();
    for _ in 0..50 {
        assert_eq!(b.wait(Some(Duration::from_micros(100))).unwrap(), 0);
    }
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(5), "{}: {took:?}", B::NAME);
}

fn zero_timeout_returns_immediately<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, peer) = pair();
    b.register(fd(&a), 1, Interest::READ).unwrap();
    let start = Instant::now();
    for _ in 0..100 {
        assert_eq!(b.wait(Some(Duration::ZERO)).unwrap(), 0);
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "{}: {took:?}", B::NAME);
    send(&peer, b"x");
    assert_eq!(
        wait_events(&mut b, Some(Duration::ZERO)),
        vec![BackendEvent {
            token: 1,
            ready: Ready::READABLE
        }]
    );
}

fn huge_timeouts_are_accepted<B: Backend>() {
    const WAKE: u64 = u64::MAX - 1;
    let mut b = new::<B>(16);
    let w = Waker::new().unwrap();
    b.register(fd(&w), WAKE, Interest::READ).unwrap();
    for t in [
        Duration::MAX,
        Duration::from_secs(u64::MAX / 2),
        Duration::from_millis(i32::MAX as u64 + 1),
        Duration::from_secs(86_400 * 365),
    ] {
        let res = std::thread::scope(|s| {
            s.spawn(|| {
                // Pacing, not synchronisation: the result is the same if the wake comes
                // before the wait starts.
                std::thread::sleep(Duration::from_millis(5));
                w.wake().unwrap();
            });
            b.wait(Some(t))
        });
        let n = res.unwrap_or_else(|e| panic!("{}: wait({t:?}) failed: {e}", B::NAME));
        assert_eq!(
            events(&b, n),
            vec![BackendEvent {
                token: WAKE,
                ready: Ready::READABLE
            }]
        );
        assert!(w.drain());
    }
}

static SIGNALS_CAUGHT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS_CAUGHT.fetch_add(1, Ordering::Relaxed);
}

/// A thread id that may be sent to the signalling thread.
#[derive(Clone, Copy)]
struct Tid(libc::pthread_t);
// SAFETY: a pthread_t is only an id; it is used solely with pthread_kill while the thread
// it names is alive (the scope below joins the sender before that thread moves on).
unsafe impl Send for Tid {}

impl Tid {
    /// pthread_kill, taking the whole `Tid` (so a closure captures it, not its field).
    fn kill(self, sig: libc::c_int) {
        // SAFETY: the caller keeps the thread alive (see the `Send` impl).
        unsafe { libc::pthread_kill(self.0, sig) };
    }
}

/// Runs in a child process (it installs a process-wide signal handler).
fn eintr_is_retried_with_the_remaining_time<B: Backend>() {
    // SAFETY: an all-zero sigaction is valid; handler, mask and flags are set below. The
    // handler only does an atomic add, which is async-signal-safe. No SA_RESTART: the
    // wait must see EINTR.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = count_signal as *const () as libc::sighandler_t;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
    let mut b = new::<B>(16);
    let (a, _peer) = pair();
    b.register(fd(&a), 1, Interest::READ).unwrap();
    // SAFETY: pthread_self has no preconditions.
    let me = Tid(unsafe { libc::pthread_self() });
    let done = AtomicBool::new(false);
    let timeout = Duration::from_millis(300);
    let (res, took) = std::thread::scope(|s| {
        let done = &done;
        s.spawn(move || {
            // `me` is alive: it sets `done` before the scope joins this thread.
            while !done.load(Ordering::Acquire) {
                me.kill(libc::SIGUSR1);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let start = Instant::now();
        let res = b.wait(Some(timeout));
        let took = start.elapsed();
        done.store(true, Ordering::Release);
        (res, took)
    });
    let n = res.unwrap_or_else(|e| panic!("{}: EINTR must be retried, got {e}", B::NAME));
    assert_eq!(n, 0);
    assert!(
        took >= timeout,
        "{}: returned after {took:?}, before the {timeout:?} timeout",
        B::NAME
    );
    let caught = SIGNALS_CAUGHT.load(Ordering::Relaxed);
    assert!(
        caught >= 2,
        "{}: only {caught} signals interrupted the wait",
        B::NAME
    );
}

// ---------------------------------------------------------------------------------------
// Many events
// ---------------------------------------------------------------------------------------

fn more_ready_than_capacity_none_starved<B: Backend>() {
    const N: usize = 75;
    const CAP: usize = 16;
    let mut b = new::<B>(CAP);
    let pairs: Vec<_> = (0..N).map(|_| pair()).collect();
    for (i, (a, peer)) in pairs.iter().enumerate() {
        b.register(fd(a), i as u64, Interest::READ).unwrap();
        send(peer, b"x");
    }
    let mut seen = [0usize; N];
    let rounds = N.div_ceil(CAP);
    for round in 0..rounds {
        let evs = wait_events(&mut b, LONG);
        assert!(
            !evs.is_empty() && evs.len() <= CAP,
            "{}: {} events",
            B::NAME,
            evs.len()
        );
        let mut this = HashSet::new();
        for ev in &evs {
            assert_eq!(ev.ready, Ready::READABLE);
            assert!(
                this.insert(ev.token),
                "{}: token {} twice",
                B::NAME,
                ev.token
            );
            seen[ev.token as usize] += 1;
        }
        if round + 1 < rounds {
            assert_eq!(evs.len(), CAP, "{}: round {round} not full", B::NAME);
        }
    }
    let starved: Vec<_> = (0..N).filter(|&i| seen[i] == 0).collect();
    assert!(
        starved.is_empty(),
        "{}: not reported within {rounds} waits: {starved:?}",
        B::NAME
    );
    // And it keeps rotating: every fd again within the next `rounds` waits.
    let mut again = [false; N];
    for _ in 0..rounds {
        for ev in wait_events(&mut b, LONG) {
            again[ev.token as usize] = true;
        }
    }
    let starved: Vec<_> = (0..N).filter(|&i| !again[i]).collect();
    assert!(starved.is_empty(), "{}: second pass: {starved:?}", B::NAME);
}

fn capacity_zero_means_one<B: Backend>() {
    let mut b = new::<B>(0);
    let pairs: Vec<_> = (0..3).map(|_| pair()).collect();
    for (i, (a, peer)) in pairs.iter().enumerate() {
        b.register(fd(a), i as u64, Interest::READ).unwrap();
        send(peer, b"x");
    }
    let mut seen = HashSet::new();
    for _ in 0..3 {
        let evs = wait_events(&mut b, LONG);
        assert_eq!(evs.len(), 1, "{}", B::NAME);
        seen.insert(evs[0].token);
    }
    assert_eq!(seen.len(), 3, "{}: {seen:?}", B::NAME);
}

fn tokens_are_opaque<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, pa) = pair();
    let (c, _pc) = pair();
    b.register(fd(&a), u64::MAX, Interest::READ).unwrap();
    b.register(fd(&c), 0, Interest::WRITE).unwrap();
    send(&pa, b"x");
    let evs = sorted(wait_events(&mut b, LONG));
    let want = vec![
        BackendEvent {
            token: 0,
            ready: Ready::WRITABLE,
        },
        BackendEvent {
            token: u64::MAX,
            ready: Ready::READABLE,
        },
    ];
    assert_eq!(evs, want, "{}", B::NAME);
}

// ---------------------------------------------------------------------------------------
// Waker, reinit, pollable fd
// ---------------------------------------------------------------------------------------

fn waker_wakes_across_threads_and_coalesces<B: Backend>() {
    const WAKE: u64 = 1 << 63;
    let mut b = new::<B>(16);
    let w = Waker::new().unwrap();
    // Through `register_waker`, as the core does: the fd that becomes readable (a pipe
    // waker's read end) is the one watched.
    b.register_waker(&w, WAKE).unwrap();
    expect_none(&mut b, QUIET);
    // Several wakes from another thread: one event.
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..5 {
                w.wake().unwrap();
            }
        });
    });
    assert_eq!(expect_one(&mut b, WAKE), Ready::READABLE);
    assert!(w.drain());
    assert!(!w.drain());
    expect_none(&mut b, QUIET);
    // A wake reaches a wait that blocks forever.
    let n = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(5));
            w.wake().unwrap();
        });
        b.wait(None).unwrap()
    });
    assert_eq!(
        events(&b, n),
        vec![BackendEvent {
            token: WAKE,
            ready: Ready::READABLE
        }]
    );
    assert!(w.drain());
}

fn reinit_keeps_every_registration<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, pa) = pair();
    let (c, pc) = pair();
    let (e, pe) = pair();
    b.register(fd(&a), 1, Interest::READ).unwrap();
    b.register(fd(&c), 2, Interest::WRITE).unwrap();
    b.modify(fd(&c), 3, Interest::READ | Interest::WRITE)
        .unwrap(); // pending
    b.register(fd(&e), 4, Interest::NONE).unwrap();
    b.reinit().unwrap();
    assert_eq!(b.len(), 3);
    send(&pa, b"x");
    send(&pc, b"x");
    send(&pe, b"x");
    let evs = sorted(wait_events(&mut b, LONG));
    assert_eq!(
        evs,
        vec![
            BackendEvent {
                token: 1,
                ready: Ready::READABLE
            },
            BackendEvent {
                token: 3,
                ready: Ready::READABLE | Ready::WRITABLE
            },
        ],
        "{}",
        B::NAME
    );
    // Still fully usable.
    b.deregister(fd(&a)).unwrap();
    b.modify(fd(&c), 3, Interest::NONE).unwrap();
    b.modify(fd(&e), 5, Interest::READ).unwrap();
    assert_eq!(expect_one(&mut b, 5), Ready::READABLE);
}

/// What the forked child does; returns its exit code. Allocation-free on success (the
/// child of a multi-threaded process must not take locks another thread may hold).
fn fork_child<B: Backend>(b: &mut B, a: RawFd, pa: RawFd) -> i32 {
    if b.reinit().is_err() {
        return 1;
    }
    if !matches!(raw_write(pa, b"c"), Ok(1)) {
        return 2;
    }
    if !matches!(b.wait(LONG), Ok(1)) {
        return 3;
    }
    let ev = b.event(0);
    if ev.token != 7 || !ev.ready.is_readable() {
        return 4;
    }
    if !matches!(raw_read(a, &mut [0u8; 1]), Ok(1)) {
        return 5;
    }
    // Must only touch the child's own kernel object, not the parent's.
    if b.deregister(a).is_err() {
        return 6;
    }
    0
}

fn reinit_in_a_forked_child<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, pa) = pair();
    b.register(fd(&a), 7, Interest::READ).unwrap();
    // SAFETY: the child runs only `fork_child` (raw syscalls, no allocation on success)
    // and then _exits; this test holds the exclusive lock, so no other test is mid-way.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fork_child(&mut b, fd(&a), fd(&pa))
        }))
        .unwrap_or(99);
        // SAFETY: ends the child at once, without running the test harness's code.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out-parameter.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{}: child failed, status {status:#x} (exit code {})",
        B::NAME,
        libc::WEXITSTATUS(status)
    );
    // The child's deregister did not reach the parent's registration.
    send(&pa, b"p");
    assert_eq!(expect_one(&mut b, 7), Ready::READABLE);
    assert_eq!(read_available(&a), b"p");
}

fn pollable_fd_only_for_kernel_backends<B: Backend>() {
    let mut b = new::<B>(16);
    let (a, peer) = pair();
    b.register(fd(&a), 1, Interest::READ).unwrap();
    let raw = b.pollable_fd().map(|f| f.as_raw_fd());
    match raw {
        None => assert_ne!(B::NAME, "epoll"),
        Some(pfd) => {
            // A kernel-state backend (epoll; kqueue and event ports may have one too),
            // never a user-space set.
            assert!(B::NAME != "poll" && B::NAME != "select", "{}", B::NAME);
            assert!(!poll_readable(pfd, 0));
            send(&peer, b"x");
            assert!(
                poll_readable(pfd, 5000),
                "backend fd not readable with events pending"
            );
            assert_eq!(expect_one(&mut b, 1), Ready::READABLE);
        }
    }
}

// ---------------------------------------------------------------------------------------
// epoll only: changes the kernel refuses
// ---------------------------------------------------------------------------------------

/// Make `n` (registered with epoll as a socket) name a regular file instead, so epoll
/// forgets it (the socket's file is gone) and any later ADD is refused with EPERM.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn turn_into_regular_file(n: RawFd) -> std::fs::File {
    let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    // SAFETY: `n` is an fd this test owns; dup2 atomically replaces it with the file.
    assert_eq!(unsafe { libc::dup2(fd(&file), n) }, n);
    file
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn epoll_refused_change_applied_by_flush_is_reported_by_the_next_wait() {
    use evloop_backends::Epoll;
    let _g = shared();
    let mut ep = Epoll::new(8).unwrap();
    let (a, _pa) = pair();
    let n = fd(&a);
    ep.register(n, 1, Interest::READ).unwrap();
    let _file = turn_into_regular_file(n);
    ep.modify(n, 2, Interest::WRITE).unwrap();
    ep.flush().unwrap();
    assert_eq!(
        wait_events(&mut ep, LONG),
        vec![BackendEvent {
            token: 2,
            ready: Ready::ERROR
        }]
    );
    // A second refusal, found by flush while the first one's report is still the last
    // wait's result, must be reported by the wait after (not cleared with the first).
    ep.modify(n, 3, Interest::READ).unwrap();
    ep.flush().unwrap();
    assert_eq!(
        wait_events(&mut ep, LONG),
        vec![BackendEvent {
            token: 3,
            ready: Ready::ERROR
        }]
    );
    expect_none(&mut ep, QUIET);
    ep.deregister(n).unwrap();
}

#[cfg(any(target_os = "linux", target_os = "android"))]
#[test]
fn epoll_reinit_with_an_unwatchable_fd_keeps_the_others() {
    use evloop_backends::Epoll;
    let _g = shared();
    let mut ep = Epoll::new(8).unwrap();
    let (x, _px) = pair();
    let (a, _pa) = pair();
    let (first, second) = if fd(&x) < fd(&a) { (x, a) } else { (a, x) };
    ep.register(fd(&first), 1, Interest::READ).unwrap();
    ep.modify(fd(&first), 2, Interest::WRITE).unwrap(); // pending
    ep.register(fd(&second), 3, Interest::READ).unwrap();
    let _file = turn_into_regular_file(fd(&second));
    // The fd that can no longer be watched is reported, not silently lost, and every
    // other registration (pending change included) lives on in the new epoll instance.
    let r = ep.reinit();
    let evs = sorted(wait_events(&mut ep, LONG));
    match r {
        Ok(()) => assert_eq!(
            evs,
            vec![BackendEvent {
                token: 3,
                ready: Ready::ERROR
            }],
            "refusal reported first"
        ),
        Err(e) => panic!("reinit failed as a whole: {e}"),
    }
    assert_eq!(
        wait_events(&mut ep, LONG),
        vec![BackendEvent {
            token: 2,
            ready: Ready::WRITABLE
        }]
    );
    ep.deregister(fd(&second)).unwrap();
}

//! What only the io_uring backend has to get right, beyond the contract that
//! `backend_contract.rs` checks under it (`uring_contract::`): completion-queue overflow,
//! stale completions, the file reference a poll request holds, a completion with only
//! bits nobody asked for, and the fallback to epoll when the kernel (here: a seccomp
//! filter, as Docker's default profile installs) refuses io_uring.
#![cfg(target_os = "linux")]

mod util;

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::time::Duration;

use evloop_backends::{Backend, BackendEvent, Interest, Ready, Uring, UringOrEpoll};
use util::*;

fn uring(capacity: usize) -> Uring {
    Uring::new(capacity).unwrap_or_else(|e| panic!("io_uring: {e}"))
}

/// More completions than the completion ring holds: the kernel keeps the rest
/// (`IORING_FEAT_NODROP`) and every one is reported, a capacity's worth per wait.
#[test]
fn completion_ring_overflow_loses_nothing() {
    let _g = shared();
    let mut b = uring(1);
    let (_, cq) = b.ring_sizes();
    let n = (cq as usize) * 3;
    let pairs: Vec<_> = (0..n).map(|_| pair()).collect();
    for (i, (a, peer)) in pairs.iter().enumerate() {
        send(peer, b"x");
        // Ready at once: each registration's request completes while it is submitted.
        b.register(fd(a), i as u64, Interest::READ).unwrap();
    }
    let mut seen = vec![0u32; n];
    let mut waits = 0;
    while seen.contains(&0) {
        waits += 1;
        assert!(waits <= 4 * n, "unseen after {waits} waits: {seen:?}");
        for ev in wait_events(&mut b, LONG) {
            assert_eq!(ev.ready, Ready::READABLE);
            seen[ev.token as usize] += 1;
        }
    }
    for (a, _) in &pairs {
        b.deregister(fd(a)).unwrap();
    }
}

/// A completion that was in the ring when the registration changed is stale: it
/// reaches neither the new interest nor a new registration of the same number.
#[test]
fn stale_completions_never_reach_a_changed_or_new_registration() {
    let _g = shared();
    let mut b = uring(16);
    let (a, pa) = pair();
    b.register(fd(&a), 1, Interest::READ).unwrap();
    send(&pa, b"x"); // a completion for token 1 is now in the ring, unreaped
    b.modify(fd(&a), 2, Interest::WRITE).unwrap();
    assert_eq!(
        wait_events(&mut b, LONG),
        vec![BackendEvent {
            token: 2,
            ready: Ready::WRITABLE
        }]
    );
    // The same through deregister and register of the same fd number.
    b.modify(fd(&a), 2, Interest::READ).unwrap();
    b.flush().unwrap(); // armed; completes at once (the byte is unread)
    b.deregister(fd(&a)).unwrap();
    b.register(fd(&a), 3, Interest::WRITE).unwrap();
    assert_eq!(
        wait_events(&mut b, LONG),
        vec![BackendEvent {
            token: 3,
            ready: Ready::WRITABLE
        }]
    );
}

/// A poll request holds a reference to its file: `deregister` must have the kernel drop
/// it before returning, or closing the fd afterwards would not close the socket.
#[test]
fn deregister_releases_the_file_at_once() {
    let _g = shared();
    let mut b = uring(16);
    let (a, mut peer) = pair();
    peer.set_nonblocking(true).unwrap();
    b.register(fd(&a), 1, Interest::READ).unwrap();
    expect_none(&mut b, QUIET);
    let before = b.enter_calls();
    b.deregister(fd(&a)).unwrap();
    assert_eq!(b.enter_calls(), before + 1, "one enter, at once");
    drop(a);
    // The socket is really closed: the peer reads EOF, not "would block".
    assert_eq!(peer.read(&mut [0u8; 4]).unwrap(), 0);
}

/// The kernel answers a poll request with `POLLRDHUP` even when it was not asked for.
/// A write watch on a socket whose peer shut down its writing side and whose send buffer
/// is full gets only that: re-armed one-shot, it would complete again at once, forever.
/// It must not spin, and must still report the socket once it becomes writable.
#[test]
fn unasked_read_hangup_does_not_spin_a_write_watch() {
    let _g = shared();
    let mut b = uring(16);
    let (a, mut peer) = pair();
    fill(&a);
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    b.register(fd(&a), 1, Interest::WRITE).unwrap();
    let before = b.enter_calls();
    expect_none(&mut b, Duration::from_millis(50));
    let enters = b.enter_calls() - before;
    assert!(enters < 10, "{enters} enters in 50 ms: spinning");
    // Drain the peer: `a` becomes writable, and that is reported.
    peer.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    while matches!(peer.read(&mut buf), Ok(n) if n > 0) {}
    assert!(expect_one(&mut b, 1).is_writable());
    // And, level-triggered again, while it stays writable.
    assert!(expect_one(&mut b, 1).is_writable());
}

/// Edge-triggered interest is a multishot request: one report per wake-up, none while
/// the fd merely stays ready, across many wake-ups.
#[test]
fn multishot_edge_reports_each_wakeup_once() {
    let _g = shared();
    let mut b = uring(16);
    let (a, pa) = pair();
    b.register(fd(&a), 1, Interest::READ | Interest::EDGE)
        .unwrap();
    for round in 0..20 {
        send(&pa, b"x");
        assert_eq!(expect_one(&mut b, 1), Ready::READABLE, "round {round}");
        expect_none(&mut b, Duration::from_millis(2));
    }
    assert_eq!(read_available(&a).len(), 20);
}

// ---------------------------------------------------------------------------------------
// Refused: a seccomp filter makes io_uring_setup fail, as container runtimes' profiles do
// ---------------------------------------------------------------------------------------

/// Install a seccomp filter on this thread that fails `io_uring_setup` with `errno`.
fn refuse_io_uring(errno: i32) {
    // Classic BPF over `struct seccomp_data` (the syscall number is its first field).
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    let filter = [
        libc::sock_filter {
            code: LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: JEQ_K,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        libc::sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ERRNO | errno as u32,
        },
        libc::sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ALLOW,
        },
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(r, 0, "no_new_privs: {}", io::Error::last_os_error());
    // SAFETY: `prog` points to `filter`, both alive for the call; the kernel copies them.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    assert_eq!(r, 0, "seccomp: {}", io::Error::last_os_error());
}

fn fallback_works(b: &mut UringOrEpoll) {
    assert_eq!(b.active_name(), "epoll");
    let (a, pa) = pair();
    b.register(fd(&a), 5, Interest::READ).unwrap();
    send(&pa, b"x");
    assert_eq!(expect_one(b, 5), Ready::READABLE);
    assert!(b.pollable_fd().is_some());
    b.deregister(a.as_raw_fd()).unwrap();
}

/// Runs in a child process (the filter stays on the thread for good).
fn refused_by_seccomp_eperm() {
    refuse_io_uring(libc::EPERM);
    let e = Uring::new(16).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("io_uring") && msg.contains("seccomp") && msg.contains("UringOrEpoll"),
        "unclear: {msg}"
    );
    let mut b = UringOrEpoll::new(16).unwrap();
    assert_eq!(
        b.fallback_reason().map(|e| e.kind()),
        Some(io::ErrorKind::PermissionDenied)
    );
    fallback_works(&mut b);
    b.reinit().unwrap();
    assert_eq!(b.active_name(), "epoll", "reinit keeps the choice");
}

/// Runs in a child process.
fn refused_by_seccomp_enosys() {
    refuse_io_uring(libc::ENOSYS);
    let e = Uring::new(16).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("no io_uring"), "unclear: {e}");
    let mut b = UringOrEpoll::new(16).unwrap();
    fallback_works(&mut b);
}

#[test]
fn fallback_to_epoll_when_seccomp_returns_eperm() {
    run(
        Mode::Isolated,
        "fallback_to_epoll_when_seccomp_returns_eperm",
        refused_by_seccomp_eperm,
    );
}

#[test]
fn fallback_to_epoll_when_seccomp_returns_enosys() {
    run(
        Mode::Isolated,
        "fallback_to_epoll_when_seccomp_returns_enosys",
        refused_by_seccomp_enosys,
    );
}

#[test]
fn uring_or_epoll_uses_io_uring_where_allowed() {
    let _g = shared();
    let mut b = UringOrEpoll::new(16).unwrap();
    assert_eq!(b.active_name(), "io_uring", "{:?}", b.fallback_reason());
    let (a, pa) = pair();
    b.register(fd(&a), 5, Interest::READ | Interest::EDGE)
        .unwrap();
    send(&pa, b"x");
    assert_eq!(expect_one(&mut b, 5), Ready::READABLE);
    expect_none(&mut b, QUIET); // edge: native under both
    b.deregister(fd(&a)).unwrap();
}

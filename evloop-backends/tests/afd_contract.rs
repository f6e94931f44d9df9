//! The backend contract under the Windows backend (`Afd`), over real loopback TCP
//! sockets. `backend_contract.rs` holds the Unix suite (its pairs are Unix sockets and
//! pipes); these are the same rules, checked with what Windows has. Nothing sleeps to
//! synchronise: waits with deadlines, and "nothing happens" is a wait that lasts its
//! full (short) timeout.
//!
//! The Unix suite's cases with no counterpart here, and why:
//!
//! | Unix case | why not on Windows |
//! |---|---|
//! | `closed_fd_is_ebadf_and_harmless`, `regular_file` | a handle that is not an open socket is refused by `register` (`WSAENOTSOCK`): `registration_errors_are_clear_and_harmless` |
//! | `fd_above_fd_setsize` | select(2)'s limit; `Afd` has none |
//! | `dup_closed_and_reused_fd`, `closed_fd_reused_by_a_new_file_in_one_iteration` | Unix fd-number reuse through `dup2`; a closed socket's poll completes with `LOCAL_CLOSE` instead (`closed_while_registered_does_not_spin`) |
//! | `pipe_with_closed_reader_reports_error` | AFD polls sockets only; Windows pipes are not sockets |
//! | `write_to_closed_peer_is_epipe` | `EPIPE`/`SIGPIPE` are Unix |
//! | `eintr_is_retried_with_the_remaining_time` | the wait is not alertable: nothing interrupts it |
//! | `reinit_in_a_forked_child` | Windows has no `fork` |
//! | `pollable_fd_only_for_kernel_backends` | `pollable_fd` is a Unix API |

#![cfg(windows)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::windows::io::AsRawSocket;
use std::time::{Duration, Instant};

use evloop_backends::{Afd, Backend, BackendEvent, Interest, RawSource, Ready, Waker};

mod afd_contract {
    use super::*;

    const LONG: Option<Duration> = Some(Duration::from_secs(10));
    const QUIET: Duration = Duration::from_millis(30);

    fn new(capacity: usize) -> Afd {
        Afd::new(capacity).expect("Afd::new")
    }

    fn raw(s: &impl AsRawSocket) -> RawSource {
        s.as_raw_socket()
    }

    /// A connected loopback pair: (accepted side, connecting side).
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        c.set_nonblocking(true).unwrap();
        (s, c)
    }

    fn send(mut s: &TcpStream, data: &[u8]) {
        s.write_all(data).unwrap();
    }

    /// Everything readable now (the socket is non-blocking).
    fn read_available(mut s: &TcpStream) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return out,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    fn events(b: &Afd, n: usize) -> Vec<BackendEvent> {
        (0..n).map(|i| b.event(i)).collect()
    }

    /// Wait (up to LONG) for an event; exactly one, for `token`.
    fn expect_one(b: &mut Afd, token: u64) -> Ready {
        let n = b.wait(LONG).unwrap();
        let evs = events(b, n);
        assert_eq!(evs.len(), 1, "expected one event for {token}: {evs:?}");
        assert_eq!(evs[0].token, token, "{evs:?}");
        evs[0].ready
    }

    /// A wait of `d` that must report nothing and last its whole timeout.
    fn expect_none(b: &mut Afd, d: Duration) {
        let t0 = Instant::now();
        let n = b.wait(Some(d)).unwrap();
        assert_eq!(n, 0, "expected nothing: {:?}", events(b, n));
        assert!(
            t0.elapsed() >= d,
            "a quiet wait ended early: {:?}",
            t0.elapsed()
        );
    }

    /// Wait until `token` reports something matching `f` (other events are allowed).
    fn wait_for(b: &mut Afd, token: u64, f: impl Fn(Ready) -> bool) -> Ready {
        let deadline = Instant::now() + LONG.unwrap();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no matching event for {token}");
            let n = b.wait(Some(left)).unwrap();
            for e in events(b, n) {
                if e.token == token && f(e.ready) {
                    return e.ready;
                }
            }
        }
    }

    /// Wait until each of the tokens `0..n` has been reported, never more than the
    /// backend's capacity at once; `on` sees each event (and whether it is the token's
    /// first).
    fn every_token_reported(
        b: &mut Afd,
        n: usize,
        capacity: usize,
        mut on: impl FnMut(BackendEvent, bool),
    ) {
        let mut seen = std::collections::HashSet::new();
        let deadline = Instant::now() + LONG.unwrap();
        while seen.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "only {} of {n} reported", seen.len());
            let k = b.wait(Some(left)).unwrap();
            assert!(k <= capacity, "capacity {capacity} exceeded: {k}");
            for e in events(b, k) {
                assert!((e.token as usize) < n, "{e:?}");
                let first = seen.insert(e.token);
                on(e, first);
            }
        }
    }

    /// Close `peer` with unread data, which makes the close a reset of `a`'s connection.
    fn reset_by(mut peer: TcpStream, a: &TcpStream) {
        send(a, b"unread");
        let deadline = Instant::now() + LONG.unwrap();
        let mut probe = [0u8; 1];
        // Wait until the bytes reached the peer, so its close sends RST.
        loop {
            match peer.peek(&mut probe) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the bytes never arrived");
                    std::thread::yield_now();
                }
                Err(e) => panic!("peek: {e}"),
            }
        }
        let _ = peer.flush();
        drop(peer);
    }

    /// A non-blocking TCP socket whose connect to 127.0.0.1:`port` is under way (std has
    /// no non-blocking connect).
    fn connecting_socket(port: u16) -> RawSocketGuard {
        use windows_sys::Win32::Networking::WinSock::{
            connect, ioctlsocket, socket, WSAGetLastError, AF_INET, FIONBIO, INVALID_SOCKET,
            IN_ADDR, IN_ADDR_0, IPPROTO_TCP, SOCKADDR, SOCKADDR_IN, SOCK_STREAM, WSAEWOULDBLOCK,
        };
        // std initialises Winsock on first use.
        drop(TcpListener::bind("127.0.0.1:0").unwrap());
        // SAFETY: plain socket creation; the handle is owned by the guard.
        let s = unsafe { socket(AF_INET as i32, SOCK_STREAM, IPPROTO_TCP) };
        assert_ne!(s, INVALID_SOCKET);
        let guard = RawSocketGuard(s);
        let mut on = 1u32;
        // SAFETY: `on` is a valid u32 for FIONBIO.
        assert_eq!(unsafe { ioctlsocket(s, FIONBIO, &mut on) }, 0);
        let addr = SOCKADDR_IN {
            sin_family: AF_INET,
            sin_port: port.to_be(),
            sin_addr: IN_ADDR {
                S_un: IN_ADDR_0 {
                    S_addr: u32::from_ne_bytes([127, 0, 0, 1]),
                },
            },
            sin_zero: [0; 8],
        };
        // SAFETY: `addr` is a valid SOCKADDR_IN of the size passed.
        let r = unsafe {
            connect(
                s,
                (&addr as *const SOCKADDR_IN).cast::<SOCKADDR>(),
                std::mem::size_of::<SOCKADDR_IN>() as i32,
            )
        };
        // SAFETY: reads this thread's last Winsock error.
        assert!(r == 0 || unsafe { WSAGetLastError() } == WSAEWOULDBLOCK);
        guard
    }

    /// Closes its socket on drop.
    struct RawSocketGuard(usize);

    impl RawSocketGuard {
        fn raw(&self) -> RawSource {
            self.0 as RawSource
        }
    }

    impl Drop for RawSocketGuard {
        fn drop(&mut self) {
            // SAFETY: the guard owns the socket.
            unsafe { windows_sys::Win32::Networking::WinSock::closesocket(self.0) };
        }
    }

    /// Fill `s`'s send path until it would block; returns the bytes written.
    fn fill(mut s: &TcpStream) -> usize {
        let chunk = [7u8; 65536];
        let mut total = 0;
        loop {
            match s.write(&chunk) {
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
                Err(e) => panic!("write: {e}"),
            }
        }
    }

    #[test]
    fn read_readiness_is_level_triggered() {
        let mut b = new(16);
        let (a, peer) = pair();
        b.register(raw(&a), 1, Interest::READ).unwrap();
        expect_none(&mut b, QUIET);
        send(&peer, b"hello");
        for _ in 0..3 {
            let r = expect_one(&mut b, 1);
            assert!(r.is_readable() && !r.is_writable(), "{r:?}");
        }
        assert_eq!(read_available(&a), b"hello");
        expect_none(&mut b, QUIET);
    }

    #[test]
    fn write_readiness_follows_buffer_space() {
        let mut b = new(16);
        let (a, peer) = pair();
        b.register(raw(&a), 2, Interest::WRITE).unwrap();
        assert!(expect_one(&mut b, 2).is_writable());
        let n = fill(&a);
        assert!(n > 0);
        expect_none(&mut b, QUIET);
        // Draining the peer makes room again.
        let deadline = Instant::now() + LONG.unwrap();
        let mut got = 0;
        while got < n {
            assert!(Instant::now() < deadline, "peer read only {got} of {n}");
            got += read_available(&peer).len();
        }
        assert!(wait_for(&mut b, 2, |r| r.is_writable()).is_writable());
    }

    #[test]
    fn read_and_write_on_one_socket_share_one_event() {
        let mut b = new(16);
        let (a, peer) = pair();
        send(&peer, b"x");
        b.register(raw(&a), 3, Interest::READ | Interest::WRITE)
            .unwrap();
        let r = wait_for(&mut b, 3, |r| r.is_readable());
        assert!(r.is_readable() && r.is_writable(), "{r:?}");
    }

    #[test]
    fn modify_changes_interest_and_token() {
        let mut b = new(16);
        let (a, peer) = pair();
        b.register(raw(&a), 4, Interest::READ).unwrap();
        expect_none(&mut b, QUIET);
        // A pending read poll is replaced by a write poll (cancelled and resubmitted).
        b.modify(raw(&a), 5, Interest::WRITE).unwrap();
        assert!(expect_one(&mut b, 5).is_writable());
        b.modify(raw(&a), 6, Interest::READ).unwrap();
        expect_none(&mut b, QUIET);
        send(&peer, b"y");
        assert!(expect_one(&mut b, 6).is_readable());
    }

    #[test]
    fn stop_start_in_one_iteration_is_coalesced() {
        let mut b = new(16);
        let (a, peer) = pair();
        b.register(raw(&a), 1, Interest::READ).unwrap();
        expect_none(&mut b, QUIET); // a poll is pending
        b.modify(raw(&a), 1, Interest::NONE).unwrap();
        b.modify(raw(&a), 1, Interest::READ).unwrap();
        expect_none(&mut b, QUIET);
        send(&peer, b"s");
        assert!(expect_one(&mut b, 1).is_readable());
    }

    #[test]
    fn edge_interest_is_delivered_level_triggered() {
        const { assert!(!Afd::NATIVE_EDGE) };
        let mut b = new(16);
        let (a, peer) = pair();
        b.register(raw(&a), 2, Interest::READ | Interest::EDGE)
            .unwrap();
        send(&peer, b"e");
        assert!(expect_one(&mut b, 2).is_readable());
        // A superset of edge delivery: still reported while unread...
        assert!(expect_one(&mut b, 2).is_readable());
        // ...and quiet once drained, as edge-style code leaves it.
        assert_eq!(read_available(&a), b"e");
        expect_none(&mut b, QUIET);
    }

    #[test]
    fn a_token_change_alone_applies_to_the_pending_poll() {
        let mut b = new(16);
        let (a, peer) = pair();
        b.register(raw(&a), 7, Interest::READ).unwrap();
        expect_none(&mut b, QUIET);
        b.modify(raw(&a), 8, Interest::READ).unwrap();
        send(&peer, b"z");
        assert!(expect_one(&mut b, 8).is_readable());
    }

    #[test]
    fn empty_interest_keeps_the_socket_registered_but_silent() {
        let mut b = new(16);
        let (a, peer) = pair();
        b.register(raw(&a), 9, Interest::READ).unwrap();
        send(&peer, b"q");
        assert!(expect_one(&mut b, 9).is_readable());
        b.modify(raw(&a), 9, Interest::NONE).unwrap();
        expect_none(&mut b, QUIET);
        assert_eq!(b.len(), 1);
        b.modify(raw(&a), 10, Interest::READ).unwrap();
        assert!(expect_one(&mut b, 10).is_readable());
    }

    #[test]
    fn a_stopped_watch_hears_nothing_not_even_a_reset_or_a_close() {
        let mut b = new(16);
        let (a, peer) = pair();
        let (c, _peer_c) = pair();
        b.register(raw(&a), 1, Interest::READ).unwrap();
        b.register(raw(&c), 2, Interest::READ).unwrap();
        expect_none(&mut b, QUIET); // polls are pending on both
        b.modify(raw(&a), 1, Interest::NONE).unwrap();
        b.modify(raw(&c), 2, Interest::NONE).unwrap();
        reset_by(peer, &a);
        let c_raw = raw(&c);
        drop(c);
        expect_none(&mut b, QUIET);
        // Started again: the reset is reported.
        b.modify(raw(&a), 1, Interest::READ).unwrap();
        assert!(wait_for(&mut b, 1, |r| r.is_hup()).is_error());
        b.deregister(c_raw).unwrap();
    }

    #[test]
    fn deregister_then_register_again() {
        let mut b = new(16);
        let (a, peer) = pair();
        b.register(raw(&a), 11, Interest::READ).unwrap();
        expect_none(&mut b, QUIET); // a poll is pending now
        b.deregister(raw(&a)).unwrap();
        assert!(b.is_empty());
        send(&peer, b"r");
        // The cancelled poll's completion reports nothing.
        expect_none(&mut b, QUIET);
        b.register(raw(&a), 12, Interest::READ).unwrap();
        assert!(expect_one(&mut b, 12).is_readable());
    }

    #[test]
    fn registration_errors_are_clear_and_harmless() {
        let mut b = new(16);
        let (a, _peer) = pair();
        b.register(raw(&a), 1, Interest::READ).unwrap();
        let e = b.register(raw(&a), 1, Interest::READ).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        let (c, _peer2) = pair();
        assert_eq!(
            b.modify(raw(&c), 1, Interest::READ).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            b.deregister(raw(&c)).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // Not a socket at all: refused by the call (WSAENOTSOCK, 10038).
        let e = b.register(0x7fff_fff0, 2, Interest::READ).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(10038), "{e}");
        assert_eq!(b.len(), 1);
        b.deregister(raw(&a)).unwrap();
        assert!(b.is_empty());
    }

    #[test]
    fn closed_while_registered_does_not_spin() {
        let mut b = new(16);
        let (a, _peer) = pair();
        let s = raw(&a);
        b.register(s, 13, Interest::READ).unwrap();
        expect_none(&mut b, QUIET); // a poll is pending on the socket
        drop(a);
        // Reported once (as an error: the socket was closed under its watch), then quiet.
        let r = expect_one(&mut b, 13);
        assert!(r.is_error(), "{r:?}");
        expect_none(&mut b, QUIET);
        b.deregister(s).unwrap();
        assert!(b.is_empty());
    }

    #[test]
    fn peer_close_is_read_closed_and_data_survives() {
        let mut b = new(16);
        let (a, peer) = pair();
        b.register(raw(&a), 14, Interest::READ | Interest::PEER_CLOSED)
            .unwrap();
        send(&peer, b"last words");
        drop(peer);
        // Every byte sent before the close is read, and the close is reported: with the
        // bytes (Windows), or once they are taken (Wine reports the FIN only then).
        let mut got = Vec::new();
        let deadline = Instant::now() + LONG.unwrap();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no READ_CLOSED; read {got:?}");
            let n = b.wait(Some(left)).unwrap();
            let evs = events(&b, n);
            assert!(evs.iter().all(|e| e.token == 14), "{evs:?}");
            if let Some(e) = evs.first() {
                assert!(e.ready.is_readable(), "{:?}", e.ready);
                got.extend(read_available(&a));
                if e.ready.is_read_closed() {
                    break;
                }
            }
        }
        got.extend(read_available(&a));
        assert_eq!(got, b"last words");
    }

    #[test]
    fn shutdown_write_is_read_closed() {
        let mut b = new(16);
        let (a, peer) = pair();
        b.register(raw(&a), 15, Interest::READ | Interest::PEER_CLOSED)
            .unwrap();
        peer.shutdown(Shutdown::Write).unwrap();
        let r = wait_for(&mut b, 15, |r| r.is_read_closed());
        assert!(r.is_readable() && !r.is_hup(), "{r:?}");
        // The other direction still works.
        send(&a, b"reply");
        let deadline = Instant::now() + LONG.unwrap();
        let mut got = Vec::new();
        while got.len() < 5 {
            assert!(Instant::now() < deadline);
            got.extend(read_available(&peer));
        }
        assert_eq!(got, b"reply");
    }

    #[test]
    fn reset_is_hup_without_being_asked() {
        let mut b = new(16);
        let (a, peer) = pair();
        b.register(raw(&a), 16, Interest::WRITE).unwrap();
        assert!(expect_one(&mut b, 16).is_writable());
        b.modify(raw(&a), 16, Interest::READ).unwrap();
        reset_by(peer, &a);
        let r = wait_for(&mut b, 16, |r| r.is_hup() || r.is_read_closed());
        assert!(r.is_readable(), "{r:?}");
    }

    #[test]
    fn write_only_watch_hears_hang_up() {
        let mut b = new(16);
        let (a, peer) = pair();
        b.register(raw(&a), 17, Interest::WRITE).unwrap();
        assert!(expect_one(&mut b, 17).is_writable());
        reset_by(peer, &a);
        let r = wait_for(&mut b, 17, |r| r.is_hup());
        assert!(r.is_writable(), "{r:?}");
    }

    #[test]
    fn refused_connect_reports_error() {
        let mut b = new(16);
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let s = connecting_socket(port);
        b.register(s.raw(), 18, Interest::WRITE).unwrap();
        let r = wait_for(&mut b, 18, |r| r.is_error());
        assert!(r.is_writable(), "{r:?}");
        b.deregister(s.raw()).unwrap();
    }

    #[test]
    fn sub_millisecond_timeouts_round_up() {
        let mut b = new(4);
        for us in [1u64, 10, 100, 999] {
            let d = Duration::from_micros(us);
            let t0 = Instant::now();
            assert_eq!(b.wait(Some(d)).unwrap(), 0);
            assert!(t0.elapsed() >= d, "{us} us wait lasted {:?}", t0.elapsed());
        }
    }

    #[test]
    fn zero_timeout_returns_immediately() {
        let mut b = new(4);
        let (a, _peer) = pair();
        b.register(raw(&a), 1, Interest::READ).unwrap();
        let t0 = Instant::now();
        assert_eq!(b.wait(Some(Duration::ZERO)).unwrap(), 0);
        assert!(t0.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn huge_timeouts_are_accepted() {
        let mut b = new(4);
        let w = Waker::new().unwrap();
        b.register_waker(&w, 1).unwrap();
        w.wake().unwrap();
        assert_eq!(b.wait(Some(Duration::from_secs(u64::MAX))).unwrap(), 1);
        assert!(w.drain());
        w.wake().unwrap();
        assert_eq!(b.wait(Some(Duration::from_secs(100 * 86_400))).unwrap(), 1);
    }

    #[test]
    fn more_ready_than_capacity_none_starved() {
        const N: usize = 10;
        let mut b = new(3);
        let pairs: Vec<_> = (0..N).map(|_| pair()).collect();
        for (i, (a, peer)) in pairs.iter().enumerate() {
            b.register(raw(a), i as u64, Interest::READ).unwrap();
            send(peer, b"x");
        }
        every_token_reported(&mut b, N, 3, |e, first| {
            if first {
                // Served: stop its readiness so others get their turn.
                read_available(&pairs[e.token as usize].0);
            }
        });
    }

    #[test]
    fn capacity_zero_means_one() {
        let mut b = new(0);
        let (a, peer) = pair();
        let (c, peer2) = pair();
        b.register(raw(&a), 1, Interest::READ).unwrap();
        b.register(raw(&c), 2, Interest::READ).unwrap();
        send(&peer, b"1");
        send(&peer2, b"2");
        let n = b.wait(LONG).unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn tokens_are_opaque() {
        let mut b = new(4);
        let (a, peer) = pair();
        b.register(raw(&a), u64::MAX, Interest::READ).unwrap();
        send(&peer, b"t");
        assert!(expect_one(&mut b, u64::MAX).is_readable());
        b.modify(raw(&a), 0, Interest::READ).unwrap();
        assert!(expect_one(&mut b, 0).is_readable());
    }

    #[test]
    fn a_listening_socket_is_readable_with_a_connection_to_accept() {
        let mut b = new(4);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        b.register(raw(&l), 20, Interest::READ).unwrap();
        expect_none(&mut b, QUIET);
        let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert!(expect_one(&mut b, 20).is_readable());
        let (s, _) = l.accept().unwrap();
        drop(s);
        expect_none(&mut b, QUIET);
    }

    #[test]
    fn many_sockets_across_afd_handles() {
        // More than one AFD handle's worth of sockets (32 each): all are watched.
        const N: usize = 100;
        let mut b = new(N);
        let pairs: Vec<_> = (0..N).map(|_| pair()).collect();
        for (i, (a, _)) in pairs.iter().enumerate() {
            b.register(raw(a), i as u64, Interest::READ).unwrap();
        }
        expect_none(&mut b, QUIET);
        for (_, peer) in pairs.iter().rev() {
            send(peer, b"m");
        }
        every_token_reported(&mut b, N, N, |e, _| assert!(e.ready.is_readable()));
        for (a, _) in &pairs {
            b.deregister(raw(a)).unwrap();
        }
        assert!(b.is_empty());
    }

    #[test]
    fn waker_wakes_across_threads_and_coalesces() {
        const WAKE: u64 = 1 << 63;
        let mut b = new(16);
        let w = Waker::new().unwrap();
        b.register_waker(&w, WAKE).unwrap();
        expect_none(&mut b, QUIET);
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..5 {
                    w.wake().unwrap();
                }
            });
        });
        assert_eq!(expect_one(&mut b, WAKE), Ready::READABLE);
        // Level-triggered until drained.
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
        // A wake before registration is reported once registered.
        let w2 = Waker::new().unwrap();
        w2.wake().unwrap();
        b.register_waker(&w2, 2).unwrap();
        assert_eq!(expect_one(&mut b, 2), Ready::READABLE);
        b.deregister_waker(&w2).unwrap();
        b.deregister_waker(&w).unwrap();
        assert!(b.is_empty());
        w.wake().unwrap(); // unbound: harmless
    }

    #[test]
    fn a_waker_is_watched_by_one_backend_at_a_time() {
        let mut b1 = new(4);
        let mut b2 = new(4);
        let w = Waker::new().unwrap();
        b1.register_waker(&w, 1).unwrap();
        let e = b2.register_waker(&w, 2).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        // The refused registration changed nothing: b1 still hears it.
        w.wake().unwrap();
        assert_eq!(expect_one(&mut b1, 1), Ready::READABLE);
        assert!(w.drain());
        // Moved to b2, and b1 dropped: b2 hears it.
        b1.deregister_waker(&w).unwrap();
        b2.register_waker(&w, 2).unwrap();
        drop(b1);
        w.wake().unwrap();
        assert_eq!(expect_one(&mut b2, 2), Ready::READABLE);
    }

    #[test]
    fn an_undrained_waker_does_not_starve_sockets() {
        let mut b = new(2);
        let w = Waker::new().unwrap();
        b.register_waker(&w, 100).unwrap();
        w.wake().unwrap();
        assert_eq!(expect_one(&mut b, 100), Ready::READABLE);
        // Never drained; sockets still get reported alongside it.
        let (a, peer) = pair();
        b.register(raw(&a), 1, Interest::READ).unwrap();
        send(&peer, b"x");
        let r = wait_for(&mut b, 1, |r| r.is_readable());
        assert!(r.is_readable());
    }

    #[test]
    fn a_drained_wake_is_not_reported() {
        let mut b = new(4);
        let w = Waker::new().unwrap();
        b.register_waker(&w, 3).unwrap();
        w.wake().unwrap();
        assert!(w.drain()); // before the loop saw it
        expect_none(&mut b, QUIET);
    }

    #[test]
    fn dropping_the_backend_with_polls_pending_is_clean() {
        let pairs: Vec<_> = (0..40).map(|_| pair()).collect();
        for _ in 0..3 {
            let mut b = new(8);
            for (i, (a, _)) in pairs.iter().enumerate() {
                b.register(raw(a), i as u64, Interest::READ).unwrap();
            }
            expect_none(&mut b, QUIET);
            let t0 = Instant::now();
            drop(b);
            assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
        }
    }

    #[test]
    fn reinit_keeps_every_registration() {
        let mut b = new(4);
        let (a, peer) = pair();
        b.register(raw(&a), 1, Interest::READ).unwrap();
        b.reinit().unwrap();
        send(&peer, b"k");
        assert!(expect_one(&mut b, 1).is_readable());
    }
}

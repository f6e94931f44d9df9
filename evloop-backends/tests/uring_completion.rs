//! The io_uring backend's completion I/O (see "Completion I/O" in the contract): a
//! registration with `Interest::COMPLETION` has its bytes received into the backend's
//! buffer ring, its sends submitted from buffers the backend holds, and a listening
//! socket's connections accepted by the kernel, all reported through the same events.
#![cfg(target_os = "linux")]

mod util;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

use evloop_backends::{Backend, Interest, Poll, Ready, Received, Uring};
use util::*;

fn uring(capacity: usize) -> Uring {
    Uring::new(capacity).unwrap_or_else(|e| panic!("io_uring: {e}"))
}

const RC: Interest = Interest::READ.union(Interest::COMPLETION);

/// Take everything `fd` has received, waiting up to LONG for events, until `want`
/// bytes (or end of file) arrived.
fn take(b: &mut Uring, fd: i32, want: usize) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut eof = false;
    let mut buf = [0u8; 1000];
    let deadline = std::time::Instant::now() + LONG.unwrap();
    while got.len() < want && !eof {
        assert!(
            std::time::Instant::now() < deadline,
            "got {} of {want}",
            got.len()
        );
        wait_events(b, LONG);
        loop {
            let r = b.recv_take(fd, &mut buf).unwrap();
            got.extend_from_slice(&buf[..r.len]);
            eof |= r.eof;
            if r.len == 0 {
                break;
            }
        }
    }
    (got, eof)
}

#[test]
fn readiness_backends_have_no_completion_io() {
    let mut p = Poll::new(4).unwrap();
    assert!(!p.completion_io());
    let (a, _b) = pair();
    p.register(fd(&a), 1, RC).unwrap(); // the bit is ignored
    assert!(p.recv_take(fd(&a), &mut [0; 4]).is_err());
    assert!(uring(4).completion_io());
}

#[test]
fn received_bytes_are_reported_readable_and_taken_in_order_then_eof() {
    let _g = shared();
    let mut b = uring(16);
    let (a, peer) = pair();
    b.register(fd(&a), 7, RC).unwrap();
    send(&peer, b"hello ");
    let evs = wait_events(&mut b, LONG);
    assert_eq!(evs.len(), 1);
    assert_eq!((evs[0].token, evs[0].ready), (7, Ready::READABLE));
    send(&peer, b"world");
    drop(peer);
    let (got, eof) = take(&mut b, fd(&a), 11);
    assert_eq!(got, b"hello world");
    let (rest, eof2) = if eof {
        (Vec::new(), true)
    } else {
        take(&mut b, fd(&a), 1)
    };
    assert!(rest.is_empty() && eof2, "end of file after the bytes");
    // End of file stays reported by recv_take, and (level-triggered, as epoll has a
    // socket at end of file) as readable while reading is wanted; not once it is not.
    assert_eq!(
        b.recv_take(fd(&a), &mut [0; 8]).unwrap(),
        Received { len: 0, eof: true }
    );
    assert_eq!(expect_one(&mut b, 7), Ready::READABLE);
    b.modify(fd(&a), 7, Interest::COMPLETION).unwrap();
    expect_none(&mut b, QUIET);
    b.deregister(fd(&a)).unwrap();
}

/// Bytes left untaken are reported again by the next wait (level-triggered), and a
/// connection with more than the buffer ring holds gets it all: receives that run out
/// of buffers start again when buffers are given back.
#[test]
fn untaken_bytes_are_reported_again_and_big_transfers_arrive_whole() {
    let _g = shared();
    let mut b = uring(16);
    let (a, peer) = pair();
    b.register(fd(&a), 1, RC).unwrap();
    send(&peer, b"abcdef");
    assert_eq!(wait_events(&mut b, LONG).len(), 1);
    let mut two = [0u8; 2];
    assert_eq!(b.recv_take(fd(&a), &mut two).unwrap().len, 2);
    assert_eq!(&two, b"ab");
    let evs = wait_events(&mut b, LONG);
    assert_eq!(evs.len(), 1, "the rest is reported again");
    let (got, _) = take(&mut b, fd(&a), 4);
    assert_eq!(got, b"cdef");

    // 4 MiB: twice what the buffer ring holds, written by another thread.
    let total = 4 << 20;
    let writer = std::thread::spawn(move || {
        let mut peer = peer;
        peer.set_nonblocking(false).unwrap();
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        peer.write_all(&data).unwrap();
    });
    let (got, _) = take(&mut b, fd(&a), total);
    writer.join().unwrap();
    assert_eq!(got.len(), total);
    assert!(got.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
    b.deregister(fd(&a)).unwrap();
}

/// Pausing (dropping READ) stops the receive; what came before stays and is reported
/// when reading is wanted again. (Bytes the receive caught before its cancellation
/// reached the kernel are queued too, not dropped.)
#[test]
fn pausing_keeps_received_bytes_for_the_resume() {
    let _g = shared();
    let mut b = uring(16);
    let (a, peer) = pair();
    b.register(fd(&a), 1, RC).unwrap();
    send(&peer, b"one");
    assert_eq!(wait_events(&mut b, LONG).len(), 1);
    b.modify(fd(&a), 1, Interest::COMPLETION).unwrap();
    expect_none(&mut b, QUIET); // the receive is cancelled by this wait
    send(&peer, b"two");
    expect_none(&mut b, QUIET);
    b.modify(fd(&a), 1, RC).unwrap();
    let (got, _) = take(&mut b, fd(&a), 6);
    assert_eq!(got, b"onetwo");
    b.deregister(fd(&a)).unwrap();
}

#[test]
fn sends_are_reported_writable_and_hand_the_buffer_back() {
    let _g = shared();
    let mut b = uring(16);
    let (a, mut peer) = pair();
    let w = Interest::WRITE.union(Interest::COMPLETION);
    b.register(fd(&a), 3, w).unwrap();
    expect_none(&mut b, QUIET); // writing arms nothing in completion mode
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(b"PONG\r\n");
    let cap = buf.capacity();
    b.send(fd(&a), buf).unwrap();
    // One send at a time.
    let (back, e) = b.send(fd(&a), b"x".to_vec()).unwrap_err();
    assert_eq!(
        (back, e.kind()),
        (b"x".to_vec(), std::io::ErrorKind::WouldBlock)
    );
    assert!(
        b.send_done(fd(&a)).is_none(),
        "not submitted before the wait"
    );
    let evs = wait_events(&mut b, LONG);
    assert_eq!(
        (evs.len(), evs[0].token, evs[0].ready),
        (1, 3, Ready::WRITABLE)
    );
    let (back, r) = b.send_done(fd(&a)).unwrap();
    r.unwrap();
    assert!(
        back.is_empty() && back.capacity() == cap,
        "the same buffer, emptied"
    );
    assert_eq!(read_available(&peer), b"PONG\r\n");
    assert!(b.send_done(fd(&a)).is_none());

    // A send bigger than the socket buffer finishes whole while the peer reads.
    let total = 8 << 20;
    let data: Vec<u8> = (0..total).map(|i| (i % 253) as u8).collect();
    b.send(fd(&a), data).unwrap();
    let reader = std::thread::spawn(move || {
        peer.set_nonblocking(false).unwrap();
        let mut got = vec![0u8; total];
        peer.read_exact(&mut got).unwrap();
        got
    });
    let mut done = None;
    for _ in 0..100 {
        wait_events(&mut b, LONG);
        if let Some(d) = b.send_done(fd(&a)) {
            done = Some(d);
            break;
        }
    }
    done.expect("the send finished").1.unwrap();
    // The kernel waits for room itself (an O_NONBLOCK socket included): no busy retry.
    assert!(b.enter_calls() < 2000, "{} enters", b.enter_calls());
    let got = reader.join().unwrap();
    assert!(got.iter().enumerate().all(|(i, &x)| x == (i % 253) as u8));
    b.deregister(fd(&a)).unwrap();
}

/// A send to a peer that is gone fails with the error, and deregistering with a send
/// in flight is safe (the buffer is kept until the kernel lets go of it).
#[test]
fn failed_and_abandoned_sends() {
    let _g = shared();
    let mut b = uring(16);
    let (a, peer) = pair();
    let w = Interest::WRITE.union(Interest::COMPLETION);
    b.register(fd(&a), 3, w).unwrap();
    drop(peer);
    b.send(fd(&a), b"lost".to_vec()).unwrap();
    wait_events(&mut b, LONG);
    let (_, r) = b.send_done(fd(&a)).unwrap();
    assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EPIPE));
    b.deregister(fd(&a)).unwrap();

    // In flight (the peer never reads) when deregistered, then the ring is dropped.
    let (a, _peer) = pair();
    b.register(fd(&a), 4, w).unwrap();
    b.send(fd(&a), vec![7u8; 4 << 20]).unwrap();
    expect_none(&mut b, QUIET);
    b.deregister(fd(&a)).unwrap();
    drop(a);
    expect_none(&mut b, QUIET);
    drop(b);
}

#[test]
fn a_listening_socket_has_its_connections_accepted_by_the_kernel() {
    let _g = shared();
    let mut b = uring(16);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    b.register(l.as_raw_fd(), 9, RC).unwrap();
    let addr = l.local_addr().unwrap();
    let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut accepted = Vec::new();
    let deadline = std::time::Instant::now() + LONG.unwrap();
    while accepted.len() < 3 {
        assert!(std::time::Instant::now() < deadline);
        for ev in wait_events(&mut b, LONG) {
            assert_eq!((ev.token, ev.ready), (9, Ready::READABLE));
        }
        while let Some(c) = b.accept_take(l.as_raw_fd()) {
            accepted.push(TcpStream::from(c.unwrap()));
        }
    }
    for c in &accepted {
        // Non-blocking, as the contract says.
        let mut x = [0u8; 1];
        assert_eq!(
            (&*c).read(&mut x).unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
    }
    // Deregistered with a connection queued: it is closed, not leaked.
    let _late = TcpStream::connect(addr).unwrap();
    wait_events(&mut b, LONG);
    b.deregister(l.as_raw_fd()).unwrap();
    drop(clients);
}

/// The kernel cancels a thread's requests when it exits: a loop built and run on one
/// thread, then moved to another, still finishes its sends and keeps receiving.
#[test]
fn requests_survive_the_loop_moving_to_another_thread() {
    let _g = shared();
    let (a, mut peer) = pair();
    let rwc = RC.union(Interest::WRITE);
    let (b, a) = std::thread::spawn(move || {
        let mut b = uring(16);
        b.register(fd(&a), 5, rwc).unwrap();
        b.send(fd(&a), vec![9u8; 4 << 20]).unwrap(); // far more than the socket holds
        expect_none(&mut b, QUIET); // submitted, waiting for room
        (b, a)
    })
    .join()
    .unwrap();
    let mut b = b;
    let reader = std::thread::spawn(move || {
        peer.set_nonblocking(false).unwrap();
        let mut got = vec![0u8; 4 << 20];
        peer.read_exact(&mut got).unwrap();
        peer.write_all(b"thanks").unwrap();
        (got, peer)
    });
    let mut sent = None;
    let deadline = std::time::Instant::now() + LONG.unwrap();
    while sent.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the send never finished"
        );
        wait_events(&mut b, LONG);
        sent = b.send_done(fd(&a));
    }
    sent.unwrap().1.unwrap();
    let (got, _peer) = reader.join().unwrap();
    assert!(got.iter().all(|&x| x == 9));
    let (reply, _) = take(&mut b, fd(&a), 6);
    assert_eq!(reply, b"thanks");
    b.deregister(fd(&a)).unwrap();
}

/// A connection whose bytes are not taken holds a few buffers of the ring, no more: its
/// receive stops (the peer's writes block: back-pressure) and the others still receive.
/// When so many such connections exhaust the ring, the rest are read with `recv(2)` on
/// readiness instead of stalling, and everything arrives.
#[test]
fn untaken_bytes_cannot_take_the_ring_from_the_others() {
    let _g = shared();
    let mut b = uring(64);
    // One connection that is never taken from: its peer ends up blocked.
    let (slow, slow_peer) = pair();
    b.register(fd(&slow), 0, RC).unwrap();
    let chunk = vec![1u8; 64 * 1024];
    let mut written = 0usize;
    let mut blocked = false;
    for _ in 0..200 {
        match (&slow_peer).write(&chunk) {
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Give the kernel's receive a chance to take more, then try again.
                wait_events(&mut b, Some(std::time::Duration::from_millis(5)));
                if (&slow_peer).write(&chunk).is_err() {
                    blocked = true;
                    break;
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        blocked,
        "the backend kept receiving ({written} bytes) for a connection nobody reads"
    );
    assert!(
        written < 4 << 20,
        "{written} bytes taken in for a connection nobody reads"
    );

    // Many connections with bytes nobody takes: more than the ring holds in all.
    let many: Vec<_> = (0..100).map(|_| pair()).collect();
    for (i, (a, peer)) in many.iter().enumerate() {
        b.register(fd(a), 1 + i as u64, RC).unwrap();
        send(peer, &vec![i as u8; 40 * 1024]);
    }
    for _ in 0..20 {
        wait_events(&mut b, Some(std::time::Duration::from_millis(5)));
    }
    // Every one of them still gets all its bytes, taken one after the other.
    for (i, (a, _)) in many.iter().enumerate() {
        let (got, _) = take(&mut b, fd(a), 40 * 1024);
        assert_eq!(got.len(), 40 * 1024, "connection {i}");
        assert!(got.iter().all(|&x| x == i as u8), "connection {i}");
    }
    for (a, _) in &many {
        b.deregister(fd(a)).unwrap();
    }
    b.deregister(fd(&slow)).unwrap();
}

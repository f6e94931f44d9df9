//! Registration and readiness: level firing, write readiness, one-shot, several sources on
//! one fd, combined readiness and timeout, peer close, closed and reused fds, many ready
//! fds at once.

use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

#[cfg(unix)]
use evloop_core::Error;
use evloop_core::{Backend, Builder, Ctx, Event, Exit, Interest, Ready, Token, Watch};

use super::util::*;

/// Level-triggered read readiness is dispatched once per iteration, and again every
/// iteration for as long as the data stays unread; reading it stops the dispatches.
pub fn read_fires_while_unread<B: Backend>() {
    let (a, mut b) = stream_pair();
    let mut el = harness::<B, ()>((), nothing);
    let id = el.ctx().add_io(&a, Token(1), Watch::read()).unwrap();
    b.write_all(b"x").unwrap();
    for i in 1..=3 {
        assert_eq!(el.run_once().unwrap(), Exit::Done);
        let log = &el.machine().log;
        assert_eq!(
            log.len(),
            i,
            "exactly one dispatch per iteration while unread"
        );
        let ev = log[i - 1];
        assert_eq!((ev.token, ev.source), (Token(1), id));
        assert!(ev.ready.is_readable(), "{:?}", ev.ready);
        assert!(
            !ev.ready.is_writable(),
            "write readiness not asked for: {:?}",
            ev.ready
        );
    }
    assert_eq!(drain(&a), (1, false));
    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    assert_eq!(
        el.machine().log.len(),
        3,
        "read readiness after the data was read"
    );
    b.write_all(b"yz").unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().log.len(), 4, "new data is readable again");
}

/// Write readiness fires on a socket with buffer space, stops while the buffer is full,
/// and comes back once the peer has read.
pub fn write_fires_with_buffer_space<B: Backend>() {
    let (a, b) = stream_pair();
    let mut el = harness::<B, ()>((), nothing);
    el.ctx().add_io(&a, Token(2), Watch::write()).unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    let ev = el.machine().log[0];
    assert!(
        ev.ready.is_writable() && !ev.ready.is_readable(),
        "{:?}",
        ev.ready
    );

    assert!(fill(&a) > 0);
    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    assert_eq!(el.machine().log.len(), 1, "a full socket is not writable");

    drain(&b);
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().log.len(), 2);
    assert!(el.machine().log[1].ready.is_writable());
}

/// A one-shot source is disarmed by its first dispatch (it stays registered), even though
/// the fd is still readable; `start` re-arms it.
pub fn oneshot_disarms_after_first_dispatch<B: Backend>() {
    let (a, mut b) = stream_pair();
    let mut el = harness::<B, ()>((), nothing);
    let id = el
        .ctx()
        .add_io(&a, Token(1), Watch::read().oneshot())
        .unwrap();
    b.write_all(b"x").unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().log.len(), 1);
    assert!(!el.ctx().is_active(id), "disarmed after its dispatch");
    assert_eq!(el.ctx().source_count(), 1, "disarmed, not removed");

    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    assert_eq!(el.run().unwrap(), Exit::Empty, "nothing is armed any more");
    assert_eq!(
        el.machine().log.len(),
        1,
        "a disarmed one-shot source fired again"
    );

    el.ctx().start(id).unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().log.len(), 2, "re-armed from outside");
    assert!(!el.ctx().is_active(id));
}

/// A one-shot source re-armed inside its own handler fires again in the next iteration;
/// once its handler stops re-arming it, it stays quiet.
pub fn oneshot_rearmed_in_own_handler<B: Backend>() {
    fn rearm<B: Backend>(count: &mut u32, ctx: &mut Ctx<Harness<B, u32>>, ev: &Event) {
        *count += 1;
        if *count < 5 {
            ctx.start(ev.source).unwrap();
        }
    }
    let (a, mut b) = stream_pair();
    let mut el = harness::<B, u32>(0, rearm);
    let id = el
        .ctx()
        .add_io(&a, Token(1), Watch::read().oneshot())
        .unwrap();
    b.write_all(b"x").unwrap();
    for i in 1..=5 {
        assert_eq!(el.run_once().unwrap(), Exit::Done);
        assert_eq!(el.machine().log.len(), i, "one dispatch per re-arm");
    }
    assert!(!el.ctx().is_active(id));
    assert_eq!(el.run().unwrap(), Exit::Empty);
    assert_eq!(el.machine().log.len(), 5);
}

/// A read source and a write source on one socket are each dispatched with their own
/// readiness; stopping one leaves the other alone; removing the first-registered one
/// hands the fd's kernel registration to the other.
pub fn several_sources_on_one_fd<B: Backend>() {
    let (a, mut b) = stream_pair();
    let mut el = harness::<B, ()>((), nothing);
    let r = el.ctx().add_io(&a, Token(1), Watch::read()).unwrap();
    let w = el.ctx().add_io(&a, Token(2), Watch::write()).unwrap();
    assert_ne!(r, w);
    b.write_all(b"x").unwrap();

    assert_eq!(el.run_once().unwrap(), Exit::Done);
    let log = el.machine().log.clone();
    assert_eq!(log.len(), 2, "{log:?}");
    let of = |t: u64| log.iter().find(|e| e.token == Token(t)).copied().unwrap();
    let (er, ew) = (of(1), of(2));
    assert_eq!((er.source, ew.source), (r, w));
    assert!(
        er.ready.is_readable() && !er.ready.is_writable(),
        "{:?}",
        er.ready
    );
    assert!(
        ew.ready.is_writable() && !ew.ready.is_readable(),
        "{:?}",
        ew.ready
    );

    el.ctx().stop(w).unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens()[2..], [1]);

    el.ctx().stop(r).unwrap();
    el.ctx().start(w).unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens()[3..], [2]);

    // Two readers; the first (which the kernel registration was made for) goes away.
    el.ctx().stop(w).unwrap();
    el.ctx().start(r).unwrap();
    let r2 = el.ctx().add_io(&a, Token(3), Watch::read()).unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    let mut last: Vec<u64> = el.machine().tokens()[4..].to_vec();
    last.sort_unstable();
    assert_eq!(last, [1, 3], "both readers of one fd are dispatched");
    el.ctx().remove(r).unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(
        el.machine().tokens()[6..],
        [3],
        "the remaining reader still fires"
    );
    assert_eq!(el.machine().log[6].source, r2);

    el.ctx().remove(r2).unwrap();
    el.ctx().remove(w).unwrap();
    assert_eq!(el.ctx().source_count(), 0);
    assert_eq!(
        el.ctx().backend().len(),
        1,
        "only the loop's wake fd is left"
    );
}

/// One source watching read (and later write) with an idle timeout: each dispatch says
/// which of them fired.
pub fn combined_source_reports_what_fired<B: Backend>() {
    let t0 = Instant::now();
    let (a, mut b) = stream_pair();
    let mut el = harness::<B, ()>((), nothing);
    let timeout = Duration::from_millis(20);
    let id = el
        .ctx()
        .add_io(&a, Token(1), Watch::read().timeout(timeout))
        .unwrap();

    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert!(
        t0.elapsed() >= timeout,
        "timed out early: {:?}",
        t0.elapsed()
    );
    let ev = el.machine().log[0];
    assert_eq!(ev.ready, Ready::TIMEOUT, "only the timeout fired");
    // Push the timeout far away so that a slow machine cannot make it coincide below.
    el.ctx().set_idle_timeout(id, Some(LONG)).unwrap();

    b.write_all(b"x").unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    let ev = el.machine().log[1];
    assert!(
        ev.ready.is_readable() && !ev.ready.is_timeout(),
        "{:?}",
        ev.ready
    );
    drain(&a);

    el.ctx()
        .set_interest(id, Interest::READ | Interest::WRITE)
        .unwrap();
    b.write_all(b"y").unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    let ev = el.machine().log[2];
    assert!(
        ev.ready.is_readable() && ev.ready.is_writable(),
        "{:?}",
        ev.ready
    );
    assert!(!ev.ready.is_timeout(), "{:?}", ev.ready);
    assert_eq!(el.machine().log.len(), 3);
}

/// Data arrives and the source's timeout expires before the loop runs: both are reported,
/// in one dispatch.
pub fn readiness_and_timeout_coincide_in_one_dispatch<B: Backend>() {
    let (a, mut b) = stream_pair();
    let mut el = harness::<B, ()>((), nothing);
    b.write_all(b"x").unwrap();
    el.ctx().refresh_now();
    el.ctx()
        .add_io(
            &a,
            Token(1),
            Watch::read().timeout(Duration::from_millis(1)),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(5)); // let the timeout expire

    assert_eq!(el.run_once().unwrap(), Exit::Done);
    let log = &el.machine().log;
    assert_eq!(log.len(), 1, "one dispatch, not two: {log:?}");
    assert!(
        log[0].ready.contains(Ready::READABLE | Ready::TIMEOUT),
        "both must be reported together: {:?}",
        log[0].ready
    );
}

/// State of a reader that takes `chunk` bytes per dispatch and removes its source at EOF.
struct Reader<S> {
    sock: S,
    chunk: usize,
    got: Vec<u8>,
    eof: bool,
    data_after_eof: bool,
}

impl<S> Reader<S> {
    fn new(sock: S, chunk: usize) -> Self {
        Reader {
            sock,
            chunk,
            got: Vec::new(),
            eof: false,
            data_after_eof: false,
        }
    }
}

fn read_chunk<B: Backend, S: Read>(
    r: &mut Reader<S>,
    ctx: &mut Ctx<Harness<B, Reader<S>>>,
    ev: &Event,
) {
    let mut buf = vec![0u8; r.chunk];
    match r.sock.read(&mut buf) {
        Ok(0) => {
            r.eof = true;
            ctx.remove(ev.source).unwrap();
        }
        Ok(n) => {
            r.data_after_eof |= r.eof;
            r.got.extend_from_slice(&buf[..n]);
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Err(e) => panic!("read failed: {e} (event {:?})", ev.ready),
    }
}

/// Data then close from the peer: every byte is read first, then EOF; the peer closing is
/// reported as `READ_CLOSED` (never without `READABLE`, never as an error).
fn check_peer_close<B: Backend, S: Read + Write + evloop_core::AsSource>(a: S, mut b: S) {
    let data: Vec<u8> = (0..32 * 1024).map(|i| (i % 251) as u8).collect();
    b.write_all(&data).unwrap();
    drop(b);
    let mut el = harness::<B, Reader<S>>(Reader::new(a, 1000), read_chunk);
    let (m, ctx) = el.parts();
    ctx.add_io(&m.state.sock, Token(1), Watch::read().peer_closed())
        .unwrap();
    turn_until(&mut el, "EOF", |el| el.machine().state.eof);

    let m = el.machine();
    assert!(
        m.state.got == data,
        "data lost or reordered before the close"
    );
    assert!(!m.state.data_after_eof);
    assert!(
        m.log.len() > data.len() / 1000,
        "one chunk per dispatch: {}",
        m.log.len()
    );
    for ev in &m.log {
        assert!(
            ev.ready.is_readable(),
            "data/EOF is readable: {:?}",
            ev.ready
        );
        assert!(
            !ev.ready.is_error(),
            "a peer close is not an error: {:?}",
            ev.ready
        );
    }
    assert!(
        m.log.iter().any(|e| e.ready.is_read_closed()),
        "the peer close was never reported as READ_CLOSED"
    );
    assert_eq!(el.run().unwrap(), Exit::Empty);
}

#[cfg(unix)]
/// Peer close after data on a Unix stream socket.
pub fn peer_close_after_data_unix<B: Backend>() {
    let (a, b) = stream_pair();
    check_peer_close::<B, _>(a, b);
}

/// Peer close after data on a TCP connection over 127.0.0.1.
pub fn peer_close_after_data_tcp<B: Backend>() {
    let (a, b) = tcp_pair();
    check_peer_close::<B, _>(a, b);
}

/// The peer's `shutdown(SHUT_WR)` is detected as `READ_CLOSED` (not `HUP`, not an error),
/// after its last data; the other direction keeps working.
pub fn peer_shutdown_write_detected<B: Backend>() {
    let (a, mut b) = tcp_pair();
    b.write_all(b"last words").unwrap();
    b.shutdown(Shutdown::Write).unwrap();
    let mut el = harness::<B, Reader<std::net::TcpStream>>(Reader::new(a, 4096), read_chunk);
    let (m, ctx) = el.parts();
    ctx.add_io(&m.state.sock, Token(1), Watch::read().peer_closed())
        .unwrap();
    turn_until(&mut el, "EOF after SHUT_WR", |el| el.machine().state.eof);
    let m = el.machine();
    assert_eq!(m.state.got, b"last words");
    assert!(
        m.log.iter().any(|e| e.ready.is_read_closed()),
        "{:?}",
        m.log
    );
    for ev in &m.log {
        assert!(!ev.ready.is_error() && !ev.ready.is_hup(), "{:?}", ev.ready);
    }

    // Half-closed, not closed: our side can still send.
    (&m.state.sock).write_all(b"reply").unwrap();
    b.set_nonblocking(false).unwrap();
    b.set_read_timeout(Some(LONG)).unwrap();
    let mut reply = [0u8; 5];
    b.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"reply");
}

struct Writer<S> {
    sock: S,
    error: Option<io::Error>,
}

fn write_until_error<B: Backend, S: Write>(
    w: &mut Writer<S>,
    ctx: &mut Ctx<Harness<B, Writer<S>>>,
    ev: &Event,
) {
    loop {
        match w.sock.write(b"ping") {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                w.error = Some(e);
                ctx.remove(ev.source).unwrap();
                return;
            }
        }
    }
}

fn check_write_to_closed_peer<B: Backend, S: Write + evloop_core::AsSource>(
    a: S,
    b: S,
) -> io::Error {
    drop(b);
    let mut el = harness::<B, Writer<S>>(
        Writer {
            sock: a,
            error: None,
        },
        write_until_error,
    );
    let (m, ctx) = el.parts();
    ctx.add_io(&m.state.sock, Token(1), Watch::write()).unwrap();
    turn_until(&mut el, "a write error", |el| {
        el.machine().state.error.is_some()
    });
    el.machine_mut().state.error.take().unwrap()
}

/// Writing to a closed peer is an error value (EPIPE, or ECONNRESET for TCP), never a
/// SIGPIPE death: we are still here to check it.
pub fn write_to_closed_peer_is_an_error<B: Backend>() {
    #[cfg(unix)]
    {
        let (a, b) = stream_pair();
        let e = check_write_to_closed_peer::<B, _>(a, b);
        assert_eq!(e.raw_os_error(), Some(libc::EPIPE), "{e}");
    }

    let (a, b) = tcp_pair();
    let e = check_write_to_closed_peer::<B, _>(a, b);
    assert!(
        matches!(
            e.kind(),
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
        ),
        "{e}"
    );
}

/// An fd closed while registered (the caller broke the contract): the loop neither spins
/// nor crashes; it reports the fd at most once (as an error) or drops it, and removing the
/// source afterwards works. Exclusive: the closed number must stay closed meanwhile.
pub fn fd_closed_while_registered_does_not_spin<B: Backend>() {
    let (a, mut b) = stream_pair();
    let mut el = harness::<B, ()>((), nothing);
    let id = el
        .ctx()
        .add_io_raw(raw(&a), Token(1), Watch::read())
        .unwrap();
    b.write_all(b"x").unwrap();
    drop(a);

    let wall = Duration::from_millis(80);
    el.ctx().set_exit_when_empty(false);
    el.ctx().refresh_now();
    el.ctx().exit_after(wall);
    let cpu = thread_cpu_time();
    assert_eq!(el.run().unwrap(), Exit::Exited);
    let cpu = thread_cpu_time() - cpu;
    assert!(
        cpu < idle_cpu_budget(wall),
        "the loop spun: {cpu:?} of CPU in {wall:?}"
    );
    let log = &el.machine().log;
    assert!(log.len() <= 1, "reported more than once: {log:?}");
    if let Some(ev) = log.first() {
        assert!(
            ev.ready.is_error(),
            "reported, but not as an error: {:?}",
            ev.ready
        );
    }
    el.ctx().remove(id).unwrap();
    assert_eq!(el.ctx().backend().len(), 1);
    el.ctx().set_exit_when_empty(true);
    assert_eq!(el.run().unwrap(), Exit::Empty);
}

#[cfg(unix)]
/// `fd2 = dup(fd1)`; register; deregister and close; `dup2` onto the same number;
/// register again: accepted (no stale kernel registration), and only the new registration
/// is ever reported. A dup closed right after its deregistration leaves nothing behind in
/// the kernel even though the file stays open through the original fd. Exclusive: it
/// reuses fd numbers.
pub fn fd_reuse_after_dup_close_dup2<B: Backend>() {
    let (a, mut b) = stream_pair();
    let mut el = harness::<B, ()>((), nothing);

    let d1 = a.as_fd().try_clone_to_owned().unwrap();
    let n = d1.as_raw_fd();
    let id1 = el.ctx().add_io_raw(n, Token(1), Watch::read()).unwrap();
    el.ctx().remove(id1).unwrap();
    drop(d1);
    let d2 = dup_onto(a.as_fd(), n);
    let id2 = el.ctx().add_io_raw(n, Token(2), Watch::read()).unwrap();
    b.write_all(b"x").unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens(), [2]);
    assert_eq!(el.machine().log[0].source, id2);
    assert!(matches!(el.ctx().stop(id1), Err(Error::StaleSource)));

    // Original and dup registered side by side; the dup goes (deregistered, then closed)
    // while the file stays open through `a`.
    let ida = el.ctx().add_io(&a, Token(3), Watch::read()).unwrap();
    el.ctx().remove(id2).unwrap();
    drop(d2);
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert_eq!(
        el.machine().tokens()[1..],
        [3],
        "the closed dup was reported"
    );

    // With nothing registered and data still unread, a leftover kernel registration of
    // the dup would keep waking the loop.
    el.ctx().remove(ida).unwrap();
    let wall = Duration::from_millis(60);
    el.ctx().set_exit_when_empty(false);
    el.ctx().refresh_now();
    el.ctx().exit_after(wall);
    let cpu = thread_cpu_time();
    assert_eq!(el.run().unwrap(), Exit::Exited);
    let cpu = thread_cpu_time() - cpu;
    assert!(
        cpu < idle_cpu_budget(wall),
        "the loop spun: {cpu:?} in {wall:?}"
    );
    assert_eq!(el.machine().log.len(), 2);
}

/// More ready fds than the event buffer holds: every one is dispatched within
/// `ceil(ready / capacity) + 1` iterations (none starved), and a loop that drains and
/// removes them dispatches each.
pub fn many_ready_fds_with_small_event_buffer<B: Backend>() {
    const N: usize = 72;
    const CAP: usize = 16;
    let pairs: Vec<_> = (0..N).map(|_| stream_pair()).collect();
    let builder = Builder::new().events(CAP).sources(256);
    let mut el = harness_with::<B, ()>(builder, (), nothing);
    for (i, (a, b)) in pairs.iter().enumerate() {
        el.ctx().add_io(a, Token(i as u64), Watch::read()).unwrap();
        (&*b).write_all(b"x").unwrap();
    }
    let mut seen = [false; N];
    let limit = N.div_ceil(CAP) + 1;
    for _ in 0..limit {
        el.run_once().unwrap();
        for ev in el.machine_mut().log.drain(..) {
            seen[ev.token.0 as usize] = true;
        }
    }
    let missing: Vec<_> = (0..N).filter(|&i| !seen[i]).collect();
    assert!(
        missing.is_empty(),
        "starved after {limit} iterations: {missing:?}"
    );

    // Now drain and remove each as it fires: all of them, then an empty loop.
    struct Socks(Vec<Stream>);
    fn drain_and_remove<B: Backend>(
        socks: &mut Socks,
        ctx: &mut Ctx<Harness<B, Socks>>,
        ev: &Event,
    ) {
        assert_eq!(drain(&socks.0[ev.token.0 as usize]), (1, false));
        ctx.remove(ev.source).unwrap();
    }
    let socks = Socks(pairs.iter().map(|(a, _)| a.try_clone().unwrap()).collect());
    let builder = Builder::new().events(CAP).sources(256);
    let mut el = harness_with::<B, _>(builder, socks, drain_and_remove);
    let (m, ctx) = el.parts();
    for (i, s) in m.state.0.iter().enumerate() {
        ctx.add_io(s, Token(i as u64), Watch::read()).unwrap();
    }
    assert_eq!(el.run().unwrap(), Exit::Empty);
    let mut tokens = el.machine().tokens();
    tokens.sort_unstable();
    assert_eq!(tokens, (0..N as u64).collect::<Vec<_>>());
}

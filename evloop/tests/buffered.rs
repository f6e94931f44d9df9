//! Buffered connections from `#[event_machine]`: a `BufSlab` field whose handlers get
//! the bytes already read, with EOF, errors, timeouts, connect, backpressure, drained,
//! `writev` and `sendfile`. Every wait is bounded by a deadline (a guard timer or a
//! wall-clock check), never by sleeping.

// Unix socket pairs and libc socket options: Unix only so far (the buffered types run on Windows through the examples' tests under Wine).
#![cfg(unix)]

use std::io::{IoSlice, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use evloop::buffered::{BufConfig, BufConn, BufEvents, BufSlab, Eol, LineTooLong};
use evloop::prelude::*;

/// Fails the test if the loop runs this long.
const GUARD_MS: u64 = 10_000;

/// The 2000-connection test holds about 4000 fds: while it runs, a test beside it (the
/// harness runs them on parallel threads) would get fd numbers past select(2)'s
/// FD_SETSIZE, which the select backend refuses, as documented. It takes this lock to
/// write, every other test to read.
static FDS: RwLock<()> = RwLock::new(());

/// For a test that needs few fds: waits while the 2000-connection test runs.
fn few_fds() -> RwLockReadGuard<'static, ()> {
    FDS.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The backend of every machine here: the default one, or with the `fault-injection`
/// feature the default one with injected faults (EINTR and spurious wake-ups in its
/// waits; short reads and writes and `EAGAIN` in the connections' I/O:
/// `evloop::backends::fault`, `.ci/faults`), which every test here must survive as it is.
#[cfg(not(feature = "fault-injection"))]
type TestBackend = DefaultBackend;
#[cfg(feature = "fault-injection")]
type TestBackend = evloop::backends::fault::FaultInjecting<DefaultBackend>;

fn read_all_until(s: &mut UnixStream, want: usize) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < want {
        let n = s.read(&mut buf).expect("read within the deadline");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

// ---------------------------------------------------------------------------------------
// Lines, EOF after data, flush-and-close, line too long
// ---------------------------------------------------------------------------------------

#[event_machine(backend = TestBackend)]
struct Lines {
    conns: BufSlab<UnixStream>,
    /// Every handler call: (events, lines read in it).
    calls: Vec<(BufEvents, Vec<Vec<u8>>)>,
    too_long: Vec<LineTooLong>,
}

#[event_machine]
impl Lines {
    #[on_read(conns)]
    fn data(&mut self, key: Key, _ctx: &mut Ctx<Self>) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let mut lines = Vec::new();
        let (input, output) = c.buffers();
        loop {
            match input.read_line(Eol::Crlf) {
                Ok(Some(line)) => {
                    lines.push(line.to_vec());
                    output.extend(b"+").unwrap();
                    output.extend(line).unwrap();
                    output.extend(b"\r\n").unwrap();
                }
                Ok(None) => break,
                Err(e) => {
                    self.too_long.push(e);
                    input.clear();
                    output.extend(b"-ERR line too long\r\n").unwrap();
                    break;
                }
            }
        }
        let ev = c.events();
        if ev.is_eof() || ev.is_error() {
            c.close_after_flush();
        }
        self.calls.push((ev, lines));
    }

    #[on_timer(10_000, once)]
    fn guard(&mut self, _ctx: &mut Ctx<Self>) {
        panic!("test took longer than {GUARD_MS} ms");
    }
}

impl Lines {
    fn new(cfg: BufConfig) -> Self {
        Lines {
            conns: BufSlab::new(cfg),
            calls: Vec::new(),
            too_long: Vec::new(),
        }
    }
}

#[test]
fn handler_gets_lines_then_eof_after_all_data_then_connection_closes() {
    let _few = few_fds();
    let mut el = Lines::new(BufConfig::default()).event_loop().unwrap();
    let (a, mut client) = UnixStream::pair().unwrap();
    let (m, ctx) = el.parts();
    m.conns.insert(ctx, a).unwrap();
    client.write_all(b"one\r\ntwo\r\nthr").unwrap();
    el.run_once().unwrap();
    client.write_all(b"ee\r\n").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    // The guard timer keeps the loop alive; stop once the connection is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !el.machine().conns.is_empty() {
        assert!(Instant::now() < deadline, "connection never closed");
        el.run_once().unwrap();
    }
    let got = read_all_until(&mut client, usize::MAX);
    assert_eq!(got, b"+one\r\n+two\r\n+three\r\n");
    let m = el.machine();
    let lines: Vec<_> = m.calls.iter().flat_map(|c| c.1.clone()).collect();
    assert_eq!(lines, [&b"one"[..], b"two", b"three"]);
    // EOF is reported after (or with) the last data, never before it.
    let eof_at = m.calls.iter().position(|c| c.0.is_eof()).expect("EOF seen");
    assert_eq!(eof_at, m.calls.len() - 1);
    assert!(m.calls[..eof_at].iter().all(|c| c.0.is_data()));
    assert_eq!(m.conns.closed(), 1, "flush-and-close removed it");
}

#[test]
fn a_line_longer_than_the_buffer_is_an_error_the_handler_sees() {
    let _few = few_fds();
    let mut el = Lines::new(BufConfig::new(16, 256)).event_loop().unwrap();
    let (a, mut client) = UnixStream::pair().unwrap();
    let (m, ctx) = el.parts();
    let key = m.conns.insert(ctx, a).unwrap();
    client.write_all(b"0123456789abcdefXYZ\r\nok\r\n").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while el.machine().conns.contains(key) {
        assert!(Instant::now() < deadline, "connection never closed");
        el.run_once().unwrap();
    }
    let got = read_all_until(&mut client, usize::MAX);
    // The first 16 bytes are one overlong line (reported, discarded, not truncated into
    // a line); the rest of that line, "XYZ", then arrives as a line of its own.
    assert_eq!(got, b"-ERR line too long\r\n+XYZ\r\n+ok\r\n");
    assert_eq!(el.machine().too_long, [LineTooLong { len: 16 }]);
}

// ---------------------------------------------------------------------------------------
// Backpressure and "writable again"
// ---------------------------------------------------------------------------------------

#[event_machine(backend = TestBackend)]
struct Echo {
    conns: BufSlab<UnixStream>,
    drained: u32,
    echoed: usize,
}

#[event_machine]
impl Echo {
    #[on_read(conns)]
    fn data(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let (input, output) = c.buffers();
        let n = output.push(input.as_slice());
        input.consume(n);
        self.echoed += n;
        if c.events().is_eof() || c.events().is_error() {
            let _ = self.conns.remove(ctx, key);
        }
    }

    #[on_write(conns)]
    fn writable(&mut self, key: Key, _ctx: &mut Ctx<Self>) {
        if self.conns.get(key).unwrap().events().is_drained() {
            self.drained += 1;
        }
    }
}

#[test]
fn output_above_its_high_watermark_pauses_reading_and_drains_back() {
    let _few = few_fds();
    // Output 4 KiB with a high watermark of 2 KiB; input 1 KiB.
    let cfg = BufConfig::new(1024, 4096).write_watermarks(0, 2048);
    let mut el = Echo {
        conns: BufSlab::new(cfg),
        drained: 0,
        echoed: 0,
    }
    .event_loop()
    .unwrap();
    let (a, mut client) = UnixStream::pair().unwrap();
    // Small socket buffers, so the echo backs up quickly.
    for opt in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        for fd in [
            std::os::fd::AsRawFd::as_raw_fd(&a),
            std::os::fd::AsRawFd::as_raw_fd(&client),
        ] {
            let v: libc::c_int = 4096;
            // SAFETY: valid fd and a c_int option value.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    &v as *const libc::c_int as *const libc::c_void,
                    4,
                )
            };
        }
    }
    let (m, ctx) = el.parts();
    let key = m.conns.insert(ctx, a).unwrap();
    client.set_nonblocking(true).unwrap();

    // The client writes without reading until its writes block: the server must stop
    // reading (backpressure) instead of buffering without bound. (Until the server has
    // stopped, too: with injected faults a server read may say `WouldBlock` for a few
    // rounds, and the client's writes block while the server is still reading.)
    let chunk = [7u8; 512];
    let mut sent = 0usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut blocked_rounds = 0;
    while blocked_rounds < 3 || el.machine().conns.get(key).unwrap().wanted().is_readable() {
        assert!(
            Instant::now() < deadline,
            "the client's writes never blocked, or the server never stopped reading"
        );
        match client.write(&chunk) {
            Ok(n) => {
                sent += n;
                blocked_rounds = 0;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => blocked_rounds += 1,
            Err(e) => panic!("{e}"),
        }
        el.run_nowait().unwrap();
    }
    let conn = el.machine().conns.get(key).unwrap();
    assert!(
        !conn.wanted().is_readable(),
        "reading is paused: output {} > high watermark",
        conn.output().len()
    );
    assert!(conn.output().len() > 2048);
    assert!(conn.input().len() <= 1024 && conn.output().len() <= 4096);

    // Now the client reads: the server drains, reports DRAINED, reads again, and every
    // byte comes back.
    client.set_nonblocking(false).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mut back = 0usize;
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    while back < sent {
        assert!(Instant::now() < deadline, "echo stalled at {back}/{sent}");
        if let Ok(n) = client.read(&mut buf) {
            assert!(buf[..n].iter().all(|&b| b == 7));
            back += n;
        }
        el.run_nowait().unwrap();
    }
    assert_eq!(back, sent);
    assert_eq!(el.machine().echoed, sent);
    assert!(el.machine().drained >= 1, "DRAINED reported");
    assert!(el.machine().conns.get(key).unwrap().wanted().is_readable());
}

// ---------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------

#[event_machine(backend = TestBackend)]
struct Idle {
    conns: BufSlab<UnixStream>,
    timeouts: Vec<BufEvents>,
    started: Instant,
}

#[event_machine]
impl Idle {
    #[on_read(conns)]
    fn data(&mut self, _key: Key, _ctx: &mut Ctx<Self>) {}

    #[on_timeout(conns, ms = 30)]
    fn idle(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        self.timeouts.push(self.conns.get(key).unwrap().events());
        let _ = self.conns.remove(ctx, key);
    }
}

#[test]
fn read_timeout_reaches_the_timeout_handler() {
    let _few = few_fds();
    let mut el = Idle {
        conns: BufSlab::with_capacity(4, BufConfig::default()),
        timeouts: Vec::new(),
        started: Instant::now(),
    }
    .event_loop()
    .unwrap();
    let (a, _client) = UnixStream::pair().unwrap();
    let (m, ctx) = el.parts();
    m.conns.insert(ctx, a).unwrap();
    m.started = Instant::now();
    assert_eq!(el.run().unwrap(), Exit::Empty);
    let m = el.machine();
    assert_eq!(m.timeouts, [BufEvents::READ_TIMEOUT]);
    assert!(m.started.elapsed() >= Duration::from_millis(30));
}

#[event_machine(backend = TestBackend)]
struct Stuck {
    conns: BufSlab<UnixStream>,
    seen: Vec<BufEvents>,
}

#[event_machine]
impl Stuck {
    #[on_read(conns)]
    fn data(&mut self, _key: Key, _ctx: &mut Ctx<Self>) {}

    #[on_timeout(conns, ms = 10_000)]
    fn timeout(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        self.seen.push(self.conns.get(key).unwrap().events());
        let _ = self.conns.remove(ctx, key);
    }
}

#[test]
fn write_timeout_when_the_peer_stops_reading() {
    let _few = few_fds();
    let cfg = BufConfig::new(64, 1 << 20)
        .read_timeout(Some(Duration::from_secs(10)))
        .write_timeout(Some(Duration::from_millis(30)));
    let mut el = Stuck {
        conns: BufSlab::new(cfg),
        seen: Vec::new(),
    }
    .event_loop()
    .unwrap();
    let (a, _client) = UnixStream::pair().unwrap();
    let (m, ctx) = el.parts();
    let key = m.conns.insert(ctx, a).unwrap();
    // More than the socket buffer takes: output stays pending.
    m.conns
        .get_mut(key)
        .unwrap()
        .write(&vec![1u8; 1 << 20])
        .unwrap();
    m.conns.flush(ctx, key).unwrap();
    assert!(m.conns.get(key).unwrap().pending() > 0);
    assert_eq!(el.run().unwrap(), Exit::Empty);
    let seen = &el.machine().seen;
    assert_eq!(seen.len(), 1);
    assert!(seen[0].contains(BufEvents::WRITE_TIMEOUT), "{seen:?}");
}

// ---------------------------------------------------------------------------------------
// Non-blocking connect, errors
// ---------------------------------------------------------------------------------------

#[event_machine(backend = TestBackend)]
struct Client {
    conns: BufSlab<TcpStream>,
    connected: u32,
    errors: Vec<std::io::ErrorKind>,
    reply: Vec<u8>,
}

#[event_machine]
impl Client {
    #[on_read(conns)]
    fn data(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let c = self.conns.get_mut(key).unwrap();
        let ev = c.events();
        if ev.is_error() {
            self.errors.push(c.error().unwrap().kind());
            let _ = self.conns.remove(ctx, key);
            return;
        }
        self.reply.extend_from_slice(c.input().as_slice());
        let n = c.input().len();
        c.input_mut().consume(n);
        if ev.is_eof() {
            let _ = self.conns.remove(ctx, key);
        }
    }

    #[on_write(conns)]
    fn writable(&mut self, key: Key, _ctx: &mut Ctx<Self>) {
        if self.conns.get(key).unwrap().events().is_connected() {
            self.connected += 1;
        }
    }
}

#[test]
fn nonblocking_connect_reports_connected_and_sends_what_was_queued() {
    let _few = few_fds();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let mut el = Client {
        conns: BufSlab::with_capacity(4, BufConfig::default()),
        connected: 0,
        errors: Vec::new(),
        reply: Vec::new(),
    }
    .event_loop()
    .unwrap();
    let mut conn = BufConn::connect(addr, &BufConfig::default()).unwrap();
    conn.write(b"hello?").unwrap(); // queued before the connect completes
    let (m, ctx) = el.parts();
    m.conns.insert_conn(ctx, conn).unwrap();
    let server_side = std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = [0u8; 6];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello?");
        s.write_all(b"yes!").unwrap();
    }); // dropping `s` closes: the client sees EOF
    assert_eq!(el.run().unwrap(), Exit::Empty);
    server_side.join().unwrap();
    let m = el.machine();
    assert_eq!(m.connected, 1);
    assert_eq!(m.reply, b"yes!");
    assert!(m.errors.is_empty());
}

#[test]
fn refused_connect_is_an_error_event() {
    let _few = few_fds();
    // A port that was just free: nobody listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut el = Client {
        conns: BufSlab::with_capacity(4, BufConfig::default()),
        connected: 0,
        errors: Vec::new(),
        reply: Vec::new(),
    }
    .event_loop()
    .unwrap();
    let conn = BufConn::connect(addr, &BufConfig::default()).unwrap();
    let (m, ctx) = el.parts();
    m.conns.insert_conn(ctx, conn).unwrap();
    assert_eq!(el.run().unwrap(), Exit::Empty);
    assert_eq!(el.machine().errors, [std::io::ErrorKind::ConnectionRefused]);
    assert_eq!(el.machine().connected, 0);
}

// ---------------------------------------------------------------------------------------
// writev and sendfile
// ---------------------------------------------------------------------------------------

#[event_machine(backend = TestBackend)]
struct Files {
    conns: BufSlab<UnixStream>,
    file: Option<std::fs::File>,
}

#[event_machine]
impl Files {
    #[on_read(conns)]
    fn request(&mut self, key: Key, _ctx: &mut Ctx<Self>) {
        let c = self.conns.get_mut(key).unwrap();
        if let Ok(Some(_)) = c.read_line(Eol::Lf) {
            // header (borrowed slices, writev), the file (sendfile), a trailer (copied):
            // they must arrive in this order.
            c.write_slices(&[IoSlice::new(b"BEGIN "), IoSlice::new(b"200\n")])
                .unwrap();
            let file = self.file.take().unwrap();
            let len = file.metadata().unwrap().len();
            c.send_file(file, 0, len).unwrap();
            c.write(b"\nEND\n").unwrap();
            c.close_after_flush();
        }
    }
}

#[test]
fn writev_then_sendfile_then_copied_bytes_arrive_in_order() {
    let _few = few_fds();
    let path = std::env::temp_dir().join(format!("evloop-sendfile-{}", std::process::id()));
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &body).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut el = Files {
        conns: BufSlab::with_capacity(4, BufConfig::default()),
        file: Some(file),
    }
    .event_loop()
    .unwrap();
    let (a, mut client) = UnixStream::pair().unwrap();
    let (m, ctx) = el.parts();
    m.conns.insert(ctx, a).unwrap();
    client.write_all(b"GET\n").unwrap();
    let reader = std::thread::spawn(move || read_all_until(&mut client, usize::MAX));
    assert_eq!(el.run().unwrap(), Exit::Empty);
    let got = reader.join().unwrap();
    let mut want = b"BEGIN 200\n".to_vec();
    want.extend_from_slice(&body);
    want.extend_from_slice(b"\nEND\n");
    assert_eq!(got.len(), want.len());
    assert!(got == want, "bytes out of order");
    assert_eq!(el.machine().conns.closed(), 1);
}

// ---------------------------------------------------------------------------------------
// A plain Slab next to a BufSlab still gets raw readiness
// ---------------------------------------------------------------------------------------

#[event_machine(backend = TestBackend)]
struct Mixed {
    raw: Slab<UnixStream>,
    buffered: BufSlab<UnixStream>,
    raw_ready: Option<Ready>,
    buffered_bytes: usize,
}

#[event_machine]
impl Mixed {
    #[on_read(raw)]
    fn raw(&mut self, key: Key, ctx: &mut Ctx<Self>, ev: Event) {
        self.raw_ready = Some(ev.ready);
        let _ = self.raw.remove(ctx, key); // did not read: a buffered slab would have
    }
    #[on_read(buffered)]
    fn buffered(&mut self, key: Key, ctx: &mut Ctx<Self>, ev: Event) {
        assert!(ev.ready.is_readable());
        self.buffered_bytes = self.buffered.get(key).unwrap().input().len();
        let _ = self.buffered.remove(ctx, key);
    }
}

#[test]
fn plain_and_buffered_collections_side_by_side() {
    let _few = few_fds();
    let mut el = Mixed {
        raw: Slab::with_capacity(4),
        buffered: BufSlab::with_capacity(4, BufConfig::default()),
        raw_ready: None,
        buffered_bytes: 0,
    }
    .event_loop()
    .unwrap();
    let (a, mut ca) = UnixStream::pair().unwrap();
    let (b, mut cb) = UnixStream::pair().unwrap();
    let (m, ctx) = el.parts();
    m.raw.insert(ctx, a).unwrap();
    m.buffered.insert(ctx, b).unwrap();
    ca.write_all(b"raw").unwrap();
    cb.write_all(b"buffered").unwrap();
    assert_eq!(el.run().unwrap(), Exit::Empty);
    assert!(el.machine().raw_ready.unwrap().is_readable());
    assert_eq!(el.machine().buffered_bytes, 8);
}

// ---------------------------------------------------------------------------------------
// Capacity from the configuration
// ---------------------------------------------------------------------------------------

/// No `sources = N` on the struct: the loop is sized from the fields' capacities when it
/// is built, so a `BufSlab` made for 2000 connections gets room for 2000. Generic over the
/// backend: 2000 socket pairs need fd numbers past select(2)'s FD_SETSIZE, so when the
/// default backend has such a limit (`--features backend-select`) the test runs on poll.
#[event_machine(backend = B)]
struct Crowd<B: Backend> {
    conns: BufSlab<UnixStream>,
    served: usize,
    _backend: std::marker::PhantomData<B>,
}

#[event_machine]
impl<B: Backend> Crowd<B> {
    #[on_read(conns)]
    fn data(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.read_line(Eol::Lf).ok().flatten().is_some() {
            c.write(b"ok\n").unwrap();
            self.served += 1;
            if self.served == 2000 {
                ctx.exit();
            }
        }
    }

    #[on_timer(10_000, once)]
    fn guard(&mut self, _ctx: &mut Ctx<Self>) {
        panic!("test took longer than {GUARD_MS} ms");
    }
}

#[test]
fn a_collection_sized_at_run_time_takes_2000_connections() {
    let _many = FDS.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    match <TestBackend as Backend>::MAX_FD {
        Some(max) if max < 5000 => crowd_of_2000::<evloop::Poll>(),
        _ => crowd_of_2000::<TestBackend>(),
    }
}

fn crowd_of_2000<B: Backend>() {
    let crowd = Crowd::<B> {
        conns: BufSlab::with_capacity(2000, BufConfig::default()),
        served: 0,
        _backend: std::marker::PhantomData,
    };
    let mut el = crowd.event_loop().unwrap();
    let mut clients = Vec::with_capacity(2000);
    let (m, ctx) = el.parts();
    for i in 0..2000 {
        let (a, mut client) = UnixStream::pair().unwrap();
        m.conns
            .insert(ctx, a)
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        client.write_all(b"hi\n").unwrap();
        clients.push(client);
    }
    assert_eq!(el.run().unwrap(), Exit::Exited);
    assert_eq!(el.machine().served, 2000);
    // The loop exited with the last reply served, not necessarily written: a write the
    // socket took in part (as injected faults make them) leaves the rest queued.
    let deadline = Instant::now() + Duration::from_secs(10);
    while el.machine().conns.iter().any(|(_, c)| c.pending() > 0) {
        assert!(Instant::now() < deadline, "replies never flushed");
        el.run_once().unwrap();
    }
    for c in &mut clients {
        assert_eq!(read_all_until(c, 3), b"ok\n");
    }
    // Full means full: the 2001st is refused with a clear error, nothing else breaks.
    let (m, ctx) = el.parts();
    let (extra, _peer) = UnixStream::pair().unwrap();
    assert!(matches!(
        m.conns.insert(ctx, extra),
        Err(Error::SlabFull { capacity: 2000 })
    ));
}

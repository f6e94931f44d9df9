//! `Listener`: batched accepts, options, Unix sockets, and surviving fd exhaustion.
//!
//! The exhaustion tests lower `RLIMIT_NOFILE`, which is process-wide: each runs in a
//! process of its own (this test binary re-executed with `--exact <name>` and
//! `EVLOOP_LISTENER_CHILD=<name>`). The child is the server; the parent is the client,
//! with its own descriptors, and talks to the child through the child's stdout.

// Not ported to Windows yet: Unix sockets, pipes, signals, fork or the Unix-only core
// modules (the Windows backend runs the conformance suite: `conformance.rs`).
#![cfg(unix)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use evloop_core::{
    AcceptError, Ctx, DefaultBackend, Event, EventLoop, Key, Listener, ListenerBuilder, Machine,
    Result, Source, Token, Watch,
};

const LISTENER: u16 = 1;

/// The backend of every machine here: the default one, or with the `fault-injection`
/// feature the default one with injected faults (EINTR and spurious wake-ups in its
/// waits, `EAGAIN` in the listener's accepts: `evloop_backends::fault`, `.ci/faults`),
/// which these tests must survive as they are, but for the two that count what a single
/// `accept` call takes.
#[cfg(not(feature = "fault-injection"))]
type TestBackend = DefaultBackend;
#[cfg(feature = "fault-injection")]
type TestBackend = evloop_backends::fault::FaultInjecting<DefaultBackend>;

/// A machine that accepts into a Vec and stops after `want` connections.
struct Acceptor {
    listener: Listener,
    conns: Vec<TcpStream>,
    reports: Vec<usize>,
    want: usize,
}

impl Machine for Acceptor {
    type Backend = TestBackend;
    fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.listener.attach(ctx, LISTENER, Watch::read())?;
        ctx.add_timer(Token(99), Duration::from_secs(10))?;
        Ok(())
    }
    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        if ev.token == Token(99) {
            panic!(
                "guard timer: accepted {} of {}",
                self.conns.len(),
                self.want
            );
        }
        let ready = self.listener.before_dispatch(ctx, Key::SINGLE, ev.ready);
        if ready.is_readable() {
            let conns = &mut self.conns;
            let r = self.listener.accept(ctx, |_, c| conns.push(c.into_tcp()));
            assert!(r.error.is_none(), "{:?}", r.error);
            self.reports.push(r.accepted);
        }
        if self.conns.len() >= self.want {
            ctx.exit();
        }
    }
}

#[test]
fn accepts_in_bounded_batches_until_eagain() {
    let listener = ListenerBuilder::new()
        .batch(2)
        .tcp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let clients: Vec<_> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut el = EventLoop::new(Acceptor {
        listener,
        conns: Vec::new(),
        reports: Vec::new(),
        want: 5,
    })
    .unwrap();
    el.run().unwrap();
    let m = el.machine();
    assert_eq!(m.conns.len(), 5);
    assert!(m.reports.iter().all(|&n| n <= 2), "{:?}", m.reports);
    assert_eq!(m.reports.iter().sum::<usize>(), 5);
    assert_eq!(m.listener.stats().accepted, 5);
    // Accepted sockets are non-blocking and close-on-exec.
    for c in &m.conns {
        let fd = c.as_raw_fd();
        // SAFETY: fcntl flag queries on an open fd.
        let (fl, fdfl) = unsafe {
            (
                libc::fcntl(fd, libc::F_GETFL),
                libc::fcntl(fd, libc::F_GETFD),
            )
        };
        assert!(fl & libc::O_NONBLOCK != 0 && fdfl & libc::FD_CLOEXEC != 0);
    }
    drop(clients);
}

#[test]
#[cfg_attr(
    feature = "fault-injection",
    ignore = "counts what one accept call takes; an injected EAGAIN ends a batch early"
)]
fn a_batch_stops_at_eagain() {
    let mut el = EventLoop::new(Acceptor {
        listener: Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap(),
        conns: Vec::new(),
        reports: Vec::new(),
        want: 3,
    })
    .unwrap();
    let addr = el.machine().listener.local_addr().unwrap();
    let _c: Vec<_> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let (m, ctx) = el.parts();
    let conns = &mut m.conns;
    let r = m.listener.accept(ctx, |_, c| conns.push(c.into_tcp()));
    assert_eq!((r.accepted, r.dropped, r.paused), (3, 0, false));
    assert!(r.error.is_none());
    let r = m.listener.accept(ctx, |_, _| panic!("nothing pending"));
    assert_eq!(r.accepted, 0);
}

#[test]
#[cfg_attr(
    feature = "fault-injection",
    ignore = "counts what one accept call takes; an injected EAGAIN ends a batch early"
)]
fn unix_listener_accepts_unix_streams() {
    let path = std::env::temp_dir().join(format!("evloop-listener-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut listener = ListenerBuilder::new().backlog(8).unix(&path).unwrap();
    struct M;
    impl Machine for M {
        type Backend = TestBackend;
        fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {}
    }
    let mut el = EventLoop::new(M).unwrap();
    listener.attach(el.ctx(), LISTENER, Watch::read()).unwrap();
    let mut client = UnixStream::connect(&path).unwrap();
    let mut got = Vec::new();
    let r = listener.accept(el.ctx(), |_, c| got.push(c.into_unix()));
    assert_eq!(r.accepted, 1);
    client.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    got[0].set_nonblocking(false).unwrap();
    got[0].read_exact(&mut b).unwrap();
    assert_eq!(&b, b"x");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn reuse_port_shares_a_port_and_without_it_the_port_is_busy() {
    use evloop_core::workers::{PortSharing, PORT_SHARING};
    if PORT_SHARING == PortSharing::Unsupported {
        // illumos, Solaris: no port sharing, said plainly; one listener per port.
        let e = ListenerBuilder::new()
            .reuse_port(true)
            .tcp("127.0.0.1:0".parse().unwrap())
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
        let a = ListenerBuilder::new()
            .tcp("127.0.0.1:0".parse().unwrap())
            .unwrap();
        let e = ListenerBuilder::new()
            .tcp(a.local_addr().unwrap())
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
        return;
    }
    let a = ListenerBuilder::new()
        .reuse_port(true)
        .tcp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let addr = a.local_addr().unwrap();
    let b = ListenerBuilder::new().reuse_port(true).tcp(addr).unwrap();
    assert_eq!(b.local_addr().unwrap(), addr);
    let e = ListenerBuilder::new().tcp(addr).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
}

#[test]
fn ipv6_only_option() {
    let addr: SocketAddr = "[::1]:0".parse().unwrap();
    let l = match ListenerBuilder::new().v6_only(true).tcp(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("SKIPPED: no IPv6 loopback here ({e})");
            return;
        }
    };
    let fd = l.fd().as_raw_fd();
    let mut v: libc::c_int = 0;
    let mut len = 4 as libc::socklen_t;
    // SAFETY: valid fd, `v`/`len` valid for writes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    assert_eq!((r, v), (0, 1));
}

// ---------------------------------------------------------------------------------------
// Fd exhaustion, in a child process
// ---------------------------------------------------------------------------------------

const CHILD_ENV: &str = "EVLOOP_LISTENER_CHILD";
const DEADLINE: Duration = Duration::from_secs(30);
/// Free descriptor numbers left to the child's server after lowering its limit.
const HEADROOM: usize = 4;
/// Clients the parent connects at first: more than the headroom.
const FIRST_WAVE: usize = 12;
/// The wall-clock window over which the exhausted loop's CPU time is measured.
const WINDOW: Duration = Duration::from_millis(300);

fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Lower the soft `RLIMIT_NOFILE` so that exactly `headroom` more descriptors can be
/// opened (the limit bounds fd numbers: count the free numbers from 0).
fn leave_headroom(headroom: usize) {
    let mut free = 0;
    let mut n = 0;
    loop {
        // SAFETY: F_GETFD only queries; -1/EBADF means the number is free.
        if unsafe { libc::fcntl(n, libc::F_GETFD) } < 0 {
            free += 1;
            if free == headroom {
                break;
            }
        }
        n += 1;
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is valid for reads and writes.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = (n + 1) as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

const WINDOW_TIMER: Token = Token(1 << 40);
const GUARD: Token = Token(1 << 41);

/// The server in the child.
struct Exhausted {
    listener: Listener,
    held: Vec<TcpStream>,
    /// 0: before exhaustion, 1: exhausted (window running), 2: fds freed.
    phase: u8,
    cpu0: Duration,
    wall0: Instant,
    window_cpu: Option<Duration>,
    after_free: usize,
    fd_limit_reports: usize,
}

impl Machine for Exhausted {
    type Backend = TestBackend;
    fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        self.listener.attach(ctx, LISTENER, Watch::read())?;
        ctx.add_timer(GUARD, Duration::from_secs(20))?;
        Ok(())
    }
    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        match ev.token {
            GUARD => panic!(
                "child guard timer (phase {}, held {}, stats {:?})",
                self.phase,
                self.held.len(),
                self.listener.stats()
            ),
            WINDOW_TIMER => {
                let cpu = thread_cpu() - self.cpu0;
                let wall = self.wall0.elapsed();
                println!("WINDOW cpu={cpu:?} wall={wall:?}");
                self.window_cpu = Some(cpu);
                // Free the descriptors: accepting must resume.
                self.held.clear();
                self.phase = 2;
                println!("FREED");
                std::io::stdout().flush().unwrap();
            }
            _ => {
                let ready = self.listener.before_dispatch(ctx, Key::SINGLE, ev.ready);
                if !ready.is_readable() {
                    return;
                }
                let held = &mut self.held;
                let mut n = 0;
                let r = self.listener.accept(ctx, |_, c| {
                    held.push(c.into_tcp());
                    n += 1;
                });
                if self.phase == 2 {
                    self.after_free += n;
                }
                if let Some(AcceptError::FdLimit { errno }) = r.error {
                    assert!(errno == libc::EMFILE || errno == libc::ENFILE);
                    self.fd_limit_reports += 1;
                    if self.phase == 0 {
                        self.phase = 1;
                        self.cpu0 = thread_cpu();
                        self.wall0 = Instant::now();
                        ctx.add_timer(WINDOW_TIMER, WINDOW).unwrap();
                    }
                }
                if self.phase == 2 && self.after_free >= 2 {
                    ctx.exit();
                }
            }
        }
    }
}

fn exhaustion_child(reserve: bool) {
    let listener = ListenerBuilder::new()
        .reserve_fd(reserve)
        .pause(Duration::from_millis(20))
        .backlog(64)
        .tcp("127.0.0.1:0".parse().unwrap())
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut el = EventLoop::new(Exhausted {
        listener,
        held: Vec::with_capacity(64),
        phase: 0,
        cpu0: Duration::ZERO,
        wall0: Instant::now(),
        window_cpu: None,
        after_free: 0,
        fd_limit_reports: 0,
    })
    .unwrap();
    leave_headroom(HEADROOM);
    println!("PORT {port}");
    std::io::stdout().flush().unwrap();
    el.run().unwrap();
    let m = el.machine();
    let stats = m.listener.stats();
    println!("STATS {stats:?} reports={}", m.fd_limit_reports);
    let cpu = m.window_cpu.expect("the exhaustion window ran");
    // A spinning loop would burn about the whole window.
    assert!(
        cpu < WINDOW / 4,
        "the loop spun while out of descriptors: {cpu:?} of CPU in {WINDOW:?}"
    );
    assert!(stats.exhausted > 0 && m.fd_limit_reports > 0);
    if reserve {
        assert!(stats.dropped > 0, "the reserve fd dropped connections");
        assert_eq!(stats.paused, 0, "the reserve fd sufficed: no pause");
    } else {
        assert!(stats.paused > 0, "accepting paused");
        assert_eq!(stats.dropped, 0);
    }
    assert!(m.after_free >= 2, "accepts again once fds are free");
}

/// The parent: run the child, be its clients.
fn exhaustion_parent(name: &str) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            all.push_str(&line);
            all.push('\n');
            let _ = tx.send(line);
        }
        all
    });
    let deadline = Instant::now() + DEADLINE;
    let wait_for = |prefix: &str| -> Option<String> {
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match rx.recv_timeout(left) {
                // libtest prints "test <name> ... " before the child's first line.
                Ok(l) if l.contains(prefix) => return Some(l),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    };
    let mut clients = Vec::new();
    let mut freed = false;
    if let Some(line) = wait_for("PORT ") {
        let at = line.find("PORT ").unwrap() + 5;
        let port: u16 = line[at..].trim().parse().unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        for _ in 0..FIRST_WAVE {
            clients.push(TcpStream::connect(addr).unwrap());
        }
        if wait_for("FREED").is_some() {
            freed = true;
            for _ in 0..2 {
                // The child may already have its connections and be gone.
                if let Ok(c) = TcpStream::connect(addr) {
                    clients.push(c);
                }
            }
        }
    }
    // Wait for the child, killing it at the deadline.
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            // SAFETY: our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            child.wait().unwrap();
            break None;
        }
        let _ = rx.recv_timeout(Duration::from_millis(10));
    };
    let out = reader.join().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    // The child's own fault counts (`EVLOOP_FAULT_REPORT`), past libtest's capture.
    for line in err
        .lines()
        .filter(|l| l.starts_with("evloop-fault-counts:"))
    {
        let _ = writeln!(std::io::stderr(), "{line}");
    }
    assert!(
        freed && status.is_some_and(|s| s.success()) && out.contains("1 passed"),
        "child `{name}` failed ({status:?}, freed: {freed})\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
    );
    eprintln!("{out}");
}

fn isolated(name: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD_ENV).is_some_and(|v| v == name) {
        body();
    } else {
        exhaustion_parent(name);
    }
}

#[test]
fn fd_exhaustion_with_reserve_fd_drops_without_spinning_then_accepts_again() {
    isolated(
        "fd_exhaustion_with_reserve_fd_drops_without_spinning_then_accepts_again",
        || exhaustion_child(true),
    );
}

#[test]
fn fd_exhaustion_without_reserve_pauses_without_spinning_then_accepts_again() {
    isolated(
        "fd_exhaustion_without_reserve_pauses_without_spinning_then_accepts_again",
        || exhaustion_child(false),
    );
}

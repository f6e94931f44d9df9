//! `Workers`: N loops on N threads sharing one port (`SharedPort`: `SO_REUSEPORT` where
//! the kernel balances, one shared socket elsewhere), stopped together.
//!
//! The signal tests change process-wide dispositions, so each runs in a process of its
//! own (see `support/subprocess.rs`): the `#[test]` re-executes this binary with
//! `--exact <name>` and `EVLOOP_WORKERS_CHILD=<name>`.

// Not ported to Windows yet: Unix sockets, pipes, signals, fork or the Unix-only core
// modules (the Windows backend runs the conformance suite: `conformance.rs`).
#![cfg(unix)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use evloop_core::workers::{PortSharing, SharedPort, StopReason, Workers, PORT_SHARING};
use evloop_core::{Ctx, DefaultBackend, Error, Event, Machine, Slab, Source, Token, Watch};

#[path = "support/subprocess.rs"]
mod subprocess;

const CHILD_ENV: &str = "EVLOOP_WORKERS_CHILD";
const LISTENER: Token = Token(1);
const CONNS: u16 = 2;
/// A client waits at most this long for its echo.
const DEADLINE: Duration = Duration::from_secs(10);
const CLIENTS: usize = 64;

/// A TCP echo server: one listener, its connections in a slab.
struct Echo {
    id: usize,
    listener: TcpListener,
    conns: Slab<TcpStream>,
    accepted: usize,
    echoed: usize,
}

impl Echo {
    fn new(id: usize, listener: TcpListener) -> Self {
        Echo {
            id,
            listener,
            conns: Slab::with_capacity(256),
            accepted: 0,
            echoed: 0,
        }
    }
}

impl Machine for Echo {
    type Backend = DefaultBackend;

    fn setup(&mut self, ctx: &mut Ctx<Self>) -> evloop_core::Result<()> {
        ctx.add_io(&self.listener, LISTENER, Watch::read())?;
        self.conns.attach(ctx, CONNS, Watch::read())?;
        Ok(())
    }

    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        if ev.token == LISTENER {
            loop {
                match self.listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(true).unwrap();
                        self.conns.insert(ctx, s).unwrap();
                        self.accepted += 1;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("accept: {e}"),
                }
            }
        } else if let Some(key) = self.conns.key_of(ev.token) {
            let mut buf = [0u8; 512];
            let conn = self.conns.get_mut(key).unwrap();
            match conn.read(&mut buf) {
                Ok(0) => drop(self.conns.remove(ctx, key)),
                Ok(n) => {
                    conn.write_all(&buf[..n]).unwrap();
                    self.echoed += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => drop(self.conns.remove(ctx, key)),
            }
        }
    }
}

/// Listeners for `n` workers on one fresh port ([`SharedPort`]: a socket each where the
/// kernel balances, one shared socket elsewhere). Returns the address and a factory that
/// hands out one listener per worker.
fn listeners() -> (SocketAddr, impl FnMut(usize) -> evloop_core::Result<Echo>) {
    let mut port = SharedPort::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    (port.local_addr(), move |i| {
        Ok(Echo::new(i, port.listener()?))
    })
}

/// Open `CLIENTS` connections, then have each send a line and read its echo.
fn clients(addr: SocketAddr) {
    let mut socks: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(DEADLINE)).unwrap();
            s
        })
        .collect();
    for (i, s) in socks.iter_mut().enumerate() {
        let msg = format!("hello {i}\n");
        s.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).expect("echo before the deadline");
        assert_eq!(back, msg.as_bytes());
    }
}

fn check_served(results: Vec<evloop_core::Result<Echo>>) {
    let machines: Vec<Echo> = results.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(machines.len(), 2);
    for (i, m) in machines.iter().enumerate() {
        assert_eq!(m.id, i, "machines come back in worker order");
        // Only a balancing kernel promises every worker a share; on a shared socket the
        // loop that wakes first may take them all.
        if PORT_SHARING == PortSharing::Balanced {
            assert!(
                m.accepted > 0,
                "worker {i} served no connection: {:?}",
                counts(&machines)
            );
        }
        // The machine comes back whole: its listener still works.
        assert_eq!(
            m.listener.local_addr().unwrap(),
            machines[0].listener.local_addr().unwrap()
        );
    }
    assert_eq!(machines.iter().map(|m| m.accepted).sum::<usize>(), CLIENTS);
    let bytes: usize = (0..CLIENTS).map(|i| format!("hello {i}\n").len()).sum();
    assert_eq!(machines.iter().map(|m| m.echoed).sum::<usize>(), bytes);
    println!("connections per worker: {:?}", counts(&machines));
}

fn counts(machines: &[Echo]) -> Vec<usize> {
    machines.iter().map(|m| m.accepted).collect()
}

fn sigterm_stops_two_echo_workers() {
    let (addr, make) = listeners();
    let workers = Workers::builder()
        .stop_on(&[libc::SIGTERM, libc::SIGINT])
        .spawn(2, make)
        .unwrap();
    clients(addr);
    // SAFETY: kill(2) to our own pid; SIGTERM is handled (watched since `spawn`).
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGTERM) }, 0);
    let stopped = workers.run().unwrap();
    assert_eq!(stopped.reason, StopReason::Signal(libc::SIGTERM));
    check_served(stopped.results);
}

fn sigint_from_another_thread_while_waiting() {
    let (addr, make) = listeners();
    let workers = Workers::builder()
        .stop_on(&[libc::SIGTERM, libc::SIGINT])
        .spawn(2, make)
        .unwrap();
    clients(addr);
    // Sent while (or before) the main thread waits: either way it is seen.
    let killer = std::thread::spawn(|| {
        // SAFETY: kill(2) to our own pid; SIGINT is handled (watched since `spawn`).
        assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGINT) }, 0);
    });
    let stopped = workers.run().unwrap();
    killer.join().unwrap();
    assert_eq!(stopped.reason, StopReason::Signal(libc::SIGINT));
    check_served(stopped.results);
}

#[test]
fn isolated_sigterm_stops_two_echo_workers() {
    subprocess::isolated(
        CHILD_ENV,
        "isolated_sigterm_stops_two_echo_workers",
        sigterm_stops_two_echo_workers,
    );
}

#[test]
fn isolated_sigint_from_another_thread_while_waiting() {
    subprocess::isolated(
        CHILD_ENV,
        "isolated_sigint_from_another_thread_while_waiting",
        sigint_from_another_thread_while_waiting,
    );
}

/// No signal involved: `stop` from the owning thread.
#[test]
fn stop_and_join_return_every_machine() {
    let (addr, make) = listeners();
    let workers = Workers::spawn(2, make).unwrap();
    assert_eq!(workers.len(), 2);
    clients(addr);
    workers.stop();
    check_served(workers.join());
}

/// The way `SharedPort` shares a port where the kernel does not balance (macOS, NetBSD,
/// OpenBSD, illumos), exercised on every system: each worker registers a duplicate of
/// one listening socket; every connection is accepted exactly once.
#[test]
fn workers_on_one_shared_socket_serve_every_client() {
    let shared = TcpListener::bind("127.0.0.1:0").unwrap();
    shared.set_nonblocking(true).unwrap();
    let addr = shared.local_addr().unwrap();
    let workers = Workers::spawn(2, |i| Ok(Echo::new(i, shared.try_clone()?))).unwrap();
    clients(addr);
    workers.stop();
    let machines: Vec<Echo> = workers.join().into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(machines.iter().map(|m| m.accepted).sum::<usize>(), CLIENTS);
    println!("connections per worker: {:?}", counts(&machines));
}

/// A machine that exits by itself ends `wait` with `WorkerExited`.
struct ExitsOnWake;
impl Machine for ExitsOnWake {
    type Backend = DefaultBackend;
    fn setup(&mut self, ctx: &mut Ctx<Self>) -> evloop_core::Result<()> {
        ctx.add_wake(Token(0))?;
        Ok(())
    }
    fn dispatch(&mut self, ctx: &mut Ctx<Self>, _: Event) {
        ctx.exit();
    }
}

#[test]
fn a_worker_ending_by_itself_ends_wait() {
    let mut workers = Workers::spawn(3, |_| Ok(ExitsOnWake)).unwrap();
    workers.wake_handle(1).wake().unwrap(); // worker 1's own handler exits
    assert_eq!(workers.wait().unwrap(), StopReason::WorkerExited);
    assert!(workers.finished() >= 1);
    workers.stop();
    let results = workers.join();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r.is_ok()));
}

/// A worker whose setup fails: `spawn` returns that error, after stopping and joining
/// the workers already started.
struct FailsSetup(bool);
impl Machine for FailsSetup {
    type Backend = DefaultBackend;
    fn setup(&mut self, _: &mut Ctx<Self>) -> evloop_core::Result<()> {
        if self.0 {
            Err(Error::StaleSource)
        } else {
            Ok(())
        }
    }
    fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {}
}

#[test]
fn setup_error_is_returned_and_started_workers_joined() {
    let r = Workers::spawn(3, |i| Ok(FailsSetup(i == 2)));
    assert!(matches!(r, Err(Error::StaleSource)), "{r:?}");
}

#[test]
fn factory_error_is_returned() {
    let r = Workers::spawn(3, |i| {
        if i == 1 {
            Err(Error::InvalidSignal(-1))
        } else {
            Ok(FailsSetup(false))
        }
    });
    assert!(matches!(r, Err(Error::InvalidSignal(-1))));
}

//! [`Workers`]: N copies of a machine, one loop per thread (the nginx/memcached worker
//! model), with one shutdown for all of them.
//!
//! # Design
//!
//! * Each worker's machine is made on the calling thread by the factory `make(i)` (so
//!   it can take, say, the `i`th listener), then moved to its own thread, where its
//!   [`EventLoop`] is built (`Builder::default()`, or the `build` function given to
//!   [`spawn_with`](Workers::spawn_with), e.g. an `#[event_machine]` type's
//!   `event_loop`) and run with `set_exit_when_empty(false)`. A worker therefore runs until it
//!   is stopped or its machine calls `ctx.exit()`; the thread returns the machine.
//! * Sharing a port: [`SharedPort`] hands each worker a listener for one address. Where
//!   the kernel balances connections across sockets bound to one port (Linux, Android,
//!   DragonFly with `SO_REUSEPORT`; FreeBSD with `SO_REUSEPORT_LB`), every worker gets
//!   a socket of its own ([`reuseport_listener`]) and the workers share nothing and
//!   never lock. Elsewhere (macOS, iOS, NetBSD, OpenBSD: `SO_REUSEPORT` does not
//!   balance there; illumos, Solaris, Windows: no such option; on Windows
//!   `SO_REUSEADDR` would let a second socket take the port over) every worker registers a
//!   duplicate of one listening socket and whichever loop accepts first wins; see
//!   [`PortSharing`].
//! * Stopping: [`Workers::stop`] sends every worker [`WakeHandle::exit`], the
//!   thread-safe `event_base_loopexit`: each loop finishes the handlers of its current
//!   iteration and `run` returns, leaving the machine (its listener, its connections)
//!   intact for the caller to drain or inspect after [`join`](Workers::join).
//! * One signal for all: the signals given to [`WorkersBuilder::stop_on`] are watched by
//!   a small loop owned by the [`Workers`] value on the calling thread (installed before
//!   any worker starts, so a `SIGTERM` during start-up is not fatal). Signals are
//!   process-wide: whichever thread the kernel interrupts, the handler wakes that loop.
//!   [`wait`](Workers::wait) runs it until a watched signal arrives or a worker thread
//!   ends on its own (error, `ctx.exit()`, panic); [`run`](Workers::run) is wait, stop,
//!   join. No worker watches a signal, so no worker needs to know about the others.
//!
//! ```
//! use evloop_core::*;
//! use evloop_core::workers::Workers;
//! struct Idle;
//! impl Machine for Idle { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
//! let workers = Workers::spawn(4, |_| Ok(Idle)).unwrap(); // 4 threads, 4 loops
//! workers.stop();
//! assert_eq!(workers.join().len(), 4);
//! ```

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};

use crate::sys::Notify;

use crate::socket;
pub use crate::socket::{PortSharing, PORT_SHARING};
use crate::{
    Ctx, DefaultBackend, Error, Event, EventLoop, Exit, Machine, Result, Token, WakeHandle, Watch,
};

/// Why [`Workers::wait`] returned.
///
/// ```
/// use evloop_core::workers::StopReason;
/// assert_ne!(StopReason::Signal(libc::SIGTERM), StopReason::WorkerExited);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// One of the signals given to [`WorkersBuilder::stop_on`] arrived.
    Signal(i32),
    /// A worker thread ended by itself (its machine exited, its loop failed, or it
    /// panicked).
    WorkerExited,
}

/// What [`Workers::run`] gives back: why it stopped, and each worker's result, in
/// worker order.
///
/// ```
/// use evloop_core::workers::{Stopped, StopReason};
/// let s: Stopped<()> = Stopped { reason: StopReason::WorkerExited, results: vec![Ok(())] };
/// assert_eq!(s.results.len(), 1);
/// ```
#[derive(Debug)]
pub struct Stopped<M> {
    /// Why the workers were stopped.
    pub reason: StopReason,
    /// Each worker's machine, or the error its loop failed with.
    pub results: Vec<Result<M>>,
}

/// Counts finished worker threads and wakes the controller.
struct Finished {
    count: AtomicUsize,
    waker: Notify,
}

/// Dropped when a worker thread ends, however it ends.
struct FinishGuard(Arc<Finished>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.count.fetch_add(1, Ordering::SeqCst);
        let _ = self.0.waker.wake();
    }
}

/// A one-shot hand-off from a worker thread to [`Workers`]' `start`: the worker's wake
/// handle once its loop is built, or the error that stopped it. A `Mutex` and a
/// `Condvar` rather than an `mpsc` channel: a blocking `recv` makes the calling thread
/// allocate its `thread::current()` handle, which the main thread never frees
/// (valgrind reports it as "possibly lost" at exit).
struct Handoff<T> {
    state: Mutex<HandoffState<T>>,
    changed: Condvar,
}

enum HandoffState<T> {
    Waiting,
    Sent(T),
    /// The worker ended without sending: its setup panicked.
    Gone,
}

/// The worker's end: sends once; dropped unsent (a panic), it says the worker is gone.
struct HandoffSender<T>(Arc<Handoff<T>>);

impl<T> Handoff<T> {
    fn new() -> (HandoffSender<T>, Arc<Handoff<T>>) {
        let h = Arc::new(Handoff {
            state: Mutex::new(HandoffState::Waiting),
            changed: Condvar::new(),
        });
        (HandoffSender(h.clone()), h)
    }

    /// Wait for the worker's word: `None` if it ended without one.
    fn recv(&self) -> Option<T> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match std::mem::replace(&mut *st, HandoffState::Gone) {
                HandoffState::Sent(v) => return Some(v),
                HandoffState::Gone => return None,
                HandoffState::Waiting => {
                    *st = HandoffState::Waiting;
                    st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

impl<T> HandoffSender<T> {
    fn send(&self, v: T) {
        self.set(HandoffState::Sent(v));
    }

    fn set(&self, new: HandoffState<T>) {
        let mut st = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*st, HandoffState::Waiting) {
            *st = new;
            self.0.changed.notify_all();
        }
    }
}

impl<T> Drop for HandoffSender<T> {
    fn drop(&mut self) {
        self.set(HandoffState::Gone);
    }
}

const FINISHED: Token = Token(0);
const SIGNAL_BASE: u64 = 1 << 32;

/// The calling thread's loop: watches the stop signals and the finished-workers fd.
struct Control {
    finished: Arc<Finished>,
    /// Finished workers already reported.
    seen: usize,
    reason: Option<StopReason>,
}

impl Machine for Control {
    type Backend = DefaultBackend;

    fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.add_io(&self.finished.waker, FINISHED, Watch::read())?;
        Ok(())
    }

    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        if ev.token == FINISHED {
            self.finished.waker.drain();
            let count = self.finished.count.load(Ordering::SeqCst);
            if count > self.seen {
                self.seen = count;
                self.reason.get_or_insert(StopReason::WorkerExited);
                ctx.exit();
            }
        } else if ev.token.0 >= SIGNAL_BASE {
            let signo = (ev.token.0 - SIGNAL_BASE) as i32;
            self.reason.get_or_insert(StopReason::Signal(signo));
            ctx.exit();
        }
    }
}

struct Worker<M> {
    wake: WakeHandle,
    thread: JoinHandle<Result<M>>,
}

/// Options for [`Workers`]: the signals that stop them all.
///
/// ```
/// use evloop_core::workers::Workers;
/// let b = Workers::builder().stop_on(&[libc::SIGTERM, libc::SIGINT]);
/// # let _ = b;
/// ```
#[derive(Clone, Debug, Default)]
pub struct WorkersBuilder {
    signals: Vec<i32>,
}

impl WorkersBuilder {
    /// Watch these signals (from [`spawn`](Self::spawn) until the [`Workers`] is
    /// dropped); [`Workers::wait`] returns when one arrives.
    ///
    /// ```
    /// let b = evloop_core::workers::Workers::builder().stop_on(&[libc::SIGTERM]);
    /// # let _ = b;
    /// ```
    pub fn stop_on(mut self, signals: &[i32]) -> Self {
        self.signals.extend_from_slice(signals);
        self
    }

    /// [`Workers::spawn`] with these options.
    ///
    /// ```
    /// use evloop_core::*;
    /// use evloop_core::workers::Workers;
    /// struct Idle;
    /// impl Machine for Idle { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let w = Workers::builder().stop_on(&[libc::SIGUSR2]).spawn(2, |_| Ok(Idle)).unwrap();
    /// w.stop();
    /// assert_eq!(w.join().len(), 2);
    /// ```
    pub fn spawn<M, F>(self, n: usize, make: F) -> Result<Workers<M>>
    where
        M: Machine + Send + 'static,
        F: FnMut(usize) -> Result<M>,
    {
        self.spawn_with(n, make, EventLoop::new)
    }

    /// [`Workers::spawn_with`] with these options.
    ///
    /// ```
    /// use evloop_core::*;
    /// use evloop_core::workers::Workers;
    /// struct Idle;
    /// impl Machine for Idle { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let build = |m| Builder::new().sources(16).build(m);
    /// let w = Workers::builder().spawn_with(1, |_| Ok(Idle), build).unwrap();
    /// w.stop();
    /// assert!(w.join()[0].is_ok());
    /// ```
    pub fn spawn_with<M, F, B>(self, n: usize, mut make: F, build: B) -> Result<Workers<M>>
    where
        M: Machine + Send + 'static,
        F: FnMut(usize) -> Result<M>,
        B: Fn(M) -> Result<EventLoop<M>> + Clone + Send + 'static,
    {
        let finished = Arc::new(Finished {
            count: AtomicUsize::new(0),
            waker: Notify::new()?,
        });
        let mut control = EventLoop::new(Control {
            finished: finished.clone(),
            seen: 0,
            reason: None,
        })?;
        for &signo in &self.signals {
            let token = Token(SIGNAL_BASE + u64::from(signo.unsigned_abs()));
            control.ctx().add_signal(signo, token)?;
        }
        let mut workers = Workers {
            workers: Vec::with_capacity(n),
            control,
            finished,
        };
        for i in 0..n {
            match workers.start(i, &mut make, build.clone()) {
                Ok(w) => workers.workers.push(w),
                Err(e) => {
                    workers.stop();
                    drop(workers.join());
                    return Err(e);
                }
            }
        }
        Ok(workers)
    }
}

/// N machines, each on its own thread with its own loop; see the [module
/// docs](self) for the design.
///
/// ```
/// use evloop_core::*;
/// use evloop_core::workers::{SharedPort, Workers};
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
///
/// /// Accepts connections, answers each with one byte: its worker's number.
/// struct Hello { id: u8, listener: Listener, served: u32 }
/// impl Machine for Hello {
///     type Backend = DefaultBackend;
///     fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
///         self.listener.attach(ctx, 0, Watch::read())
///     }
///     fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
///         // A `Listener` accepts in batches and never spins when fds run out.
///         if !self.listener.before_dispatch(ctx, Key::SINGLE, ev.ready).is_readable() {
///             return;
///         }
///         let (id, served) = (self.id, &mut self.served);
///         self.listener.accept(ctx, |_, conn| {
///             let _ = conn.into_tcp().write_all(&[id]);
///             *served += 1;
///         });
///     }
/// }
///
/// // One port for both workers (a socket each, or one shared: see `SharedPort`).
/// let mut port = SharedPort::bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// let addr = port.local_addr();
/// let workers = Workers::spawn(2, |i| {
///     let listener = ListenerBuilder::new().wrap_tcp(port.listener()?)?;
///     Ok(Hello { id: i as u8, listener, served: 0 })
/// }).unwrap();
/// for _ in 0..8 {
///     let mut b = [0u8];
///     TcpStream::connect(addr).unwrap().read_exact(&mut b).unwrap();
///     assert!(b[0] < 2);
/// }
/// workers.stop();
/// let served: u32 = workers.join().into_iter().map(|r| r.unwrap().served).sum();
/// assert_eq!(served, 8);
/// ```
pub struct Workers<M> {
    workers: Vec<Worker<M>>,
    control: EventLoop<Control>,
    finished: Arc<Finished>,
}

impl Workers<()> {
    /// Options: the signals that stop the workers. (Defined on `Workers<()>` only so
    /// that `Workers::builder()` needs no type annotation; the builder's `spawn` decides
    /// the machine type.)
    ///
    /// ```
    /// let b = evloop_core::workers::Workers::builder();
    /// # let _ = b;
    /// ```
    pub fn builder() -> WorkersBuilder {
        WorkersBuilder::default()
    }
}

impl<M: Machine + Send + 'static> Workers<M> {
    /// Start `n` workers: machine `i` is `make(i)` (called here, in order), its loop is
    /// built with default capacities on its thread. Returns once every loop is built and
    /// its `setup` succeeded; otherwise stops and joins the started ones and returns the
    /// first error. No signal is watched (see [`builder`](Self::builder)).
    ///
    /// ```
    /// use evloop_core::*;
    /// use evloop_core::workers::Workers;
    /// struct Idle(usize);
    /// impl Machine for Idle { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let w = Workers::spawn(3, |i| Ok(Idle(i))).unwrap();
    /// assert_eq!(w.len(), 3);
    /// w.stop();
    /// let ids: Vec<usize> = w.join().into_iter().map(|r| r.unwrap().0).collect();
    /// assert_eq!(ids, [0, 1, 2]);
    /// ```
    pub fn spawn<F>(n: usize, make: F) -> Result<Self>
    where
        F: FnMut(usize) -> Result<M>,
    {
        WorkersBuilder::default().spawn(n, make)
    }

    /// [`spawn`](Self::spawn), with `build` making each loop on its worker's thread:
    /// `Server::event_loop` for an `#[event_machine]` type (its declared capacities), or
    /// a closure over a [`Builder`](crate::Builder).
    ///
    /// ```
    /// use evloop_core::*;
    /// use evloop_core::workers::Workers;
    /// struct Idle;
    /// impl Machine for Idle { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let w = Workers::spawn_with(2, |_| Ok(Idle), |m| Builder::new().events(64).build(m)).unwrap();
    /// w.stop();
    /// assert!(w.join().iter().all(|r| r.is_ok()));
    /// ```
    pub fn spawn_with<F, B>(n: usize, make: F, build: B) -> Result<Self>
    where
        F: FnMut(usize) -> Result<M>,
        B: Fn(M) -> Result<EventLoop<M>> + Clone + Send + 'static,
    {
        WorkersBuilder::default().spawn_with(n, make, build)
    }

    fn start<F, B>(&mut self, i: usize, make: &mut F, build: B) -> Result<Worker<M>>
    where
        F: FnMut(usize) -> Result<M>,
        B: Fn(M) -> Result<EventLoop<M>> + Send + 'static,
    {
        let machine = make(i)?;
        let (ready_tx, ready_rx) = Handoff::<Result<WakeHandle>>::new();
        let guard = FinishGuard(self.finished.clone());
        let thread = thread::Builder::new()
            .name(format!("evloop-worker-{i}"))
            .spawn(move || {
                let _guard = guard;
                let mut el = match build(machine) {
                    Ok(el) => el,
                    Err(e) => {
                        ready_tx.send(Err(e));
                        return Err(Error::Io(io::Error::other("setup failed")));
                    }
                };
                el.ctx().set_exit_when_empty(false);
                ready_tx.send(Ok(el.ctx().wake_handle()));
                drop(ready_tx);
                el.run()?;
                Ok(el.into_machine())
            })?;
        match ready_rx.recv() {
            Some(Ok(wake)) => Ok(Worker { wake, thread }),
            Some(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            None => {
                // The thread ended without a word: `build` panicked. Re-raise it here.
                match thread.join() {
                    Err(panic) => std::panic::resume_unwind(panic),
                    Ok(_) => Err(Error::Io(io::Error::other("worker ended during setup"))),
                }
            }
        }
    }

    /// How many workers.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct Idle; impl Machine for Idle { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let w = evloop_core::workers::Workers::spawn(0, |_| Ok(Idle)).unwrap();
    /// assert!(w.is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether there are no workers.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct Idle; impl Machine for Idle { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let w = evloop_core::workers::Workers::spawn(1, |_| Ok(Idle)).unwrap();
    /// assert!(!w.is_empty());
    /// # w.stop();
    /// ```
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Worker `i`'s [`WakeHandle`]: wake it (its `#[on_wake]` handler runs), activate
    /// one of its sources, or stop it alone.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct Idle; impl Machine for Idle { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let w = evloop_core::workers::Workers::spawn(2, |_| Ok(Idle)).unwrap();
    /// w.wake_handle(1).exit().unwrap(); // only worker 1
    /// w.wake_handle(0).exit().unwrap();
    /// assert_eq!(w.join().len(), 2);
    /// ```
    pub fn wake_handle(&self, i: usize) -> &WakeHandle {
        &self.workers[i].wake
    }

    /// How many worker threads have ended so far.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct Idle; impl Machine for Idle { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let w = evloop_core::workers::Workers::spawn(1, |_| Ok(Idle)).unwrap();
    /// assert_eq!(w.finished(), 0);
    /// # w.stop();
    /// ```
    pub fn finished(&self) -> usize {
        self.finished.count.load(Ordering::SeqCst)
    }

    /// Ask every worker's loop to exit ([`WakeHandle::exit`]): each finishes its current
    /// iteration and returns its machine to [`join`](Self::join). Never blocks.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct Idle; impl Machine for Idle { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let w = evloop_core::workers::Workers::spawn(2, |_| Ok(Idle)).unwrap();
    /// w.stop();
    /// w.stop(); // harmless
    /// # drop(w.join());
    /// ```
    pub fn stop(&self) {
        for w in &self.workers {
            let _ = w.wake.exit();
        }
    }

    /// Block the calling thread until a signal given to [`WorkersBuilder::stop_on`]
    /// arrives, or a worker thread ends by itself. Does not stop the workers.
    ///
    /// ```
    /// use evloop_core::*;
    /// use evloop_core::workers::{StopReason, Workers};
    /// struct Quits;
    /// impl Machine for Quits {
    ///     type Backend = DefaultBackend;
    ///     fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> { ctx.add_timer(Token(0), std::time::Duration::from_millis(1))?; Ok(()) }
    ///     fn dispatch(&mut self, ctx: &mut Ctx<Self>, _: Event) { ctx.exit() }
    /// }
    /// let mut w = Workers::spawn(1, |_| Ok(Quits)).unwrap();
    /// assert_eq!(w.wait().unwrap(), StopReason::WorkerExited);
    /// assert!(w.join()[0].is_ok());
    /// ```
    pub fn wait(&mut self) -> Result<StopReason> {
        self.control.machine_mut().reason = None;
        self.control.ctx().set_exit_when_empty(false);
        match self.control.run()? {
            Exit::Exited => {}
            other => {
                let msg = format!("the control loop ended unexpectedly: {other:?}");
                return Err(Error::Io(io::Error::other(msg)));
            }
        }
        Ok(self
            .control
            .machine()
            .reason
            .unwrap_or(StopReason::WorkerExited))
    }

    /// Wait for every worker thread and collect its machine (or its loop's error), in
    /// worker order. Call [`stop`](Self::stop) first unless the machines exit by
    /// themselves. A worker that panicked has its panic resumed here, after all the
    /// others were joined.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct Idle; impl Machine for Idle { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let w = evloop_core::workers::Workers::spawn(2, |_| Ok(Idle)).unwrap();
    /// w.stop();
    /// assert!(w.join().into_iter().all(|r| r.is_ok()));
    /// ```
    pub fn join(mut self) -> Vec<Result<M>> {
        let mut panic = None;
        let mut out = Vec::with_capacity(self.workers.len());
        for w in std::mem::take(&mut self.workers) {
            match w.thread.join() {
                Ok(r) => out.push(r),
                Err(p) => {
                    panic.get_or_insert(p);
                    out.push(Err(Error::Io(io::Error::other("worker panicked"))));
                }
            }
        }
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
        out
    }

    /// The whole life of a server: [`wait`](Self::wait) for a stop signal (or a worker
    /// that ends), then [`stop`](Self::stop) every worker and [`join`](Self::join) them.
    ///
    /// ```no_run
    /// # use evloop_core::*;
    /// # struct Server; impl Machine for Server { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// use evloop_core::workers::Workers;
    /// let workers = Workers::builder()
    ///     .stop_on(&[libc::SIGTERM, libc::SIGINT])
    ///     .spawn(4, |_| Ok(Server))
    ///     .unwrap();
    /// let stopped = workers.run().unwrap(); // until ^C
    /// println!("stopped by {:?}", stopped.reason);
    /// ```
    pub fn run(mut self) -> Result<Stopped<M>> {
        let reason = self.wait();
        self.stop();
        let results = self.join();
        Ok(Stopped {
            reason: reason?,
            results,
        })
    }
}

impl<M> Drop for Workers<M> {
    /// Dropped without [`join`](Workers::join): stop the workers (their threads finish
    /// detached).
    fn drop(&mut self) {
        for w in &self.workers {
            let _ = w.wake.exit();
        }
    }
}

impl<M> std::fmt::Debug for Workers<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("workers", &self.workers.len())
            .field("finished", &self.finished.count.load(Ordering::SeqCst))
            .finish()
    }
}

/// A non-blocking, close-on-exec TCP listener bound to `addr` with `SO_REUSEADDR` and
/// the system's port-reuse option, listening with a backlog of 1024. For port 0, bind
/// the first, read its [`local_addr`](TcpListener::local_addr), and bind the others to
/// that.
///
/// What several of them on one port do depends on the system ([`PORT_SHARING`]):
///
/// * Linux, Android, DragonFly (`SO_REUSEPORT`) and FreeBSD (`SO_REUSEPORT_LB`): the
///   kernel spreads incoming connections across them, so one per worker balances the
///   load and the workers share nothing.
/// * macOS, iOS, NetBSD, OpenBSD (`SO_REUSEPORT`): the binds succeed, but the kernel
///   does not balance: one socket gets the connections.
/// * illumos, Solaris: no such option; this fails with `ErrorKind::Unsupported`.
///
/// [`SharedPort`] picks the right way for the system (one socket per worker where the
/// kernel balances, one socket shared by every worker elsewhere).
///
/// ```
/// use evloop_core::workers::{reuseport_listener, PortSharing, PORT_SHARING};
/// let a = reuseport_listener("127.0.0.1:0".parse().unwrap());
/// if PORT_SHARING != PortSharing::Unsupported {
///     let a = a.unwrap();
///     let b = reuseport_listener(a.local_addr().unwrap()).unwrap();
///     assert_eq!(a.local_addr().unwrap(), b.local_addr().unwrap());
/// }
/// ```
pub fn reuseport_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let fd = socket::tcp_listener(
        &addr,
        &socket::TcpOptions {
            reuse_addr: true,
            reuse_port: true,
            v6_only: None,
            backlog: 1024,
        },
    )?;
    Ok(TcpListener::from(fd))
}

/// One TCP port served by several workers, the way this system does it best: hand each
/// worker [`listener`](Self::listener)`()` in its factory.
///
/// * Where the kernel balances ([`PortSharing::Balanced`]: Linux, Android, FreeBSD,
///   DragonFly), each call binds a socket of its own ([`reuseport_listener`]); the
///   kernel spreads new connections across them and the workers share nothing.
/// * Elsewhere (macOS, iOS, NetBSD, OpenBSD, illumos, Solaris), every worker gets a
///   duplicate ([`TcpListener::try_clone`]) of one listening socket: they all watch the
///   same accept queue and whichever loop accepts first takes the connection (the others
///   find `WouldBlock`). This is correct on every system; it only costs wake-ups.
///
/// The first socket is bound by [`bind`](Self::bind), so port 0 is resolved once and
/// [`local_addr`](Self::local_addr) is known before any worker starts.
///
/// ```
/// use evloop_core::*;
/// use evloop_core::workers::{SharedPort, Workers};
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
///
/// struct Hello { listener: Listener, served: u32 }
/// impl Machine for Hello {
///     type Backend = DefaultBackend;
///     fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
///         self.listener.attach(ctx, 0, Watch::read())
///     }
///     fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
///         if !self.listener.before_dispatch(ctx, Key::SINGLE, ev.ready).is_readable() {
///             return;
///         }
///         let served = &mut self.served;
///         self.listener.accept(ctx, |_, conn| {
///             let _ = conn.into_tcp().write_all(b"hi");
///             *served += 1;
///         });
///     }
/// }
///
/// let mut port = SharedPort::bind("127.0.0.1:0".parse().unwrap()).unwrap();
/// let addr = port.local_addr();
/// let workers = Workers::spawn(2, |_| {
///     Ok(Hello { listener: ListenerBuilder::new().wrap_tcp(port.listener()?)?, served: 0 })
/// }).unwrap();
/// for _ in 0..4 {
///     let mut b = [0u8; 2];
///     TcpStream::connect(addr).unwrap().read_exact(&mut b).unwrap();
/// }
/// workers.stop();
/// let served: u32 = workers.join().into_iter().map(|r| r.unwrap().served).sum();
/// assert_eq!(served, 4);
/// ```
#[derive(Debug)]
pub struct SharedPort {
    addr: SocketAddr,
    /// The socket bound by `bind`: handed out by the first `listener()` call where each
    /// worker has its own, kept and duplicated where they share it.
    first: Option<TcpListener>,
}

impl SharedPort {
    /// Bind the first listening socket to `addr` (port 0 picks a free port).
    ///
    /// ```
    /// let port = evloop_core::workers::SharedPort::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert_ne!(port.local_addr().port(), 0);
    /// ```
    pub fn bind(addr: SocketAddr) -> io::Result<SharedPort> {
        let first = if PORT_SHARING == PortSharing::Balanced {
            reuseport_listener(addr)?
        } else {
            let fd = socket::tcp_listener(
                &addr,
                &socket::TcpOptions {
                    reuse_addr: true,
                    reuse_port: false,
                    v6_only: None,
                    backlog: 1024,
                },
            )?;
            TcpListener::from(fd)
        };
        Ok(SharedPort {
            addr: first.local_addr()?,
            first: Some(first),
        })
    }

    /// The address every listener is bound to (port 0 resolved).
    ///
    /// ```
    /// let port = evloop_core::workers::SharedPort::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// assert!(port.local_addr().ip().is_loopback());
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A non-blocking listener for one worker: a socket of its own where the kernel
    /// balances, a duplicate of the shared one elsewhere (see the type's docs).
    ///
    /// ```
    /// let mut port = evloop_core::workers::SharedPort::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    /// let a = port.listener().unwrap();
    /// let b = port.listener().unwrap();
    /// assert_eq!(a.local_addr().unwrap(), b.local_addr().unwrap());
    /// ```
    pub fn listener(&mut self) -> io::Result<TcpListener> {
        if PORT_SHARING == PortSharing::Balanced {
            match self.first.take() {
                Some(l) => Ok(l),
                None => reuseport_listener(self.addr),
            }
        } else {
            match &self.first {
                // A dup of a non-blocking socket shares its file status flags.
                Some(l) => l.try_clone(),
                None => Err(io::Error::other("SharedPort: the shared socket is gone")),
            }
        }
    }
}

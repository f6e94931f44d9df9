//! [`EventLoop`]: a machine plus its [`Ctx`], and the ways to run them.

#[cfg(unix)]
use std::os::fd::BorrowedFd;
use std::time::Duration;

use evloop_backends::Backend;

use crate::ctx::{Capacities, Ctx};
use crate::{Error, Machine, Result};

/// Why a run returned.
///
/// ```
/// use evloop_core::Exit;
/// assert_ne!(Exit::Exited, Exit::Break);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// No source is active any more (and [`Ctx::set_exit_when_empty`] is on, as it is by
    /// default).
    Empty,
    /// [`Ctx::exit`] or [`Ctx::exit_after`] ended it, after the iteration's handlers ran.
    Exited,
    /// [`Ctx::break_loop`] ended it right after one handler (a request, not an error).
    Break,
    /// `run_once` / `run_nowait` did their one pass.
    Done,
}

/// Capacities for an [`EventLoop`], all fixed at construction (nothing grows later).
///
/// ```
/// use evloop_core::*;
/// struct M;
/// impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
/// let el = Builder::new().sources(10_000).timers(10_000).events(512).priorities(3).build(M).unwrap();
/// # drop(el);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Builder {
    caps: Capacities,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            caps: Capacities {
                sources: Self::DEFAULT_SOURCES,
                timers: Self::DEFAULT_SOURCES,
                events: Self::DEFAULT_EVENTS,
                priorities: Self::DEFAULT_PRIORITIES,
                activations: Self::DEFAULT_ACTIVATIONS,
            },
        }
    }
}

impl Builder {
    /// Default number of sources (and of timers: as many as sources).
    ///
    /// ```
    /// assert_eq!(evloop_core::Builder::DEFAULT_SOURCES, 1024);
    /// ```
    pub const DEFAULT_SOURCES: usize = 1024;
    /// Default number of kernel events fetched per wait.
    ///
    /// ```
    /// assert_eq!(evloop_core::Builder::DEFAULT_EVENTS, 256);
    /// ```
    pub const DEFAULT_EVENTS: usize = 256;
    /// Default number of priority levels.
    ///
    /// ```
    /// assert_eq!(evloop_core::Builder::DEFAULT_PRIORITIES, 3);
    /// ```
    pub const DEFAULT_PRIORITIES: u8 = 3;
    /// The most priority levels a loop can have.
    ///
    /// ```
    /// assert_eq!(evloop_core::Builder::MAX_PRIORITIES, 32);
    /// ```
    pub const MAX_PRIORITIES: u8 = crate::ready_queue::MAX_LEVELS as u8;
    /// Default room for cross-thread activations.
    ///
    /// ```
    /// assert_eq!(evloop_core::Builder::DEFAULT_ACTIVATIONS, 256);
    /// ```
    pub const DEFAULT_ACTIVATIONS: usize = 256;

    /// Default capacities: [`DEFAULT_SOURCES`](Self::DEFAULT_SOURCES) sources and
    /// timers, [`DEFAULT_EVENTS`](Self::DEFAULT_EVENTS) events per wait,
    /// [`DEFAULT_PRIORITIES`](Self::DEFAULT_PRIORITIES) priority levels,
    /// [`DEFAULT_ACTIVATIONS`](Self::DEFAULT_ACTIVATIONS) cross-thread activations.
    ///
    /// ```
    /// let b = evloop_core::Builder::new();
    /// # let _ = b;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Most sources of all kinds registered at once (default 1024).
    ///
    /// ```
    /// let b = evloop_core::Builder::default().sources(64);
    /// # let _ = b;
    /// ```
    pub fn sources(mut self, n: usize) -> Self {
        self.caps.sources = n;
        self
    }
    /// Most timers armed at once, I/O timeouts included (default 1024; at most
    /// `sources`).
    ///
    /// ```
    /// let b = evloop_core::Builder::default().timers(64);
    /// # let _ = b;
    /// ```
    pub fn timers(mut self, n: usize) -> Self {
        self.caps.timers = n;
        self
    }
    /// Kernel events fetched per wait (default 256); more ready fds are fetched by the
    /// next wait, none is starved.
    ///
    /// ```
    /// let b = evloop_core::Builder::default().events(1024);
    /// # let _ = b;
    /// ```
    pub fn events(mut self, n: usize) -> Self {
        self.caps.events = n;
        self
    }
    /// Priority levels, 1 to [`MAX_PRIORITIES`](Self::MAX_PRIORITIES) (default 3). 0 is the most urgent; sources default to
    /// the middle level, `levels / 2`.
    ///
    /// ```
    /// let b = evloop_core::Builder::default().priorities(5);
    /// # let _ = b;
    /// ```
    pub fn priorities(mut self, levels: u8) -> Self {
        self.caps.priorities = levels;
        self
    }
    /// Room for activations sent from other threads between two iterations (default 256).
    ///
    /// ```
    /// let b = evloop_core::Builder::default().activations(4096);
    /// # let _ = b;
    /// ```
    pub fn activations(mut self, n: usize) -> Self {
        self.caps.activations = n;
        self
    }
    /// Build the loop and call the machine's [`setup`](Machine::setup).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let el = Builder::default().build(M).unwrap();
    /// # drop(el);
    /// ```
    pub fn build<M: Machine>(self, mut machine: M) -> Result<EventLoop<M>> {
        let mut ctx = Ctx::new(self.caps)?;
        machine.setup(&mut ctx)?;
        Ok(EventLoop { machine, ctx })
    }
}

/// A machine and its loop. Generic over the machine, so every dispatch is a direct call.
///
/// ```
/// use evloop_core::*;
/// struct Hello;
/// impl Machine for Hello {
///     type Backend = DefaultBackend;
///     fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
///         ctx.add_timer(Token(0), std::time::Duration::from_millis(1))?;
///         Ok(())
///     }
///     fn dispatch(&mut self, _ctx: &mut Ctx<Self>, ev: Event) {
///         assert!(ev.ready.is_timeout());
///     }
/// }
/// let mut el = EventLoop::new(Hello).unwrap();
/// assert_eq!(el.run().unwrap(), Exit::Empty);
/// ```
pub struct EventLoop<M: Machine> {
    machine: M,
    ctx: Ctx<M>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    Block,
    Nonblocking,
    AtMost(Duration),
}

impl<M: Machine> EventLoop<M> {
    /// Build a loop with default capacities (see [`Builder`]) and run the machine's
    /// `setup`.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let el = EventLoop::new(M).unwrap();
    /// # drop(el);
    /// ```
    pub fn new(machine: M) -> Result<Self> {
        Builder::default().build(machine)
    }

    /// A [`Builder`] to set capacities.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let el = EventLoop::<M>::builder().sources(8).build(M).unwrap();
    /// # drop(el);
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The machine.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M(u8); impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let el = EventLoop::new(M(7)).unwrap();
    /// assert_eq!(el.machine().0, 7);
    /// ```
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The machine, mutably.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M(u8); impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M(7)).unwrap();
    /// el.machine_mut().0 = 8;
    /// ```
    pub fn machine_mut(&mut self) -> &mut M {
        &mut self.machine
    }

    /// The loop's context, to register sources or request an exit from outside a handler.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().add_user(Token(1)).unwrap();
    /// ```
    pub fn ctx(&mut self) -> &mut Ctx<M> {
        &mut self.ctx
    }

    /// Machine and context at once (to register a machine's field from outside).
    ///
    /// ```
    /// # use evloop_core::*;
    /// struct M { sock: std::os::unix::net::UnixStream }
    /// # impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut el = EventLoop::new(M { sock: a }).unwrap();
    /// let (m, ctx) = el.parts();
    /// ctx.add_io(&m.sock, Token(1), Watch::read()).unwrap();
    /// ```
    pub fn parts(&mut self) -> (&mut M, &mut Ctx<M>) {
        (&mut self.machine, &mut self.ctx)
    }

    /// Drop the loop and hand back the machine.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M(u8); impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let el = EventLoop::new(M(3)).unwrap();
    /// assert_eq!(el.into_machine().0, 3);
    /// ```
    pub fn into_machine(self) -> M {
        self.machine
    }

    /// Run until [`Ctx::exit`], [`Ctx::exit_after`], [`Ctx::break_loop`], or until no
    /// source is active (unless [`Ctx::set_exit_when_empty`] turned that off). Returns which one it was.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// assert_eq!(el.run().unwrap(), Exit::Empty);
    /// ```
    pub fn run(&mut self) -> Result<Exit> {
        self.enter()?;
        loop {
            if let Some(e) = self.ended() {
                return Ok(e);
            }
            if !self.ctx.control.stay_when_empty && self.ctx.is_idle() {
                return Ok(Exit::Empty);
            }
            self.turn(Wait::Block)?;
        }
    }

    /// Block until at least one source is dispatched, dispatch everything ready, and
    /// return ([`Exit::Done`]); returns early with the reason if the loop is ended or
    /// empty.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().add_timer(Token(1), std::time::Duration::from_millis(1)).unwrap();
    /// assert_eq!(el.run_once().unwrap(), Exit::Done);
    /// ```
    pub fn run_once(&mut self) -> Result<Exit> {
        self.enter()?;
        loop {
            if !self.ctx.control.stay_when_empty && self.ctx.is_idle() {
                return Ok(Exit::Empty);
            }
            if self.turn(Wait::Block)? > 0 {
                return Ok(self.ended().unwrap_or(Exit::Done));
            }
            if let Some(e) = self.ended() {
                return Ok(e);
            }
        }
    }

    /// Dispatch what is ready now without blocking, and return.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    /// ```
    pub fn run_nowait(&mut self) -> Result<Exit> {
        self.enter()?;
        self.turn(Wait::Nonblocking)?;
        Ok(self.ended().unwrap_or(Exit::Done))
    }

    /// One step for embedding in another loop: wait at most `timeout` (or until the
    /// loop's own next timer, whichever is sooner), dispatch what is ready, and return how
    /// many sources were dispatched. Pair it with [`pollable_fd`](Self::pollable_fd)
    /// (libev's `ev_embed`, libuv's backend fd). Interest changes made by the handlers
    /// are applied to the kernel before it returns, so the outer loop sees them. An exit
    /// or break request is cleared.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().add_user(Token(1)).and_then(|id| el.ctx().activate(id, Ready::EMPTY)).unwrap();
    /// assert_eq!(el.poll(Some(std::time::Duration::ZERO)).unwrap(), 1);
    /// ```
    pub fn poll(&mut self, timeout: Option<Duration>) -> Result<usize> {
        self.enter()?;
        let wait = match timeout {
            None => Wait::Block,
            Some(d) if d.is_zero() => Wait::Nonblocking,
            Some(d) => Wait::AtMost(d),
        };
        let r = self.turn(wait);
        self.ctx.control.exit = false;
        self.ctx.control.brk = false;
        // Apply the handlers' interest changes now: an outer loop waiting on
        // `pollable_fd` must see them before this loop's next wait.
        r.and_then(|n| self.ctx.backend.flush().map(|_| n).map_err(Error::Io))
    }

    /// The backend's pollable fd (epoll's fd), readable when this loop has events: watch
    /// it from an outer loop and call [`poll`](Self::poll) with a zero timeout when it
    /// fires. `None` for backends without one (poll, select); pending timers are not
    /// signalled through it (use [`next_timeout`](Self::next_timeout)).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = Epoll; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let el = EventLoop::new(M).unwrap();
    /// assert!(el.pollable_fd().is_some());
    /// ```
    #[cfg(unix)]
    pub fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        self.ctx.backend.pollable_fd()
    }

    /// How long until this loop's next timer is due (`None`: no timer), for an outer
    /// loop embedding this one.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// assert_eq!(el.next_timeout(), None);
    /// el.ctx().add_timer(Token(1), std::time::Duration::from_secs(9)).unwrap();
    /// assert!(el.next_timeout().unwrap() <= std::time::Duration::from_secs(9));
    /// ```
    pub fn next_timeout(&self) -> Option<Duration> {
        self.ctx.wait_timeout()
    }

    /// After `fork()`, in the child: recreate the backend's kernel objects and the wake
    /// fd and re-register everything, so the child's loop shares nothing with the
    /// parent's. Wake handles taken before the fork no longer reach this loop.
    ///
    /// ```no_run
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// // SAFETY: the example is single-threaded.
    /// if unsafe { libc::fork() } == 0 {
    ///     el.reinit_after_fork().unwrap();
    ///     el.run().unwrap();
    ///     std::process::exit(0);
    /// }
    /// ```
    #[cfg(unix)]
    pub fn reinit_after_fork(&mut self) -> Result<()> {
        self.ctx.reinit()
    }

    /// Start a run. Re-entering a running loop is impossible (a handler only has the
    /// `Ctx`, and the loop is borrowed while it dispatches), so there is no flag to check;
    /// but a previous run may have unwound out of a panicking handler: forget what it was
    /// dispatching.
    fn enter(&mut self) -> Result<()> {
        self.ctx.reset_current();
        self.ctx.control.exit = false;
        self.ctx.control.brk = false;
        Ok(())
    }

    fn ended(&self) -> Option<Exit> {
        if self.ctx.control.brk {
            Some(Exit::Break)
        } else if self.ctx.control.exit {
            Some(Exit::Exited)
        } else {
            None
        }
    }

    /// One iteration: wait, collect, dispatch. Returns the number of dispatches.
    fn turn(&mut self, wait: Wait) -> Result<usize> {
        let ctx = &mut self.ctx;
        ctx.promote_deferred();
        self.machine.before_wait(ctx);
        let timeout = match wait {
            Wait::Nonblocking => Some(Duration::ZERO),
            Wait::Block => ctx.wait_timeout(),
            Wait::AtMost(d) => Some(ctx.wait_timeout().map_or(d, |t| t.min(d))),
        };
        let n = ctx.backend.wait(timeout).map_err(Error::Io)?;
        ctx.invalidate_clock();
        self.machine.after_wait(ctx);
        // Timers first, so a source whose timeout expired as its fd became ready is
        // already pending and gets both in one dispatch.
        ctx.expire_timers();
        let mut dispatched = 0;
        let mut i = 0;
        while i < n {
            let kev = ctx.backend.event(i);
            i += 1;
            if let Some(ev) = ctx.io_event(kev) {
                self.machine.dispatch(ctx, ev);
                ctx.finish(&ev);
                dispatched += 1;
                if ctx.control.brk {
                    // Keep what was not dispatched for the next run.
                    while i < n {
                        let kev = ctx.backend.event(i);
                        i += 1;
                        ctx.collect_one(kev);
                    }
                    return Ok(dispatched);
                }
            }
        }
        while let Some(ev) = ctx.next_event() {
            self.machine.dispatch(ctx, ev);
            ctx.finish(&ev);
            dispatched += 1;
            if ctx.control.brk {
                break;
            }
        }
        if dispatched == 0 && ctx.control.idle {
            self.machine.idle(ctx);
            dispatched = 1;
        }
        Ok(dispatched)
    }
}

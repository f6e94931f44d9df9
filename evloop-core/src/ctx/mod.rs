//! [`Ctx`]: everything a handler can do to its loop, and the loop's internal state.
//!
//! Every source (I/O, timer, signal, user-activated, wake) occupies one slot of a
//! fixed-capacity table; its [`SourceId`] is the slot index plus a generation that is
//! bumped when the slot is freed, so stale ids and stale kernel events are recognised.
//! Per iteration the loop collects what happened (kernel events, expired timers, signals,
//! activations) into each slot's `pending` bits and queues the slot once at its priority;
//! then it dispatches the queues most urgent first. A slot removed before its turn is
//! unlinked from the queue and never dispatched.
//!
//! The engine, one file per concern:
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the `Ctx` type, building it, fork re-init, the cached clock, loop control, introspection |
//! | `slots.rs` | the slot table: `Slot`, `SlotKind`, allocation, generations, queueing |
//! | `io.rs` | I/O sources, the chain of sources on one fd, interest, idle timeouts |
//! | `timers.rs` | timer sources and expiry (the heap itself is `crate::timer`) |
//! | `signals.rs` | signal sources over the process-wide registry (`crate::signal`) |
//! | `activation.rs` | user and wake sources, activation, what a wake brings in |
//! | `lifecycle.rs` | stop, start, priority and removal, for every kind |
//! | `dispatch.rs` | one iteration: wait timeout, backend events to handler events |
//! | `dump.rs` | the printable listing of sources |

mod activation;
mod completion;
mod dispatch;
mod dump;
mod io;
mod lifecycle;
mod signals;
mod slots;
mod timers;

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evloop_backends::Backend;

pub use dump::Dump;
use slots::{nanos, Slot};

use crate::ready_queue::{Links, ReadyQueues, NONE};
use crate::signal::registry;
use crate::timer::Timers;
use crate::wake::Shared;
use crate::{Machine, Result, SourceId};

/// Backend token reserved for the loop's wake fd.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;

/// Loop-control requests made by handlers.
#[derive(Default, Debug)]
pub(crate) struct Control {
    pub(crate) exit: bool,
    pub(crate) brk: bool,
    pub(crate) exit_at: Option<u64>,
    pub(crate) stay_when_empty: bool,
    pub(crate) idle: bool,
}

/// Capacities fixed when the loop is built.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Capacities {
    pub(crate) sources: usize,
    pub(crate) timers: usize,
    pub(crate) events: usize,
    pub(crate) priorities: u8,
    pub(crate) activations: usize,
}

/// The loop as seen from a handler: register and remove sources, arm timers, watch
/// signals, activate sources, read the cached clock, and stop the loop.
///
/// A `Ctx` lives inside an [`EventLoop`](crate::EventLoop); handlers receive `&mut Ctx`.
/// Everything here is O(1) or O(log n) and allocates nothing.
///
/// ```
/// use evloop_core::*;
/// use std::os::unix::net::UnixStream;
/// use std::io::{Read, Write};
///
/// struct Echo { sock: UnixStream, got: Vec<u8> }
/// const SOCK: Token = Token(1);
/// impl Machine for Echo {
///     type Backend = DefaultBackend;
///     fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
///         ctx.add_io(&self.sock, SOCK, Watch::read())?;
///         Ok(())
///     }
///     fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
///         let mut buf = [0u8; 16];
///         let n = self.sock.read(&mut buf).unwrap();
///         self.got.extend_from_slice(&buf[..n]);
///         ctx.exit();
///     }
/// }
/// let (a, mut b) = UnixStream::pair().unwrap();
/// let mut el = EventLoop::new(Echo { sock: a, got: vec![] }).unwrap();
/// b.write_all(b"hi").unwrap();
/// el.run().unwrap();
/// assert_eq!(el.machine().got, b"hi");
/// ```
pub struct Ctx<M: Machine> {
    pub(crate) backend: M::Backend,
    slots: Box<[Slot]>,
    links: Box<[Links]>,
    free: u32,
    used: usize,
    /// fd -> first I/O slot on it.
    fd_heads: crate::sys::SourceIndex,
    pub(crate) timers: Timers,
    queues: ReadyQueues,
    levels: u8,
    default_prio: u8,
    /// Sources per priority level, and whether at most one level is in use: then kernel
    /// events can be dispatched straight from the event buffer, in order, with no queue.
    level_count: [u32; crate::ready_queue::MAX_LEVELS],
    direct: bool,
    shared: Arc<Shared>,
    #[cfg_attr(windows, allow(dead_code))] // read by `reinit` (after fork: Unix only)
    activation_capacity: usize,
    signal_slots: [u32; registry::MAX_SIGNAL + 1],
    signal_mask: u128,
    live_io: usize,
    nsignals: usize,
    live_signals: usize,
    epoch: Instant,
    now: Cell<u64>,
    stale: Cell<bool>,
    pub(crate) control: Control,
    /// Activations made by handlers that must wait for the next iteration.
    deferred: ReadyQueues,
    current: u32,
    current_rearmed: bool,
    wake_slot: u32,
    _machine: PhantomData<fn() -> M>,
}

impl<M: Machine> Ctx<M> {
    pub(crate) fn new(caps: Capacities) -> Result<Self> {
        let n = caps.sources.clamp(1, (u32::MAX - 1) as usize);
        let levels = caps
            .priorities
            .clamp(1, crate::ready_queue::MAX_LEVELS as u8);
        let mut backend = M::Backend::new(caps.events.max(1))?;
        let shared = Shared::new(caps.activations)?;
        backend.register_waker(&shared.waker, WAKE_TOKEN)?;
        let mut slots = vec![Slot::FREE; n].into_boxed_slice();
        for (i, s) in slots.iter_mut().enumerate() {
            s.next = if i + 1 < n { (i + 1) as u32 } else { NONE };
        }
        Ok(Ctx {
            backend,
            slots,
            links: vec![Links::UNLINKED; n].into_boxed_slice(),
            free: 0,
            used: 0,
            fd_heads: crate::sys::SourceIndex::new(),
            timers: Timers::new(n, caps.timers.min(n)),
            queues: ReadyQueues::new(),
            levels,
            default_prio: levels / 2,
            level_count: [0; crate::ready_queue::MAX_LEVELS],
            direct: true,
            shared,
            activation_capacity: caps.activations,
            signal_slots: [NONE; registry::MAX_SIGNAL + 1],
            signal_mask: 0,
            live_io: 0,
            nsignals: 0,
            live_signals: 0,
            epoch: Instant::now(),
            now: Cell::new(0),
            stale: Cell::new(false),
            control: Control::default(),
            deferred: ReadyQueues::new(),
            current: NONE,
            current_rearmed: false,
            wake_slot: NONE,
            _machine: PhantomData,
        })
    }

    /// After `fork()`, in the child: fresh backend kernel objects and a fresh wake fd.
    #[cfg(unix)]
    pub(crate) fn reinit(&mut self) -> Result<()> {
        self.backend.reinit()?;
        let shared = Shared::new(self.activation_capacity)?;
        self.backend.deregister_waker(&self.shared.waker)?;
        self.backend.register_waker(&shared.waker, WAKE_TOKEN)?;
        self.rebind_signals(&shared.waker);
        self.shared = shared;
        Ok(())
    }

    #[inline]
    pub(super) fn clock(&self) -> u64 {
        if self.stale.get() {
            let t = nanos(self.epoch.elapsed());
            self.now.set(t);
            self.stale.set(false);
        }
        self.now.get()
    }

    /// The loop's cached monotonic time: read once per iteration (when something needs
    /// it) and shared by every handler of that iteration, so timers armed together
    /// expire together. [`refresh_now`](Self::refresh_now) reads the clock again.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let a = el.ctx().now();
    /// assert_eq!(a, el.ctx().now()); // cached
    /// assert!(el.ctx().refresh_now() >= a);
    /// ```
    pub fn now(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.clock())
    }

    /// Read the clock now and cache it; returns the new time.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let t = el.ctx().refresh_now();
    /// assert!(t <= std::time::Instant::now());
    /// ```
    pub fn refresh_now(&mut self) -> Instant {
        self.stale.set(true);
        self.now()
    }

    pub(crate) fn invalidate_clock(&self) {
        self.stale.set(true);
    }

    /// End the loop once the handlers of the current iteration have run
    /// (libevent's `event_base_loopexit(base, NULL)`); `run` returns
    /// [`Exit::Exited`](crate::Exit::Exited).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, ctx: &mut Ctx<Self>, _: Event) { ctx.exit() } }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().add_periodic(Token(1), std::time::Duration::from_millis(1)).unwrap();
    /// assert_eq!(el.run().unwrap(), Exit::Exited);
    /// ```
    pub fn exit(&mut self) {
        self.control.exit = true;
    }

    /// End the loop after `delay` (measured from the cached now), once that iteration's
    /// handlers have run.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().set_exit_when_empty(false);
    /// el.ctx().exit_after(std::time::Duration::from_millis(2));
    /// assert_eq!(el.run().unwrap(), Exit::Exited);
    /// ```
    pub fn exit_after(&mut self, delay: Duration) {
        let now = self.clock();
        self.control.exit_at = Some(now.saturating_add(nanos(delay)));
    }

    /// Stop right after the current handler; events not yet dispatched stay queued for
    /// the next run (libevent's `event_base_loopbreak`). `run` returns
    /// [`Exit::Break`](crate::Exit::Break).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, ctx: &mut Ctx<Self>, _: Event) { ctx.break_loop() } }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().add_periodic(Token(1), std::time::Duration::from_millis(1)).unwrap();
    /// assert_eq!(el.run().unwrap(), Exit::Break);
    /// ```
    pub fn break_loop(&mut self) {
        self.control.brk = true;
    }

    /// Turn idling on or off: while on, an iteration that dispatches nothing calls the
    /// machine's [`idle`](Machine::idle) hook, and the loop never blocks (libev's
    /// `ev_idle_start`/`ev_idle_stop`). Off by default.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().set_idle(true);
    /// assert!(el.ctx().is_idling());
    /// ```
    pub fn set_idle(&mut self, on: bool) {
        self.control.idle = on;
    }

    /// Whether idling is on (see [`set_idle`](Self::set_idle)).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// assert!(!el.ctx().is_idling());
    /// ```
    pub fn is_idling(&self) -> bool {
        self.control.idle
    }

    /// The source whose handler is running, if a handler is running (handy for a
    /// handler of a single field, which gets no [`Event`]).
    ///
    /// ```
    /// # use evloop_core::*;
    /// struct M { seen: Option<SourceId> }
    /// impl Machine for M {
    ///     type Backend = DefaultBackend;
    ///     fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) { self.seen = ctx.current(); assert_eq!(ctx.current(), Some(ev.source)); }
    /// }
    /// let mut el = EventLoop::new(M { seen: None }).unwrap();
    /// assert_eq!(el.ctx().current(), None);
    /// let id = el.ctx().add_user(Token(1)).unwrap();
    /// el.ctx().activate(id, Ready::EMPTY).unwrap();
    /// el.run_nowait().unwrap();
    /// assert_eq!(el.machine().seen, Some(id));
    /// ```
    pub fn current(&self) -> Option<SourceId> {
        (self.current != NONE).then(|| self.id(self.current))
    }

    /// Whether `run` ends ([`Exit::Empty`](crate::Exit::Empty)) once no source is active:
    /// on by default, like libevent. Turned off, the loop keeps waiting for wakes,
    /// activations from other threads, or `exit_after` (libevent's
    /// `EVLOOP_NO_EXIT_ON_EMPTY`). Not to be confused with [`set_idle`](Self::set_idle),
    /// which runs the machine's `idle` hook when an iteration dispatched nothing.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// assert_eq!(el.run().unwrap(), Exit::Empty); // nothing to watch: done
    /// el.ctx().set_exit_when_empty(false);
    /// el.ctx().exit_after(std::time::Duration::from_millis(1));
    /// assert_eq!(el.run().unwrap(), Exit::Exited); // waited for exit_after instead
    /// ```
    pub fn set_exit_when_empty(&mut self, yes: bool) {
        self.control.stay_when_empty = !yes;
    }

    /// Number of registered sources of every kind (the loop's own wake fd excluded).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// assert_eq!(el.ctx().source_count(), 0);
    /// ```
    pub fn source_count(&self) -> usize {
        self.used
    }

    /// A human-readable listing of every source, for debugging (`{}` formats it).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().add_timer(Token(4), std::time::Duration::from_secs(1)).unwrap();
    /// let text = el.ctx().dump().to_string();
    /// assert!(text.contains("timer") && text.contains("token=4"));
    /// ```
    pub fn dump(&self) -> Dump<'_, M> {
        Dump { ctx: self }
    }

    /// The backend (for its own introspection, e.g. `Epoll::ctl_calls`).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// assert_eq!(el.ctx().backend().len(), 1); // the wake fd
    /// ```
    pub fn backend(&self) -> &M::Backend {
        &self.backend
    }
}

#[cfg(test)]
mod tests {
    use crate::{DefaultBackend, Error, Event, EventLoop, Machine, Token};

    struct Nop;
    impl Machine for Nop {
        type Backend = DefaultBackend;
        fn dispatch(&mut self, _: &mut super::Ctx<Self>, _: Event) {}
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "builds a loop: a backend makes syscalls Miri does not emulate"
    )]
    fn freed_slots_are_reused_with_a_new_generation() {
        let mut el = crate::Builder::new().sources(2).build(Nop).unwrap();
        let ctx = el.ctx();
        let a = ctx.add_user(Token(1)).unwrap();
        let b = ctx.add_user(Token(2)).unwrap();
        assert!(matches!(
            ctx.add_user(Token(3)),
            Err(Error::SourcesFull { capacity: 2 })
        ));
        ctx.remove(a).unwrap();
        let c = ctx.add_user(Token(3)).unwrap();
        assert_eq!(c.index, a.index, "the freed slot is taken first");
        assert_ne!(c.gen, a.gen, "with a new generation");
        assert!(matches!(ctx.remove(a), Err(Error::StaleSource)));
        assert_eq!(ctx.source_count(), 2);
        ctx.remove(b).unwrap();
        ctx.remove(c).unwrap();
        assert_eq!(ctx.source_count(), 0);
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "builds a loop: a backend makes syscalls Miri does not emulate"
    )]
    fn kind_specific_calls_refuse_other_kinds() {
        let mut el = EventLoop::new(Nop).unwrap();
        let ctx = el.ctx();
        let user = ctx.add_user(Token(1)).unwrap();
        let timer = ctx
            .add_timer(Token(2), std::time::Duration::from_secs(5))
            .unwrap();
        assert!(matches!(
            ctx.set_interest(user, crate::Interest::READ),
            Err(Error::WrongKind { .. })
        ));
        assert!(matches!(
            ctx.set_idle_timeout(timer, None),
            Err(Error::WrongKind { .. })
        ));
        assert!(matches!(
            ctx.reset_timer(user),
            Err(Error::WrongKind { .. })
        ));
        assert!(ctx.reset_timer(timer).is_ok());
    }
}

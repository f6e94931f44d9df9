//! [`Ctx`]: everything a handler can do to its loop, and the loop's internal state.
//!
//! Every source (I/O, timer, signal, user-activated, wake) occupies one slot of a
//! fixed-capacity table; its [`SourceId`] is the slot index plus a generation that is
//! bumped when the slot is freed, so stale ids and stale kernel events are recognised.
//! Per iteration the loop collects what happened (kernel events, expired timers, signals,
//! activations) into each slot's `pending` bits and queues the slot once at its priority;
//! then it dispatches the queues most urgent first. A slot removed before its turn is
//! unlinked from the queue and never dispatched.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use evloop_backends::{Backend, Interest, Ready};

use crate::ready_queue::{Links, ReadyQueues, NONE};
use crate::signal::registry::{self, Refusal};
use crate::timer::Timers;
use crate::wake::{Shared, WakeHandle};
use crate::{Error, Event, Machine, Result, SourceId, Token, Watch};

/// Backend token reserved for the loop's wake fd.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Free,
    Io,
    Timer,
    Signal,
    User,
    Wake,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    gen: u32,
    kind: Kind,
    enabled: bool,
    oneshot: bool,
    periodic: bool,
    queued: bool,
    /// Queued in `deferred` rather than the ready queues.
    deferred: bool,
    prio: u8,
    interest: Interest,
    /// I/O: the fd. Signal: the signal number.
    fd: RawFd,
    /// Signal: subscriber index in the process registry.
    sub: u32,
    token: Token,
    pending: Ready,
    count: u32,
    /// Timer: its period or delay. I/O: its idle timeout (0 = none). Nanoseconds.
    duration: u64,
    /// Next source on the same fd (I/O), or next free slot (Free).
    next: u32,
}

impl Slot {
    const FREE: Slot = Slot {
        gen: 0,
        kind: Kind::Free,
        enabled: false,
        oneshot: false,
        periodic: false,
        queued: false,
        deferred: false,
        prio: 0,
        interest: Interest::NONE,
        fd: -1,
        sub: 0,
        token: Token(0),
        pending: Ready::EMPTY,
        count: 0,
        duration: 0,
        next: NONE,
    };
}

/// Which I/O readiness bits a source with `interest` receives. Errors and hang-ups are
/// always reported (as by the kernel), so a handler learns of them whatever it watches.
#[inline]
fn accepts(interest: Interest) -> Ready {
    const ALWAYS: u16 = Ready::ERROR.bits() | Ready::HUP.bits();
    const READ: u16 = Ready::READABLE.bits() | Ready::PRIORITY.bits() | Ready::READ_CLOSED.bits();
    const WRITE: u16 = Ready::WRITABLE.bits();
    const CLOSED: u16 = Ready::READ_CLOSED.bits();
    // Indexed by READ (1) | WRITE (2) | PEER_CLOSED (4).
    const TABLE: [u16; 8] = [
        ALWAYS,
        ALWAYS | READ,
        ALWAYS | WRITE,
        ALWAYS | READ | WRITE,
        ALWAYS | CLOSED,
        ALWAYS | READ | CLOSED,
        ALWAYS | WRITE | CLOSED,
        ALWAYS | READ | WRITE | CLOSED,
    ];
    Ready::from_bits(TABLE[(interest.bits() & 7) as usize])
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Loop-control requests made by handlers.
#[derive(Default, Debug)]
pub(crate) struct Control {
    pub(crate) exit: bool,
    pub(crate) brk: bool,
    pub(crate) exit_at: Option<u64>,
    pub(crate) keep_running: bool,
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
///         ctx.register(&self.sock, SOCK, Watch::read())?;
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
    fd_heads: Vec<u32>,
    pub(crate) timers: Timers,
    queues: ReadyQueues,
    levels: u8,
    default_prio: u8,
    /// Sources per priority level, and whether at most one level is in use: then kernel
    /// events can be dispatched straight from the event buffer, in order, with no queue.
    level_count: [u32; crate::ready_queue::MAX_LEVELS],
    direct: bool,
    shared: Arc<Shared>,
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
        backend.register(shared.waker.as_raw_fd(), WAKE_TOKEN, Interest::READ)?;
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
            fd_heads: vec![NONE; evloop_backends::open_file_limit()],
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

    // ----- clock -------------------------------------------------------------------

    #[inline]
    fn clock(&self) -> u64 {
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

    // ----- slots -------------------------------------------------------------------

    fn alloc(&mut self, kind: Kind, token: Token, prio: u8) -> Result<u32> {
        if prio >= self.levels {
            return Err(Error::InvalidPriority {
                priority: prio,
                levels: self.levels,
            });
        }
        let idx = self.free;
        if idx == NONE {
            return Err(Error::SourcesFull {
                capacity: self.slots.len(),
            });
        }
        let s = &mut self.slots[idx as usize];
        self.free = s.next;
        *s = Slot {
            gen: s.gen,
            kind,
            token,
            prio,
            ..Slot::FREE
        };
        self.used += 1;
        self.count_level(prio, true);
        Ok(idx)
    }

    fn count_level(&mut self, prio: u8, add: bool) {
        let c = &mut self.level_count[prio as usize];
        if add {
            *c += 1;
        } else {
            *c -= 1;
        }
        self.direct = self.level_count.iter().filter(|&&c| c != 0).count() <= 1;
    }

    fn release(&mut self, idx: u32) {
        let prio = self.slots[idx as usize].prio;
        self.count_level(prio, false);
        let s = &mut self.slots[idx as usize];
        let gen = s.gen.wrapping_add(1);
        *s = Slot {
            gen,
            next: self.free,
            ..Slot::FREE
        };
        self.free = idx;
        self.used -= 1;
    }

    #[inline]
    fn id(&self, idx: u32) -> SourceId {
        SourceId {
            index: idx,
            gen: self.slots[idx as usize].gen,
        }
    }

    /// The slot index behind `id`, if `id` is current.
    #[inline]
    fn lookup(&self, id: SourceId) -> Result<u32> {
        match self.slots.get(id.index as usize) {
            Some(s) if s.gen == id.gen && s.kind != Kind::Free => Ok(id.index),
            _ => Err(Error::StaleSource),
        }
    }

    /// Take slot `idx` off the queue it waits in, if any (the ready queues, or the
    /// deferred activations); returns `Some(deferred)` if it was queued. Its `queued`
    /// flag and pending bits are left to the caller.
    fn unqueue(&mut self, idx: u32) -> Option<bool> {
        let s = self.slots[idx as usize];
        if !s.queued {
            return None;
        }
        let q = if s.deferred {
            &mut self.deferred
        } else {
            &mut self.queues
        };
        q.unlink(&mut self.links, idx, s.prio);
        Some(s.deferred)
    }

    #[inline]
    fn mark(&mut self, idx: u32, ready: Ready) {
        let s = &mut self.slots[idx as usize];
        s.pending |= ready;
        if !s.queued {
            s.queued = true;
            let prio = s.prio;
            self.queues.push(&mut self.links, idx, prio);
        }
    }

    // ----- I/O sources -------------------------------------------------------------

    /// Watch an fd-backed source (any `AsFd`: `TcpListener`, `TcpStream`, `UdpSocket`,
    /// `UnixStream`, `File`, `OwnedFd`...). Events come back with `token`. The source must
    /// stay open until [`deregister`](Self::deregister)ed; the machine normally owns it
    /// (as a field, or in a [`Slab`](crate::Slab)).
    ///
    /// Several sources may watch one fd (say, one for read and one for write); each gets
    /// the readiness it asked for. They must agree on edge- versus level-triggering.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let id = el.ctx().register(&listener, Token(1), Watch::read()).unwrap();
    /// assert_eq!(el.ctx().source_count(), 1);
    /// el.ctx().deregister(id).unwrap();
    /// ```
    pub fn register<S: AsFd + ?Sized>(
        &mut self,
        source: &S,
        token: Token,
        watch: impl Into<Watch>,
    ) -> Result<SourceId> {
        self.register_raw(source.as_fd().as_raw_fd(), token, watch)
    }

    /// Like [`register`](Self::register) for a raw fd. The caller keeps `fd` open until
    /// it deregisters it. A negative or closed fd is refused with
    /// [`Error::InvalidFd`].
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// assert!(matches!(el.ctx().register_raw(-1, Token(0), Watch::read()), Err(Error::InvalidFd(-1))));
    /// ```
    pub fn register_raw(
        &mut self,
        fd: RawFd,
        token: Token,
        watch: impl Into<Watch>,
    ) -> Result<SourceId> {
        let w = watch.into();
        if fd < 0 {
            return Err(Error::InvalidFd(fd));
        }
        if let Some(max) = <M::Backend as Backend>::MAX_FD {
            if fd > max {
                return Err(Error::FdTooLarge {
                    fd,
                    max,
                    backend: <M::Backend as Backend>::NAME,
                });
            }
        }
        let prio = w.priority.unwrap_or(self.default_prio);
        let head = self.fd_heads.get(fd as usize).copied().unwrap_or(NONE);
        if head != NONE && self.slots[head as usize].interest.is_edge() != w.interest.is_edge() {
            return Err(Error::WrongKind {
                operation: "mixing edge- and level-triggered sources on one fd",
            });
        }
        let idx = self.alloc(Kind::Io, token, prio)?;
        {
            let s = &mut self.slots[idx as usize];
            s.fd = fd;
            s.interest = w.interest;
            s.oneshot = w.oneshot;
            s.enabled = true;
        }
        let r = if head == NONE {
            let tok = self.id(idx).to_u64();
            self.backend.register(fd, tok, w.interest)
        } else {
            // Append to the fd's chain; the backend keeps the head's token.
            let mut last = head;
            while self.slots[last as usize].next != NONE {
                last = self.slots[last as usize].next;
            }
            self.slots[last as usize].next = idx;
            self.sync_fd(fd);
            Ok(())
        };
        if let Err(e) = r {
            self.release(idx);
            return Err(match e.raw_os_error() {
                Some(libc::EBADF) => Error::InvalidFd(fd),
                _ => Error::Io(e),
            });
        }
        if head == NONE {
            if fd as usize >= self.fd_heads.len() {
                self.fd_heads
                    .resize((fd as usize + 1).next_power_of_two(), NONE);
            }
            self.fd_heads[fd as usize] = idx;
        }
        self.live_io += 1;
        if let Some(t) = w.timeout {
            let d = nanos(t);
            self.slots[idx as usize].duration = d;
            let now = self.clock();
            if self.timers.arm(idx, now, d).is_err() {
                let id = self.id(idx);
                let _ = self.deregister(id);
                return Err(Error::TimerCapacity {
                    capacity: self.timers.capacity(),
                });
            }
        }
        Ok(self.id(idx))
    }

    /// Recompute the union interest of an fd's sources and tell the backend (coalesced).
    fn sync_fd(&mut self, fd: RawFd) {
        let head = self.fd_heads[fd as usize];
        let mut union = Interest::NONE;
        let mut cur = head;
        while cur != NONE {
            let s = &self.slots[cur as usize];
            if s.enabled {
                union |= s.interest;
            }
            cur = s.next;
        }
        if union.is_empty() {
            union = Interest::NONE;
        }
        let tok = self.id(head).to_u64();
        // The fd is registered (it has a head), so modify cannot fail.
        let _ = self.backend.modify(fd, tok, union);
    }

    /// Change what an I/O source watches. Coalesced: changing and changing back before
    /// the next wait costs no kernel call.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let id = el.ctx().register(&a, Token(1), Watch::read()).unwrap();
    /// el.ctx().set_interest(id, Interest::READ | Interest::WRITE).unwrap();
    /// ```
    pub fn set_interest(&mut self, id: SourceId, interest: Interest) -> Result<()> {
        let idx = self.lookup(id)?;
        let s = &mut self.slots[idx as usize];
        if s.kind != Kind::Io {
            return Err(Error::WrongKind {
                operation: "set_interest",
            });
        }
        let keep_edge = s.interest.is_edge();
        s.interest = if keep_edge {
            interest | Interest::EDGE
        } else {
            interest.remove(Interest::EDGE)
        };
        let fd = s.fd;
        self.sync_fd(fd);
        Ok(())
    }

    /// Stop a source without removing it (libev's `ev_io_stop`, libevent's `event_del`):
    /// an I/O source stops watching its fd and its timeout is cancelled; a timer is
    /// disarmed; a signal or user source is no longer dispatched. A dispatch still pending
    /// for it in this iteration (readiness, expiry, activation) is cancelled, as by
    /// `event_del`. The source keeps its id, token and options; [`start`](Self::start)
    /// resumes it. Stopping and starting an I/O source in one iteration costs no kernel
    /// call.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let id = el.ctx().register(&a, Token(1), Watch::read()).unwrap();
    /// el.ctx().stop(id).unwrap();
    /// assert!(!el.ctx().is_active(id));
    /// el.ctx().start(id).unwrap();
    /// assert!(el.ctx().is_active(id));
    /// ```
    pub fn stop(&mut self, id: SourceId) -> Result<()> {
        let idx = self.lookup(id)?;
        self.disable(idx);
        // Cancel a pending dispatch too. (Not in `disable`: a one-shot source is disabled
        // right after being marked, and that dispatch must happen.)
        if self.unqueue(idx).is_some() {
            let s = &mut self.slots[idx as usize];
            s.queued = false;
            s.deferred = false;
            s.pending = Ready::EMPTY;
            s.count = 0;
        }
        Ok(())
    }

    fn disable(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        if !s.enabled {
            return;
        }
        s.enabled = false;
        let (kind, fd) = (s.kind, s.fd);
        self.timers.cancel(idx);
        if kind == Kind::Io {
            self.live_io -= 1;
            self.sync_fd(fd);
        } else if kind == Kind::Signal {
            self.live_signals -= 1;
        }
    }

    /// Resume a stopped source (see [`stop`](Self::stop)); also re-arms a one-shot
    /// source after it fired. An I/O source's timeout and a timer restart from now.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let t = el.ctx().add_timer(Token(1), std::time::Duration::from_secs(60)).unwrap();
    /// el.ctx().stop(t).unwrap();
    /// assert!(el.ctx().timer_remaining(t).is_none());
    /// el.ctx().start(t).unwrap();
    /// assert!(el.ctx().timer_remaining(t).is_some());
    /// ```
    pub fn start(&mut self, id: SourceId) -> Result<()> {
        let idx = self.lookup(id)?;
        let s = &mut self.slots[idx as usize];
        let (kind, fd, d, was) = (s.kind, s.fd, s.duration, s.enabled);
        s.enabled = true;
        if kind == Kind::Io && !was {
            self.live_io += 1;
            self.sync_fd(fd);
        }
        if kind == Kind::Signal && !was {
            self.live_signals += 1;
        }
        if matches!(kind, Kind::Io | Kind::Timer)
            && (d != 0 || kind == Kind::Timer)
            && !self.timers.is_armed(idx)
        {
            self.arm(idx, d)?;
        }
        Ok(())
    }

    /// Whether the source is started (an I/O source watching, a timer armed, a signal
    /// or user source enabled).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let id = el.ctx().add_user(Token(1)).unwrap();
    /// assert!(el.ctx().is_active(id));
    /// ```
    pub fn is_active(&self, id: SourceId) -> bool {
        match self.lookup(id) {
            Ok(idx) => {
                let s = &self.slots[idx as usize];
                match s.kind {
                    Kind::Timer => self.timers.is_armed(idx),
                    _ => s.enabled,
                }
            }
            Err(_) => false,
        }
    }

    fn arm(&mut self, idx: u32, d: u64) -> Result<()> {
        let now = self.clock();
        if idx == self.current {
            self.current_rearmed = true;
        }
        self.timers
            .arm(idx, now, d)
            .map_err(|_| Error::TimerCapacity {
                capacity: self.timers.capacity(),
            })
    }

    /// Set (or clear, with `None`) an I/O source's idle timeout and restart it from now.
    /// The source is dispatched with `Ready::TIMEOUT` when no I/O readiness was
    /// dispatched for that long; when I/O and the timeout coincide, both bits arrive in
    /// one dispatch. Timeouts of equal duration are O(1) to set and reset.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let id = el.ctx().register(&a, Token(1), Watch::read()).unwrap();
    /// el.ctx().set_timeout(id, Some(std::time::Duration::from_secs(30))).unwrap();
    /// assert!(el.ctx().timer_remaining(id).unwrap() <= std::time::Duration::from_secs(30));
    /// ```
    pub fn set_timeout(&mut self, id: SourceId, timeout: Option<Duration>) -> Result<()> {
        let idx = self.lookup(id)?;
        if self.slots[idx as usize].kind != Kind::Io {
            return Err(Error::WrongKind {
                operation: "set_timeout (use set_timer for timers)",
            });
        }
        match timeout {
            Some(t) => {
                let d = nanos(t);
                self.slots[idx as usize].duration = d;
                if self.slots[idx as usize].enabled {
                    self.arm(idx, d)?;
                }
            }
            None => {
                self.slots[idx as usize].duration = 0;
                self.timers.cancel(idx);
                if idx == self.current {
                    self.current_rearmed = true;
                }
            }
        }
        Ok(())
    }

    // ----- timers ------------------------------------------------------------------

    /// A one-shot timer: dispatched once with `Ready::TIMEOUT` after `after`. It stays
    /// registered (unarmed) until removed; [`reset_timer`](Self::reset_timer) arms it
    /// again. Durations too large to represent are clamped: they never fire and never
    /// overflow.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().add_timer(Token(1), std::time::Duration::from_millis(1)).unwrap();
    /// assert_eq!(el.run().unwrap(), Exit::Empty); // fired, then nothing was left
    /// ```
    pub fn add_timer(&mut self, token: Token, after: Duration) -> Result<SourceId> {
        self.add_timer_inner(token, after, false)
    }

    /// A periodic timer: dispatched every `period`. If the process stalls for several
    /// periods it fires once (with `Event::count` saying how many periods passed), not in
    /// a burst, and stays on its original phase.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M(u32); impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, ctx: &mut Ctx<Self>, _: Event) { self.0 += 1; if self.0 == 2 { ctx.exit() } } }
    /// let mut el = EventLoop::new(M(0)).unwrap();
    /// el.ctx().add_periodic(Token(1), std::time::Duration::from_millis(1)).unwrap();
    /// assert_eq!(el.run().unwrap(), Exit::Exited);
    /// ```
    pub fn add_periodic(&mut self, token: Token, period: Duration) -> Result<SourceId> {
        if period.is_zero() {
            return Err(Error::WrongKind {
                operation: "a periodic timer with a zero period",
            });
        }
        self.add_timer_inner(token, period, true)
    }

    fn add_timer_inner(&mut self, token: Token, d: Duration, periodic: bool) -> Result<SourceId> {
        let prio = self.default_prio;
        let idx = self.alloc(Kind::Timer, token, prio)?;
        let s = &mut self.slots[idx as usize];
        s.duration = nanos(d);
        s.periodic = periodic;
        s.enabled = true;
        if let Err(e) = self.arm(idx, nanos(d)) {
            self.release(idx);
            return Err(e);
        }
        Ok(self.id(idx))
    }

    /// Re-arm a timer from now with its own duration (a one-shot timer that fired, or a
    /// running one pushed back). O(1) when other timers share its duration.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let t = el.ctx().add_timer(Token(1), std::time::Duration::from_secs(5)).unwrap();
    /// el.ctx().reset_timer(t).unwrap();
    /// ```
    pub fn reset_timer(&mut self, id: SourceId) -> Result<()> {
        let idx = self.lookup(id)?;
        let s = &mut self.slots[idx as usize];
        if s.kind != Kind::Timer {
            return Err(Error::WrongKind {
                operation: "reset_timer",
            });
        }
        s.enabled = true;
        let d = s.duration;
        self.arm(idx, d)
    }

    /// Change a timer's duration (delay or period) and re-arm it from now.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let t = el.ctx().add_timer(Token(1), std::time::Duration::from_secs(5)).unwrap();
    /// el.ctx().set_timer(t, std::time::Duration::from_secs(1)).unwrap();
    /// assert!(el.ctx().timer_remaining(t).unwrap() <= std::time::Duration::from_secs(1));
    /// ```
    pub fn set_timer(&mut self, id: SourceId, duration: Duration) -> Result<()> {
        let idx = self.lookup(id)?;
        let s = &mut self.slots[idx as usize];
        if s.kind != Kind::Timer {
            return Err(Error::WrongKind {
                operation: "set_timer (use set_timeout for I/O sources)",
            });
        }
        if s.periodic && duration.is_zero() {
            return Err(Error::WrongKind {
                operation: "a periodic timer with a zero period",
            });
        }
        s.duration = nanos(duration);
        s.enabled = true;
        let d = s.duration;
        self.arm(idx, d)
    }

    /// Time left before the source's timer (or I/O timeout) fires, from the cached now;
    /// `None` if it is not armed.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let t = el.ctx().add_timer(Token(1), std::time::Duration::from_secs(5)).unwrap();
    /// assert!(el.ctx().timer_remaining(t).is_some());
    /// ```
    pub fn timer_remaining(&self, id: SourceId) -> Option<Duration> {
        let idx = self.lookup(id).ok()?;
        let d = self.timers.deadline(idx)?;
        Some(Duration::from_nanos(d.saturating_sub(self.clock())))
    }

    // ----- signals, user sources, wake -------------------------------------------

    /// Watch a signal. Its handler runs in loop context (never in the signal handler),
    /// dispatched with `Ready::SIGNAL` and `Event::count` = arrivals since the last
    /// dispatch. Our `sigaction` chains to the handler installed before it and restores it
    /// when the last watcher goes. Several loops may watch one signal; all hear it.
    /// SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL and SIGFPE are refused.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// assert!(matches!(el.ctx().add_signal(libc::SIGKILL, Token(9)), Err(Error::SignalRefused(_))));
    /// assert!(matches!(el.ctx().add_signal(999, Token(9)), Err(Error::InvalidSignal(999))));
    /// ```
    pub fn add_signal(&mut self, signo: i32, token: Token) -> Result<SourceId> {
        match registry::check(signo) {
            Err(Refusal::Refused) => return Err(Error::SignalRefused(signo)),
            Err(_) => return Err(Error::InvalidSignal(signo)),
            Ok(()) => {}
        }
        if self.signal_slots[signo as usize] != NONE {
            return Err(Error::SignalBusy(signo));
        }
        let prio = self.default_prio;
        let idx = self.alloc(Kind::Signal, token, prio)?;
        let sub = match registry::subscribe(signo, self.shared.waker.wake_fd()) {
            Ok(sub) => sub,
            Err(r) => {
                self.release(idx);
                return Err(match r {
                    Refusal::Busy => Error::SignalBusy(signo),
                    Refusal::Refused => Error::SignalRefused(signo),
                    Refusal::Invalid => Error::InvalidSignal(signo),
                });
            }
        };
        let s = &mut self.slots[idx as usize];
        s.fd = signo;
        s.sub = sub as u32;
        s.enabled = true;
        self.signal_slots[signo as usize] = idx;
        self.signal_mask |= 1 << signo;
        self.nsignals += 1;
        self.live_signals += 1;
        Ok(self.id(idx))
    }

    /// A source with no fd, dispatched only when activated (by
    /// [`activate`](Self::activate) or a [`WakeHandle`]); libevent's `event_active` on a
    /// pure event. It does not keep the loop running on its own.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let id = el.ctx().add_user(Token(3)).unwrap();
    /// el.ctx().activate(id, Ready::EMPTY).unwrap();
    /// assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    /// ```
    pub fn add_user(&mut self, token: Token) -> Result<SourceId> {
        let prio = self.default_prio;
        let idx = self.alloc(Kind::User, token, prio)?;
        self.slots[idx as usize].enabled = true;
        Ok(self.id(idx))
    }

    /// The loop's wake source: dispatched with `Ready::WAKE` after
    /// [`WakeHandle::wake`], once per burst of wakes. One per loop.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().add_wake(Token(7)).unwrap();
    /// assert!(el.ctx().add_wake(Token(8)).is_err());
    /// ```
    pub fn add_wake(&mut self, token: Token) -> Result<SourceId> {
        if self.wake_slot != NONE {
            return Err(Error::WrongKind {
                operation: "a second wake source (a loop has one)",
            });
        }
        let prio = self.default_prio;
        let idx = self.alloc(Kind::Wake, token, prio)?;
        self.slots[idx as usize].enabled = true;
        self.wake_slot = idx;
        Ok(self.id(idx))
    }

    /// A handle to wake this loop or activate its sources from another thread.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let h = el.ctx().wake_handle();
    /// std::thread::spawn(move || h.wake().unwrap()).join().unwrap();
    /// ```
    pub fn wake_handle(&self) -> WakeHandle {
        WakeHandle {
            shared: self.shared.clone(),
        }
    }

    /// Activate a source by hand: it is dispatched with `ready | Ready::ACTIVATED`, merged
    /// with anything else that happened to it. Called from a handler, a source *more
    /// urgent* than the handler's own runs in this iteration, before everything less
    /// urgent still waiting; any other runs in the next iteration (so a source that
    /// re-activates itself yields to I/O and timers instead of starving them). Called
    /// outside the loop, it runs in the next iteration.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, ev: Event) { assert!(ev.ready.is_activated()) } }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let id = el.ctx().register(&a, Token(1), Watch::read()).unwrap();
    /// el.ctx().activate(id, Ready::READABLE).unwrap();
    /// el.run_nowait().unwrap();
    /// ```
    pub fn activate(&mut self, id: SourceId, ready: Ready) -> Result<()> {
        let idx = self.lookup(id)?;
        let ready = ready | Ready::ACTIVATED;
        let cur = self.current;
        if cur != NONE && self.slots[idx as usize].prio >= self.slots[cur as usize].prio {
            // Not more urgent than the running handler's source: next iteration, so a
            // source re-activating itself (or two activating each other) cannot starve
            // I/O and timers.
            let s = &mut self.slots[idx as usize];
            s.pending |= ready;
            if !s.queued {
                s.queued = true;
                s.deferred = true;
                let prio = s.prio;
                self.deferred.push(&mut self.links, idx, prio);
            }
            return Ok(());
        }
        self.mark(idx, ready);
        Ok(())
    }

    /// Move activations deferred by handlers into the ready queues (start of an
    /// iteration; they make its wait non-blocking).
    pub(crate) fn promote_deferred(&mut self) {
        while let Some(idx) = self.deferred.pop(&mut self.links) {
            let s = &mut self.slots[idx as usize];
            s.deferred = false;
            let prio = s.prio;
            self.queues.push(&mut self.links, idx, prio);
        }
    }

    pub(crate) fn reset_current(&mut self) {
        self.current = NONE;
    }

    /// Change a source's dispatch priority (0 is the most urgent).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = Builder::new().priorities(3).build(M).unwrap();
    /// let id = el.ctx().add_user(Token(1)).unwrap();
    /// el.ctx().set_priority(id, 0).unwrap();
    /// assert!(el.ctx().set_priority(id, 3).is_err());
    /// ```
    pub fn set_priority(&mut self, id: SourceId, priority: u8) -> Result<()> {
        let idx = self.lookup(id)?;
        if priority >= self.levels {
            return Err(Error::InvalidPriority {
                priority,
                levels: self.levels,
            });
        }
        let s = self.slots[idx as usize];
        if let Some(deferred) = self.unqueue(idx) {
            let q = if deferred {
                &mut self.deferred
            } else {
                &mut self.queues
            };
            q.push(&mut self.links, idx, priority);
        }
        self.count_level(s.prio, false);
        self.count_level(priority, true);
        self.slots[idx as usize].prio = priority;
        Ok(())
    }

    /// Remove a source of any kind. Its pending dispatch, if any, is cancelled (a source
    /// removed by an earlier handler of the same iteration is not dispatched), its timer
    /// disarmed, its fd deregistered at once (so the fd can be closed right after), its
    /// signal disposition restored if it was the last watcher. The id becomes stale.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let id = el.ctx().add_timer(Token(1), std::time::Duration::from_secs(1)).unwrap();
    /// el.ctx().deregister(id).unwrap();
    /// assert_eq!(el.ctx().source_count(), 0);
    /// ```
    pub fn deregister(&mut self, id: SourceId) -> Result<()> {
        let idx = self.lookup(id)?;
        let s = self.slots[idx as usize];
        self.unqueue(idx);
        self.timers.cancel(idx);
        let mut result = Ok(());
        match s.kind {
            Kind::Io => {
                if s.enabled {
                    self.live_io -= 1;
                }
                let fd = s.fd;
                let head = self.fd_heads[fd as usize];
                if head == idx {
                    self.fd_heads[fd as usize] = s.next;
                    if s.next == NONE {
                        result = self.backend.deregister(fd).map_err(Error::Io);
                    }
                } else {
                    let mut cur = head;
                    while self.slots[cur as usize].next != idx {
                        cur = self.slots[cur as usize].next;
                    }
                    self.slots[cur as usize].next = s.next;
                }
                // Release before re-syncing so the head's token (generation) is current.
                self.release(idx);
                if self.fd_heads[fd as usize] != NONE {
                    self.sync_fd(fd);
                }
                return result;
            }
            Kind::Signal => {
                registry::unsubscribe(s.fd, s.sub as usize);
                self.signal_slots[s.fd as usize] = NONE;
                self.signal_mask &= !(1 << s.fd);
                self.nsignals -= 1;
                if s.enabled {
                    self.live_signals -= 1;
                }
            }
            Kind::Wake => self.wake_slot = NONE,
            Kind::Timer | Kind::User | Kind::Free => {}
        }
        self.release(idx);
        result
    }

    /// The source watching `source`'s fd (the first, if several do), e.g. to change
    /// what a field registered by `#[event_machine]` watches from outside its handlers.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// assert_eq!(el.ctx().source_of(&a), None);
    /// let id = el.ctx().register(&a, Token(1), Watch::read()).unwrap();
    /// assert_eq!(el.ctx().source_of(&a), Some(id));
    /// ```
    pub fn source_of<S: AsFd + ?Sized>(&self, source: &S) -> Option<SourceId> {
        let fd = source.as_fd().as_raw_fd();
        let head = self.fd_heads.get(fd as usize).copied().unwrap_or(NONE);
        (head != NONE).then(|| self.id(head))
    }

    /// Remove every source watching `source`'s fd (as [`deregister`](Self::deregister)
    /// each), and return how many there were. Handy for a field registered by
    /// `#[event_machine]`, whose [`SourceId`] the program never saw: a server stops
    /// accepting with `ctx.deregister_fd(&self.listener)`.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// el.ctx().register(&listener, Token(1), Watch::read()).unwrap();
    /// assert_eq!(el.ctx().deregister_fd(&listener).unwrap(), 1);
    /// assert_eq!(el.ctx().source_count(), 0);
    /// ```
    pub fn deregister_fd<S: AsFd + ?Sized>(&mut self, source: &S) -> Result<usize> {
        let fd = source.as_fd().as_raw_fd();
        let mut n = 0;
        loop {
            let head = self.fd_heads.get(fd as usize).copied().unwrap_or(NONE);
            if head == NONE {
                return Ok(n);
            }
            let id = self.id(head);
            self.deregister(id)?;
            n += 1;
        }
    }

    // ----- loop control ------------------------------------------------------------

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
    /// el.ctx().keep_running(true);
    /// el.ctx().exit_after(std::time::Duration::from_millis(2));
    /// assert_eq!(el.run().unwrap(), Exit::Exited);
    /// ```
    pub fn exit_after(&mut self, delay: Duration) {
        let now = self.clock();
        self.control.exit_at = Some(now.saturating_add(nanos(delay)));
    }

    /// Stop right after the current handler; events not yet dispatched stay queued for
    /// the next run (libevent's `event_base_loopbreak`). `run` returns
    /// [`Exit::Broken`](crate::Exit::Broken).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, ctx: &mut Ctx<Self>, _: Event) { ctx.break_loop() } }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().add_periodic(Token(1), std::time::Duration::from_millis(1)).unwrap();
    /// assert_eq!(el.run().unwrap(), Exit::Broken);
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

    /// Keep `run` going even when no source is active (it then waits for wakes,
    /// activations from other threads, or `exit_after`).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// assert_eq!(el.run().unwrap(), Exit::Empty);
    /// ```
    pub fn keep_running(&mut self, yes: bool) {
        self.control.keep_running = yes;
    }

    // ----- introspection ----------------------------------------------------------

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

    // ----- the iteration (used by EventLoop) -------------------------------------

    /// Whether nothing can make the loop dispatch again.
    pub(crate) fn is_idle(&self) -> bool {
        !self.control.idle
            && self.live_io == 0
            && self.timers.armed() == 0
            && self.live_signals == 0
            && self.queues.is_empty()
            && self.deferred.is_empty()
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.queues.is_empty() || !self.deferred.is_empty()
    }

    /// How long the backend may block: until the next timer or delayed exit.
    pub(crate) fn wait_timeout(&self) -> Option<Duration> {
        if self.has_ready() || self.control.idle {
            return Some(Duration::ZERO);
        }
        let next = match (self.timers.next_deadline(), self.control.exit_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        if next == u64::MAX {
            return None;
        }
        Some(Duration::from_nanos(next.saturating_sub(self.clock())))
    }

    /// Handle one backend event. Returns the event to dispatch right away when that is
    /// equivalent to queueing it (one priority level in use, a single source on the fd,
    /// nothing already pending for it); otherwise records it as pending and returns
    /// `None`. Each call re-validates its slot, so a source removed or stopped by an
    /// earlier handler of this iteration is skipped.
    #[inline]
    pub(crate) fn io_event(&mut self, ev: evloop_backends::Event) -> Option<Event> {
        if ev.token == WAKE_TOKEN {
            self.on_wake();
            return None;
        }
        let id = SourceId::from_u64(ev.token);
        let idx = id.index;
        let s = self.slots.get(idx as usize)?;
        if s.gen != id.gen || s.kind != Kind::Io {
            return None; // stale: the source was removed since
        }
        if !self.direct || s.next != NONE || s.queued {
            self.collect_one(ev);
            return None;
        }
        if !s.enabled {
            return None;
        }
        let ready = ev.ready.intersection(accepts(s.interest));
        if ready.is_empty() {
            return None;
        }
        let token = s.token;
        if s.oneshot {
            self.disable(idx);
        }
        self.current = idx;
        self.current_rearmed = false;
        Some(Event {
            token,
            ready,
            source: id,
            count: 0,
        })
    }

    /// Record a backend event as pending on every source of its fd.
    pub(crate) fn collect_one(&mut self, ev: evloop_backends::Event) {
        if ev.token == WAKE_TOKEN {
            self.on_wake();
            return;
        }
        let id = SourceId::from_u64(ev.token);
        let mut idx = id.index;
        match self.slots.get(idx as usize) {
            Some(s) if s.gen == id.gen && s.kind == Kind::Io => {}
            _ => return, // stale: the source was removed since
        }
        while idx != NONE {
            let s = &self.slots[idx as usize];
            let next = s.next;
            if s.enabled {
                let r = ev.ready.intersection(accepts(s.interest));
                if !r.is_empty() {
                    let oneshot = s.oneshot;
                    self.mark(idx, r);
                    if oneshot {
                        self.disable(idx);
                    }
                }
            }
            idx = next;
        }
    }

    /// Mark every expired timer's source.
    pub(crate) fn expire_timers(&mut self) {
        if self.timers.armed() == 0 && self.control.exit_at.is_none() {
            return;
        }
        let now = self.clock();
        while let Some((idx, deadline)) = self.timers.pop_expired(now) {
            let s = self.slots[idx as usize];
            match s.kind {
                Kind::Timer if s.periodic => {
                    // Fire once however many periods were missed, and keep the phase.
                    let period = s.duration.max(1);
                    let missed = (now - deadline) / period;
                    let next = deadline.saturating_add(period.saturating_mul(missed + 1));
                    let _ = self.timers.arm_at(idx, next, period);
                    let s = &mut self.slots[idx as usize];
                    s.count = s
                        .count
                        .saturating_add(u32::try_from(missed + 1).unwrap_or(u32::MAX));
                    self.mark(idx, Ready::TIMEOUT);
                }
                Kind::Timer => self.mark(idx, Ready::TIMEOUT),
                Kind::Io => {
                    self.mark(idx, Ready::TIMEOUT);
                    if s.oneshot {
                        self.disable(idx);
                    } else {
                        // A persistent source keeps timing out every idle period.
                        let _ = self.timers.arm(idx, now, s.duration);
                    }
                }
                _ => {}
            }
        }
        if let Some(at) = self.control.exit_at {
            if at <= now {
                self.control.exit_at = None;
                self.control.exit = true;
            }
        }
    }

    fn on_wake(&mut self) {
        self.shared.waker.drain();
        if self.shared.exit.swap(false, Ordering::AcqRel) {
            self.control.exit = true; // `WakeHandle::exit` from another thread
        }
        if self.shared.woken.swap(false, Ordering::AcqRel) && self.wake_slot != NONE {
            let w = self.wake_slot;
            if self.slots[w as usize].enabled {
                self.mark(w, Ready::WAKE);
            }
        }
        if self.shared.has_activations.swap(false, Ordering::AcqRel) {
            loop {
                let next = {
                    let mut ring = self.shared.ring.lock().unwrap_or_else(|e| e.into_inner());
                    ring.pop()
                };
                let Some(id) = next else { break };
                if let Ok(idx) = self.lookup(id) {
                    self.mark(idx, Ready::ACTIVATED);
                }
            }
        }
        let mut mask = self.signal_mask;
        while mask != 0 {
            let signo = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let idx = self.signal_slots[signo];
            let sub = self.slots[idx as usize].sub as usize;
            let n = registry::take(signo as i32, sub);
            if n > 0 && self.slots[idx as usize].enabled {
                let s = &mut self.slots[idx as usize];
                s.count = s.count.saturating_add(n);
                self.mark(idx, Ready::SIGNAL);
            }
        }
    }

    /// Pop the next source to dispatch, most urgent first.
    #[inline]
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        let idx = self.queues.pop(&mut self.links)?;
        let s = &mut self.slots[idx as usize];
        s.queued = false;
        let ready = std::mem::take(&mut s.pending);
        let count = std::mem::take(&mut s.count);
        self.current = idx;
        self.current_rearmed = false;
        Some(Event {
            token: s.token,
            ready,
            source: SourceId {
                index: idx,
                gen: s.gen,
            },
            count,
        })
    }

    /// After a handler: restart an I/O source's idle timeout unless the handler re-armed
    /// or cleared it itself.
    #[inline]
    pub(crate) fn finish(&mut self, ev: &Event) {
        let idx = ev.source.index;
        self.current = NONE;
        let s = &self.slots[idx as usize];
        if s.duration != 0
            && s.kind == Kind::Io
            && s.gen == ev.source.gen
            && s.enabled
            && ev.ready.is_io()
            && !self.current_rearmed
        {
            let d = s.duration;
            let now = self.clock();
            let _ = self.timers.arm(idx, now, d);
        }
    }

    /// After `fork()`, in the child: fresh backend kernel objects and a fresh wake fd.
    pub(crate) fn reinit(&mut self) -> Result<()> {
        self.backend.reinit()?;
        let shared = Shared::new(self.activation_capacity)?;
        let old_fd = self.shared.waker.as_raw_fd();
        self.backend.deregister(old_fd)?;
        self.backend
            .register(shared.waker.as_raw_fd(), WAKE_TOKEN, Interest::READ)?;
        let mut mask = self.signal_mask;
        while mask != 0 {
            let signo = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let idx = self.signal_slots[signo];
            registry::rebind(
                signo as i32,
                self.slots[idx as usize].sub as usize,
                shared.waker.wake_fd(),
            );
        }
        self.shared = shared;
        Ok(())
    }
}

impl<M: Machine> Drop for Ctx<M> {
    fn drop(&mut self) {
        // Signals are process-wide: give back every disposition we took.
        let mut mask = self.signal_mask;
        while mask != 0 {
            let signo = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let idx = self.signal_slots[signo];
            registry::unsubscribe(signo as i32, self.slots[idx as usize].sub as usize);
        }
    }
}

/// A printable listing of a loop's sources; see [`Ctx::dump`].
///
/// ```
/// # use evloop_core::*;
/// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
/// let mut el = EventLoop::new(M).unwrap();
/// println!("{}", el.ctx().dump());
/// ```
pub struct Dump<'a, M: Machine> {
    ctx: &'a Ctx<M>,
}

impl<M: Machine> fmt::Display for Dump<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.ctx;
        writeln!(
            f,
            "evloop ({} backend): {} sources, {} timers armed, {} signals",
            <M::Backend as Backend>::NAME,
            c.used,
            c.timers.armed(),
            c.nsignals
        )?;
        for (i, s) in c.slots.iter().enumerate() {
            let kind = match s.kind {
                Kind::Free => continue,
                Kind::Io => "io",
                Kind::Timer => "timer",
                Kind::Signal => "signal",
                Kind::User => "user",
                Kind::Wake => "wake",
            };
            write!(
                f,
                "  #{i} {kind} token={} prio={} {}",
                s.token.0,
                s.prio,
                if s.enabled { "active" } else { "stopped" }
            )?;
            match s.kind {
                Kind::Io => write!(
                    f,
                    " fd={} {:?}{}",
                    s.fd,
                    s.interest,
                    if s.oneshot { " oneshot" } else { "" }
                )?,
                Kind::Signal => write!(f, " signo={}", s.fd)?,
                Kind::Timer => write!(f, " {}", if s.periodic { "periodic" } else { "once" })?,
                _ => {}
            }
            if let Some(d) = c.timers.deadline(i as u32) {
                write!(
                    f,
                    " due_in={:?}",
                    Duration::from_nanos(d.saturating_sub(c.now.get()))
                )?;
            }
            if s.queued {
                write!(f, " pending={:?}", s.pending)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

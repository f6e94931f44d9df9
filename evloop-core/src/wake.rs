//! Waking the loop, and activating its sources, from other threads.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use evloop_backends::Waker;

use crate::{Error, Result, SourceId};

/// State shared between a loop and its [`WakeHandle`]s.
pub(crate) struct Shared {
    pub(crate) waker: Waker,
    pub(crate) woken: AtomicBool,
    pub(crate) has_activations: AtomicBool,
    /// Set by [`WakeHandle::exit`]; the loop turns it into `Ctx::exit`.
    pub(crate) exit: AtomicBool,
    pub(crate) ring: Mutex<Ring>,
}

/// A fixed-capacity FIFO of activations sent from other threads.
pub(crate) struct Ring {
    buf: Box<[SourceId]>,
    head: usize,
    len: usize,
}

impl Ring {
    fn push(&mut self, id: SourceId) -> bool {
        if self.len == self.buf.len() {
            return false;
        }
        let i = (self.head + self.len) % self.buf.len();
        self.buf[i] = id;
        self.len += 1;
        true
    }

    pub(crate) fn pop(&mut self) -> Option<SourceId> {
        if self.len == 0 {
            return None;
        }
        let id = self.buf[self.head];
        self.head = (self.head + 1) % self.buf.len();
        self.len -= 1;
        Some(id)
    }
}

impl Shared {
    pub(crate) fn new(capacity: usize) -> io::Result<Arc<Shared>> {
        Ok(Arc::new(Shared {
            waker: Waker::new()?,
            woken: AtomicBool::new(false),
            has_activations: AtomicBool::new(false),
            exit: AtomicBool::new(false),
            ring: Mutex::new(Ring {
                buf: vec![SourceId { index: 0, gen: 0 }; capacity.max(1)].into_boxed_slice(),
                head: 0,
                len: 0,
            }),
        }))
    }
}

/// Wakes a loop, or activates one of its sources, from any thread. Cheap to clone.
///
/// Wakes coalesce: a burst of `wake()` calls before the loop runs costs one wake-up and
/// one dispatch of the loop's wake source (see [`Ctx::add_wake`](crate::Ctx::add_wake)).
///
/// ```
/// use evloop_core::*;
/// struct M { woken: u32 }
/// const WAKE: Token = Token(0);
/// impl Machine for M {
///     type Backend = DefaultBackend;
///     fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> { ctx.add_wake(WAKE)?; Ok(()) }
///     fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
///         if ev.token == WAKE { self.woken += 1; ctx.exit(); }
///     }
/// }
/// let mut el = EventLoop::new(M { woken: 0 }).unwrap();
/// let handle = el.ctx().wake_handle();
/// std::thread::spawn(move || { for _ in 0..100 { handle.wake().unwrap(); } }).join().unwrap();
/// el.ctx().set_exit_when_empty(false);
/// el.run().unwrap();
/// assert_eq!(el.machine().woken, 1);
/// ```
#[derive(Clone)]
pub struct WakeHandle {
    pub(crate) shared: Arc<Shared>,
}

impl WakeHandle {
    /// Wake the loop; its wake source (if any) is dispatched with `Ready::WAKE`.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().wake_handle().wake().unwrap();
    /// ```
    pub fn wake(&self) -> io::Result<()> {
        self.shared.woken.store(true, Ordering::Release);
        self.shared.waker.wake()
    }

    /// Ask the loop to exit, as if a handler called [`Ctx::exit`](crate::Ctx::exit):
    /// the loop wakes, finishes the handlers of that iteration and `run` returns
    /// [`Exit::Exited`](crate::Exit::Exited) with the machine intact. This is the
    /// thread-safe `event_base_loopexit`; [`Workers::stop`](crate::workers::Workers::stop)
    /// sends it to every worker. A request made while the loop is not running ends its
    /// next run at its first iteration.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().set_exit_when_empty(false); // would otherwise wait forever
    /// let h = el.ctx().wake_handle();
    /// std::thread::spawn(move || h.exit().unwrap()).join().unwrap();
    /// assert_eq!(el.run().unwrap(), Exit::Exited);
    /// ```
    pub fn exit(&self) -> io::Result<()> {
        self.shared.exit.store(true, Ordering::Release);
        self.shared.waker.wake()
    }

    /// Activate source `id` as if by [`Ctx::activate`](crate::Ctx::activate); it is
    /// dispatched with `Ready::ACTIVATED`. Never blocks on the loop: if the fixed queue
    /// is full the activation is refused with [`Error::ActivationQueueFull`]. A stale
    /// `id` is dropped by the loop.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, ctx: &mut Ctx<Self>, _: Event) { ctx.exit() } }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let id = el.ctx().add_user(Token(5)).unwrap();
    /// let h = el.ctx().wake_handle();
    /// std::thread::spawn(move || h.activate(id).unwrap()).join().unwrap();
    /// el.ctx().set_exit_when_empty(false);
    /// assert_eq!(el.run().unwrap(), Exit::Exited);
    /// ```
    pub fn activate(&self, id: SourceId) -> Result<()> {
        {
            let mut ring = self.shared.ring.lock().unwrap_or_else(|e| e.into_inner());
            if !ring.push(id) {
                return Err(Error::ActivationQueueFull);
            }
        }
        self.shared.has_activations.store(true, Ordering::Release);
        self.shared.waker.wake()?;
        Ok(())
    }
}

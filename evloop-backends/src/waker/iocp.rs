use std::io;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::windows::port::{Port, WAKE_KEY};

/// No wake since the last drain.
const IDLE: u8 = 0;
/// Woken; a completion is queued to the port (or will be, once the waker is registered).
const POSTED: u8 = 1;
/// Woken, the backend has reported it, and nobody has drained it yet (so the backend
/// reports it again on its next wait: the wake is level-triggered, as an fd would be).
const DELIVERED: u8 = 2;

/// A cross-thread wake for the Windows backend: [`wake`](Waker::wake) posts one
/// completion to the port of the backend the waker is registered with
/// ([`Backend::register_waker`](crate::Backend::register_waker)). Wakes before the loop
/// drains coalesce into one report, and the report repeats on each wait until
/// [`drain`](Waker::drain). Wakes before registration are kept and reported once it
/// happens.
///
/// ```
/// use evloop_backends::Waker;
/// let w = Waker::new().unwrap();
/// w.wake().unwrap();
/// w.wake().unwrap();
/// assert!(w.drain()); // both wakes drained at once
/// assert!(!w.drain());
/// ```
#[derive(Debug)]
pub struct Waker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: AtomicU8,
    /// Names this waker in its completions (a number, never a pointer, so a completion
    /// that outlives the waker is merely ignored).
    id: u64,
    /// The port of the backend this waker is registered with.
    port: Mutex<Option<Arc<Port>>>,
}

/// The backend's handle on a registered waker.
#[derive(Debug, Clone)]
pub(crate) struct WakerRef(Arc<Inner>);

impl Waker {
    /// Create a waker (no kernel object: it is bound to a port when registered).
    ///
    /// ```
    /// let w = evloop_backends::Waker::new().unwrap();
    /// # drop(w);
    /// ```
    pub fn new() -> io::Result<Waker> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Ok(Waker {
            inner: Arc::new(Inner {
                state: AtomicU8::new(IDLE),
                id: NEXT.fetch_add(1, Ordering::Relaxed),
                port: Mutex::new(None),
            }),
        })
    }

    /// Wake the loop watching this waker. Safe to call from any thread; a wake that is
    /// already pending costs one atomic operation.
    ///
    /// ```
    /// let w = std::sync::Arc::new(evloop_backends::Waker::new().unwrap());
    /// let w2 = w.clone();
    /// std::thread::spawn(move || w2.wake().unwrap()).join().unwrap();
    /// assert!(w.drain());
    /// ```
    pub fn wake(&self) -> io::Result<()> {
        if self
            .inner
            .state
            .compare_exchange(IDLE, POSTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            if let Err(e) = self.inner.post() {
                // Nothing is queued: leave the waker idle, so the next wake posts again.
                let _ = self.inner.state.compare_exchange(
                    POSTED,
                    IDLE,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                return Err(e);
            }
        }
        Ok(())
    }

    /// Consume all pending wakes; returns whether there were any.
    ///
    /// ```
    /// let w = evloop_backends::Waker::new().unwrap();
    /// assert!(!w.drain());
    /// ```
    pub fn drain(&self) -> bool {
        self.inner.state.swap(IDLE, Ordering::AcqRel) != IDLE
    }

    /// Another handle on the same waker: a wake through either is the same wake, and
    /// both stay bound to the backend the waker is registered with. (The console control
    /// handler keeps one for each loop that watches a console event.)
    ///
    /// ```
    /// let w = evloop_backends::Waker::new().unwrap();
    /// let w2 = w.try_clone().unwrap();
    /// w2.wake().unwrap();
    /// assert!(w.drain());
    /// ```
    pub fn try_clone(&self) -> io::Result<Waker> {
        Ok(Waker {
            inner: self.inner.clone(),
        })
    }

    /// The backend's handle on this waker.
    pub(crate) fn handle(&self) -> WakerRef {
        WakerRef(self.inner.clone())
    }
}

impl Inner {
    fn post(&self) -> io::Result<()> {
        let port = self.port.lock().unwrap_or_else(|e| e.into_inner());
        match port.as_ref() {
            Some(port) => port.post(WAKE_KEY, self.id as usize),
            None => Ok(()),
        }
    }
}

impl WakerRef {
    /// The number this waker's completions carry.
    pub(crate) fn id(&self) -> u64 {
        self.0.id
    }

    /// Whether this is the handle of `w`.
    pub(crate) fn is(&self, w: &Waker) -> bool {
        Arc::ptr_eq(&self.0, &w.inner)
    }

    /// Route wakes to `port`; a wake that came before is posted now. A waker is bound
    /// to one backend at a time: `AlreadyExists` if it is bound already.
    pub(crate) fn bind(&self, port: &Arc<Port>) -> io::Result<()> {
        {
            let mut bound = self.0.port.lock().unwrap_or_else(|e| e.into_inner());
            if bound.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "this waker is registered with another backend (deregister it there first)",
                ));
            }
            *bound = Some(port.clone());
        }
        if self.0.state.load(Ordering::Acquire) == POSTED {
            if let Err(e) = self.0.post() {
                self.unbind(port);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Stop routing wakes to `port` (which may close), if they still go there.
    pub(crate) fn unbind(&self, port: &Arc<Port>) {
        let mut bound = self.0.port.lock().unwrap_or_else(|e| e.into_inner());
        if bound.as_ref().is_some_and(|p| Arc::ptr_eq(p, port)) {
            *bound = None;
        }
    }

    /// A completion of this waker was dequeued: whether it is to be reported (it is not
    /// when a drain came between the post and now, or it was reported already).
    pub(crate) fn take_delivery(&self) -> bool {
        self.0
            .state
            .compare_exchange(POSTED, DELIVERED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Reported before and not drained since: to be reported again.
    pub(crate) fn undrained(&self) -> bool {
        self.0.state.load(Ordering::Acquire) == DELIVERED
    }
}

//! How an I/O source is watched: interest, trigger mode, one-shot, priority, timeout.

use std::time::Duration;

use evloop_backends::Interest;

/// Options for an I/O registration. Level-triggered and persistent by default.
///
/// ```
/// use evloop_core::Watch;
/// use std::time::Duration;
/// let w = Watch::read().peer_closed().timeout(Duration::from_secs(30)).priority(0);
/// assert!(w.interest().is_readable() && w.interest().is_peer_closed());
/// let once = Watch::write().oneshot();
/// assert!(once.is_oneshot());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watch {
    pub(crate) interest: Interest,
    pub(crate) oneshot: bool,
    pub(crate) priority: Option<u8>,
    pub(crate) timeout: Option<Duration>,
}

impl Watch {
    /// Watch for `interest`.
    ///
    /// ```
    /// use evloop_core::{Interest, Watch};
    /// let w = Watch::new(Interest::READ | Interest::WRITE);
    /// # let _ = w;
    /// ```
    pub const fn new(interest: Interest) -> Watch {
        Watch {
            interest,
            oneshot: false,
            priority: None,
            timeout: None,
        }
    }
    /// Readable.
    ///
    /// ```
    /// assert!(evloop_core::Watch::read().interest().is_readable());
    /// ```
    pub const fn read() -> Watch {
        Watch::new(Interest::READ)
    }
    /// Writable.
    ///
    /// ```
    /// assert!(evloop_core::Watch::write().interest().is_writable());
    /// ```
    pub const fn write() -> Watch {
        Watch::new(Interest::WRITE)
    }
    /// Readable and writable.
    ///
    /// ```
    /// let i = evloop_core::Watch::both().interest();
    /// assert!(i.is_readable() && i.is_writable());
    /// ```
    pub const fn both() -> Watch {
        Watch::new(Interest::from_bits(
            Interest::READ.bits() | Interest::WRITE.bits(),
        ))
    }
    /// Edge-triggered (see the backend contract for backends without native edges).
    ///
    /// ```
    /// assert!(evloop_core::Watch::read().edge().interest().is_edge());
    /// ```
    pub const fn edge(self) -> Watch {
        Watch {
            interest: Interest::from_bits(self.interest.bits() | Interest::EDGE.bits()),
            ..self
        }
    }
    /// Also report the peer closing its side as `READ_CLOSED`.
    ///
    /// ```
    /// assert!(evloop_core::Watch::read().peer_closed().interest().is_peer_closed());
    /// ```
    pub const fn peer_closed(self) -> Watch {
        Watch {
            interest: Interest::from_bits(self.interest.bits() | Interest::PEER_CLOSED.bits()),
            ..self
        }
    }
    /// Disarm after the first dispatch; re-arm with [`Ctx::start`](crate::Ctx::start)
    /// (inside the handler this costs no kernel call).
    ///
    /// ```
    /// assert!(evloop_core::Watch::read().oneshot().is_oneshot());
    /// ```
    pub const fn oneshot(self) -> Watch {
        Watch {
            oneshot: true,
            ..self
        }
    }
    /// Dispatch priority (0 is the most urgent); default: the loop's middle level.
    ///
    /// ```
    /// let w = evloop_core::Watch::read().priority(0);
    /// # let _ = w;
    /// ```
    pub const fn priority(self, priority: u8) -> Watch {
        Watch {
            priority: Some(priority),
            ..self
        }
    }
    /// An idle timeout: the source is dispatched with `TIMEOUT` if no I/O readiness was
    /// dispatched for `timeout`, and every I/O dispatch restarts it (libevent's
    /// `EV_READ|EV_TIMEOUT|EV_PERSIST`).
    ///
    /// ```
    /// let w = evloop_core::Watch::read().timeout(std::time::Duration::from_secs(5));
    /// # let _ = w;
    /// ```
    pub const fn timeout(self, timeout: Duration) -> Watch {
        Watch {
            timeout: Some(timeout),
            ..self
        }
    }
    /// The interest.
    ///
    /// ```
    /// assert!(evloop_core::Watch::read().interest().is_readable());
    /// ```
    pub const fn interest(&self) -> Interest {
        self.interest
    }
    /// Whether one-shot.
    ///
    /// ```
    /// assert!(!evloop_core::Watch::read().is_oneshot());
    /// ```
    pub const fn is_oneshot(&self) -> bool {
        self.oneshot
    }
}

impl From<Interest> for Watch {
    fn from(interest: Interest) -> Watch {
        Watch::new(interest)
    }
}

//! The error type: OS failures as `io::Error`, misuse as a variant that says what went
//! wrong and how to fix it.

use evloop_backends::RawSource;
use std::fmt;
use std::io;

/// What can go wrong. OS failures are [`Error::Io`]; everything else is misuse that the
/// loop refuses without disturbing anything else.
///
/// ```
/// use evloop_core::Error;
/// let e = Error::SlabFull { capacity: 16 };
/// assert!(e.to_string().contains("16"));
/// let io: std::io::Error = e.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::Other);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The operating system refused (the `io::Error` says why).
    Io(io::Error),
    /// A negative fd, or one that is not open.
    InvalidFd(RawSource),
    /// The fd is beyond what the backend can watch (select's `FD_SETSIZE`).
    FdTooLarge {
        /// The fd.
        fd: RawSource,
        /// The largest fd the backend accepts.
        max: RawSource,
        /// The backend's name.
        backend: &'static str,
    },
    /// The loop's source table is full (raise `Builder::sources`).
    SourcesFull {
        /// Its capacity.
        capacity: usize,
    },
    /// A [`Slab`](crate::Slab) is full.
    SlabFull {
        /// Its capacity.
        capacity: usize,
    },
    /// More timers armed than the loop was built for (raise `Builder::timers`).
    TimerCapacity {
        /// The capacity.
        capacity: usize,
    },
    /// The [`SourceId`](crate::SourceId) names a source that was removed.
    StaleSource,
    /// The [`Key`](crate::Key) names a slab entry that was removed.
    StaleKey,
    /// The operation does not apply to this kind of source (an idle timeout on a timer,
    /// `reset_timer` on an I/O source): it names what it applies to, and what to call
    /// instead where there is a counterpart.
    WrongKind {
        /// What was attempted.
        operation: &'static str,
        /// The kind of source it applies to (and the call for the other kind).
        applies_to: &'static str,
    },
    /// An argument no source can take (a periodic timer with a zero period).
    InvalidArgument {
        /// What was attempted.
        operation: &'static str,
        /// What is wrong with the argument.
        reason: &'static str,
    },
    /// The request conflicts with a source the loop already has (a second wake source;
    /// edge- and level-triggered sources on one fd).
    Conflict {
        /// What conflicts with what.
        reason: &'static str,
    },
    /// A priority at or beyond the number of levels the loop was built with.
    InvalidPriority {
        /// The priority asked for.
        priority: u8,
        /// The number of levels.
        levels: u8,
    },
    /// Not a signal number this system has.
    InvalidSignal(i32),
    /// A signal that cannot or must not be handled in loop context (SIGKILL, SIGSTOP,
    /// SIGSEGV, SIGBUS, SIGILL, SIGFPE).
    SignalRefused(i32),
    /// This loop already watches the signal, or too many loops do.
    SignalBusy(i32),
    /// The cross-thread activation queue is full; the activation was not queued.
    ActivationQueueFull,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::InvalidFd(fd) => write!(f, "fd {fd} is not an open file descriptor"),
            Error::FdTooLarge { fd, max, backend } => write!(
                f,
                "fd {fd} is beyond what the {backend} backend can watch (max {max}); use the poll or epoll backend"
            ),
            Error::SourcesFull { capacity } => write!(
                f,
                "the loop's source table is full ({capacity} sources); build the loop with a larger `sources(..)`"
            ),
            Error::SlabFull { capacity } => write!(f, "slab is full ({capacity} entries)"),
            Error::TimerCapacity { capacity } => write!(
                f,
                "timer capacity exceeded ({capacity} armed timers); build the loop with a larger `timers(..)`"
            ),
            Error::StaleSource => f.write_str("the source was removed (stale SourceId)"),
            Error::StaleKey => f.write_str("the slab entry was removed (stale Key)"),
            Error::WrongKind {
                operation,
                applies_to,
            } => write!(f, "`{operation}` applies to {applies_to}, not to this source"),
            Error::InvalidArgument { operation, reason } => write!(f, "`{operation}`: {reason}"),
            Error::Conflict { reason } => f.write_str(reason),
            Error::InvalidPriority { priority, levels } => write!(
                f,
                "priority {priority} is out of range: the loop has {levels} levels (0 is the most urgent)"
            ),
            Error::InvalidSignal(s) => write!(f, "{s} is not a signal number on this system"),
            Error::SignalRefused(s) => write!(
                f,
                "signal {s} cannot be watched: SIGKILL and SIGSTOP cannot be caught, and SIGSEGV, SIGBUS, SIGILL and SIGFPE must be handled where they happen"
            ),
            Error::SignalBusy(s) => write!(
                f,
                "signal {s} is already watched by this loop (or by too many loops)"
            ),
            Error::ActivationQueueFull => {
                f.write_str("the cross-thread activation queue is full; try again later")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(e) => e,
            Error::InvalidFd(_) => io::Error::new(io::ErrorKind::InvalidInput, e),
            other => io::Error::other(other),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Completion mode's state beside the per-fd slots (see "Completion I/O" in the
//! contract): the receive buffers, each fd's send in flight, the connections accepted
//! and not yet taken, and the count of requests the kernel may still hold, so that no
//! buffer is freed while the kernel could use it.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

use super::bufring::BufRing;

/// How the stream of a receive queue ended: the peer's end of file (errors are stored as
/// their negative errno).
pub(super) const RX_EOF: i32 = 1;

/// Whether a completion-mode socket listens: asked with `SO_ACCEPTCONN` the first time
/// it is armed in completion mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Sock {
    #[default]
    Unknown,
    Stream,
    Listening,
}

impl Sock {
    pub(super) fn of(fd: RawFd) -> Sock {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `v`, which has that size.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ACCEPTCONN,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if r == 0 && v != 0 {
            Sock::Listening
        } else {
            Sock::Stream
        }
    }
}

/// One fd's send: the buffer the kernel reads while `busy`, how much of it went out,
/// and once finished, the result (0 or a negative errno) until `send_done` takes it.
#[derive(Default)]
pub(super) struct Tx {
    pub(super) buf: Vec<u8>,
    pub(super) off: usize,
    pub(super) gen: u32,
    pub(super) busy: bool,
    pub(super) done: Option<i32>,
}

#[derive(Default)]
pub(super) struct Completion {
    /// The receive buffers, mapped and registered at the first completion-mode
    /// registration (a ring that only polls never has them).
    pub(super) bufs: Option<BufRing>,
    /// Per fd number.
    pub(super) tx: Vec<Tx>,
    /// Buffers of sends cancelled by a deregistration, kept until the kernel completes
    /// them (by `user_data`).
    pub(super) orphans: Vec<(u64, Vec<u8>)>,
    /// Per listening fd: accepted connections (fds) and accept errors (negative errnos).
    pub(super) accepted: Vec<VecDeque<i32>>,
    /// Fds the next wait reports again: received bytes or accepted connections left
    /// untaken, a send finished while its report could not be made.
    pub(super) again: Vec<RawFd>,
    /// Fds whose receive ended for want of buffers.
    pub(super) starved: Vec<RawFd>,
    /// Fds whose send went out short: the rest is submitted after the reap.
    pub(super) resend: Vec<RawFd>,
    /// Fds whose receive queue reached its quota: their receive is cancelled after the
    /// reap.
    pub(super) overfull: Vec<RawFd>,
    /// Receive, accept and send requests the kernel may still hold.
    pub(super) inflight: usize,
}

impl Completion {
    pub(super) fn tx_mut(&mut self, fd: RawFd) -> &mut Tx {
        let i = fd as usize;
        if i >= self.tx.len() {
            self.tx
                .resize_with((i + 1).next_power_of_two(), Tx::default);
        }
        &mut self.tx[i]
    }

    pub(super) fn accepted_mut(&mut self, fd: RawFd) -> &mut VecDeque<i32> {
        let i = fd as usize;
        if i >= self.accepted.len() {
            self.accepted
                .resize_with((i + 1).next_power_of_two(), VecDeque::new);
        }
        &mut self.accepted[i]
    }

    pub(super) fn has_accepted(&self, fd: RawFd) -> bool {
        self.accepted
            .get(fd as usize)
            .is_some_and(|q| !q.is_empty())
    }

    pub(super) fn send_finished(&self, fd: RawFd) -> bool {
        self.tx
            .get(fd as usize)
            .is_some_and(|t| t.busy && t.done.is_some())
    }

    /// Close the connections accepted on `fd` and not taken (it is deregistered).
    pub(super) fn drop_accepted(&mut self, fd: RawFd) {
        if let Some(q) = self.accepted.get_mut(fd as usize) {
            for c in q.drain(..) {
                if c >= 0 {
                    // SAFETY: an fd the kernel accepted for us and nobody took.
                    unsafe { libc::close(c) };
                }
            }
        }
    }

    /// A request of ours finished for good (its last completion).
    pub(super) fn finished(&mut self) {
        self.inflight = self.inflight.saturating_sub(1);
    }
}

/// An errno from a completion as an `io::Error`.
pub(super) fn os_error(neg_errno: i32) -> io::Error {
    io::Error::from_raw_os_error(-neg_errno)
}

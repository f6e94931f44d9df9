//! AFD's poll event bits and their mapping to evloop's [`Interest`] and [`Ready`].
//!
//! Pure: no system calls, so the mapping is tested on every target. The bit values are
//! the ones `afd.sys` uses in `AFD_POLL_HANDLE_INFO::Events` (the same values wepoll,
//! libuv and ReactOS's headers carry).

use std::time::Duration;

use crate::{Interest, Ready};

/// Data (or a zero-length read at end of file) can be received.
pub(crate) const AFD_POLL_RECEIVE: u32 = 0x0001;
/// Out-of-band data can be received (never asked for: evloop has no priority interest).
#[cfg(test)]
pub(crate) const AFD_POLL_RECEIVE_EXPEDITED: u32 = 0x0002;
/// Data can be sent.
pub(crate) const AFD_POLL_SEND: u32 = 0x0004;
/// The peer closed its sending side gracefully (FIN).
pub(crate) const AFD_POLL_DISCONNECT: u32 = 0x0008;
/// The connection was aborted (reset by the peer, or failed).
pub(crate) const AFD_POLL_ABORT: u32 = 0x0010;
/// The socket was closed locally while the poll was pending.
pub(crate) const AFD_POLL_LOCAL_CLOSE: u32 = 0x0020;
/// A listening socket has a connection to accept.
pub(crate) const AFD_POLL_ACCEPT: u32 = 0x0080;
/// A non-blocking connect failed.
pub(crate) const AFD_POLL_CONNECT_FAIL: u32 = 0x0100;

/// What every poll asks for whatever the interest: the hang-ups and errors the contract
/// reports unasked, and the local close that tells the backend the socket is gone.
const ALWAYS: u32 = AFD_POLL_ABORT | AFD_POLL_CONNECT_FAIL | AFD_POLL_LOCAL_CLOSE;

/// The AFD event mask a poll request carries for `interest`; 0 (submit nothing) for an
/// empty interest. Reading asks for end of file too (a zero-length read is "readable").
pub(crate) fn afd_mask(interest: Interest) -> u32 {
    let mut mask = 0;
    if interest.is_readable() {
        mask |= AFD_POLL_RECEIVE | AFD_POLL_ACCEPT | AFD_POLL_DISCONNECT;
    }
    if interest.is_writable() {
        mask |= AFD_POLL_SEND;
    }
    if interest.is_peer_closed() {
        mask |= AFD_POLL_DISCONNECT;
    }
    if mask == 0 {
        0
    } else {
        mask | ALWAYS
    }
}

/// The readiness a completed poll's `events` mean for a registration with `interest`,
/// reporting only what was asked for plus `HUP` and `ERROR`.
///
/// * `RECEIVE`, `ACCEPT`: readable. `DISCONNECT` (the peer's FIN): readable (the read
///   returns 0) and `READ_CLOSED`.
/// * `ABORT` (reset): `HUP`, `ERROR` and `READ_CLOSED` (as epoll reports a reset), and
///   readable/writable if asked, so the caller's read or write meets the error.
/// * `CONNECT_FAIL`: `ERROR`, and writable if asked (epoll reports a failed connect as
///   `EPOLLOUT | EPOLLERR`).
/// * `LOCAL_CLOSE` is not mapped here: the backend reports it as `ERROR` once and parks
///   the registration (see the backend).
pub(crate) fn ready_from(events: u32, interest: Interest) -> Ready {
    let mut r = Ready::from_bits(0);
    if events & (AFD_POLL_RECEIVE | AFD_POLL_ACCEPT | AFD_POLL_DISCONNECT | AFD_POLL_ABORT) != 0 {
        r |= Ready::READABLE;
    }
    if events & (AFD_POLL_SEND | AFD_POLL_ABORT | AFD_POLL_CONNECT_FAIL) != 0 {
        r |= Ready::WRITABLE;
    }
    if events & (AFD_POLL_DISCONNECT | AFD_POLL_ABORT) != 0 {
        r |= Ready::READ_CLOSED;
    }
    if events & AFD_POLL_ABORT != 0 {
        r |= Ready::HUP;
    }
    if events & (AFD_POLL_CONNECT_FAIL | AFD_POLL_ABORT) != 0 {
        r |= Ready::ERROR;
    }
    let mut wanted = Ready::HUP | Ready::ERROR;
    if interest.is_readable() {
        wanted |= Ready::READABLE;
    }
    if interest.is_writable() {
        wanted |= Ready::WRITABLE;
    }
    if interest.is_peer_closed() {
        wanted |= Ready::READ_CLOSED;
    }
    r.intersection(wanted)
}

/// Whether a poll already pending with `pending` covers a new `wanted` mask, so a
/// `modify` needs no cancel-and-resubmit (its extra events are filtered at completion).
pub(crate) fn covers(pending: u32, wanted: u32) -> bool {
    pending & wanted == wanted
}

/// `INFINITE` (`u32::MAX`) for no timeout; otherwise whole milliseconds rounded up, so a
/// sub-millisecond timeout never becomes 0 (a spin), and clamped below `INFINITE`.
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> u32 {
    match timeout {
        None => u32::MAX,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000);
            u32::try_from(ms).unwrap_or(u32::MAX - 1).min(u32::MAX - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_interest_submits_nothing() {
        assert_eq!(afd_mask(Interest::NONE), 0);
        assert_eq!(afd_mask(Interest::EDGE), 0);
        assert_eq!(afd_mask(Interest::COMPLETION), 0);
    }

    #[test]
    fn masks_carry_errors_and_local_close() {
        let r = afd_mask(Interest::READ);
        assert_eq!(
            r,
            AFD_POLL_RECEIVE | AFD_POLL_ACCEPT | AFD_POLL_DISCONNECT | ALWAYS
        );
        let w = afd_mask(Interest::WRITE);
        assert_eq!(w, AFD_POLL_SEND | ALWAYS);
        assert_eq!(
            afd_mask(Interest::PEER_CLOSED),
            AFD_POLL_DISCONNECT | ALWAYS
        );
        assert_eq!(afd_mask(Interest::READ | Interest::WRITE), r | w);
    }

    #[test]
    fn only_what_was_asked_plus_hup_and_error() {
        let ev = AFD_POLL_RECEIVE | AFD_POLL_SEND;
        assert_eq!(ready_from(ev, Interest::READ), Ready::READABLE);
        assert_eq!(ready_from(ev, Interest::WRITE), Ready::WRITABLE);
        assert_eq!(
            ready_from(ev, Interest::READ | Interest::WRITE),
            Ready::READABLE | Ready::WRITABLE
        );
    }

    #[test]
    fn fin_is_readable_and_read_closed_when_asked() {
        assert_eq!(
            ready_from(AFD_POLL_DISCONNECT, Interest::READ),
            Ready::READABLE
        );
        assert_eq!(
            ready_from(AFD_POLL_DISCONNECT, Interest::READ | Interest::PEER_CLOSED),
            Ready::READABLE | Ready::READ_CLOSED
        );
        assert!(ready_from(AFD_POLL_DISCONNECT, Interest::WRITE).is_empty());
    }

    #[test]
    fn reset_is_hup_and_error_even_unasked() {
        assert_eq!(
            ready_from(AFD_POLL_ABORT, Interest::WRITE),
            Ready::WRITABLE | Ready::HUP | Ready::ERROR
        );
        assert_eq!(
            ready_from(AFD_POLL_ABORT, Interest::READ | Interest::PEER_CLOSED),
            Ready::READABLE | Ready::READ_CLOSED | Ready::HUP | Ready::ERROR
        );
    }

    #[test]
    fn failed_connect_is_error_and_writable() {
        assert_eq!(
            ready_from(AFD_POLL_CONNECT_FAIL, Interest::WRITE),
            Ready::WRITABLE | Ready::ERROR
        );
        assert_eq!(
            ready_from(AFD_POLL_CONNECT_FAIL, Interest::READ),
            Ready::ERROR
        );
    }

    #[test]
    fn expedited_alone_reports_nothing_unasked() {
        assert!(ready_from(AFD_POLL_RECEIVE_EXPEDITED, Interest::READ).is_empty());
    }

    #[test]
    fn timeouts_round_up_and_clamp_below_infinite() {
        assert_eq!(timeout_ms(None), u32::MAX);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1500))), 2);
        assert_eq!(
            timeout_ms(Some(Duration::from_secs(u64::MAX))),
            u32::MAX - 1
        );
    }

    #[test]
    fn a_wider_pending_poll_covers_a_narrower_interest() {
        let rw = afd_mask(Interest::READ | Interest::WRITE);
        assert!(covers(rw, afd_mask(Interest::READ)));
        assert!(!covers(afd_mask(Interest::READ), rw));
        assert!(covers(rw, 0));
    }
}

//! What goes into and comes out of the ring, as plain functions: the `user_data` tag of
//! every request, the poll mask an [`Interest`] asks for, and the [`Ready`] bits a
//! completion's result maps to. No kernel object here, so all of it is unit-tested.

use std::os::fd::RawFd;

use crate::{Interest, Ready};

/// `user_data` of the requests whose completions are never reported (`POLL_REMOVE`,
/// `ASYNC_CANCEL`).
pub(super) const INTERNAL: u64 = 1 << 63;

/// What a request is, in bits 61 and 62 of its `user_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(super) enum Kind {
    /// A `POLL_ADD` (readiness).
    #[default]
    Poll = 0,
    /// A multishot receive into the buffer ring (completion mode).
    Recv = 1,
    /// A multishot accept (completion mode, listening sockets).
    Accept = 2,
    /// A send of a buffer the backend holds (completion mode).
    Send = 3,
}

const KIND_SHIFT: u32 = 61;

/// Generations are 29 bits: with the fd's 32 and the kind's 2 they fill `user_data`
/// below [`INTERNAL`].
pub(super) const GEN_MASK: u32 = 0x1fff_ffff;

/// The `user_data` of the request of `kind` for `fd` in generation `gen`.
///
/// The armed request of an fd (a poll; in completion mode a receive or an accept) takes
/// the next generation of its fd at every arm (kept across deregistration, so a new
/// registration of a reused number starts past every old one), and a completion counts
/// only if its tag is the fd's armed generation: one left over from a cancelled,
/// replaced or deregistered request can never reach a later one. Sends count their own
/// generations the same way.
pub(super) const fn request_data(kind: Kind, fd: RawFd, gen: u32) -> u64 {
    ((kind as u64) << KIND_SHIFT) | (((gen & GEN_MASK) as u64) << 32) | fd as u32 as u64
}

/// The kind, fd and generation of a request's `user_data`; `None` for an internal one.
pub(super) const fn decode(user_data: u64) -> Option<(Kind, RawFd, u32)> {
    if user_data & INTERNAL != 0 {
        return None;
    }
    let kind = match (user_data >> KIND_SHIFT) & 3 {
        0 => Kind::Poll,
        1 => Kind::Recv,
        2 => Kind::Accept,
        _ => Kind::Send,
    };
    Some((
        kind,
        user_data as u32 as RawFd,
        (user_data >> 32) as u32 & GEN_MASK,
    ))
}

// The poll bits, as `poll(2)` (and the ring's `poll32_events`) has them on Linux.
const POLLIN: u32 = libc::POLLIN as u32;
const POLLPRI: u32 = libc::POLLPRI as u32;
const POLLOUT: u32 = libc::POLLOUT as u32;
const POLLERR: u32 = libc::POLLERR as u32;
const POLLHUP: u32 = libc::POLLHUP as u32;
const POLLNVAL: u32 = libc::POLLNVAL as u32;
const POLLRDHUP: u32 = libc::POLLRDHUP as u32;

/// The poll mask for an interest: `READ` -> `POLLIN | POLLPRI`, `WRITE` -> `POLLOUT`,
/// `PEER_CLOSED` -> `POLLRDHUP` (the kernel adds `POLLERR | POLLHUP` itself).
pub(super) fn poll_mask(interest: Interest) -> u32 {
    let mut m = 0;
    if interest.is_readable() {
        m |= POLLIN | POLLPRI;
    }
    if interest.is_writable() {
        m |= POLLOUT;
    }
    if interest.is_peer_closed() {
        m |= POLLRDHUP;
    }
    m
}

/// The readiness a poll completion's (non-negative) result reports for a registration
/// with `interest`. The kernel always adds `POLLRDHUP` to a poll request's mask, so it
/// can come back unasked: it is dropped unless `PEER_CLOSED` was asked for, as epoll
/// does. `POLLERR`, `POLLHUP` (and `POLLNVAL`) are always kept.
///
/// A completion triggered by a wake-up carries the wake-up's hint rather than a fresh
/// poll of the file, and a socket's "data arrived" hint claims `POLLPRI` with every
/// `POLLIN`. So `POLLPRI` is reported as [`Ready::PRIORITY`] only when it comes without
/// `POLLIN` (urgent data that arrives with ordinary data shows up as readable).
pub(super) fn ready(result: u32, interest: Interest) -> Ready {
    let bits = result & (poll_mask(interest) | POLLERR | POLLHUP | POLLNVAL);
    let mut r = Ready::EMPTY;
    if bits & POLLIN != 0 {
        r |= Ready::READABLE;
    }
    if bits & (POLLPRI | POLLIN) == POLLPRI {
        r |= Ready::PRIORITY;
    }
    if bits & POLLOUT != 0 {
        r |= Ready::WRITABLE;
    }
    if bits & POLLRDHUP != 0 {
        r |= Ready::READ_CLOSED;
    }
    if bits & POLLHUP != 0 {
        r |= Ready::HUP;
    }
    if bits & (POLLERR | POLLNVAL) != 0 {
        r |= Ready::ERROR;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips_and_never_looks_internal() {
        let kinds = [Kind::Poll, Kind::Recv, Kind::Accept, Kind::Send];
        for (fd, gen) in [(0, 0), (7, 1), (i32::MAX, GEN_MASK), (65_535, 12_345)] {
            for kind in kinds {
                let ud = request_data(kind, fd, gen);
                assert_eq!(ud & INTERNAL, 0);
                assert_eq!(decode(ud), Some((kind, fd, gen)));
            }
        }
        // A generation past 29 bits wraps instead of spilling into the kind or internal
        // bits.
        assert_eq!(
            decode(request_data(Kind::Recv, 3, u32::MAX)),
            Some((Kind::Recv, 3, GEN_MASK))
        );
        assert_eq!(decode(INTERNAL), None);
    }

    #[test]
    fn masks_and_readiness_map_as_documented() {
        assert_eq!(poll_mask(Interest::READ), POLLIN | POLLPRI);
        assert_eq!(poll_mask(Interest::WRITE), POLLOUT);
        assert_eq!(poll_mask(Interest::PEER_CLOSED), POLLRDHUP);
        assert_eq!(poll_mask(Interest::EDGE), 0);
        let all = Interest::READ | Interest::WRITE | Interest::PEER_CLOSED;
        let cases = [
            (POLLIN, Ready::READABLE),
            (POLLPRI, Ready::PRIORITY),
            (POLLOUT, Ready::WRITABLE),
            (POLLRDHUP, Ready::READ_CLOSED),
            (POLLHUP, Ready::HUP),
            (POLLERR, Ready::ERROR),
            (POLLNVAL, Ready::ERROR),
        ];
        for (bit, want) in cases {
            assert_eq!(ready(bit, all), want, "bit {bit:#x}");
        }
        assert_eq!(
            ready(POLLIN | POLLRDHUP, all),
            Ready::READABLE | Ready::READ_CLOSED,
            "data is never dropped because the peer closed"
        );
        // The "data arrived" wake-up hint of a socket claims POLLPRI too.
        assert_eq!(ready(POLLIN | POLLPRI, all), Ready::READABLE);
    }

    #[test]
    fn unasked_bits_are_dropped_but_hangups_and_errors_kept() {
        // POLLRDHUP comes back even when not asked for (the kernel always polls for it).
        assert_eq!(ready(POLLIN | POLLRDHUP, Interest::READ), Ready::READABLE);
        assert_eq!(ready(POLLRDHUP, Interest::WRITE), Ready::EMPTY);
        assert_eq!(ready(POLLIN, Interest::WRITE), Ready::EMPTY);
        assert_eq!(
            ready(POLLHUP | POLLERR, Interest::READ),
            Ready::HUP | Ready::ERROR
        );
        assert_eq!(ready(POLLHUP, Interest::NONE), Ready::HUP);
    }
}

//! What goes into and comes out of the ring, as plain functions: the `user_data` tag of
//! every request, the poll mask an [`Interest`] asks for, and the [`Ready`] bits a
//! completion's result maps to. No kernel object here, so all of it is unit-tested.

use std::os::fd::RawFd;

use crate::{Interest, Ready};

/// `user_data` of the requests whose completions are never reported (`POLL_REMOVE`).
pub(super) const INTERNAL: u64 = 1 << 63;

/// Generations are 31 bits: with the fd's 32 they fill `user_data` below [`INTERNAL`].
pub(super) const GEN_MASK: u32 = 0x7fff_ffff;

/// The `user_data` of the poll request armed for `fd` in generation `gen`.
///
/// Every arm of a registration gets the next generation of its fd (kept across
/// deregistration, so a new registration of a reused number starts past every old one),
/// and a completion counts only if its tag is the fd's armed generation: one left over
/// from a cancelled, replaced or deregistered request can never reach a later one.
pub(super) const fn poll_data(fd: RawFd, gen: u32) -> u64 {
    (((gen & GEN_MASK) as u64) << 32) | fd as u32 as u64
}

/// The fd and generation of a poll request's `user_data`; `None` for an internal one.
pub(super) const fn decode(user_data: u64) -> Option<(RawFd, u32)> {
    if user_data & INTERNAL != 0 {
        None
    } else {
        Some((
            user_data as u32 as RawFd,
            (user_data >> 32) as u32 & GEN_MASK,
        ))
    }
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
        for (fd, gen) in [(0, 0), (7, 1), (i32::MAX, GEN_MASK), (65_535, 12_345)] {
            let ud = poll_data(fd, gen);
            assert_eq!(ud & INTERNAL, 0);
            assert_eq!(decode(ud), Some((fd, gen)));
        }
        // A generation past 31 bits wraps instead of spilling into the internal bit.
        assert_eq!(decode(poll_data(3, u32::MAX)), Some((3, GEN_MASK)));
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

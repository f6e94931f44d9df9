//! The pure logic of the /dev/poll backend, compiled for illumos and Solaris and, for its
//! unit tests, everywhere: the `pollfd` entries a change needs (`POLLREMOVE` first when
//! events must be taken away, since the kernel ORs what is written), the batch built from
//! the change list, and the decoding of `DP_POLL` results into events.
//!
//! The poll-bit mapping is the event-ports backend's ([`poll_events`], [`poll_ready`]):
//! both hand the kernel the same `pollfd` bits.

// Outside illumos/Solaris only the unit tests use this module.
#![cfg_attr(
    not(any(target_os = "illumos", target_os = "solaris")),
    allow(dead_code)
)]

use std::os::fd::RawFd;

use super::sys::POLLREMOVE;
use crate::changelist::ChangeList;
use crate::event_ports::records::{bits, poll_events, poll_ready};
use crate::{BackendEvent, Interest};

/// Our `struct pollfd` (`sys/poll.h`): what is written to /dev/poll and what `DP_POLL`
/// returns.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PollFd {
    /// The fd.
    pub fd: RawFd,
    /// Events asked for, or [`POLLREMOVE`].
    pub events: i16,
    /// Events that occurred (in `DP_POLL` results).
    pub revents: i16,
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<PollFd>() == size_of::<libc::pollfd>());
    assert!(align_of::<PollFd>() == align_of::<libc::pollfd>());
    assert!(offset_of!(PollFd, fd) == offset_of!(libc::pollfd, fd));
    assert!(offset_of!(PollFd, events) == offset_of!(libc::pollfd, events));
    assert!(offset_of!(PollFd, revents) == offset_of!(libc::pollfd, revents));
};

/// The `pollfd.events` value for an interest (every bit we use fits in 16 bits).
pub(crate) fn mask(interest: Interest) -> i16 {
    poll_events(interest) as i16
}

/// The entry that removes `fd` from the cached set.
pub(crate) fn remove_entry(fd: RawFd) -> PollFd {
    PollFd {
        fd,
        events: POLLREMOVE,
        revents: 0,
    }
}

/// The (at most two) entries one change writes, without allocating.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Entries {
    buf: [PollFd; 2],
    len: usize,
}

impl Entries {
    fn push(&mut self, e: PollFd) {
        self.buf[self.len] = e;
        self.len += 1;
    }

    /// The entries, in the order they must be written.
    pub(crate) fn as_slice(&self) -> &[PollFd] {
        &self.buf[..self.len]
    }
}

/// The entries that take the kernel from caching `old` for `fd` to caching `new`:
///
/// * same poll bits (a token-only or `EDGE`-only change): nothing;
/// * `new` has no poll bits (stopped, or deregistered): `POLLREMOVE` only, so a hung-up
///   fd with a stopped watcher stops reporting `POLLHUP`;
/// * `new` drops some of `old`'s bits: `POLLREMOVE`, then `new` (the kernel ORs a written
///   mask into the cached one, so removing is the only way to take bits away);
/// * `new` only adds bits (or `old` had none): `new` alone, which the OR makes exact.
pub(crate) fn change_entries(fd: RawFd, old: Interest, new: Interest) -> Entries {
    let mut out = Entries::default();
    let (old, new) = (mask(old), mask(new));
    if old == new {
        return out;
    }
    if old != 0 && new & old != old {
        out.push(remove_entry(fd));
    }
    if new != 0 {
        out.push(PollFd {
            fd,
            events: new,
            revents: 0,
        });
    }
    out
}

/// Drain the change list into `out`, the batch written in one `write(2)` before the next
/// `DP_POLL`, recording each fd's kernel state as if the write succeeds (the backend
/// repairs the table for entries the kernel refuses: see [`disable`]).
pub(crate) fn queue_changes(table: &mut ChangeList, out: &mut Vec<PollFd>) {
    table.drain(|fd, st| {
        out.extend_from_slice(change_entries(fd, st.kernel, st.want).as_slice());
        st.want
    });
}

/// The entries of a batch, one slice per fd (a fd's entries are adjacent), for finding
/// which fd the kernel refused when a batched write fails.
pub(crate) fn per_fd(entries: &[PollFd]) -> impl Iterator<Item = &[PollFd]> {
    entries.chunk_by(|a, b| a.fd == b.fd)
}

/// Record that the kernel caches nothing for `fd` and that nothing is wanted: a stopped
/// registration, which a later `modify` restarts. Used for an fd the kernel refused and for
/// one reported `POLLNVAL` (closed while registered). Returns its token, or `None` if
/// `fd` is not registered.
pub(crate) fn disable(table: &mut ChangeList, fd: RawFd) -> Option<u64> {
    let st = table.remove(fd)?;
    table.insert(fd, st.want_token, Interest::NONE);
    Some(st.want_token)
}

/// Decode one `DP_POLL` result. `POLLNVAL` (the fd was closed without being deregistered)
/// is reported once as an error, and the fd is disabled with a `POLLREMOVE` appended to
/// `out`, written before `wait` returns: the kernel would otherwise report it on every
/// `DP_POLL` and the loop would spin. An entry for an fd we do not hold as cached (the
/// kernel refused its removal earlier) yields nothing and is removed the same way.
pub(crate) fn decode(
    rec: &PollFd,
    table: &mut ChangeList,
    out: &mut Vec<PollFd>,
) -> Option<BackendEvent> {
    let cached = table.get(rec.fd).filter(|st| mask(st.kernel) != 0).copied();
    let Some(st) = cached else {
        out.push(remove_entry(rec.fd));
        return None;
    };
    let revents = i32::from(rec.revents as u16);
    if revents & bits::POLLNVAL != 0 {
        disable(table, rec.fd);
        out.push(remove_entry(rec.fd));
    }
    let ready = poll_ready(revents);
    if ready.is_empty() {
        return None;
    }
    Some(BackendEvent {
        token: st.kernel_token,
        ready,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::timeout_ms;
    use crate::Ready;
    use std::time::Duration;

    const R: Interest = Interest::READ;
    const W: Interest = Interest::WRITE;

    fn add(fd: RawFd, interest: Interest) -> PollFd {
        PollFd {
            fd,
            events: mask(interest),
            revents: 0,
        }
    }

    fn entries(old: Interest, new: Interest) -> Vec<PollFd> {
        change_entries(9, old, new).as_slice().to_vec()
    }

    fn result(fd: RawFd, revents: i32) -> PollFd {
        PollFd {
            fd,
            events: 0,
            revents: revents as i16,
        }
    }

    fn batch(table: &mut ChangeList) -> Vec<PollFd> {
        let mut out = vec![];
        queue_changes(table, &mut out);
        out
    }

    #[test]
    fn interest_maps_to_pollfd_events() {
        assert_eq!(mask(R), (bits::POLLIN | bits::POLLPRI) as i16);
        assert_eq!(mask(W), bits::POLLOUT as i16);
        assert_eq!(mask(Interest::PEER_CLOSED), bits::POLLRDHUP as i16);
        assert_eq!(mask(Interest::EDGE), 0);
        assert_ne!(mask(R | W | Interest::PEER_CLOSED), POLLREMOVE);
    }

    #[test]
    fn register_writes_the_mask() {
        assert_eq!(entries(Interest::NONE, R), vec![add(9, R)]);
        assert_eq!(entries(Interest::NONE, Interest::NONE), vec![]);
    }

    #[test]
    fn modify_writes_pollremove_then_the_new_mask() {
        assert_eq!(entries(R, W), vec![remove_entry(9), add(9, W)]);
        assert_eq!(entries(R | W, W), vec![remove_entry(9), add(9, W)]);
    }

    #[test]
    fn modify_to_none_writes_only_pollremove() {
        assert_eq!(entries(R, Interest::NONE), vec![remove_entry(9)]);
        assert_eq!(entries(R | W, Interest::EDGE), vec![remove_entry(9)]);
    }

    #[test]
    fn widening_writes_only_the_new_mask() {
        // The kernel ORs it into the cached events, which gives exactly the new mask.
        assert_eq!(entries(R, R | W), vec![add(9, R | W)]);
    }

    #[test]
    fn token_or_edge_only_change_writes_nothing() {
        assert_eq!(entries(R, R | Interest::EDGE), vec![]);
        let mut t = ChangeList::new();
        t.insert(4, 1, R);
        t.set_wanted(4, 2, R);
        assert_eq!(batch(&mut t), vec![]);
        assert_eq!(t.get(4).unwrap().kernel_token, 2);
    }

    #[test]
    fn deregister_writes_pollremove_only_if_cached() {
        assert_eq!(entries(W, Interest::NONE), vec![remove_entry(9)]);
        assert_eq!(entries(Interest::NONE, Interest::NONE), vec![]);
    }

    #[test]
    fn stop_start_writes_nothing() {
        let mut t = ChangeList::new();
        t.insert(4, 1, R);
        t.set_wanted(4, 1, Interest::NONE);
        t.set_wanted(4, 1, R);
        assert_eq!(batch(&mut t), vec![]);
    }

    #[test]
    fn changes_are_batched_in_order_and_split_per_fd() {
        let mut t = ChangeList::new();
        t.insert(3, 30, R);
        t.insert(4, 40, R);
        t.insert(5, 50, Interest::NONE);
        t.set_wanted(3, 30, W);
        t.set_wanted(4, 40, Interest::NONE);
        t.set_wanted(5, 50, R);
        let b = batch(&mut t);
        assert_eq!(
            b,
            vec![remove_entry(3), add(3, W), remove_entry(4), add(5, R)]
        );
        let groups: Vec<&[PollFd]> = per_fd(&b).collect();
        assert_eq!(groups, vec![&b[0..2], &b[2..3], &b[3..4]]);
        assert_eq!(t.get(3).unwrap().kernel, W);
        assert!(t.get(4).unwrap().kernel.is_empty());
        // Applied: nothing more to write.
        assert_eq!(batch(&mut t), vec![]);
    }

    #[test]
    fn deregistered_fd_leaves_the_batch() {
        let mut t = ChangeList::new();
        t.insert(3, 30, R);
        t.set_wanted(3, 30, W);
        t.remove(3).unwrap();
        assert_eq!(batch(&mut t), vec![]);
    }

    #[test]
    fn refused_fd_is_disabled_and_restarted_by_modify() {
        let mut t = ChangeList::new();
        t.insert(3, 30, Interest::NONE);
        t.set_wanted(3, 30, R);
        assert_eq!(batch(&mut t), vec![add(3, R)]);
        // The write failed for fd 3.
        assert_eq!(disable(&mut t, 3), Some(30));
        assert!(t.get(3).unwrap().kernel.is_empty());
        assert_eq!(t.len(), 1, "still registered");
        assert_eq!(batch(&mut t), vec![], "not retried on its own");
        t.set_wanted(3, 30, R);
        assert_eq!(batch(&mut t), vec![add(3, R)]);
        assert_eq!(disable(&mut t, 8), None);
    }

    #[test]
    fn pollnval_is_error_reported_once_then_removed() {
        let mut t = ChangeList::new();
        t.insert(3, 30, R);
        let mut out = vec![];
        let ev = decode(&result(3, bits::POLLNVAL), &mut t, &mut out).unwrap();
        assert_eq!(
            ev,
            BackendEvent {
                token: 30,
                ready: Ready::ERROR
            }
        );
        assert_eq!(out, vec![remove_entry(3)]);
        assert!(t.get(3).unwrap().kernel.is_empty());
        // Were it returned again before the removal took effect, it reports nothing
        // (and is removed again).
        let mut again = vec![];
        assert_eq!(decode(&result(3, bits::POLLNVAL), &mut t, &mut again), None);
        assert_eq!(again, vec![remove_entry(3)]);
        // The deregistration that follows needs no write.
        let st = t.remove(3).unwrap();
        assert!(change_entries(3, st.kernel, Interest::NONE)
            .as_slice()
            .is_empty());
    }

    #[test]
    fn pollhup_with_pollin_is_readable_and_hup() {
        let mut t = ChangeList::new();
        t.insert(3, 30, R);
        let mut out = vec![];
        let ev = decode(&result(3, bits::POLLIN | bits::POLLHUP), &mut t, &mut out).unwrap();
        assert_eq!(ev.ready, Ready::READABLE | Ready::HUP);
        assert!(out.is_empty());
        // Level-triggered: nothing changes in the table.
        assert_eq!(t.get(3).unwrap().kernel, R);
    }

    #[test]
    fn error_and_hup_are_reported_though_not_asked() {
        let mut t = ChangeList::new();
        t.insert(3, 30, W);
        let mut out = vec![];
        let ev = decode(&result(3, bits::POLLERR | bits::POLLHUP), &mut t, &mut out).unwrap();
        assert_eq!(ev.ready, Ready::ERROR | Ready::HUP);
    }

    #[test]
    fn results_for_unknown_or_uncached_fds_are_skipped_and_removed() {
        let mut t = ChangeList::new();
        t.insert(3, 30, Interest::NONE);
        let mut out = vec![];
        assert_eq!(decode(&result(3, bits::POLLHUP), &mut t, &mut out), None);
        assert_eq!(decode(&result(7, bits::POLLIN), &mut t, &mut out), None);
        assert_eq!(out, vec![remove_entry(3), remove_entry(7)]);
        assert!(t.get(3).is_some(), "still registered (stopped)");
    }

    #[test]
    fn timeout_conversions() {
        // DP_POLL takes `int` milliseconds: rounded up, never to zero, clamped.
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(Some(Duration::from_nanos(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::from_micros(1500))), 2);
        assert_eq!(timeout_ms(Some(Duration::from_millis(250))), 250);
        assert_eq!(timeout_ms(Some(Duration::MAX)), i32::MAX);
    }

    #[test]
    fn pollfd_record_has_the_c_layout() {
        assert_eq!(std::mem::size_of::<PollFd>(), 8);
        assert_eq!(std::mem::offset_of!(PollFd, events), 4);
        assert_eq!(std::mem::offset_of!(PollFd, revents), 6);
    }
}

//! The pure logic of the event-ports backend, compiled for illumos and Solaris and, for its
//! unit tests, everywhere: interest -> poll bits, `port_event` records -> [`Ready`], the
//! one-shot re-association bookkeeping, the `port_getn` outcome and timeout limit.
//!
//! Everything here works on records and constants of our own ([`PortEvent`], [`bits`]), so
//! that the tests run on Linux against illumos' values. On illumos and Solaris the
//! constants come from `libc`; elsewhere they are illumos' values written out (and
//! compile-time checks below pin the record layouts to `libc`'s on the real targets).
//!
//! The poll-bit mapping ([`poll_events`], [`poll_ready`]) is shared with the /dev/poll
//! backend, which hands the kernel the same `pollfd` bits.

// Outside illumos/Solaris only the unit tests use this module.
#![cfg_attr(
    not(any(target_os = "illumos", target_os = "solaris")),
    allow(dead_code)
)]

use crate::changelist::{ChangeList, FdState};
use crate::{BackendEvent, Interest, Ready};
use std::io;
use std::os::fd::RawFd;

/// Poll bits, event-port constants and errno values, as `i32` (the type of
/// `port_event.portev_events`; `pollfd` users narrow them to `i16`).
pub(crate) mod bits {
    #[cfg(any(target_os = "illumos", target_os = "solaris"))]
    mod imp {
        pub(crate) const POLLIN: i32 = libc::POLLIN as i32;
        pub(crate) const POLLPRI: i32 = libc::POLLPRI as i32;
        pub(crate) const POLLOUT: i32 = libc::POLLOUT as i32;
        pub(crate) const POLLERR: i32 = libc::POLLERR as i32;
        pub(crate) const POLLHUP: i32 = libc::POLLHUP as i32;
        pub(crate) const POLLNVAL: i32 = libc::POLLNVAL as i32;
        /// illumos has a read-side hangup bit (`sys/poll.h`, 0x4000).
        #[cfg(target_os = "illumos")]
        pub(crate) const POLLRDHUP: i32 = libc::POLLRDHUP as i32;
        /// Solaris has none: a closed peer shows up as readable (EOF), then `POLLHUP`.
        #[cfg(target_os = "solaris")]
        pub(crate) const POLLRDHUP: i32 = 0;
        pub(crate) const PORT_SOURCE_FD: u16 = libc::PORT_SOURCE_FD as u16;
        pub(crate) const ETIME: i32 = libc::ETIME;
        pub(crate) const EINTR: i32 = libc::EINTR;
    }

    /// illumos' values (`sys/poll.h`, `sys/port.h`, `sys/errno.h`), for the tests on
    /// other systems.
    #[cfg(not(any(target_os = "illumos", target_os = "solaris")))]
    mod imp {
        pub(crate) const POLLIN: i32 = 0x0001;
        pub(crate) const POLLPRI: i32 = 0x0002;
        pub(crate) const POLLOUT: i32 = 0x0004;
        pub(crate) const POLLERR: i32 = 0x0008;
        pub(crate) const POLLHUP: i32 = 0x0010;
        pub(crate) const POLLNVAL: i32 = 0x0020;
        pub(crate) const POLLRDHUP: i32 = 0x4000;
        pub(crate) const PORT_SOURCE_FD: u16 = 4;
        pub(crate) const ETIME: i32 = 62;
        pub(crate) const EINTR: i32 = 4;
    }

    pub(crate) use imp::*;
}

/// `i & mask != 0`, written as a call so that a zero mask (Solaris' `POLLRDHUP`) is not
/// a lint error.
#[inline]
fn any(i: i32, mask: i32) -> bool {
    i & mask != 0
}

/// The poll bits for an interest: `READ` -> `POLLIN | POLLPRI`, `WRITE` -> `POLLOUT`,
/// `PEER_CLOSED` -> `POLLRDHUP` (illumos; nothing on Solaris), `EDGE` -> nothing (both
/// mechanisms are level-triggered). `POLLHUP` and `POLLERR` are never asked for: the
/// kernel reports them anyway.
pub(crate) fn poll_events(interest: Interest) -> i32 {
    let mut m = 0;
    if interest.is_readable() {
        m |= bits::POLLIN | bits::POLLPRI;
    }
    if interest.is_writable() {
        m |= bits::POLLOUT;
    }
    if interest.is_peer_closed() {
        m |= bits::POLLRDHUP;
    }
    m
}

/// Map returned poll bits to [`Ready`], as the poll backend does: `POLLIN` -> readable,
/// `POLLOUT` -> writable, `POLLRDHUP` -> read-closed, `POLLHUP` -> hup, `POLLERR` and
/// `POLLNVAL` -> error, `POLLPRI` -> priority. Each bit is mapped on its own, so a hang-up
/// never hides data that is still readable.
pub(crate) fn poll_ready(revents: i32) -> Ready {
    let mut r = Ready::EMPTY;
    if any(revents, bits::POLLIN) {
        r |= Ready::READABLE;
    }
    if any(revents, bits::POLLOUT) {
        r |= Ready::WRITABLE;
    }
    if any(revents, bits::POLLRDHUP) {
        r |= Ready::READ_CLOSED;
    }
    if any(revents, bits::POLLHUP) {
        r |= Ready::HUP;
    }
    if any(revents, bits::POLLERR | bits::POLLNVAL) {
        r |= Ready::ERROR;
    }
    if any(revents, bits::POLLPRI) {
        r |= Ready::PRIORITY;
    }
    r
}

/// Our copy of `port_event_t` (`sys/port.h`): same layout, but `portev_user` as an
/// integer, so the event buffer holds no raw pointer (the backend stays `Send`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PortEvent {
    /// `portev_events`: the poll bits that fired.
    pub events: i32,
    /// `portev_source`: `PORT_SOURCE_FD` for ours.
    pub source: u16,
    /// `portev_pad`.
    pub pad: u16,
    /// `portev_object`: the fd.
    pub object: usize,
    /// `portev_user`: the token given to `port_associate` (informational: the token
    /// reported is looked up in the table).
    pub user: usize,
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<PortEvent>() == size_of::<libc::port_event>());
    assert!(align_of::<PortEvent>() == align_of::<libc::port_event>());
    assert!(offset_of!(PortEvent, events) == offset_of!(libc::port_event, portev_events));
    assert!(offset_of!(PortEvent, source) == offset_of!(libc::port_event, portev_source));
    assert!(offset_of!(PortEvent, object) == offset_of!(libc::port_event, portev_object));
    assert!(offset_of!(PortEvent, user) == offset_of!(libc::port_event, portev_user));
};

/// One kernel call the change list asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PortOp {
    /// `port_associate(PORT_SOURCE_FD, fd, events, token)`: a new association, a
    /// re-association after the fd fired (one-shot), or a change of events (associating an
    /// associated fd replaces its events).
    Associate {
        /// The fd.
        fd: RawFd,
        /// Poll bits, from [`poll_events`].
        events: i32,
        /// The token, passed as `user`.
        token: u64,
    },
    /// `port_dissociate(PORT_SOURCE_FD, fd)`: the interest became empty.
    Dissociate {
        /// The fd.
        fd: RawFd,
    },
}

/// Whether the kernel holds an association for this registration. The table's `kernel`
/// interest is the one last associated, or `NONE` once the fd fired or was dissociated;
/// an interest with no poll bits (`EDGE` alone, or `PEER_CLOSED` alone on Solaris) is
/// never associated.
pub(crate) fn associated(st: &FdState) -> bool {
    poll_events(st.kernel) != 0
}

/// Record that `fd` fired: event ports dissociate an fd when they deliver its event, so
/// the kernel now holds nothing for it. If it is still wanted, it is queued in the change
/// list, so the next `wait` (or `flush`) re-associates it, once, with whatever interest it
/// has by then; if it is deregistered or stopped before then, it never is.
///
/// (The change list has no "the kernel dropped it" entry point: forgetting and
/// re-inserting the registration with an empty kernel state, then restating the wish,
/// is that, in O(1), and keeps the fd's `queued` flag so it is never queued twice.)
pub(crate) fn mark_fired(table: &mut ChangeList, fd: RawFd) {
    let Some(st) = table.remove(fd) else {
        return;
    };
    table.insert(fd, st.want_token, Interest::NONE);
    table.set_wanted(fd, st.want_token, st.want);
}

/// Apply the change list: hand every needed kernel call to `exec` (the backend makes the
/// syscall; the tests record it). Re-associations of fired fds are part of it (see
/// [`mark_fired`]). An association the kernel refuses leaves the fd unassociated and its
/// token in `failed` (if there is room), to be reported as an ERROR event. A failed
/// dissociation is ignored: the fd is one-shot, so it fires at most once more, and an fd
/// the table holds as unassociated is never reported (see [`decode`]).
pub(crate) fn apply_changes<F>(table: &mut ChangeList, failed: &mut Vec<u64>, mut exec: F)
where
    F: FnMut(PortOp) -> io::Result<()>,
{
    table.drain(|fd, st| {
        let want = poll_events(st.want);
        let associated = associated(st);
        if want == 0 {
            if associated {
                let _ = exec(PortOp::Dissociate { fd });
            }
            return Interest::NONE;
        }
        if associated && poll_events(st.kernel) == want {
            // A token-only (or EDGE-only) change: the token is looked up in the table,
            // so the kernel needs no call.
            return st.want;
        }
        match exec(PortOp::Associate {
            fd,
            events: want,
            token: st.want_token,
        }) {
            Ok(()) => st.want,
            Err(_) => {
                if failed.len() < failed.capacity() {
                    failed.push(st.want_token);
                }
                Interest::NONE
            }
        }
    });
}

/// What `reinit` does after `fork()`: with a fresh port, associate every registered fd
/// that wants anything (through `exec`), and record the kernel state afresh. Refusals go
/// to `failed` (if there is room) and leave the fd unassociated.
pub(crate) fn reassociate_all<F>(table: &mut ChangeList, failed: &mut Vec<u64>, mut exec: F)
where
    F: FnMut(PortOp) -> io::Result<()>,
{
    for (fd, st) in table.iter_mut() {
        st.kernel = Interest::NONE;
        st.kernel_token = st.want_token;
        let want = poll_events(st.want);
        if want == 0 {
            continue;
        }
        match exec(PortOp::Associate {
            fd,
            events: want,
            token: st.want_token,
        }) {
            Ok(()) => st.kernel = st.want,
            Err(_) => {
                if failed.len() < failed.capacity() {
                    failed.push(st.want_token);
                }
            }
        }
    }
}

/// Decode one retrieved record: a [`BackendEvent`] for a registered, associated fd (whose
/// association the delivery just consumed: see [`mark_fired`]), `None` for anything else
/// (another event source, an fd we no longer know or hold as unassociated).
pub(crate) fn decode(rec: &PortEvent, table: &mut ChangeList) -> Option<BackendEvent> {
    if rec.source != bits::PORT_SOURCE_FD {
        return None;
    }
    let fd = RawFd::try_from(rec.object).ok()?;
    let st = *table.get(fd)?;
    if !associated(&st) {
        return None;
    }
    mark_fired(table, fd);
    let ready = poll_ready(rec.events);
    if ready.is_empty() {
        return None;
    }
    Some(BackendEvent {
        token: st.kernel_token,
        ready,
    })
}

/// What one `port_getn` call amounted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Getn {
    /// Return this many events (0 after a timeout).
    Events(usize),
    /// Interrupted before any event: retry with the time that remains.
    Interrupted,
    /// A real error (the errno).
    Failed(i32),
}

/// Classify a `port_getn` return (`Err(errno)` for -1) and its `nget` out-value. `ETIME`
/// is a timeout, not an error, and `nget` may still hold events retrieved before it; the
/// same holds for `EINTR` (libuv guards against this too), so events are never dropped.
/// `max` bounds `nget` in case the kernel reports more than fits.
pub(crate) fn classify_getn(ret: Result<(), i32>, nget: u32, max: u32) -> Getn {
    let got = nget.min(max) as usize;
    match ret {
        Ok(()) => Getn::Events(got),
        Err(e) if e == bits::ETIME => Getn::Events(got),
        Err(e) if e == bits::EINTR => {
            if got > 0 {
                Getn::Events(got)
            } else {
                Getn::Interrupted
            }
        }
        Err(e) => Getn::Failed(e),
    }
}

/// The longest single `port_getn` wait, in seconds (about 3.2 years; passed to
/// [`crate::sys::timeout_timespec`], which clamps to it). The kernel accepts any
/// non-negative `tv_sec` but adds it to the current time, so a huge value would overflow;
/// a longer timeout wakes early and the caller waits again.
pub(crate) const PORT_MAX_WAIT_SECS: u64 = 100_000_000;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const R: Interest = Interest::READ;
    const W: Interest = Interest::WRITE;

    fn fired(fd: RawFd, events: i32) -> PortEvent {
        PortEvent {
            events,
            source: bits::PORT_SOURCE_FD,
            pad: 0,
            object: fd as usize,
            user: 0,
        }
    }

    /// Apply the change list, returning the kernel calls it made (all succeed).
    fn apply(table: &mut ChangeList) -> Vec<PortOp> {
        let mut ops = vec![];
        let mut failed = Vec::with_capacity(8);
        apply_changes(table, &mut failed, |op| {
            ops.push(op);
            Ok(())
        });
        assert!(failed.is_empty());
        ops
    }

    fn assoc(fd: RawFd, interest: Interest, token: u64) -> PortOp {
        PortOp::Associate {
            fd,
            events: poll_events(interest),
            token,
        }
    }

    /// A table with `fd` registered and associated (as `register` leaves it).
    fn registered(fd: RawFd, token: u64, interest: Interest) -> ChangeList {
        let mut t = ChangeList::new();
        t.insert(fd, token, interest);
        t
    }

    #[test]
    fn interest_maps_to_poll_bits() {
        assert_eq!(poll_events(R), bits::POLLIN | bits::POLLPRI);
        assert_eq!(poll_events(W), bits::POLLOUT);
        assert_eq!(poll_events(Interest::PEER_CLOSED), bits::POLLRDHUP);
        assert_eq!(
            poll_events(R | W | Interest::EDGE),
            bits::POLLIN | bits::POLLPRI | bits::POLLOUT
        );
        assert_eq!(poll_events(Interest::EDGE), 0);
        assert_eq!(poll_events(Interest::NONE), 0);
    }

    #[test]
    fn each_poll_bit_maps_to_its_own_ready_bit() {
        assert_eq!(poll_ready(bits::POLLIN), Ready::READABLE);
        assert_eq!(poll_ready(bits::POLLOUT), Ready::WRITABLE);
        assert_eq!(poll_ready(bits::POLLRDHUP), Ready::READ_CLOSED);
        assert_eq!(poll_ready(bits::POLLHUP), Ready::HUP);
        assert_eq!(poll_ready(bits::POLLERR), Ready::ERROR);
        assert_eq!(poll_ready(bits::POLLPRI), Ready::PRIORITY);
        assert_eq!(poll_ready(0), Ready::EMPTY);
    }

    #[test]
    fn pollnval_is_error() {
        assert_eq!(poll_ready(bits::POLLNVAL), Ready::ERROR);
        assert_eq!(
            poll_ready(bits::POLLNVAL | bits::POLLERR | bits::POLLHUP),
            Ready::ERROR | Ready::HUP
        );
    }

    #[test]
    fn pollhup_with_pollin_is_readable_and_hup() {
        assert_eq!(
            poll_ready(bits::POLLIN | bits::POLLHUP),
            Ready::READABLE | Ready::HUP
        );
    }

    #[test]
    fn read_closed_never_hides_readable() {
        assert_eq!(
            poll_ready(bits::POLLIN | bits::POLLRDHUP),
            Ready::READABLE | Ready::READ_CLOSED
        );
    }

    #[test]
    fn fired_and_still_wanted_is_reassociated_once() {
        let mut t = registered(5, 50, R);
        let ev = decode(&fired(5, bits::POLLIN), &mut t).unwrap();
        assert_eq!(
            ev,
            BackendEvent {
                token: 50,
                ready: Ready::READABLE
            }
        );
        assert!(
            t.get(5).unwrap().kernel.is_empty(),
            "delivery dissociated it"
        );
        // A stop/start by the handler must not queue it a second time.
        t.set_wanted(5, 50, Interest::NONE);
        t.set_wanted(5, 50, R);
        assert_eq!(apply(&mut t), vec![assoc(5, R, 50)]);
        assert_eq!(t.get(5).unwrap().kernel, R);
        // Nothing more until it fires again.
        assert_eq!(apply(&mut t), vec![]);
    }

    #[test]
    fn fired_then_deregistered_is_not_reassociated() {
        let mut t = registered(5, 50, R);
        decode(&fired(5, bits::POLLIN), &mut t).unwrap();
        let st = t.remove(5).unwrap();
        assert!(!associated(&st));
        assert_eq!(apply(&mut t), vec![]);
    }

    #[test]
    fn fired_in_the_same_batch_after_deregistration_is_ignored() {
        // Two fds fire in one batch (`wait` decodes both before any handler runs); the
        // handler of the first deregisters the second.
        let mut t = registered(5, 50, R);
        t.insert(6, 60, R);
        decode(&fired(5, bits::POLLIN), &mut t).unwrap();
        decode(&fired(6, bits::POLLIN), &mut t).unwrap();
        t.remove(6).unwrap();
        assert_eq!(apply(&mut t), vec![assoc(5, R, 50)]);
        // And a record for an fd that is no longer registered yields nothing.
        assert_eq!(decode(&fired(6, bits::POLLIN), &mut t), None);
    }

    #[test]
    fn fired_then_modified_to_none_is_not_reassociated() {
        let mut t = registered(5, 50, R);
        decode(&fired(5, bits::POLLIN), &mut t).unwrap();
        t.set_wanted(5, 50, Interest::NONE);
        // Neither re-associated nor dissociated (it is not associated).
        assert_eq!(apply(&mut t), vec![]);
        // Started again later: associated then.
        t.set_wanted(5, 50, R);
        assert_eq!(apply(&mut t), vec![assoc(5, R, 50)]);
    }

    #[test]
    fn fired_then_modified_to_other_interest_is_reassociated_with_it() {
        let mut t = registered(5, 50, R);
        decode(&fired(5, bits::POLLIN), &mut t).unwrap();
        t.set_wanted(5, 51, W);
        assert_eq!(apply(&mut t), vec![assoc(5, W, 51)]);
        let st = t.get(5).unwrap();
        assert_eq!((st.kernel, st.kernel_token), (W, 51));
    }

    #[test]
    fn never_fired_registered_fd_is_not_reassociated() {
        // `register` associated it; the change list must not do it again.
        let mut t = registered(5, 50, R);
        assert_eq!(apply(&mut t), vec![]);
        assert_eq!(apply(&mut t), vec![]);
    }

    #[test]
    fn deregistered_after_firing_and_number_reused_is_not_reassociated() {
        let mut t = registered(5, 50, R);
        decode(&fired(5, bits::POLLIN), &mut t).unwrap();
        t.remove(5).unwrap();
        // A new file gets fd 5 and is registered (associated by `register` itself).
        t.insert(5, 70, W);
        assert_eq!(apply(&mut t), vec![]);
        assert_eq!(t.get(5).unwrap().kernel_token, 70);
    }

    #[test]
    fn interest_without_poll_bits_is_never_associated() {
        // `register` associates nothing for EDGE alone; the table must agree.
        let mut t = registered(5, 50, Interest::EDGE);
        assert!(!associated(t.get(5).unwrap()));
        assert_eq!(apply(&mut t), vec![]);
        assert_eq!(decode(&fired(5, bits::POLLIN), &mut t), None);
        t.set_wanted(5, 50, R | Interest::EDGE);
        assert_eq!(apply(&mut t), vec![assoc(5, R, 50)]);
        assert!(associated(t.get(5).unwrap()));
    }

    #[test]
    fn stop_and_start_without_firing_costs_nothing() {
        let mut t = registered(5, 50, R);
        t.set_wanted(5, 50, Interest::NONE);
        t.set_wanted(5, 50, R);
        assert_eq!(apply(&mut t), vec![]);
    }

    #[test]
    fn stopping_an_associated_fd_dissociates_it() {
        let mut t = registered(5, 50, R);
        t.set_wanted(5, 50, Interest::NONE);
        assert_eq!(apply(&mut t), vec![PortOp::Dissociate { fd: 5 }]);
        assert!(t.get(5).unwrap().kernel.is_empty());
        // A stopped fd reports nothing, even if a stale record showed up.
        assert_eq!(decode(&fired(5, bits::POLLHUP), &mut t), None);
    }

    #[test]
    fn changing_interest_of_an_associated_fd_reassociates() {
        let mut t = registered(5, 50, R);
        t.set_wanted(5, 50, R | W);
        assert_eq!(apply(&mut t), vec![assoc(5, R | W, 50)]);
    }

    #[test]
    fn token_or_edge_only_change_needs_no_kernel_call() {
        let mut t = registered(5, 50, R);
        t.set_wanted(5, 51, R | Interest::EDGE);
        assert_eq!(apply(&mut t), vec![]);
        // The new token is the one reported.
        let ev = decode(&fired(5, bits::POLLIN), &mut t).unwrap();
        assert_eq!(ev.token, 51);
        // And the re-association after firing carries it too.
        assert_eq!(apply(&mut t), vec![assoc(5, R | Interest::EDGE, 51)]);
    }

    #[test]
    fn refused_association_is_reported_and_not_retried() {
        let mut t = registered(5, 50, R);
        decode(&fired(5, bits::POLLIN), &mut t).unwrap();
        let mut failed = Vec::with_capacity(4);
        apply_changes(&mut t, &mut failed, |_| {
            Err(io::Error::from_raw_os_error(bits::EINTR))
        });
        assert_eq!(failed, vec![50]);
        assert!(t.get(5).unwrap().kernel.is_empty());
        assert_eq!(
            apply(&mut t),
            vec![],
            "not retried until the interest changes"
        );
        // A failed record for it later reports nothing: the table holds it unassociated.
        assert_eq!(decode(&fired(5, bits::POLLIN), &mut t), None);
    }

    #[test]
    fn failures_beyond_the_buffer_are_dropped_not_allocated() {
        let mut t = ChangeList::new();
        for fd in 0..4 {
            t.insert(fd, fd as u64, Interest::NONE);
            t.set_wanted(fd, fd as u64, R);
        }
        let mut failed = Vec::with_capacity(2);
        apply_changes(&mut t, &mut failed, |_| Err(io::ErrorKind::Other.into()));
        assert_eq!(failed.len(), 2);
        assert_eq!(failed.capacity(), 2);
    }

    #[test]
    fn decode_ignores_other_sources_and_unknown_fds() {
        let mut t = registered(5, 50, R);
        let mut rec = fired(5, bits::POLLIN);
        rec.source = bits::PORT_SOURCE_FD + 1;
        assert_eq!(decode(&rec, &mut t), None);
        assert_eq!(t.get(5).unwrap().kernel, R, "not consumed");
        assert_eq!(decode(&fired(9, bits::POLLIN), &mut t), None);
        let mut huge = fired(5, bits::POLLIN);
        huge.object = usize::MAX;
        assert_eq!(decode(&huge, &mut t), None);
    }

    #[test]
    fn hup_and_error_are_reported_though_not_asked() {
        let mut t = registered(5, 50, W);
        let ev = decode(&fired(5, bits::POLLHUP | bits::POLLERR), &mut t).unwrap();
        assert_eq!(ev.ready, Ready::HUP | Ready::ERROR);
        assert_eq!(apply(&mut t), vec![assoc(5, W, 50)]);
    }

    #[test]
    fn reinit_reassociates_every_wanted_fd() {
        let mut t = registered(3, 30, R);
        t.insert(4, 40, Interest::NONE);
        t.insert(5, 50, W);
        decode(&fired(5, bits::POLLOUT), &mut t).unwrap(); // pending re-association
        let mut ops = vec![];
        let mut failed = Vec::with_capacity(4);
        reassociate_all(&mut t, &mut failed, |op| {
            ops.push(op);
            Ok(())
        });
        assert_eq!(ops, vec![assoc(3, R, 30), assoc(5, W, 50)]);
        assert!(failed.is_empty());
        // The queued re-association of fd 5 is now satisfied: no second call.
        assert_eq!(apply(&mut t), vec![]);
        assert!(t.get(4).unwrap().kernel.is_empty());
    }

    #[test]
    fn reinit_reports_refusals() {
        let mut t = registered(3, 30, R);
        t.insert(4, 40, R);
        let mut failed = Vec::with_capacity(4);
        reassociate_all(&mut t, &mut failed, |op| match op {
            PortOp::Associate { fd: 3, .. } => Err(io::ErrorKind::Other.into()),
            _ => Ok(()),
        });
        assert_eq!(failed, vec![30]);
        assert!(t.get(3).unwrap().kernel.is_empty());
        assert_eq!(t.get(4).unwrap().kernel, R);
    }

    #[test]
    fn getn_outcomes() {
        use Getn::*;
        assert_eq!(classify_getn(Ok(()), 3, 8), Events(3));
        assert_eq!(classify_getn(Err(bits::ETIME), 0, 8), Events(0));
        assert_eq!(
            classify_getn(Err(bits::ETIME), 2, 8),
            Events(2),
            "events got before the timeout are kept"
        );
        assert_eq!(classify_getn(Err(bits::EINTR), 0, 8), Interrupted);
        assert_eq!(classify_getn(Err(bits::EINTR), 1, 8), Events(1));
        assert_eq!(classify_getn(Err(9), 0, 8), Failed(9));
        assert_eq!(classify_getn(Ok(()), 100, 8), Events(8));
    }

    #[test]
    fn timeout_conversions() {
        use crate::sys::timeout_timespec;
        let ts = |d: Option<Duration>| {
            timeout_timespec(d, PORT_MAX_WAIT_SECS).map(|t| (t.tv_sec, t.tv_nsec))
        };
        assert_eq!(ts(None), None, "a null timeout waits forever");
        assert_eq!(ts(Some(Duration::ZERO)), Some((0, 0)), "zero polls");
        // Nanosecond resolution: never rounded down to zero.
        assert_eq!(ts(Some(Duration::from_nanos(1))), Some((0, 1)));
        assert_eq!(
            ts(Some(Duration::from_micros(1_500_250))),
            Some((1, 500_250_000))
        );
        // Clamped well below where adding it to the current time would overflow.
        assert_eq!(ts(Some(Duration::MAX)), Some((100_000_000, 0)));
        assert_eq!(
            ts(Some(Duration::from_secs(86_400 * 365 * 10))),
            Some((100_000_000, 0))
        );
    }

    #[test]
    fn port_event_record_has_the_c_layout() {
        use std::mem::{offset_of, size_of};
        // port_event_t on LP64: int, ushort, ushort, uintptr_t, void *.
        if size_of::<usize>() == 8 {
            assert_eq!(size_of::<PortEvent>(), 24);
            assert_eq!(offset_of!(PortEvent, object), 8);
            assert_eq!(offset_of!(PortEvent, user), 16);
        }
        assert_eq!(offset_of!(PortEvent, source), 4);
    }
}

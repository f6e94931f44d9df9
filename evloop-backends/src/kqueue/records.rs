//! The kqueue backend's pure logic, apart from any kernel call so it is unit-tested on
//! every host (Linux included): which change records an interest transition needs, what
//! a receipt says, what a returned record means as [`Ready`], and how the two filters of
//! one fd become one [`BackendEvent`].
//!
//! Everything works on [`Record`], our own copy of the fields of `struct kevent` that
//! matter, so the same code serves every kqueue flavour (NetBSD's `kevent` has `u32`
//! filter and flags, the others `i16`/`u16`). On kqueue targets the constants come from
//! `libc`; elsewhere (tests only) they are FreeBSD's values written out.

use std::os::fd::RawFd;

use crate::{BackendEvent, Interest, Ready};

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
// NetBSD's constants are already `u32`; the others' `i16`/`u16`: a cast that is a no-op on
// one flavour is needed on another.
#[allow(clippy::unnecessary_cast)]
mod consts {
    pub(crate) const EVFILT_READ: i32 = libc::EVFILT_READ as i32;
    pub(crate) const EVFILT_WRITE: i32 = libc::EVFILT_WRITE as i32;
    pub(crate) const EV_ADD: u32 = libc::EV_ADD as u32;
    pub(crate) const EV_DELETE: u32 = libc::EV_DELETE as u32;
    pub(crate) const EV_DISABLE: u32 = libc::EV_DISABLE as u32;
    pub(crate) const EV_CLEAR: u32 = libc::EV_CLEAR as u32;
    pub(crate) const EV_RECEIPT: u32 = libc::EV_RECEIPT as u32;
    pub(crate) const EV_ERROR: u32 = libc::EV_ERROR as u32;
    pub(crate) const EV_EOF: u32 = libc::EV_EOF as u32;
}

/// FreeBSD's values (`sys/event.h`), so the logic is testable on non-kqueue hosts.
#[cfg(not(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
)))]
mod consts {
    pub(crate) const EVFILT_READ: i32 = -1;
    pub(crate) const EVFILT_WRITE: i32 = -2;
    pub(crate) const EV_ADD: u32 = 0x0001;
    pub(crate) const EV_DELETE: u32 = 0x0002;
    pub(crate) const EV_DISABLE: u32 = 0x0008;
    pub(crate) const EV_CLEAR: u32 = 0x0020;
    pub(crate) const EV_RECEIPT: u32 = 0x0040;
    pub(crate) const EV_ERROR: u32 = 0x4000;
    pub(crate) const EV_EOF: u32 = 0x8000;
}

pub(crate) use consts::*;

/// The fields of a `struct kevent` the backend uses. `udata` is always null: the token
/// is looked up by fd when events are decoded (see `Kqueue`), so it needs no kernel call
/// to change and no pointer-sized field to hold it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Record {
    /// The fd (`ident`).
    pub ident: usize,
    /// `EVFILT_READ` or `EVFILT_WRITE` (widened to `i32`).
    pub filter: i32,
    /// `EV_*` flags (widened to `u32`).
    pub flags: u32,
    /// Filter flags: for a socket with `EV_EOF`, its pending error (`so_error`).
    pub fflags: u32,
    /// Bytes readable / space writable; for a receipt, the errno of the change.
    pub data: i64,
}

impl Record {
    fn change(fd: RawFd, filter: i32, flags: u32) -> Record {
        Record {
            ident: fd as usize,
            filter,
            flags: flags | EV_RECEIPT,
            fflags: 0,
            data: 0,
        }
    }

    /// `EV_ADD` of `filter` for `fd`, edge-triggered (`EV_CLEAR`) if `edge`.
    pub(crate) fn add(fd: RawFd, filter: i32, edge: bool) -> Record {
        let clear = if edge { EV_CLEAR } else { 0 };
        Record::change(fd, filter, EV_ADD | clear)
    }

    /// `EV_DELETE` of `filter` for `fd`.
    pub(crate) fn delete(fd: RawFd, filter: i32) -> Record {
        Record::change(fd, filter, EV_DELETE)
    }
}

/// Up to four change records (the most one transition needs: delete and re-add of both
/// filters when [`Interest::EDGE`] flips). A fixed array: building them allocates nothing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Records {
    buf: [Record; 4],
    len: usize,
}

impl Records {
    fn push(&mut self, r: Record) {
        self.buf[self.len] = r;
        self.len += 1;
    }

    /// The records, in the order the kernel must apply them.
    pub(crate) fn as_slice(&self) -> &[Record] {
        &self.buf[..self.len]
    }
}

/// The change records that take the kernel from `old` to `new` for `fd`, each with
/// `EV_RECEIPT` so its outcome comes back on its own.
///
/// Per filter: added when it becomes wanted, **deleted** when it stops being wanted
/// (never just disabled: see the backend docs), and deleted then re-added when
/// [`Interest::EDGE`] flips, because an existing knote keeps the `EV_CLEAR` it was added
/// with on FreeBSD. `PEER_CLOSED` needs no record: `EV_EOF` always comes with the read
/// filter. Every record is idempotent (a repeated add modifies, a repeated delete fails
/// with the ignored `ENOENT`), so a batch may safely be submitted again.
pub(crate) fn changes(fd: RawFd, old: Interest, new: Interest) -> Records {
    let mut out = Records::default();
    let filters = [
        (EVFILT_READ, old.is_readable(), new.is_readable()),
        (EVFILT_WRITE, old.is_writable(), new.is_writable()),
    ];
    for (filter, was, now) in filters {
        match (was, now) {
            (false, true) => out.push(Record::add(fd, filter, new.is_edge())),
            (true, false) => out.push(Record::delete(fd, filter)),
            (true, true) if old.is_edge() != new.is_edge() => {
                out.push(Record::delete(fd, filter));
                out.push(Record::add(fd, filter, new.is_edge()));
            }
            _ => {}
        }
    }
    out
}

/// Records that check `fd` can be watched without watching it (a registration with an
/// empty interest): add the read filter disabled, then delete it. A closed fd is refused
/// (`EBADF`) like any registration.
pub(crate) fn probe(fd: RawFd) -> [Record; 2] {
    [
        Record::change(fd, EVFILT_READ, EV_ADD | EV_DISABLE),
        Record::delete(fd, EVFILT_READ),
    ]
}

/// Records that forget `fd` entirely: delete both filters (the one not held fails with
/// the ignored `ENOENT`).
pub(crate) fn forget(fd: RawFd) -> [Record; 2] {
    [
        Record::delete(fd, EVFILT_READ),
        Record::delete(fd, EVFILT_WRITE),
    ]
}

/// The ident of [`guard`]: an fd number no process can have open.
pub(crate) const GUARD_IDENT: usize = i32::MAX as usize;

/// A change that always fails (`EBADF`: no fd has this number), for kernels that may
/// ignore `EV_RECEIPT` (old NetBSD): a change call that returns at least one receipt
/// returns at once, without collecting events into the receipt buffer. Its receipt is
/// skipped.
pub(crate) fn guard() -> Record {
    Record::delete(GUARD_IDENT as RawFd, EVFILT_READ)
}

/// What a record returned by a kevent call that carried changes says about its change:
/// `None` if it is not a receipt (no `EV_ERROR`) or the change is fine, else the errno.
///
/// Fine are: 0 (applied); `ENOENT` (only a delete can get it: the kernel had already
/// dropped the knote, which is what a delete wants); `EPIPE` (old macOS refuses the write
/// filter of a pipe whose reader is gone, though the knote is there and reports `EV_EOF`);
/// and, with `tolerate_ebadf` (deregistering), `EBADF`: the fd was closed, and closing an
/// fd drops its knotes.
pub(crate) fn refused(r: &Record, tolerate_ebadf: bool) -> Option<i32> {
    if r.flags & EV_ERROR == 0 {
        return None;
    }
    match r.data as i32 {
        0 | libc::ENOENT | libc::EPIPE => None,
        libc::EBADF if tolerate_ebadf => None,
        e => Some(e),
    }
}

/// Map one returned record to readiness, given what the registration asked for and
/// whether the fd is a pipe or FIFO (asked only when `EV_EOF` is set).
///
/// * Read filter: `READABLE` always: it fires for data, a pending connection, or end of
///   file, and EOF is readable (a read returns 0 at once). With `EV_EOF` the peer shut
///   its writing side: `READ_CLOSED` (if `PEER_CLOSED` was asked, as epoll's RDHUP); for
///   a pipe, which has only that one direction, it is also `HUP` (what epoll and poll
///   report for a pipe whose writers are gone).
/// * Write filter: `WRITABLE` always (a write will not block; it may fail). With `EV_EOF`
///   this side can send no more: `HUP`; for a pipe, whose reader is gone, also `ERROR`
///   (the next write fails with `EPIPE`; epoll reports EPOLLERR there).
/// * A non-zero `fflags` with `EV_EOF` is the socket's pending error: `ERROR`.
/// * A receipt (`EV_ERROR`) is not readiness: `EMPTY`.
pub(crate) fn ready(r: &Record, asked: Interest, pipe: bool) -> Ready {
    if r.flags & EV_ERROR != 0 {
        return Ready::EMPTY;
    }
    let eof = r.flags & EV_EOF != 0;
    let mut ready = Ready::EMPTY;
    if r.filter == EVFILT_READ {
        ready |= Ready::READABLE;
        if eof {
            if asked.is_peer_closed() {
                ready |= Ready::READ_CLOSED;
            }
            if pipe {
                ready |= Ready::HUP;
            }
        }
    } else if r.filter == EVFILT_WRITE {
        ready |= Ready::WRITABLE;
        if eof {
            ready |= Ready::HUP;
            if pipe {
                ready |= Ready::ERROR;
            }
        }
    } else {
        return Ready::EMPTY;
    }
    if eof && r.fflags != 0 {
        ready |= Ready::ERROR;
    }
    ready
}

/// What an fd is, as far as decoding `EV_EOF` cares; found out lazily (one `fstat` the
/// first time a registration sees `EV_EOF`) and forgotten when the fd is registered again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum FdKind {
    /// Not asked yet.
    #[default]
    Unknown,
    /// A pipe or FIFO.
    Pipe,
    /// Anything else (a socket, a tty, a file).
    Other,
}

#[derive(Clone, Copy, Debug, Default)]
struct Mark {
    /// The wait that last reported this fd (`Marks::wait`), so nothing is cleared per wait.
    wait: u32,
    /// Its position in that wait's events.
    pos: u32,
    kind: FdKind,
}

/// Per-fd scratch state for decoding: where this wait's event for an fd is (so its two
/// filters merge into one [`BackendEvent`] in O(1), without searching or allocating) and what
/// kind of fd it is. Indexed by fd; grows only when a larger fd is registered.
pub(crate) struct Marks {
    wait: u32,
    slots: Vec<Mark>,
}

impl Marks {
    /// Room for fds below `len`.
    pub(crate) fn new(len: usize) -> Marks {
        Marks {
            wait: 0,
            slots: vec![Mark::default(); len],
        }
    }

    /// Make room for `fd` and forget what was known about the file it used to name
    /// (called by `register`, where allocating is allowed).
    pub(crate) fn registered(&mut self, fd: RawFd) {
        let i = fd as usize;
        if i >= self.slots.len() {
            self.slots
                .resize((i + 1).next_power_of_two(), Mark::default());
        }
        self.slots[i].kind = FdKind::Unknown;
    }

    /// The kind recorded for `fd`.
    #[cfg(test)]
    pub(crate) fn kind(&self, fd: RawFd) -> FdKind {
        self.slots
            .get(fd as usize)
            .map_or(FdKind::Unknown, |m| m.kind)
    }

    fn next_wait(&mut self) -> u32 {
        self.wait = self.wait.wrapping_add(1);
        if self.wait == 0 {
            // Wrapped after 2^32 waits: old stamps could collide, so clear them once.
            for m in &mut self.slots {
                m.wait = 0;
            }
            self.wait = 1;
        }
        self.wait
    }
}

/// What `decode` needs to know about a registered fd.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Registration {
    /// The token to report.
    pub token: u64,
    /// The interest the kernel was asked for.
    pub interest: Interest,
}

/// Turn the records of one wait into events in `out`, one per fd (its read and write
/// filters merged), and return how many. For each record:
///
/// * receipts (`EV_ERROR`) are skipped;
/// * `lookup(fd)` gives the registration; a record for an fd that is not registered, or
///   for a filter its interest does not hold, is a stray knote (a delete that failed):
///   it is handed to `stray` (which deletes it, so it cannot make the loop spin) and
///   skipped;
/// * `is_pipe(fd)` is asked once per registration, the first time `EV_EOF` shows up.
///
/// `out` should have room for every record (the backend asks the kernel for at most
/// `out.len()`); records beyond its room are dropped.
pub(crate) fn decode<I, L, P, S>(
    records: I,
    out: &mut [BackendEvent],
    marks: &mut Marks,
    mut lookup: L,
    mut is_pipe: P,
    mut stray: S,
) -> usize
where
    I: IntoIterator<Item = Record>,
    L: FnMut(RawFd) -> Option<Registration>,
    P: FnMut(RawFd) -> bool,
    S: FnMut(&Record),
{
    let wait = marks.next_wait();
    let mut n = 0;
    for r in records {
        if r.flags & EV_ERROR != 0 {
            continue;
        }
        let Ok(fd) = RawFd::try_from(r.ident) else {
            stray(&r);
            continue;
        };
        let reg = lookup(fd);
        let held = reg.is_some_and(|reg| {
            (r.filter == EVFILT_READ && reg.interest.is_readable())
                || (r.filter == EVFILT_WRITE && reg.interest.is_writable())
        });
        let (Some(reg), true, Some(mark)) = (reg, held, marks.slots.get_mut(fd as usize)) else {
            stray(&r);
            continue;
        };
        let mut pipe = false;
        if r.flags & EV_EOF != 0 {
            if mark.kind == FdKind::Unknown {
                mark.kind = if is_pipe(fd) {
                    FdKind::Pipe
                } else {
                    FdKind::Other
                };
            }
            pipe = mark.kind == FdKind::Pipe;
        }
        let rd = ready(&r, reg.interest, pipe);
        if mark.wait == wait {
            out[mark.pos as usize].ready |= rd;
        } else if n < out.len() {
            mark.wait = wait;
            mark.pos = n as u32;
            out[n] = BackendEvent {
                token: reg.token,
                ready: rd,
            };
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod kqueue_tests {
    use super::*;

    const FD: RawFd = 7;
    const R: Interest = Interest::READ;
    const W: Interest = Interest::WRITE;
    const E: Interest = Interest::EDGE;
    const N: Interest = Interest::NONE;

    fn add(filter: i32, edge: bool) -> Record {
        Record {
            ident: FD as usize,
            filter,
            flags: EV_ADD | EV_RECEIPT | if edge { EV_CLEAR } else { 0 },
            fflags: 0,
            data: 0,
        }
    }

    fn del(filter: i32) -> Record {
        Record {
            ident: FD as usize,
            filter,
            flags: EV_DELETE | EV_RECEIPT,
            fflags: 0,
            data: 0,
        }
    }

    fn recs(old: Interest, new: Interest) -> Vec<Record> {
        changes(FD, old, new).as_slice().to_vec()
    }

    #[test]
    fn kqueue_none_to_read_adds_the_read_filter() {
        assert_eq!(recs(N, R), vec![add(EVFILT_READ, false)]);
        assert_eq!(recs(N, W), vec![add(EVFILT_WRITE, false)]);
        assert_eq!(
            recs(N, R | W),
            vec![add(EVFILT_READ, false), add(EVFILT_WRITE, false)]
        );
    }

    #[test]
    fn kqueue_read_to_read_write_adds_only_the_write_filter() {
        assert_eq!(recs(R, R | W), vec![add(EVFILT_WRITE, false)]);
        assert_eq!(recs(R | W, R), vec![del(EVFILT_WRITE)]);
        assert_eq!(recs(R, W), vec![del(EVFILT_READ), add(EVFILT_WRITE, false)]);
    }

    #[test]
    fn kqueue_edge_sets_ev_clear_and_a_flip_readds() {
        assert_eq!(recs(N, R | E), vec![add(EVFILT_READ, true)]);
        assert_eq!(recs(R | E, R | W | E), vec![add(EVFILT_WRITE, true)]);
        // Flipping EDGE on a held filter: delete and re-add (EV_CLEAR is fixed at add).
        assert_eq!(
            recs(R, R | E),
            vec![del(EVFILT_READ), add(EVFILT_READ, true)]
        );
        assert_eq!(
            recs(R | W | E, R | W),
            vec![
                del(EVFILT_READ),
                add(EVFILT_READ, false),
                del(EVFILT_WRITE),
                add(EVFILT_WRITE, false)
            ]
        );
    }

    #[test]
    fn kqueue_to_none_deletes_every_held_filter() {
        assert_eq!(recs(R, N), vec![del(EVFILT_READ)]);
        assert_eq!(
            recs(R | W | E, N),
            vec![del(EVFILT_READ), del(EVFILT_WRITE)]
        );
        // EDGE alone asks for nothing.
        assert_eq!(recs(R, E), vec![del(EVFILT_READ)]);
        assert!(recs(N, E).is_empty());
    }

    #[test]
    fn kqueue_readd_after_delete_and_no_op_transitions() {
        // Stopped (deleted), started again: a plain add.
        assert_eq!(recs(N, R), vec![add(EVFILT_READ, false)]);
        // Same interest, or only PEER_CLOSED changing: nothing for the kernel.
        assert!(recs(R, R).is_empty());
        assert!(recs(R, R | Interest::PEER_CLOSED).is_empty());
        assert!(recs(N, N).is_empty());
        assert!(recs(N, Interest::PEER_CLOSED).is_empty());
    }

    #[test]
    fn kqueue_probe_and_forget_records() {
        let [a, d] = probe(FD);
        assert_eq!(a.flags, EV_ADD | EV_DISABLE | EV_RECEIPT);
        assert_eq!((a.filter, d.filter), (EVFILT_READ, EVFILT_READ));
        assert_eq!(d, del(EVFILT_READ));
        assert_eq!(forget(FD), [del(EVFILT_READ), del(EVFILT_WRITE)]);
    }

    #[test]
    fn kqueue_guard_record_names_no_fd() {
        let g = guard();
        assert_eq!(g.ident, GUARD_IDENT);
        assert_eq!(g.ident as RawFd, i32::MAX);
        assert_eq!(g.flags, EV_DELETE | EV_RECEIPT);
    }

    fn receipt(errno: i32) -> Record {
        Record {
            ident: FD as usize,
            filter: EVFILT_READ,
            flags: EV_ERROR,
            fflags: 0,
            data: errno as i64,
        }
    }

    #[test]
    fn kqueue_receipts() {
        assert_eq!(refused(&receipt(0), false), None, "applied");
        assert_eq!(refused(&receipt(libc::ENOENT), false), None, "already gone");
        assert_eq!(
            refused(&receipt(libc::EPIPE), false),
            None,
            "old macOS pipe"
        );
        assert_eq!(refused(&receipt(libc::EBADF), false), Some(libc::EBADF));
        assert_eq!(refused(&receipt(libc::EBADF), true), None, "deregister");
        assert_eq!(refused(&receipt(libc::EINVAL), true), Some(libc::EINVAL));
        // Not a receipt at all: readiness, not an error.
        let ev = Record {
            data: libc::EBADF as i64,
            ..rec(EVFILT_READ, 0, 0)
        };
        assert_eq!(refused(&ev, false), None);
        // And a receipt is never readiness.
        assert_eq!(ready(&receipt(0), R, false), Ready::EMPTY);
        assert_eq!(ready(&receipt(libc::EINVAL), R | W, true), Ready::EMPTY);
    }

    fn rec(filter: i32, flags: u32, fflags: u32) -> Record {
        Record {
            ident: FD as usize,
            filter,
            flags,
            fflags,
            data: 0,
        }
    }

    #[test]
    fn kqueue_read_eof_keeps_readable() {
        let pc = R | Interest::PEER_CLOSED;
        let data = Record {
            data: 3,
            ..rec(EVFILT_READ, EV_EOF, 0)
        };
        let drained = rec(EVFILT_READ, EV_EOF, 0);
        for r in [data, drained] {
            // With or without bytes pending, EOF is readable.
            assert_eq!(ready(&r, pc, false), Ready::READABLE | Ready::READ_CLOSED);
            // READ_CLOSED only when asked for, as epoll's RDHUP.
            assert_eq!(ready(&r, R, false), Ready::READABLE);
            // A pipe has one direction: its writers gone is a hang-up.
            assert_eq!(
                ready(&r, pc, true),
                Ready::READABLE | Ready::READ_CLOSED | Ready::HUP
            );
        }
        assert_eq!(
            ready(
                &Record {
                    data: 5,
                    ..rec(EVFILT_READ, 0, 0)
                },
                R,
                false
            ),
            Ready::READABLE
        );
    }

    #[test]
    fn kqueue_write_eof_is_hup() {
        assert_eq!(ready(&rec(EVFILT_WRITE, 0, 0), W, false), Ready::WRITABLE);
        assert_eq!(
            ready(&rec(EVFILT_WRITE, EV_EOF, 0), W, false),
            Ready::WRITABLE | Ready::HUP
        );
        // A pipe whose reader is gone: writing fails with EPIPE.
        assert_eq!(
            ready(&rec(EVFILT_WRITE, EV_EOF, 0), W, true),
            Ready::WRITABLE | Ready::HUP | Ready::ERROR
        );
    }

    #[test]
    fn kqueue_fflags_error_is_error() {
        let refused = rec(EVFILT_WRITE, EV_EOF, libc::ECONNREFUSED as u32);
        assert_eq!(
            ready(&refused, W, false),
            Ready::WRITABLE | Ready::HUP | Ready::ERROR
        );
        let reset = rec(EVFILT_READ, EV_EOF, libc::ECONNRESET as u32);
        assert_eq!(
            ready(&reset, R | Interest::PEER_CLOSED, false),
            Ready::READABLE | Ready::READ_CLOSED | Ready::ERROR
        );
        // `data` is a byte count, never an error.
        let big = Record {
            data: libc::ECONNRESET as i64,
            ..rec(EVFILT_READ, 0, 0)
        };
        assert_eq!(ready(&big, R, false), Ready::READABLE);
        // A filter we never add reports nothing.
        assert_eq!(ready(&rec(-9, EV_EOF, 1), R, false), Ready::EMPTY);
    }

    fn at(fd: RawFd, r: Record) -> Record {
        Record {
            ident: fd as usize,
            ..r
        }
    }

    struct Fixture {
        marks: Marks,
        out: Vec<BackendEvent>,
        strays: Vec<Record>,
        probes: Vec<RawFd>,
    }

    impl Fixture {
        fn new(cap: usize) -> Fixture {
            let mut marks = Marks::new(4);
            for fd in 0..40 {
                marks.registered(fd);
            }
            Fixture {
                marks,
                out: vec![
                    BackendEvent {
                        token: 0,
                        ready: Ready::EMPTY
                    };
                    cap
                ],
                strays: vec![],
                probes: vec![],
            }
        }

        /// Decode with fds 3..=9 registered as READ|WRITE (token 100 + fd), fd 10 as READ
        /// only, fd 11 as a pipe with READ|PEER_CLOSED.
        fn decode(&mut self, records: &[Record]) -> Vec<BackendEvent> {
            let strays = &mut self.strays;
            let probes = &mut self.probes;
            let n = decode(
                records.iter().copied(),
                &mut self.out,
                &mut self.marks,
                |fd| match fd {
                    3..=9 => Some(Registration {
                        token: 100 + fd as u64,
                        interest: R | W,
                    }),
                    10 => Some(Registration {
                        token: 110,
                        interest: R,
                    }),
                    11 => Some(Registration {
                        token: 111,
                        interest: R | Interest::PEER_CLOSED,
                    }),
                    _ => None,
                },
                |fd| {
                    probes.push(fd);
                    fd == 11
                },
                |r| strays.push(*r),
            );
            self.out[..n].to_vec()
        }
    }

    #[test]
    fn kqueue_two_filters_of_one_fd_merge_into_one_event() {
        let mut f = Fixture::new(8);
        let evs = f.decode(&[
            at(3, rec(EVFILT_WRITE, 0, 0)),
            at(4, rec(EVFILT_READ, 0, 0)),
            at(3, rec(EVFILT_READ, 0, 0)),
        ]);
        assert_eq!(
            evs,
            vec![
                BackendEvent {
                    token: 103,
                    ready: Ready::READABLE | Ready::WRITABLE
                },
                BackendEvent {
                    token: 104,
                    ready: Ready::READABLE
                },
            ]
        );
        // The next wait starts afresh: no merging with the previous one's events.
        let evs = f.decode(&[at(4, rec(EVFILT_WRITE, 0, 0))]);
        assert_eq!(
            evs,
            vec![BackendEvent {
                token: 104,
                ready: Ready::WRITABLE
            }]
        );
        assert!(f.strays.is_empty());
    }

    #[test]
    fn kqueue_decode_skips_receipts_and_strays() {
        let mut f = Fixture::new(8);
        let evs = f.decode(&[
            at(3, receipt(0)),
            at(20, rec(EVFILT_READ, 0, 0)),  // not registered
            at(10, rec(EVFILT_WRITE, 0, 0)), // registered for READ only
            Record {
                ident: usize::MAX,
                ..rec(EVFILT_READ, 0, 0)
            },
            at(10, rec(EVFILT_READ, 0, 0)),
        ]);
        assert_eq!(
            evs,
            vec![BackendEvent {
                token: 110,
                ready: Ready::READABLE
            }]
        );
        assert_eq!(f.strays.len(), 3, "{:?}", f.strays);
        assert_eq!(f.strays[0].ident, 20);
        assert_eq!((f.strays[1].ident, f.strays[1].filter), (10, EVFILT_WRITE));
    }

    #[test]
    fn kqueue_decode_asks_the_fd_kind_once_per_registration() {
        let mut f = Fixture::new(8);
        let eof = rec(EVFILT_READ, EV_EOF, 0);
        for _ in 0..3 {
            let evs = f.decode(&[at(11, eof), at(10, eof), at(9, rec(EVFILT_READ, 0, 0))]);
            assert_eq!(
                evs,
                vec![
                    BackendEvent {
                        token: 111,
                        ready: Ready::READABLE | Ready::READ_CLOSED | Ready::HUP
                    },
                    BackendEvent {
                        token: 110,
                        ready: Ready::READABLE
                    },
                    BackendEvent {
                        token: 109,
                        ready: Ready::READABLE
                    },
                ]
            );
        }
        assert_eq!(f.probes, vec![11, 10], "fd 9 saw no EOF: never asked");
        assert_eq!(f.marks.kind(11), FdKind::Pipe);
        // Registered again (a new file may have the number): asked again.
        f.marks.registered(11);
        assert_eq!(f.marks.kind(11), FdKind::Unknown);
        f.decode(&[at(11, eof)]);
        assert_eq!(f.probes, vec![11, 10, 11]);
    }

    #[test]
    fn kqueue_decode_never_overflows_the_buffer() {
        let mut f = Fixture::new(2);
        let evs = f.decode(&[
            at(3, rec(EVFILT_READ, 0, 0)),
            at(4, rec(EVFILT_READ, 0, 0)),
            at(5, rec(EVFILT_READ, 0, 0)),
            at(3, rec(EVFILT_WRITE, 0, 0)),
        ]);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].ready, Ready::READABLE | Ready::WRITABLE);
    }

    #[test]
    fn kqueue_marks_survive_the_wait_counter_wrapping() {
        let mut f = Fixture::new(4);
        f.marks.wait = u32::MAX - 1;
        for _ in 0..4 {
            let evs = f.decode(&[
                at(3, rec(EVFILT_READ, 0, 0)),
                at(3, rec(EVFILT_WRITE, 0, 0)),
            ]);
            assert_eq!(
                evs,
                vec![BackendEvent {
                    token: 103,
                    ready: Ready::READABLE | Ready::WRITABLE
                }]
            );
        }
        assert!(f.marks.wait >= 1);
    }
}

//! The kqueue backend's kernel side: see [`Kqueue`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::ptr;
use std::time::Duration;

use super::fd::KqueueFd;
use super::records::{self, Marks, Record, Registration};
use crate::changelist::ChangeList;
use crate::sys::{
    already_registered, negative_fd, not_registered, syscall, timeout_timespec, Deadline,
};
use crate::{Backend, BackendEvent, Interest, Ready};

/// Change records per `kevent` call that applies changes. The buffers are this size
/// for good: a bigger change list is applied in several calls, never by growing them.
const CHANGE_BATCH: usize = 128;

/// The longest timeout handed to the kernel, in seconds (about 3.2 years): within what
/// every kqueue kernel accepts (old NetBSD refused more than 10^8 s). A longer one is
/// clamped; the caller wakes early and waits again.
const MAX_TIMEOUT_SECS: u64 = 100_000_000;

/// On NetBSD, `EV_RECEIPT` arrived late (older kernels ignore the flag). A kernel that
/// ignores it returns nothing for a successful change and then goes on to *collect
/// events* into the receipt buffer, which would lose edge-triggered ones. A guard record
/// that always fails (a delete for an fd number that cannot be open) makes sure every
/// change call returns at least one receipt, and a call that returns a receipt never
/// collects events.
const GUARD: bool = cfg!(target_os = "netbsd");

/// The kqueue backend: macOS, iOS, FreeBSD, NetBSD, OpenBSD, DragonFly (default there).
///
/// * **Filters**: `EVFILT_READ` for [`Interest::READ`], `EVFILT_WRITE` for
///   [`Interest::WRITE`], level-triggered, or with `EV_CLEAR` for [`Interest::EDGE`]
///   ([`Backend::NATIVE_EDGE`] is true). An interest that flips `EDGE` deletes and re-adds
///   the filter (an existing knote keeps the `EV_CLEAR` it was added with).
/// * **An empty interest deletes the filters** (`EV_DELETE`) rather than disabling them.
///   Both keep a hung-up fd quiet (a disabled knote is never returned), but with delete
///   the kernel holds exactly the filters of the current interest, which is the one
///   thing the [change list](crate::changelist) records: there is no third
///   "added but disabled" state to track, to forget after `fork`, or to leak for a
///   stopped fd that is never restarted. Restarting costs one `EV_ADD`, as `EV_ENABLE`
///   would.
/// * **Changes**: [`Backend::register`] and [`Backend::deregister`] reach the kernel at
///   once; [`Backend::modify`] is coalesced by the change list and the next wait (or
///   flush) applies all changes in one `kevent` call (one per 128 records), every record
///   with `EV_RECEIPT`, so each change's outcome comes back on its own. A refused change
///   is reported as an [`Ready::ERROR`] event for its token by the next wait; `ENOENT`
///   (a delete of a knote the kernel already dropped) and `EPIPE` (old macOS, write
///   filter of a widowed pipe) are not refusals, nor is `EBADF` when deregistering (the
///   fd was closed, which drops its knotes). The changes go in a call of their own, not
///   in the waiting call: a `kevent` call that returns any receipt returns at once,
///   without collecting events (on every BSD and on macOS), so a combined call could not
///   block.
/// * **Events**: the kernel returns one record per filter; the two records of an fd in
///   one wait are merged into one [`BackendEvent`] (an fd-indexed scratch table finds the first
///   one in O(1), nothing is allocated). Tokens are looked up by fd rather than carried
///   in `udata`, so a `modify` that only changes the token costs no kernel call.
/// * **Readiness**: the read filter is `READABLE`, also at end of file (EOF is
///   readable), plus `READ_CLOSED` with `EV_EOF` when [`Interest::PEER_CLOSED`] was asked;
///   the write filter is `WRITABLE`, plus `HUP` with `EV_EOF`; a socket error (in
///   `fflags`, not `data`) is `ERROR`. A pipe has one direction only, so on a pipe
///   `EV_EOF` is `HUP` on the read side and `ERROR` on the write side (the next write
///   fails with `EPIPE`), as epoll and poll report them; the fd's type is found with one
///   `fstat` the first time a registration sees `EV_EOF`. A socket watched only for
///   reading cannot tell a half close from a full one: its peer closing shows as
///   `READABLE` (and `READ_CLOSED`), not `HUP`.
/// * **Closed fds**: closing an fd drops its knotes, so an fd closed while registered is
///   forgotten by the kernel silently (as with epoll) and never makes the loop spin.
/// * **Timeouts** are `timespec`s: nanosecond resolution, so a non-zero timeout never
///   becomes a poll; beyond about 3.2 years they are clamped. `EINTR` is retried with
///   the remaining time.
/// * **fork**: a kqueue is not inherited by a child. [`Backend::reinit`] creates a new one
///   and registers every fd again; the old number is not closed in the child (it may
///   already name the new kqueue).
///
/// ```
/// # #[cfg(any(target_os = "macos", target_os = "ios", target_os = "tvos",
/// #     target_os = "watchos", target_os = "visionos", target_os = "freebsd",
/// #     target_os = "netbsd", target_os = "openbsd", target_os = "dragonfly"))] {
/// use evloop_backends::{Backend, Interest, Kqueue};
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let mut kq = Kqueue::new(64).unwrap();
/// assert!(kq.pollable_fd().is_some());
/// let (a, mut b) = UnixStream::pair().unwrap();
/// kq.register(a.as_raw_fd(), 7, Interest::READ | Interest::WRITE).unwrap();
/// b.write_all(b"ping").unwrap();
/// assert_eq!(kq.wait(Some(Duration::from_secs(5))).unwrap(), 1); // two filters, one event
/// let ev = kq.event(0);
/// assert_eq!(ev.token, 7);
/// assert!(ev.ready.is_readable() && ev.ready.is_writable());
/// kq.deregister(a.as_raw_fd()).unwrap();
/// # }
/// ```
pub struct Kqueue {
    kq: KqueueFd,
    /// What the waiting call fills, allocated once.
    kevents: Box<[libc::kevent]>,
    /// The decoded events of the last wait, allocated once.
    events: Box<[BackendEvent]>,
    /// Change records being batched (capacity `CHANGE_BATCH + 1`, never grown).
    changes: Vec<libc::kevent>,
    /// Where a change call's receipts land (`CHANGE_BATCH + 1`).
    receipts: Box<[libc::kevent]>,
    table: ChangeList,
    marks: Marks,
    /// fds whose change the kernel refused in the current batch of change calls.
    refused: Vec<RawFd>,
    /// Tokens of refused changes, reported as ERROR events by the next wait.
    failed: Vec<u64>,
    change_calls: u64,
}

// SAFETY: the only parts that are not `Send` are the `udata` raw pointers inside the
// owned kevent buffers. They are always null and never dereferenced: plain data.
unsafe impl Send for Kqueue {}

fn zeroed_kevent() -> libc::kevent {
    // SAFETY: `struct kevent` is plain data (integers and a pointer that may be null),
    // for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

// The field types differ between kqueue flavours (NetBSD's filter and flags are `u32`,
// macOS's data is `intptr_t`): casts that are no-ops on one target are needed on another.
#[allow(clippy::unnecessary_cast)]
fn to_kevent(r: &Record) -> libc::kevent {
    let mut k = zeroed_kevent();
    k.ident = r.ident as _;
    k.filter = r.filter as _;
    k.flags = r.flags as _;
    k.fflags = r.fflags as _;
    k.data = r.data as _;
    k
}

#[allow(clippy::unnecessary_cast)]
fn from_kevent(k: &libc::kevent) -> Record {
    Record {
        ident: k.ident as usize,
        filter: k.filter as i32,
        flags: k.flags as u32,
        fflags: k.fflags as u32,
        data: k.data as i64,
    }
}

/// Whether `fd` is a pipe or FIFO (false if it cannot be told).
fn is_pipe(fd: RawFd) -> bool {
    // SAFETY: an all-zero `stat` is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid, writable stat struct.
    let ok = unsafe { libc::fstat(fd, &mut st) } == 0;
    ok && (st.st_mode & libc::S_IFMT) == libc::S_IFIFO
}

/// Delete a knote the registration table does not account for, so that a level-triggered
/// stray cannot make every wait return at once. Errors are ignored: gone is the goal.
fn delete_stray(kq: RawFd, r: &Record) {
    let del = to_kevent(&Record {
        flags: records::EV_DELETE,
        ..*r
    });
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the change list is `del`, one initialised kevent on this stack frame, only
    // read (nchanges 1); the event list is null with nevents 0, so the kernel writes
    // nothing; `zero` is a valid timespec alive for the call.
    let _ = unsafe { syscall!(kevent(kq, &del, 1, ptr::null_mut(), 0, &zero)) };
}

/// Submit the change records in `changes` (all with `EV_RECEIPT`) to `kq` and return
/// the receipts, one per change. `changes` is left as it was, guard record excepted.
fn submit<'r>(
    kq: RawFd,
    changes: &mut Vec<libc::kevent>,
    receipts: &'r mut [libc::kevent],
) -> io::Result<&'r [libc::kevent]> {
    if GUARD {
        changes.push(to_kevent(&records::guard()));
    }
    debug_assert!(changes.len() <= receipts.len());
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let res = loop {
        // SAFETY: `changes` is borrowed for the call and holds `changes.len()`
        // initialised kevents, which the kernel only reads; `receipts` is a separate,
        // mutably borrowed slice of `receipts.len()` kevents (`CHANGE_BATCH + 1`, so both
        // counts fit the kernel's int), and the kernel writes at most that many records
        // into it. `zero` is a valid timespec alive for the call.
        let r = unsafe {
            syscall!(kevent(
                kq,
                changes.as_ptr(),
                changes.len() as _,
                receipts.as_mut_ptr(),
                receipts.len() as _,
                &zero,
            ))
        };
        match r {
            // A call that returns receipts never waits, so EINTR is next to impossible
            // here; if it happens, submitting again is safe: every record is idempotent
            // (a repeated add modifies, a repeated delete gets the ignored ENOENT) and the
            // receipts land apart from the changes, which are intact.
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            r => break r,
        }
    };
    if GUARD {
        changes.pop();
    }
    let n = res? as usize;
    Ok(&receipts[..n.min(receipts.len())])
}

/// The first refusal among `receipts` (see [`records::refused`]).
fn first_refusal(receipts: &[libc::kevent], tolerate_ebadf: bool) -> Option<i32> {
    receipts
        .iter()
        .map(from_kevent)
        .filter(|r| r.ident != records::GUARD_IDENT)
        .find_map(|r| records::refused(&r, tolerate_ebadf))
}

/// Submit a batch of changes and note the fds whose change was refused (all of them if
/// the call itself failed). Leaves `changes` empty.
fn apply_batch(
    kq: RawFd,
    changes: &mut Vec<libc::kevent>,
    receipts: &mut [libc::kevent],
    refused: &mut Vec<RawFd>,
    calls: &mut u64,
) {
    if changes.is_empty() {
        return;
    }
    *calls += 1;
    let mut note = |fd: RawFd| {
        if !refused.contains(&fd) && refused.len() < refused.capacity() {
            refused.push(fd);
        }
    };
    match submit(kq, changes, receipts) {
        Ok(got) => {
            for r in got.iter().map(from_kevent) {
                if r.ident != records::GUARD_IDENT && records::refused(&r, false).is_some() {
                    note(r.ident as RawFd);
                }
            }
        }
        Err(_) => {
            for k in changes.iter() {
                note(k.ident as RawFd);
            }
        }
    }
    changes.clear();
}

impl Kqueue {
    /// How many `kevent` calls this backend has made to apply changes (registrations,
    /// deregistrations and change-list batches; waits are not counted). Introspection:
    /// shows what the change list saved.
    ///
    /// ```
    /// # #[cfg(any(target_os = "macos", target_os = "ios", target_os = "tvos",
    /// #     target_os = "watchos", target_os = "visionos", target_os = "freebsd",
    /// #     target_os = "netbsd", target_os = "openbsd", target_os = "dragonfly"))] {
    /// use evloop_backends::{Backend, Interest, Kqueue};
    /// use std::os::fd::AsRawFd;
    /// let mut kq = Kqueue::new(8).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// kq.register(a.as_raw_fd(), 1, Interest::READ).unwrap();
    /// let before = kq.change_calls();
    /// kq.modify(a.as_raw_fd(), 1, Interest::NONE).unwrap(); // stop
    /// kq.modify(a.as_raw_fd(), 1, Interest::READ).unwrap(); // start again
    /// kq.modify(a.as_raw_fd(), 2, Interest::READ).unwrap(); // new token only
    /// kq.flush().unwrap();
    /// assert_eq!(kq.change_calls(), before); // no kernel call
    /// # }
    /// ```
    pub fn change_calls(&self) -> u64 {
        self.change_calls
    }

    /// Apply `records` at once; the first refusal is the error.
    fn apply_now(&mut self, records: &[Record], tolerate_ebadf: bool) -> io::Result<()> {
        self.change_calls += 1;
        self.changes.clear();
        self.changes.extend(records.iter().map(to_kevent));
        let res = submit(self.kq.as_raw_fd(), &mut self.changes, &mut self.receipts);
        self.changes.clear();
        match first_refusal(res?, tolerate_ebadf) {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    /// Apply the change list in as few calls as the batch size allows, then turn the
    /// refusals into tokens for the next wait to report.
    fn apply_changes(&mut self) {
        let kq = self.kq.as_raw_fd();
        let Kqueue {
            table,
            changes,
            receipts,
            refused,
            change_calls,
            ..
        } = self;
        table.drain(|fd, st| {
            let recs = records::changes(fd, st.kernel, st.want);
            let recs = recs.as_slice();
            if changes.len() + recs.len() > CHANGE_BATCH {
                apply_batch(kq, changes, receipts, refused, change_calls);
            }
            changes.extend(recs.iter().map(to_kevent));
            // What the kernel holds from now on. If part of the change is refused (it is
            // then reported as an ERROR event), the kernel holds less than this: a later
            // change heals it, since deleting what is not there is the ignored ENOENT.
            // (A delete only fails with EBADF, once the fd is closed and its knotes gone;
            // should a knote ever outlive its registration, `decode` deletes it.)
            st.want
        });
        apply_batch(kq, changes, receipts, refused, change_calls);
        self.note_refused();
    }

    /// Move the refused fds' tokens to `failed`, once per fd.
    fn note_refused(&mut self) {
        for fd in self.refused.drain(..) {
            if let Some(st) = self.table.get(fd) {
                let token = st.want_token;
                if !self.failed.contains(&token) && self.failed.len() < self.failed.capacity() {
                    self.failed.push(token);
                }
            }
        }
    }

    /// Decode the `n` records of the last wait into `events`.
    fn decode(&mut self, n: usize) -> usize {
        let kq = self.kq.as_raw_fd();
        let table = &self.table;
        records::decode(
            self.kevents[..n].iter().map(from_kevent),
            &mut self.events,
            &mut self.marks,
            |fd| {
                table.get(fd).map(|st| Registration {
                    token: st.kernel_token,
                    interest: st.kernel,
                })
            },
            is_pipe,
            |r| delete_stray(kq, r),
        )
    }
}

impl Backend for Kqueue {
    const NAME: &'static str = "kqueue";
    const NATIVE_EDGE: bool = true;
    const MAX_FD: Option<RawFd> = None;

    fn new(event_capacity: usize) -> io::Result<Self> {
        let cap = event_capacity.clamp(1, i32::MAX as usize);
        let empty = BackendEvent {
            token: 0,
            ready: Ready::EMPTY,
        };
        Ok(Kqueue {
            kq: KqueueFd::new()?,
            kevents: vec![zeroed_kevent(); cap].into_boxed_slice(),
            events: vec![empty; cap].into_boxed_slice(),
            changes: Vec::with_capacity(CHANGE_BATCH + 1),
            receipts: vec![zeroed_kevent(); CHANGE_BATCH + 1].into_boxed_slice(),
            table: ChangeList::new(),
            marks: Marks::new(crate::open_file_limit()),
            refused: Vec::with_capacity(CHANGE_BATCH),
            failed: Vec::with_capacity(cap),
            change_calls: 0,
        })
    }

    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        if fd < 0 {
            return Err(negative_fd(fd));
        }
        if self.table.get(fd).is_some() {
            return Err(already_registered(fd));
        }
        let recs = records::changes(fd, Interest::NONE, interest);
        if recs.as_slice().is_empty() {
            // Nothing to watch yet: still check the fd can be watched.
            self.apply_now(&records::probe(fd), false)?;
        } else if let Err(e) = self.apply_now(recs.as_slice(), false) {
            // One filter may have been added before the other was refused: take it back.
            let _ = self.apply_now(&records::forget(fd), true);
            return Err(e);
        }
        self.marks.registered(fd);
        self.table.insert(fd, token, interest);
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        if self.table.set_wanted(fd, token, interest) {
            Ok(())
        } else {
            Err(not_registered(fd))
        }
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let st = self.table.remove(fd).ok_or_else(|| not_registered(fd))?;
        if st.kernel.is_empty() {
            return Ok(()); // nothing in the kernel (a pending change never reached it)
        }
        self.apply_now(&records::forget(fd), true)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.apply_changes();
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        self.apply_changes();
        if !self.failed.is_empty() {
            // Report refused changes as ERROR events without blocking; any that do not
            // fit wait for the next call.
            let n = self.failed.len().min(self.events.len());
            for (ev, &token) in self.events.iter_mut().zip(&self.failed[..n]) {
                *ev = BackendEvent {
                    token,
                    ready: Ready::ERROR,
                };
            }
            self.failed.drain(..n);
            return Ok(n);
        }
        let deadline = Deadline::new(timeout);
        let mut t = timeout;
        loop {
            let ts = timeout_timespec(t, MAX_TIMEOUT_SECS);
            let tsp = ts
                .as_ref()
                .map_or(ptr::null(), |ts| ts as *const libc::timespec);
            // SAFETY: `self.kq` is the kqueue `self` owns, open until `self` drops. No
            // change list (null, nchanges 0). `self.kevents` is a boxed slice of
            // `kevents.len()` kevents (1..=i32::MAX, clamped in `new`) owned by `self` and
            // mutably borrowed for the call: the kernel writes at most that many records.
            // `tsp` is null (wait forever) or points to `ts`, alive on this frame.
            let r = unsafe {
                syscall!(kevent(
                    self.kq.as_raw_fd(),
                    ptr::null(),
                    0,
                    self.kevents.as_mut_ptr(),
                    self.kevents.len() as _,
                    tsp,
                ))
            };
            match r {
                Ok(n) => return Ok(self.decode(n as usize)),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                    t = deadline.remaining(timeout);
                    if t == Some(Duration::ZERO) && timeout != Some(Duration::ZERO) {
                        return Ok(0);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    #[inline]
    fn event(&self, i: usize) -> BackendEvent {
        self.events[i]
    }

    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.kq.as_fd())
    }

    fn reinit(&mut self) -> io::Result<()> {
        let new = KqueueFd::new()?;
        let kq = new.as_raw_fd();
        let Kqueue {
            table,
            changes,
            receipts,
            refused,
            change_calls,
            ..
        } = self;
        changes.clear();
        for (fd, st) in table.iter_mut() {
            // Every registration, with its latest wish (pending changes included).
            let recs = records::changes(fd, Interest::NONE, st.want);
            let recs = recs.as_slice();
            if changes.len() + recs.len() > CHANGE_BATCH {
                apply_batch(kq, changes, receipts, refused, change_calls);
            }
            changes.extend(recs.iter().map(to_kevent));
            st.kernel = st.want;
            st.kernel_token = st.want_token;
        }
        apply_batch(kq, changes, receipts, refused, change_calls);
        // One fd the new kqueue refuses must not cost every other registration: it is
        // reported as an ERROR event, like a refused change.
        self.note_refused();
        // The old kqueue is closed if this process made it; in a forked child it is
        // forgotten (see `KqueueFd`).
        self.kq = new;
        Ok(())
    }

    fn len(&self) -> usize {
        self.table.len()
    }
}

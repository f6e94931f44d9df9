//! Linux `io_uring(7)` as a readiness backend: see [`Uring`]. The fallback for kernels
//! and sandboxes that refuse io_uring is [`UringOrEpoll`] (`fallback.rs`); what goes into
//! and comes out of the ring is in `records.rs`.

mod fallback;
mod records;

pub use fallback::UringOrEpoll;

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::changelist::ChangeList;
use crate::sys::{already_registered, check_open, negative_fd, not_registered, Deadline};
use crate::{Backend, BackendEvent, Interest, Ready};
use records::{decode, poll_data, poll_mask, ready, GEN_MASK, INTERNAL};

/// The longest single wait handed to the kernel (about 34 years): longer ones are
/// clamped, and the caller waits again. Far below where the kernel's deadline
/// arithmetic (`now + timeout` in nanoseconds) could overflow.
const MAX_WAIT: Duration = Duration::from_secs(1 << 30);

/// How a registration's poll request is armed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Mode {
    /// One-shot `POLL_ADD`, armed again by the wait after each report: level-triggered.
    #[default]
    OneShot,
    /// Multishot `POLL_ADD`: one completion per wake-up, edge-triggered.
    Multi,
    /// Multishot, for a one-shot registration whose last completion carried only bits it
    /// did not ask for (`POLLRDHUP` on a write watch whose buffer is full): re-arming it
    /// one-shot would complete at once, forever. It waits for the next wake-up instead,
    /// then goes back to one-shot.
    Quiet,
}

/// This backend's state for one fd number (the change list holds interest and token).
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Generation of the last request armed for this fd (see `records::poll_data`).
    gen: u32,
    /// A poll request of generation `gen` may be live in the kernel.
    armed: bool,
    mode: Mode,
    /// Arm as [`Mode::Quiet`] next time.
    quiet_next: bool,
    /// The fd was found closed (or the kernel failed its request): reported once as
    /// `ERROR`, not armed again until deregistered.
    parked: bool,
    /// The wait that last reported this fd, and where (so completions merge, one event
    /// per fd per wait).
    epoch: u64,
    idx: u32,
}

/// One completion, kept over from a wait whose event buffer was full.
#[derive(Clone, Copy, Debug)]
struct Cqe {
    user_data: u64,
    result: i32,
    flags: u32,
}

/// The io_uring backend: readiness through `IORING_OP_POLL_ADD` on a ring (Linux 5.13 or
/// later), behind the same contract as [`Epoll`](crate::Epoll) (see [`crate::contract`]).
///
/// * **Level-triggered** interest is a one-shot `POLL_ADD`, armed again by the next
///   [`wait`](Backend::wait) after each report (as systemd does): an fd that stays ready
///   is reported by every wait. [`Interest::EDGE`] is a multishot `POLL_ADD`
///   (`IORING_POLL_ADD_MULTI`): one completion per wake-up, so edge-triggered delivery is
///   native ([`Backend::NATIVE_EDGE`]). A multishot request the kernel ends (no
///   `IORING_CQE_F_MORE`) is armed again, and a fresh request reports the fd's current
///   readiness, so no edge is lost.
/// * **One enter per wait.** New registrations and deregistrations reach the kernel at
///   once (one `io_uring_enter` each, like `epoll_ctl`; a `POLL_REMOVE` is submitted
///   before `deregister` returns). Interest changes go through the
///   [change list](crate::changelist) like epoll's; the `POLL_REMOVE`/`POLL_ADD` pairs
///   they need and the re-arms of reported one-shot fds are queued in the submission ring
///   and submitted by the same `io_uring_enter` that waits (`IORING_ENTER_EXT_ARG` with a
///   timeout). A stop/start in one iteration costs nothing; a token-only change costs no
///   request either.
/// * **Stale completions.** Every request's `user_data` holds the fd and a per-fd
///   generation; a completion counts only if it matches the request currently armed for
///   that fd, so one left over from a cancelled, replaced or deregistered request never
///   reaches a reused fd or a new token.
/// * **Readiness.** `READ` polls `POLLIN | POLLPRI`, `WRITE` `POLLOUT`, `PEER_CLOSED`
///   `POLLRDHUP`; `HUP` and `ERROR` are reported unasked; `POLLRDHUP`, which the kernel
///   returns even when not asked, is dropped then. Regular files are accepted and always
///   ready (as poll(2) has them). Completions for one fd in one wait merge into one event.
/// * **Closed while registered.** A poll request holds a reference to the file, so
///   closing the fd number does not end it (unlike epoll). The next time the request
///   completes, its re-arm finds the number closed: reported once as `ERROR`, then the
///   fd is parked until deregistered. It never spins.
/// * **Overflow.** The rings are sized from the event capacity (submission ring: the
///   capacity rounded to a power of two, 16 to 4096; completion ring four times that).
///   The kernel must keep completions that do not fit (`IORING_FEAT_NODROP`); they are
///   flushed by the next enter (the crate enters with `GETEVENTS` while
///   `IORING_SQ_CQ_OVERFLOW` is set). If the kernel still reports dropped completions
///   (its overflow counter moved, or `EBADR`), every registration is armed afresh, so the
///   fds that are ready report again: nothing is lost.
/// * **Fork.** A ring cannot be shared with a child: [`reinit`](Backend::reinit) builds a
///   new ring (leaving the parent's untouched) and arms every registration on it.
/// * **Refused.** Kernels without io_uring (`ENOSYS`), seccomp profiles that block it
///   (Docker's and Kubernetes' defaults: `EPERM`) and the `kernel.io_uring_disabled`
///   sysctl make [`Backend::new`] fail with an error that says so; [`UringOrEpoll`]
///   falls back to epoll then.
///
/// The ring fd is [`pollable`](Backend::pollable_fd): readable when completions are
/// waiting. Nothing is allocated per wait.
///
/// ```
/// use evloop_backends::{Backend, Interest, Uring};
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let mut ring = match Uring::new(64) {
///     Ok(ring) => ring,
///     Err(e) => { eprintln!("no io_uring here: {e}"); return; }
/// };
/// assert!(ring.pollable_fd().is_some());
/// let (a, mut b) = UnixStream::pair().unwrap();
/// ring.register(a.as_raw_fd(), 7, Interest::READ).unwrap();
/// b.write_all(b"ping").unwrap();
/// assert_eq!(ring.wait(Some(Duration::from_secs(5))).unwrap(), 1);
/// assert_eq!(ring.event(0).token, 7);
/// assert!(ring.event(0).ready.is_readable());
/// ring.deregister(a.as_raw_fd()).unwrap();
/// ```
pub struct Uring {
    ring: IoUring,
    sq_entries: u32,
    cq_entries: u32,
    table: ChangeList,
    slots: Vec<Slot>,
    events: Box<[BackendEvent]>,
    /// A completion taken from the ring when the event buffer was already full.
    held: Option<Cqe>,
    /// Counts waits (for merging completions per fd per wait).
    wait_no: u64,
    /// The kernel's count of dropped completions when last looked at.
    dropped_seen: u32,
    /// Changes that could not be submitted: reported as ERROR events by the next wait.
    failed: Vec<u64>,
    nfailed_reported: usize,
    enters: Cell<u64>,
}

/// The error for a ring the kernel refused to create (or one too old to use).
fn refused(e: io::Error) -> io::Error {
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring",
        Some(libc::EPERM) | Some(libc::EACCES) => {
            "blocked by a seccomp profile (Docker's and Kubernetes' defaults block it) or by the kernel.io_uring_disabled sysctl"
        }
        Some(libc::ENOMEM) => "no memory for the rings (RLIMIT_MEMLOCK on kernels before 5.12)",
        Some(libc::EINVAL) => "the kernel does not know the ring parameters (too old)",
        _ => "the kernel refused it",
    };
    io::Error::new(
        e.kind(),
        format!(
            "io_uring is not available: io_uring_setup failed ({e}): {why}; \
             `UringOrEpoll` falls back to epoll"
        ),
    )
}

/// Create a ring, and check the kernel has what this backend relies on.
fn new_ring(sq_entries: u32, cq_entries: u32) -> io::Result<IoUring> {
    let ring = IoUring::builder()
        .setup_cqsize(cq_entries)
        .setup_clamp()
        .build(sq_entries)
        .map_err(refused)?;
    let p = ring.params();
    // IORING_FEAT_RSRC_TAGS came with Linux 5.13, the release that added multishot
    // POLL_ADD (which has no feature bit of its own); EXT_ARG (5.11) carries the wait's
    // timeout; NODROP (5.5) keeps completions the ring has no room for.
    if !(p.is_feature_nodrop() && p.is_feature_ext_arg() && p.is_feature_resource_tagging()) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring is not available: this kernel's io_uring lacks multishot poll, \
             IORING_FEAT_EXT_ARG or IORING_FEAT_NODROP (Linux 5.13 or later is needed); \
             `UringOrEpoll` falls back to epoll",
        ));
    }
    Ok(ring)
}

/// Submit what is queued, without waiting, retrying `EINTR`.
fn submit(ring: &IoUring, enters: &Cell<u64>) -> io::Result<()> {
    loop {
        enters.set(enters.get() + 1);
        match ring.submit() {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Queue one request; when the submission ring is full, submit what it holds first.
/// Returns whether the request is queued.
fn push(ring: &mut IoUring, sqe: &squeue::Entry, enters: &Cell<u64>) -> bool {
    // SAFETY: POLL_ADD and POLL_REMOVE requests point to no memory of ours (an fd number,
    // a mask, a user_data value), so nothing must outlive the submission.
    if unsafe { ring.submission().push(sqe) }.is_ok() {
        return true;
    }
    if submit(ring, enters).is_err() {
        return false;
    }
    // SAFETY: as above.
    unsafe { ring.submission().push(sqe) }.is_ok()
}

/// Arm a poll request for `fd` in the next generation. Returns whether it is queued.
fn arm(
    ring: &mut IoUring,
    slot: &mut Slot,
    fd: RawFd,
    interest: Interest,
    mode: Mode,
    enters: &Cell<u64>,
) -> bool {
    let gen = slot.gen.wrapping_add(1) & GEN_MASK;
    let sqe = opcode::PollAdd::new(types::Fd(fd), poll_mask(interest))
        .multi(mode != Mode::OneShot)
        .build()
        .user_data(poll_data(fd, gen));
    if !push(ring, &sqe, enters) {
        return false;
    }
    slot.gen = gen;
    slot.armed = true;
    slot.mode = mode;
    slot.quiet_next = false;
    true
}

/// Cancel the request armed for `fd`, if any. Whatever it still completes is stale.
fn disarm(ring: &mut IoUring, slot: &mut Slot, fd: RawFd, enters: &Cell<u64>) {
    if slot.armed {
        let sqe = opcode::PollRemove::new(poll_data(fd, slot.gen))
            .build()
            .user_data(INTERNAL);
        // If even this cannot be queued, the request stays armed with a generation no
        // completion will be accepted for (`armed` is false, and any new arm moves on).
        push(ring, &sqe, enters);
        slot.armed = false;
    }
}

/// Account one completion: drop it if stale, else turn it into (or merge it with) an
/// event. Returns `false`, changing nothing, if it needs a new event and `events` is full.
fn complete(
    c: Cqe,
    table: &mut ChangeList,
    slots: &mut [Slot],
    events: &mut [BackendEvent],
    n: &mut usize,
    wait_no: u64,
) -> bool {
    let Some((fd, gen)) = decode(c.user_data) else {
        return true; // a POLL_REMOVE's own completion
    };
    let Some(st) = table.get(fd) else {
        return true; // deregistered since
    };
    let slot = &mut slots[fd as usize];
    if !slot.armed || slot.gen != gen {
        return true; // cancelled or replaced since
    }
    let (interest, token) = (st.kernel, st.kernel_token);
    let more = slot.mode != Mode::OneShot && cqueue::more(c.flags);
    let (r, park) = match c.result {
        res if res >= 0 => (ready(res as u32, interest), false),
        // Cancelled by the kernel, not by us (ours are never the armed generation).
        res if res == -libc::ECANCELED => (Ready::EMPTY, false),
        // EBADF: the fd was closed while registered; anything else: the kernel cannot
        // poll it. Reported once, never re-armed (so it cannot spin).
        _ => (Ready::ERROR, true),
    };
    let merge = slot.epoch == wait_no;
    if !r.is_empty() && !merge && *n == events.len() {
        return false;
    }
    if !more {
        slot.armed = false;
    }
    if park {
        slot.parked = true;
        table.reset_kernel(fd, false);
    } else if !more || (slot.mode == Mode::Quiet && !r.is_empty()) {
        // Arm again by the next enter: one-shot after a report, multishot the kernel
        // ended, or back to one-shot after a quiet wait.
        if slot.mode == Mode::OneShot && r.is_empty() {
            slot.quiet_next = true;
        }
        table.reset_kernel(fd, true);
    }
    if r.is_empty() {
        return true;
    }
    if merge {
        let ev = &mut events[slot.idx as usize];
        ev.ready |= r;
    } else {
        events[*n] = BackendEvent { token, ready: r };
        slot.epoch = wait_no;
        slot.idx = *n as u32;
        *n += 1;
    }
    true
}

impl Uring {
    /// How many times this backend has entered the kernel through `io_uring_enter`
    /// (introspection: shows what the change list and batching saved).
    ///
    /// ```
    /// use evloop_backends::{Backend, Interest, Uring};
    /// use std::os::fd::AsRawFd;
    /// let Ok(mut ring) = Uring::new(8) else { return };
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// ring.register(a.as_raw_fd(), 1, Interest::READ).unwrap();
    /// let before = ring.enter_calls();
    /// ring.modify(a.as_raw_fd(), 1, Interest::NONE).unwrap(); // stop
    /// ring.modify(a.as_raw_fd(), 1, Interest::READ).unwrap(); // start again
    /// ring.flush().unwrap();
    /// assert_eq!(ring.enter_calls(), before); // nothing to submit: no kernel call
    /// ```
    pub fn enter_calls(&self) -> u64 {
        self.enters.get()
    }

    /// The sizes of the submission and completion rings, as the kernel set them up.
    ///
    /// ```
    /// use evloop_backends::{Backend, Uring};
    /// let Ok(ring) = Uring::new(100) else { return };
    /// let (sq, cq) = ring.ring_sizes();
    /// assert!(sq >= 100 && cq >= sq);
    /// ```
    pub fn ring_sizes(&self) -> (u32, u32) {
        let p = self.ring.params();
        (p.sq_entries(), p.cq_entries())
    }

    fn slot_for(&mut self, fd: RawFd) -> &mut Slot {
        let i = fd as usize;
        if i >= self.slots.len() {
            self.slots
                .resize((i + 1).next_power_of_two(), Slot::default());
        }
        &mut self.slots[i]
    }

    /// Queue the kernel-side work of every pending change (nothing is submitted here
    /// unless the submission ring fills up).
    fn apply_changes(&mut self) {
        let ring = &mut self.ring;
        let slots = &mut self.slots;
        let failed = &mut self.failed;
        let enters = &self.enters;
        self.table.drain(|fd, st| {
            let slot = &mut slots[fd as usize];
            if st.want.is_empty() {
                disarm(ring, slot, fd, enters);
                return Interest::NONE;
            }
            if slot.parked {
                return Interest::NONE;
            }
            if slot.armed && st.kernel == st.want {
                // Only the token changed: completions carry the fd, and the token is
                // looked up when they are reported (as epoll reports its current data).
                return st.want;
            }
            disarm(ring, slot, fd, enters);
            let mode = if slot.quiet_next {
                Mode::Quiet
            } else if st.want.is_edge() {
                Mode::Multi
            } else {
                Mode::OneShot
            };
            if arm(ring, slot, fd, st.want, mode, enters) {
                st.want
            } else {
                if failed.len() < failed.capacity() {
                    failed.push(st.want_token);
                }
                Interest::NONE
            }
        });
    }

    /// One `io_uring_enter`: submit what is queued and wait up to `t` for a completion.
    fn enter(&mut self, t: Option<Duration>) -> io::Result<()> {
        self.enters.set(self.enters.get() + 1);
        let sub = self.ring.submitter();
        let r = match t {
            None => sub.submit_and_wait(1),
            Some(d) if d.is_zero() => sub.submit(),
            Some(d) => {
                let ts = types::Timespec::from(d.min(MAX_WAIT));
                let args = types::SubmitArgs::new().timespec(&ts);
                sub.submit_with_args(1, &args)
            }
        };
        r.map(drop)
    }

    /// Take completions into the event buffer, which holds `n` events of this wait
    /// already; returns how many it holds now.
    fn reap(&mut self, mut n: usize) -> usize {
        let wait_no = self.wait_no;
        if let Some(c) = self.held.take() {
            if !complete(
                c,
                &mut self.table,
                &mut self.slots,
                &mut self.events,
                &mut n,
                wait_no,
            ) {
                self.held = Some(c);
                return n;
            }
        }
        let mut cq = self.ring.completion();
        for e in &mut cq {
            let c = Cqe {
                user_data: e.user_data(),
                result: e.result(),
                flags: e.flags(),
            };
            if !complete(
                c,
                &mut self.table,
                &mut self.slots,
                &mut self.events,
                &mut n,
                wait_no,
            ) {
                self.held = Some(c);
                break;
            }
        }
        let dropped = cq.overflow();
        drop(cq);
        if dropped != self.dropped_seen {
            // The kernel lost completions (it could not even keep them on its overflow
            // list): arm everything afresh, so whatever is ready reports again.
            self.dropped_seen = dropped;
            self.table.reset_all();
        }
        n
    }

    #[cold]
    fn failed_event(&self, i: usize) -> BackendEvent {
        BackendEvent {
            token: self.failed[i],
            ready: Ready::ERROR,
        }
    }
}

impl Backend for Uring {
    const NAME: &'static str = "io_uring";
    const NATIVE_EDGE: bool = true;
    const MAX_FD: Option<RawFd> = None;

    fn new(event_capacity: usize) -> io::Result<Self> {
        let cap = event_capacity.clamp(1, 1 << 20);
        let sq_entries = (cap as u32).next_power_of_two().clamp(16, 4096);
        let cq_entries = sq_entries * 4;
        let mut ring = new_ring(sq_entries, cq_entries)?;
        let dropped_seen = ring.completion().overflow();
        Ok(Uring {
            ring,
            sq_entries,
            cq_entries,
            table: ChangeList::new(),
            slots: vec![Slot::default(); crate::open_file_limit()],
            events: vec![
                BackendEvent {
                    token: 0,
                    ready: Ready::EMPTY,
                };
                cap
            ]
            .into_boxed_slice(),
            held: None,
            wait_no: 0,
            dropped_seen,
            failed: Vec::with_capacity(cap),
            nfailed_reported: 0,
            enters: Cell::new(0),
        })
    }

    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        if fd < 0 {
            return Err(negative_fd(fd));
        }
        if self.table.get(fd).is_some() {
            return Err(already_registered(fd));
        }
        // A poll request on a closed fd fails only in its completion: check now, so the
        // call itself reports it (as epoll_ctl would).
        check_open(fd)?;
        let slot = *self.slot_for(fd);
        let mut slot = Slot {
            parked: false,
            quiet_next: false,
            armed: false,
            ..slot
        };
        if !interest.is_empty() {
            let mode = if interest.is_edge() {
                Mode::Multi
            } else {
                Mode::OneShot
            };
            if !arm(&mut self.ring, &mut slot, fd, interest, mode, &self.enters) {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "io_uring: the submission ring is full and the kernel would not take its requests",
                ));
            }
            self.slots[fd as usize] = slot;
            // Applied at once: the poll request reaches the kernel before we return.
            submit(&self.ring, &self.enters)?;
        } else {
            self.slots[fd as usize] = slot;
        }
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
        self.table.remove(fd).ok_or_else(|| not_registered(fd))?;
        let slot = &mut self.slots[fd as usize];
        let was_armed = slot.armed;
        disarm(&mut self.ring, slot, fd, &self.enters);
        slot.parked = false;
        slot.quiet_next = false;
        if was_armed {
            // At once: the kernel drops the request (and its reference to the file)
            // before the caller may close the fd.
            submit(&self.ring, &self.enters)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.apply_changes();
        if self.ring.submission().is_empty() {
            return Ok(());
        }
        submit(&self.ring, &self.enters)
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        if self.nfailed_reported != 0 {
            self.failed.drain(..self.nfailed_reported);
            self.nfailed_reported = 0;
        }
        self.apply_changes();
        if !self.failed.is_empty() {
            // Report refused changes as ERROR events without blocking (what could be
            // queued still goes to the kernel).
            let _ = submit(&self.ring, &self.enters);
            self.nfailed_reported = self.failed.len();
            return Ok(self.nfailed_reported);
        }
        self.wait_no += 1;
        // Completions that came in since the last wait first. A one-shot completion's
        // result is the fd's readiness when it completed, which may have grown since (a
        // socket found writable at registration has since become readable): so each is
        // armed again by the enter below, whose fresh completion (the readiness now, for
        // an fd still ready) merges into the same event, as epoll would report it.
        let mut n = self.reap(0);
        self.apply_changes();
        let deadline = Deadline::new(timeout);
        let mut t = timeout;
        loop {
            let pending = n > 0 || self.held.is_some() || !self.ring.completion().is_empty();
            let r = self.enter(if pending { Some(Duration::ZERO) } else { t });
            let mut timed_out = false;
            match r {
                Ok(()) => {}
                Err(e) => match e.raw_os_error() {
                    Some(libc::ETIME) => timed_out = true,
                    // A signal: retried below with the time that remains. EBUSY and
                    // EAGAIN: the kernel wants completions reaped first.
                    Some(libc::EINTR) | Some(libc::EBUSY) | Some(libc::EAGAIN) => {}
                    // The kernel dropped completions: arm everything afresh.
                    Some(libc::EBADR) => self.table.reset_all(),
                    _ => return Err(e),
                },
            }
            n = self.reap(n);
            if n > 0 || timeout == Some(Duration::ZERO) || timed_out {
                return Ok(n);
            }
            // Nothing to report (stale completions, a signal, or an enter that returned
            // as soon as it had submitted): wait again for what remains.
            t = deadline.remaining(timeout);
            if t == Some(Duration::ZERO) {
                return Ok(0);
            }
            // The re-arms completions asked for (a quiet re-arm, a multishot the kernel
            // ended) go out with the next enter.
            self.apply_changes();
        }
    }

    #[inline]
    fn event(&self, i: usize) -> BackendEvent {
        if self.nfailed_reported != 0 {
            return self.failed_event(i);
        }
        self.events[i]
    }

    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.ring.as_fd())
    }

    fn reinit(&mut self) -> io::Result<()> {
        // The old ring's memory is shared with the parent: never touch it again. Dropping
        // it only unmaps the child's view and closes the child's copy of the fd.
        self.ring = new_ring(self.sq_entries, self.cq_entries)?;
        self.held = None;
        self.dropped_seen = self.ring.completion().overflow();
        let ring = &mut self.ring;
        let slots = &mut self.slots;
        let failed = &mut self.failed;
        let enters = &self.enters;
        for (fd, st) in self.table.iter_mut() {
            let slot = &mut slots[fd as usize];
            slot.armed = false;
            slot.quiet_next = false;
            st.kernel = Interest::NONE;
            st.kernel_token = st.want_token;
            if st.want.is_empty() || slot.parked {
                continue;
            }
            let mode = if st.want.is_edge() {
                Mode::Multi
            } else {
                Mode::OneShot
            };
            if arm(ring, slot, fd, st.want, mode, enters) {
                st.kernel = st.want;
            } else if failed.len() < failed.capacity() {
                failed.push(st.want_token);
            }
        }
        submit(&self.ring, &self.enters)
    }

    fn len(&self) -> usize {
        self.table.len()
    }
}

impl std::fmt::Debug for Uring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uring")
            .field("registered", &self.table.len())
            .field("event_capacity", &self.events.len())
            .field("ring_sizes", &self.ring_sizes())
            .finish()
    }
}

//! Linux `io_uring(7)` as a readiness backend with completion I/O: see [`Uring`]. The
//! fallback for kernels and sandboxes that refuse io_uring is [`UringOrEpoll`]
//! (`fallback.rs`); what goes into and comes out of the ring is in `records.rs`;
//! completion mode's receive buffers are in `bufring.rs` and its per-fd state in
//! `completion.rs`.

mod bufring;
mod completion;
mod fallback;
mod records;

pub use fallback::UringOrEpoll;

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::changelist::ChangeList;
use crate::sys::{already_registered, check_open, negative_fd, not_registered, Deadline};
use crate::{Backend, BackendEvent, Interest, Ready, Received};
use bufring::{BufRing, BGID};
use completion::{Completion, Sock, RX_EOF};
use records::{decode, poll_mask, ready, request_data, Kind, GEN_MASK, INTERNAL};

/// The most receive buffers one fd's untaken bytes may hold before its receive stops
/// (a connection that is not read cannot take the ring from the others): 32 KiB.
const RX_QUOTA: u16 = 4;

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
    /// What the armed request is: a poll, or in completion mode a receive or an accept.
    kind: Kind,
    /// Completion mode: whether the socket listens (asked once per registration).
    sock: Sock,
    /// Completion mode: a multishot receive ended for want of buffers. Until one is
    /// given back the fd is watched with a one-shot poll, and `recv_take` reads it with
    /// `recv(2)`: a ring exhausted by connections whose bytes are not taken degrades
    /// the others to readiness I/O, it never stalls them.
    starved: bool,
    /// Completion mode: buffers in the receive queue, and whether the receive is
    /// stopped because they reached [`RX_QUOTA`] (armed again when half are taken).
    rx_count: u16,
    rx_full: bool,
    /// In the list of fds the next wait reports again (data left untaken, say).
    again: bool,
    /// Completion mode, listening socket: the kernel's accept failed for want of
    /// descriptors or memory. A kernel accept takes a descriptor before it looks for a
    /// connection, so arming it again would fail at once, forever: a one-shot poll
    /// waits for a connection instead, then the accept is armed again.
    accept_stalled: bool,
    /// Completion mode's receive queue: first and last buffer plus one (0: empty), the
    /// offset taken from the first, and how the stream ended (0: it has not,
    /// [`RX_EOF`], or a negative errno).
    rx_head: u32,
    rx_tail: u32,
    rx_off: u32,
    rx_end: i32,
    /// The generation of the first request armed for this registration: a receive or
    /// accept of this generation or later delivers to it even if cancelled since (the
    /// bytes and connections are the stream's, not the request's).
    reg_gen: u32,
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
    /// Completion mode: buffers, sends, accepted connections.
    cx: Completion,
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
    // IORING_SETUP_COOP_TASKRUN (Linux 5.19): the kernel does not interrupt the loop's
    // thread (an IPI) to run a completion's task work; it runs at the next enter, which
    // the loop makes anyway. Without it every packet a multishot receive takes
    // interrupts the thread. Older kernels refuse the flag: built without it there.
    let ring = IoUring::builder()
        .setup_cqsize(cq_entries)
        .setup_clamp()
        .setup_coop_taskrun()
        .build(sq_entries)
        .or_else(|e| match e.raw_os_error() {
            Some(libc::EINVAL) => IoUring::builder()
                .setup_cqsize(cq_entries)
                .setup_clamp()
                .build(sq_entries),
            _ => Err(e),
        })
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
    // SAFETY: polls, cancellations, receives into the registered buffer ring and accepts
    // point to no memory of ours that could go away; a send's buffer is kept alive by
    // its caller (`submit_send`) until the send completes.
    if unsafe { ring.submission().push(sqe) }.is_ok() {
        return true;
    }
    if submit(ring, enters).is_err() {
        return false;
    }
    // SAFETY: as above.
    unsafe { ring.submission().push(sqe) }.is_ok()
}

/// Arm the request `interest` calls for on `fd`, in the next generation: a poll, or in
/// completion mode a multishot receive (an accept on a listening socket) when reading
/// is wanted, and nothing otherwise. Returns whether it is queued.
fn arm(
    ring: &mut IoUring,
    slot: &mut Slot,
    fd: RawFd,
    interest: Interest,
    mode: Mode,
    enters: &Cell<u64>,
    cx: &mut Completion,
) -> bool {
    let gen = slot.gen.wrapping_add(1) & GEN_MASK;
    let (kind, sqe) = if interest.is_completion() {
        if !interest.is_readable() || cx.bufs.is_none() {
            return true; // sends are submitted one by one; nothing to arm
        }
        if slot.sock == Sock::Unknown {
            slot.sock = Sock::of(fd);
        }
        let stalled = match slot.sock {
            Sock::Listening => slot.accept_stalled,
            _ => slot.starved,
        };
        if stalled {
            // Waits for data (a connection) without buffers (a descriptor).
            let sqe = opcode::PollAdd::new(types::Fd(fd), poll_mask(Interest::READ)).build();
            (Kind::Poll, sqe)
        } else if slot.sock == Sock::Listening {
            let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
            let sqe = opcode::AcceptMulti::new(types::Fd(fd)).flags(flags).build();
            (Kind::Accept, sqe)
        } else {
            (
                Kind::Recv,
                opcode::RecvMulti::new(types::Fd(fd), BGID).build(),
            )
        }
    } else {
        let sqe = opcode::PollAdd::new(types::Fd(fd), poll_mask(interest))
            .multi(mode != Mode::OneShot)
            .build();
        (Kind::Poll, sqe)
    };
    let sqe = sqe.user_data(request_data(kind, fd, gen));
    if !push(ring, &sqe, enters) {
        return false;
    }
    if kind != Kind::Poll {
        cx.inflight += 1;
    }
    slot.gen = gen;
    slot.armed = true;
    slot.kind = kind;
    slot.mode = mode;
    slot.quiet_next = false;
    true
}

/// Cancel the request armed for `fd`, if any. Whatever it still completes is stale.
fn disarm(ring: &mut IoUring, slot: &mut Slot, fd: RawFd, enters: &Cell<u64>) {
    if slot.armed {
        let target = request_data(slot.kind, fd, slot.gen);
        let sqe = if slot.kind == Kind::Poll {
            opcode::PollRemove::new(target).build()
        } else {
            opcode::AsyncCancel::new(target).build()
        };
        // If even this cannot be queued, the request stays armed with a generation no
        // completion will be accepted for (`armed` is false, and any new arm moves on).
        push(ring, &sqe.user_data(INTERNAL), enters);
        slot.armed = false;
    }
}

/// Put `fd` in the list the next wait reports again (once).
fn note_again(slot: &mut Slot, cx: &mut Completion, fd: RawFd) {
    if !slot.again {
        slot.again = true;
        cx.again.push(fd);
    }
}

/// Give buffer `bid` back to the kernel (see [`wake_starved`]).
fn give_back(bid: u16, cx: &mut Completion, table: &mut ChangeList, slots: &mut [Slot]) {
    if let Some(bufs) = cx.bufs.as_mut() {
        bufs.provide(bid);
    }
    wake_starved(cx, table, slots);
}

/// Buffers came back: the receives that starved for them are armed again by the next
/// enter.
fn wake_starved(cx: &mut Completion, table: &mut ChangeList, slots: &mut [Slot]) {
    for fd in cx.starved.drain(..) {
        slots[fd as usize].starved = false;
        table.reset_kernel(fd, true);
    }
}

/// Whether `fd` holds something not taken yet: received bytes, the end of its stream,
/// or accepted connections.
fn has_backlog(slot: &Slot, cx: &Completion, fd: RawFd) -> bool {
    slot.rx_head != 0 || slot.rx_end != 0 || cx.has_accepted(fd)
}

/// Drop `fd`'s receive queue, giving its buffers back.
fn drop_received(slot: &mut Slot, cx: &mut Completion) {
    if let Some(bufs) = cx.bufs.as_mut() {
        while slot.rx_head != 0 {
            let bid = (slot.rx_head - 1) as u16;
            slot.rx_head = bufs.next(bid);
            bufs.provide(bid);
        }
    }
    slot.rx_head = 0;
    slot.rx_tail = 0;
    slot.rx_off = 0;
    slot.rx_end = 0;
    slot.rx_count = 0;
    slot.rx_full = false;
}

/// Where one reap puts what it finds: the backend's tables and this wait's events.
struct Sink<'a> {
    table: &'a mut ChangeList,
    slots: &'a mut [Slot],
    events: &'a mut [BackendEvent],
    n: usize,
    wait_no: u64,
    cx: &'a mut Completion,
}

impl Sink<'_> {
    /// Whether `fd` can be reported in this wait (it already is, or there is room).
    fn has_room(&self, fd: RawFd) -> bool {
        self.slots[fd as usize].epoch == self.wait_no || self.n < self.events.len()
    }

    /// Report `r` for `fd` under `token`, merged into its event of this wait if any
    /// (the caller checked [`has_room`](Self::has_room)).
    fn report(&mut self, fd: RawFd, token: u64, r: Ready) {
        let slot = &mut self.slots[fd as usize];
        if slot.epoch == self.wait_no {
            self.events[slot.idx as usize].ready |= r;
        } else {
            self.events[self.n] = BackendEvent { token, ready: r };
            slot.epoch = self.wait_no;
            slot.idx = self.n as u32;
            self.n += 1;
        }
    }

    /// Account one completion: drop it if stale, else turn it into (or merge it with)
    /// an event. Returns `false`, changing nothing, if it needs a new event and the
    /// event buffer is full.
    fn complete(&mut self, c: Cqe) -> bool {
        let Some((kind, fd, gen)) = decode(c.user_data) else {
            return true; // a POLL_REMOVE's or ASYNC_CANCEL's own completion
        };
        match kind {
            Kind::Poll => self.polled(c, fd, gen),
            Kind::Recv => self.received(c, fd, gen),
            Kind::Accept => self.accepted(c, fd, gen),
            Kind::Send => self.sent(c, fd, gen),
        }
    }

    /// The armed request of `fd` is this generation and kind (not stale).
    fn is_armed(&self, fd: RawFd, gen: u32, kind: Kind) -> bool {
        let slot = &self.slots[fd as usize];
        self.table.get(fd).is_some() && slot.armed && slot.gen == gen && slot.kind == kind
    }

    /// A request of generation `gen` was armed during `fd`'s current registration (it
    /// may have been cancelled or replaced since).
    fn is_this_registration(&self, fd: RawFd, gen: u32) -> bool {
        let slot = &self.slots[fd as usize];
        let age = |g: u32| g.wrapping_sub(slot.reg_gen) & GEN_MASK;
        self.table.get(fd).is_some() && age(gen) <= age(slot.gen)
    }

    fn polled(&mut self, c: Cqe, fd: RawFd, gen: u32) -> bool {
        if !self.is_armed(fd, gen, Kind::Poll) {
            return true; // deregistered, cancelled or replaced since
        }
        let st = self.table.get(fd).expect("checked by is_armed");
        let (interest, token) = (st.kernel, st.kernel_token);
        let slot = &self.slots[fd as usize];
        let more = slot.mode != Mode::OneShot && cqueue::more(c.flags);
        let (r, park) = match c.result {
            res if res >= 0 => (ready(res as u32, interest), false),
            // Cancelled by the kernel, not by us (ours are never the armed generation).
            res if res == -libc::ECANCELED => (Ready::EMPTY, false),
            // EBADF: the fd was closed while registered; anything else: the kernel cannot
            // poll it. Reported once, never re-armed (so it cannot spin).
            _ => (Ready::ERROR, true),
        };
        if !r.is_empty() && !self.has_room(fd) {
            return false;
        }
        let slot = &mut self.slots[fd as usize];
        if !more {
            slot.armed = false;
        }
        if slot.accept_stalled && !r.is_empty() {
            // A connection is waiting for a stalled listener: the accept goes again.
            slot.accept_stalled = false;
        }
        if park {
            slot.parked = true;
            self.table.reset_kernel(fd, false);
        } else if !more || (slot.mode == Mode::Quiet && !r.is_empty()) {
            // Arm again by the next enter: one-shot after a report, multishot the kernel
            // ended, or back to one-shot after a quiet wait.
            if slot.mode == Mode::OneShot && r.is_empty() {
                slot.quiet_next = true;
            }
            self.table.reset_kernel(fd, true);
        }
        if !r.is_empty() {
            self.report(fd, token, r);
        }
        true
    }

    fn received(&mut self, c: Cqe, fd: RawFd, gen: u32) -> bool {
        let more = cqueue::more(c.flags);
        let bid = cqueue::buffer_select(c.flags);
        if !self.is_this_registration(fd, gen) {
            // Stale (the fd was deregistered): its buffer, if it took one, goes back.
            if !more {
                self.cx.finished();
            }
            if let Some(b) = bid {
                give_back(b, self.cx, self.table, self.slots);
            }
            return true;
        }
        // The armed receive, or one cancelled since (by a pause) whose bytes still
        // belong to the stream: they are queued either way, in order.
        let current = self.is_armed(fd, gen, Kind::Recv);
        let token = self.table.get(fd).expect("checked above").kernel_token;
        let res = c.result;
        let quiet = res == -libc::ENOBUFS || res == -libc::ECANCELED;
        if !quiet && !self.has_room(fd) {
            return false;
        }
        let slot = &mut self.slots[fd as usize];
        if !more {
            self.cx.finished();
            if current {
                slot.armed = false;
            }
        }
        match (res, bid) {
            (len, Some(b)) if len > 0 => {
                let bufs = self
                    .cx
                    .bufs
                    .as_mut()
                    .expect("receives need the buffer ring");
                bufs.set_len(b, len as u32);
                bufs.set_next(b, 0);
                if slot.rx_tail != 0 {
                    bufs.set_next((slot.rx_tail - 1) as u16, b as u32 + 1);
                } else {
                    slot.rx_head = b as u32 + 1;
                }
                slot.rx_tail = b as u32 + 1;
                slot.rx_count += 1;
                if slot.rx_count >= RX_QUOTA && !slot.rx_full {
                    // Enough held for this fd: its receive stops (after this reap) until
                    // its bytes are taken.
                    slot.rx_full = true;
                    self.cx.overfull.push(fd);
                    self.table.reset_kernel(fd, false);
                } else if current && !more {
                    self.table.reset_kernel(fd, true); // the kernel ended it: arm again
                }
            }
            (e, _) if e == -libc::ENOBUFS => {
                if current {
                    // Every buffer is queued somewhere: polled (and read with recv(2))
                    // until one comes back.
                    slot.starved = true;
                    self.cx.starved.push(fd);
                    self.table.reset_kernel(fd, true);
                }
            }
            (e, _) if e == -libc::ECANCELED => {
                if current && !more {
                    self.table.reset_kernel(fd, true);
                }
            }
            (end, b) => {
                // End of file (0) or an error: the stream is over, never armed again.
                slot.rx_end = if end == 0 {
                    RX_EOF
                } else if end > 0 {
                    -libc::EIO // data without a buffer: cannot happen
                } else {
                    end
                };
                slot.parked = true;
                self.table.reset_kernel(fd, false);
                if let Some(b) = b {
                    give_back(b, self.cx, self.table, self.slots);
                }
            }
        }
        if !quiet {
            self.report(fd, token, Ready::READABLE);
            // Reported by later waits too until taken (level-triggered).
            note_again(&mut self.slots[fd as usize], self.cx, fd);
        }
        true
    }

    fn accepted(&mut self, c: Cqe, fd: RawFd, gen: u32) -> bool {
        let more = cqueue::more(c.flags);
        if !self.is_this_registration(fd, gen) {
            if !more {
                self.cx.finished();
            }
            if c.result >= 0 {
                // SAFETY: a connection accepted for a listener deregistered since.
                unsafe { libc::close(c.result) };
            }
            return true;
        }
        // A connection accepted by a request cancelled since (a pause) is still this
        // listener's: queued all the same.
        let current = self.is_armed(fd, gen, Kind::Accept);
        let token = self.table.get(fd).expect("checked above").kernel_token;
        let cancelled = c.result == -libc::ECANCELED;
        if !cancelled && !self.has_room(fd) {
            return false;
        }
        if !more {
            self.cx.finished();
        }
        if !more && current {
            let fd_shortage = [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM];
            if fd_shortage.contains(&-c.result) {
                self.slots[fd as usize].accept_stalled = true;
            }
            self.slots[fd as usize].armed = false;
            // Ended by an error (EMFILE, say) or by the kernel: armed again by the next
            // enter unless the caller stops accepting (as `Listener` does at EMFILE).
            self.table.reset_kernel(fd, true);
        }
        if !cancelled {
            self.cx.accepted_mut(fd).push_back(c.result);
            self.report(fd, token, Ready::READABLE);
            note_again(&mut self.slots[fd as usize], self.cx, fd);
        }
        true
    }

    fn sent(&mut self, c: Cqe, fd: RawFd, gen: u32) -> bool {
        let live = self.table.get(fd).is_some()
            && self
                .cx
                .tx
                .get(fd as usize)
                .is_some_and(|t| t.busy && t.gen == gen && t.done.is_none());
        if !live {
            // A send cancelled by a deregistration: its buffer can go now.
            self.cx.finished();
            let ud = c.user_data;
            if let Some(i) = self.cx.orphans.iter().position(|o| o.0 == ud) {
                self.cx.orphans.swap_remove(i);
            }
            return true;
        }
        let token = self.table.get(fd).expect("checked above").kernel_token;
        let tx = &self.cx.tx[fd as usize];
        let res = c.result;
        let short = res > 0 && tx.off + (res as usize) < tx.buf.len();
        // Cancelled by the kernel, not by us (a deregistration orphans the send first):
        // the thread that submitted it exited (the loop moved to another thread), and a
        // send waiting for room had written nothing yet. Sent again, like EAGAIN.
        let retry = res == -libc::EAGAIN || res == -libc::EINTR || res == -libc::ECANCELED;
        if short || retry {
            let tx = &mut self.cx.tx[fd as usize];
            if res > 0 {
                tx.off += res as usize;
            }
            self.cx.finished();
            self.cx.resend.push(fd); // the rest goes out after this reap
            return true;
        }
        if !self.has_room(fd) {
            return false;
        }
        self.cx.finished();
        let done = match res {
            r if r > 0 => 0,
            0 => -libc::EPIPE, // the kernel took nothing of a non-empty buffer
            e => e,
        };
        self.cx.tx[fd as usize].done = Some(done);
        self.report(fd, token, Ready::WRITABLE);
        true
    }
}

/// Queue the send of what is left of `fd`'s buffer. Returns whether it is queued.
fn submit_send(ring: &mut IoUring, fd: RawFd, cx: &mut Completion, enters: &Cell<u64>) -> bool {
    let tx = &cx.tx[fd as usize];
    let rest = &tx.buf[tx.off..];
    let sqe = opcode::Send::new(types::Fd(fd), rest.as_ptr(), rest.len() as u32)
        .flags(libc::MSG_NOSIGNAL)
        .build()
        .user_data(request_data(Kind::Send, fd, tx.gen));
    // SAFETY: the kernel reads `rest` until the send completes; the buffer is owned by
    // `cx.tx[fd]` while `busy` (never touched then), and a deregistration moves it to
    // `cx.orphans` until the completion comes, so it outlives the request. Its heap
    // memory does not move when the `tx` table grows.
    if !push(ring, &sqe, enters) {
        return false;
    }
    cx.inflight += 1;
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
        let cx = &mut self.cx;
        self.table.drain(|fd, st| {
            let slot = &mut slots[fd as usize];
            if st.want.is_empty() {
                disarm(ring, slot, fd, enters);
                return Interest::NONE;
            }
            if st.want.is_completion() {
                // Completion mode: a receive (or accept) runs while reading is wanted;
                // writing arms nothing. What was received and not taken is reported
                // again as soon as reading is wanted again.
                let reading = st.want.is_readable();
                if reading && has_backlog(slot, cx, fd) {
                    note_again(slot, cx, fd);
                }
                let run = reading && !slot.parked && !slot.rx_full;
                let stalled = slot.starved || slot.accept_stalled;
                if slot.armed && run && (slot.kind != Kind::Poll || stalled) {
                    return st.want; // already running (or polling while stalled)
                }
                disarm(ring, slot, fd, enters);
                if run && !arm(ring, slot, fd, st.want, Mode::Multi, enters, cx) {
                    if failed.len() < failed.capacity() {
                        failed.push(st.want_token);
                    }
                    return Interest::NONE;
                }
                return st.want;
            }
            if slot.parked {
                return Interest::NONE;
            }
            if slot.armed && st.kernel == st.want && slot.kind == Kind::Poll {
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
            if arm(ring, slot, fd, st.want, mode, enters, cx) {
                st.want
            } else {
                if failed.len() < failed.capacity() {
                    failed.push(st.want_token);
                }
                Interest::NONE
            }
        });
    }

    /// Report the fds of the "again" list (see [`Completion::again`]) that still have
    /// something for what they watch. Returns how many events the buffer holds now.
    fn report_again(&mut self, n: usize) -> usize {
        let mut sink = Sink {
            table: &mut self.table,
            slots: &mut self.slots,
            events: &mut self.events,
            n,
            wait_no: self.wait_no,
            cx: &mut self.cx,
        };
        let mut i = 0;
        while i < sink.cx.again.len() {
            let fd = sink.cx.again[i];
            let mut r = Ready::EMPTY;
            let mut token = 0;
            if let Some(st) = sink.table.get(fd) {
                token = st.kernel_token;
                let backlog = has_backlog(&sink.slots[fd as usize], sink.cx, fd);
                if st.want.is_readable() && backlog {
                    r |= Ready::READABLE;
                }
                if st.want.is_writable() && sink.cx.send_finished(fd) {
                    r |= Ready::WRITABLE;
                }
            }
            if !r.is_empty() {
                // Reported (or, with the buffer full, left for the next wait), and kept
                // in the list: an fd is reported by every wait until what it has is
                // taken, as a level-triggered fd with unread data is.
                if sink.has_room(fd) {
                    sink.report(fd, token, r);
                }
                i += 1;
                continue;
            }
            sink.slots[fd as usize].again = false;
            sink.cx.again.swap_remove(i);
        }
        sink.n
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
    fn reap(&mut self, n: usize) -> usize {
        let mut sink = Sink {
            table: &mut self.table,
            slots: &mut self.slots,
            events: &mut self.events,
            n,
            wait_no: self.wait_no,
            cx: &mut self.cx,
        };
        let mut full = false;
        if let Some(c) = self.held.take() {
            if !sink.complete(c) {
                self.held = Some(c);
                full = true;
            }
        }
        let mut cq = self.ring.completion();
        if !full {
            for e in &mut cq {
                let c = Cqe {
                    user_data: e.user_data(),
                    result: e.result(),
                    flags: e.flags(),
                };
                if !sink.complete(c) {
                    self.held = Some(c);
                    break;
                }
            }
        }
        let dropped = cq.overflow();
        drop(cq);
        let n = sink.n;
        if dropped != self.dropped_seen {
            // The kernel lost completions (it could not even keep them on its overflow
            // list): arm everything afresh, so whatever is ready reports again.
            self.dropped_seen = dropped;
            self.table.reset_all();
        }
        // Receives whose fd holds its quota of buffers: cancelled now.
        while let Some(fd) = self.cx.overfull.pop() {
            let slot = &mut self.slots[fd as usize];
            if slot.armed && slot.kind == Kind::Recv {
                disarm(&mut self.ring, slot, fd, &self.enters);
            }
        }
        // Sends that went out short: the rest goes with the next enter.
        while let Some(fd) = self.cx.resend.pop() {
            if !submit_send(&mut self.ring, fd, &mut self.cx, &self.enters) {
                self.cx.tx[fd as usize].done = Some(-libc::EBUSY);
                let slot = &mut self.slots[fd as usize];
                note_again(slot, &mut self.cx, fd);
            }
        }
        n
    }

    /// Make the receive buffers, the first time a registration asks for completion mode.
    fn ensure_buffers(&mut self, interest: Interest) -> io::Result<()> {
        if interest.is_completion() && self.cx.bufs.is_none() {
            self.cx.bufs = Some(BufRing::new(&self.ring.submitter())?);
        }
        Ok(())
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
            cx: Completion::default(),
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
        self.ensure_buffers(interest)?;
        let slot = *self.slot_for(fd);
        // A fresh registration: only the generation carries over.
        let mut slot = Slot {
            gen: slot.gen,
            reg_gen: slot.gen.wrapping_add(1) & GEN_MASK,
            ..Slot::default()
        };
        if interest.is_completion() {
            // Completion mode: the receive (or accept) is armed by the next wait's enter,
            // with everything else. Until then the caller may still read (or accept)
            // with syscalls: nothing of the kernel's is running yet.
            self.slots[fd as usize] = slot;
            self.table.insert(fd, token, Interest::NONE);
            self.table.set_wanted(fd, token, interest);
            return Ok(());
        }
        if !interest.is_empty() {
            let mode = if interest.is_edge() {
                Mode::Multi
            } else {
                Mode::OneShot
            };
            let (ring, cx) = (&mut self.ring, &mut self.cx);
            if !arm(ring, &mut slot, fd, interest, mode, &self.enters, cx) {
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
        if self.table.get(fd).is_some() {
            self.ensure_buffers(interest)?;
        }
        if self.table.set_wanted(fd, token, interest) {
            Ok(())
        } else {
            Err(not_registered(fd))
        }
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        self.table.remove(fd).ok_or_else(|| not_registered(fd))?;
        let slot = &mut self.slots[fd as usize];
        let mut was_armed = slot.armed;
        disarm(&mut self.ring, slot, fd, &self.enters);
        slot.parked = false;
        slot.quiet_next = false;
        slot.starved = false;
        drop_received(slot, &mut self.cx);
        self.cx.drop_accepted(fd);
        if let Some(tx) = self.cx.tx.get_mut(fd as usize) {
            if tx.busy && tx.done.is_none() {
                // The kernel may still read this buffer: cancel the send and keep the
                // buffer until its completion comes (`Sink::sent` frees it).
                let ud = request_data(Kind::Send, fd, tx.gen);
                self.cx.orphans.push((ud, std::mem::take(&mut tx.buf)));
                let sqe = opcode::AsyncCancel::new(ud).build().user_data(INTERNAL);
                push(&mut self.ring, &sqe, &self.enters);
                was_armed = true;
            }
            tx.busy = false;
            tx.done = None;
            tx.off = 0;
        }
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
        // Completion mode: bytes and connections left untaken, level-triggered.
        n = self.report_again(n);
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
            n = self.report_again(n);
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
        // Completion mode: the parent's requests are not the child's. Their sends are
        // reported failed, their buffers (copies in the child) freed; the receive buffers
        // are registered on the new ring, less those holding untaken bytes.
        self.cx.inflight = 0;
        self.cx.orphans.clear();
        self.cx.resend.clear();
        for fd in 0..self.cx.tx.len() {
            let tx = &mut self.cx.tx[fd];
            if tx.busy && tx.done.is_none() {
                tx.done = Some(-libc::ECANCELED);
                note_again(&mut self.slots[fd], &mut self.cx, fd as RawFd);
            }
        }
        if let Some(bufs) = self.cx.bufs.as_mut() {
            let mut queued = vec![false; bufring::BUF_COUNT as usize];
            for slot in self.slots.iter() {
                let mut b = slot.rx_head;
                while b != 0 {
                    queued[(b - 1) as usize] = true;
                    b = bufs.next((b - 1) as u16);
                }
            }
            bufs.register_except(&self.ring.submitter(), |bid| queued[bid as usize])?;
        }
        let ring = &mut self.ring;
        let slots = &mut self.slots;
        let failed = &mut self.failed;
        let enters = &self.enters;
        let cx = &mut self.cx;
        for (fd, st) in self.table.iter_mut() {
            let slot = &mut slots[fd as usize];
            slot.armed = false;
            slot.quiet_next = false;
            slot.starved = false;
            st.kernel = Interest::NONE;
            st.kernel_token = st.want_token;
            if st.want.is_empty() || slot.parked {
                continue;
            }
            let mode = if st.want.is_edge() || st.want.is_completion() {
                Mode::Multi
            } else {
                Mode::OneShot
            };
            if arm(ring, slot, fd, st.want, mode, enters, cx) {
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

    #[inline]
    fn completion_io(&self) -> bool {
        true
    }

    fn recv_take(&mut self, fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
        let st = self.table.get(fd).ok_or_else(|| not_registered(fd))?;
        if !st.want.is_completion() {
            return Err(not_completion(fd));
        }
        let slot = &mut self.slots[fd as usize];
        let mut len = 0;
        let mut freed = false;
        if let Some(bufs) = self.cx.bufs.as_mut() {
            while slot.rx_head != 0 && len < buf.len() {
                let bid = (slot.rx_head - 1) as u16;
                let src = bufs.bytes(bid, slot.rx_off);
                let k = src.len().min(buf.len() - len);
                buf[len..len + k].copy_from_slice(&src[..k]);
                len += k;
                slot.rx_off += k as u32;
                if slot.rx_off >= bufs.len_of(bid) {
                    slot.rx_head = bufs.next(bid);
                    if slot.rx_head == 0 {
                        slot.rx_tail = 0;
                    }
                    slot.rx_off = 0;
                    slot.rx_count = slot.rx_count.saturating_sub(1);
                    bufs.provide(bid);
                    freed = true;
                }
            }
        }
        if slot.rx_full && slot.rx_count <= RX_QUOTA / 2 {
            slot.rx_full = false;
            self.table.reset_kernel(fd, true); // receiving again from the next enter
        }
        if slot.rx_head == 0 && slot.starved && slot.rx_end == 0 && len < buf.len() {
            // No buffer for this fd in the ring: read it directly (its poll said so).
            // SAFETY: `buf[len..]` is writable memory of that length; recv(2) writes at
            // most that many bytes.
            let n = unsafe {
                libc::recv(
                    fd,
                    buf[len..].as_mut_ptr().cast(),
                    buf.len() - len,
                    libc::MSG_DONTWAIT,
                )
            };
            match n {
                0 => slot.rx_end = RX_EOF,
                n if n > 0 => len += n as usize,
                _ => {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EAGAIN) | Some(libc::EINTR) => {}
                        Some(errno) => slot.rx_end = -errno,
                        None => {}
                    }
                }
            }
        }
        let (head, end) = (slot.rx_head, slot.rx_end);
        if head != 0 {
            // Left untaken (the caller's buffer is full): reported again, as a
            // level-triggered fd with unread data is.
            note_again(slot, &mut self.cx, fd);
        }
        if freed {
            wake_starved(&mut self.cx, &mut self.table, &mut self.slots);
        }
        if len == 0 && head == 0 && end < 0 {
            return Err(completion::os_error(end));
        }
        Ok(Received {
            len,
            eof: head == 0 && end == RX_EOF,
        })
    }

    fn send(&mut self, fd: RawFd, buf: Vec<u8>) -> Result<(), (Vec<u8>, io::Error)> {
        if buf.is_empty() {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "io_uring: an empty send");
            return Err((buf, e));
        }
        match self.table.get(fd) {
            None => return Err((buf, not_registered(fd))),
            Some(st) if !st.want.is_completion() => return Err((buf, not_completion(fd))),
            Some(_) => {}
        }
        let tx = self.cx.tx_mut(fd);
        if tx.busy {
            let e = io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("io_uring: fd {fd} has a send in flight (collect it with send_done)"),
            );
            return Err((buf, e));
        }
        tx.gen = tx.gen.wrapping_add(1) & GEN_MASK;
        tx.buf = buf;
        tx.off = 0;
        tx.busy = true;
        tx.done = None;
        if submit_send(&mut self.ring, fd, &mut self.cx, &self.enters) {
            return Ok(());
        }
        let tx = &mut self.cx.tx[fd as usize];
        tx.busy = false;
        let e = io::Error::new(
            io::ErrorKind::WouldBlock,
            "io_uring: the submission ring is full and the kernel would not take its requests",
        );
        Err((std::mem::take(&mut tx.buf), e))
    }

    fn send_done(&mut self, fd: RawFd) -> Option<(Vec<u8>, io::Result<()>)> {
        let tx = self.cx.tx.get_mut(fd as usize)?;
        if !tx.busy {
            return None;
        }
        let done = tx.done.take()?;
        tx.busy = false;
        tx.off = 0;
        let mut buf = std::mem::take(&mut tx.buf);
        buf.clear();
        let r = if done == 0 {
            Ok(())
        } else {
            Err(completion::os_error(done))
        };
        Some((buf, r))
    }

    fn accept_take(&mut self, fd: RawFd) -> Option<io::Result<OwnedFd>> {
        self.table.get(fd)?;
        let q = self.cx.accepted.get_mut(fd as usize)?;
        let c = q.pop_front()?;
        if !q.is_empty() {
            note_again(&mut self.slots[fd as usize], &mut self.cx, fd);
        }
        Some(if c >= 0 {
            // SAFETY: the kernel accepted this fd for us; it is handed over once.
            Ok(unsafe { OwnedFd::from_raw_fd(c) })
        } else {
            Err(completion::os_error(c))
        })
    }
}

/// The error of a completion call for an fd registered without completion mode.
fn not_completion(fd: RawFd) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("fd {fd} is not in completion mode: register it with Interest::COMPLETION"),
    )
}

impl Drop for Uring {
    /// Requests that use our memory (receives into the buffer ring, sends of buffers we
    /// hold) are cancelled and their completions awaited (at most a second) before the
    /// memory is freed. If the kernel has not finished them by then, the memory is
    /// leaked rather than freed under it.
    fn drop(&mut self) {
        if self.cx.inflight == 0 {
            return;
        }
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(INTERNAL);
        push(&mut self.ring, &cancel, &self.enters);
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while self.cx.inflight > 0 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let ts = types::Timespec::from(left.min(Duration::from_millis(100)));
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            for e in self.ring.completion() {
                if let Some((kind, _, _)) = decode(e.user_data()) {
                    if kind != Kind::Poll && !cqueue::more(e.flags()) {
                        self.cx.finished();
                    }
                    if kind == Kind::Accept && e.result() >= 0 {
                        // SAFETY: a connection nobody will take.
                        unsafe { libc::close(e.result()) };
                    }
                }
            }
        }
        if self.cx.inflight > 0 {
            std::mem::forget(self.cx.bufs.take());
            for tx in &mut self.cx.tx {
                std::mem::forget(std::mem::take(&mut tx.buf));
            }
            for (_, b) in self.cx.orphans.drain(..) {
                std::mem::forget(b);
            }
        }
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

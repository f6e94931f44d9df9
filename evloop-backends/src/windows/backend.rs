//! [`Afd`]: the Windows backend.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::System::IO::OVERLAPPED_ENTRY;

use super::afd::{AfdHandle, Outcome, Request};
use super::base_socket::base_socket;
use super::port::{Port, AFD_KEY, WAKE_KEY};
use super::records::{afd_mask, covers, ready_from, AFD_POLL_LOCAL_CLOSE};
use crate::waker::WakerRef;
use crate::{Backend, BackendEvent, Interest, RawSource, Ready, Waker};

/// Sockets per AFD handle. Each handle is one more kernel object; one handle for
/// thousands of sockets would serialise their polls in the driver. 32 is what the
/// established implementations settled on.
const GROUP_SIZE: usize = 32;

/// How long `drop` waits for cancelled polls to come back before leaking their memory
/// (which the kernel might still write) instead of freeing it.
const DROP_GRACE: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Unused (its `Request` allocation is kept for the next registration).
    Free,
    /// Registered and polled according to its interest.
    Live,
    /// Registered, but its socket was closed under it or its poll failed: reported once
    /// as `ERROR` and not polled again until a `modify`.
    Parked,
    /// Deregistered while a poll was pending: waits for that poll's completion, then
    /// becomes `Free`. Its completion reports nothing.
    Zombie,
}

struct Slot {
    state: State,
    socket: RawSource,
    base: usize,
    group: usize,
    token: u64,
    interest: Interest,
    /// The kernel-owned memory of this slot's poll (null until first used).
    req: *mut Request,
    /// The AFD mask of the pending poll; 0 when none is pending.
    pending: u32,
    /// A cancel of the pending poll was asked for.
    cancelling: bool,
    /// In `Afd::queue`.
    queued: bool,
    /// Its poll could not be submitted and the `ERROR` is not reported yet (in
    /// `Afd::failed`).
    failed: bool,
}

struct Group {
    afd: AfdHandle,
    members: usize,
}

/// Readiness on Windows: each registered socket has one `IOCTL_AFD_POLL` request
/// pending on an `\Device\Afd` handle, and all of them complete into one I/O completion
/// port that [`wait`](Backend::wait) blocks on. Level-triggered (a completed poll is
/// submitted again by the next wait, and completes at once if the socket is still
/// ready); [`Interest::EDGE`] is delivered level-triggered. The cross-thread wake is a
/// [`Waker`] bound to the port ([`Backend::register_waker`]).
///
/// ```
/// use evloop_backends::{Afd, Backend, Interest};
/// use std::io::Write;
/// use std::net::{TcpListener, TcpStream};
/// use std::os::windows::io::AsRawSocket;
///
/// let l = TcpListener::bind("127.0.0.1:0").unwrap();
/// let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
/// let (s, _) = l.accept().unwrap();
/// let mut b = Afd::new(16).unwrap();
/// b.register(s.as_raw_socket(), 7, Interest::READ).unwrap();
/// c.write_all(b"x").unwrap();
/// assert_eq!(b.wait(None).unwrap(), 1);
/// assert!(b.event(0).ready.is_readable());
/// b.deregister(s.as_raw_socket()).unwrap();
/// ```
pub struct Afd {
    port: Arc<Port>,
    groups: Vec<Group>,
    sockets: HashMap<RawSource, usize>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Slots whose poll must be submitted, cancelled for a new mask, or re-armed.
    queue: Vec<usize>,
    /// Slots whose poll could not be submitted: reported as `ERROR` by the next wait.
    failed: Vec<usize>,
    wakers: Vec<(WakerRef, u64)>,
    entries: Box<[OVERLAPPED_ENTRY]>,
    events: Vec<BackendEvent>,
    capacity: usize,
}

// SAFETY: the raw pointers are this backend's own heap blocks (`Request`s, freed only
// by it) and handle values; nothing in them is tied to the thread that made them.
unsafe impl Send for Afd {}

impl std::fmt::Debug for Afd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Afd")
            .field("sockets", &self.sockets.len())
            .field("wakers", &self.wakers.len())
            .field("afd_handles", &self.groups.len())
            .finish()
    }
}

fn not_registered(socket: RawSource) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("socket {socket} is not registered with this backend"),
    )
}

impl Afd {
    /// A group with room for one more socket, opening a new AFD handle if all are full.
    fn group_with_room(&mut self) -> io::Result<usize> {
        if let Some(i) = self.groups.iter().position(|g| g.members < GROUP_SIZE) {
            return Ok(i);
        }
        let afd = AfdHandle::open(&self.port, AFD_KEY)?;
        self.groups.push(Group { afd, members: 0 });
        Ok(self.groups.len() - 1)
    }

    fn enqueue(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        if !slot.queued {
            slot.queued = true;
            self.queue.push(i);
        }
    }

    fn release(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        slot.state = State::Free;
        slot.pending = 0;
        slot.cancelling = false;
        slot.failed = false;
        self.free.push(i);
    }

    /// Bring each queued slot's kernel request in line with its interest.
    fn apply_queue(&mut self) {
        let mut retry = Vec::new();
        let mut k = 0;
        while k < self.queue.len() {
            let i = self.queue[k];
            k += 1;
            let slot = &mut self.slots[i];
            slot.queued = false;
            if slot.state != State::Live {
                continue;
            }
            let want = afd_mask(slot.interest);
            if slot.pending != 0 {
                if !covers(slot.pending, want) && !slot.cancelling {
                    // Its completion re-queues the slot, which then submits `want`.
                    // SAFETY: the slot's poll is pending on this group's handle.
                    if unsafe { self.groups[slot.group].afd.cancel(slot.req) }.is_ok() {
                        slot.cancelling = true;
                    } else {
                        retry.push(i); // try again at the next wait
                    }
                }
                continue;
            }
            if want == 0 {
                continue;
            }
            // SAFETY: no poll is pending on `req` (`pending == 0`), and the slot keeps it
            // allocated until this poll's completion is dequeued (a deregistration turns
            // the slot into a zombie that waits for it).
            let r = unsafe {
                self.groups[slot.group]
                    .afd
                    .poll(slot.req, slot.base as HANDLE, want, i + 1)
            };
            match r {
                Ok(()) => slot.pending = want,
                Err(_) => {
                    slot.state = State::Parked;
                    if !slot.failed {
                        slot.failed = true;
                        self.failed.push(i);
                    }
                }
            }
        }
        self.queue.clear();
        for i in retry {
            self.enqueue(i);
        }
    }

    /// A dequeued completion of slot `i`'s poll.
    fn complete(&mut self, i: usize) {
        let Some(slot) = self.slots.get_mut(i) else {
            return;
        };
        if slot.pending == 0 {
            return; // not ours to account for (cannot happen: one poll per slot)
        }
        slot.pending = 0;
        slot.cancelling = false;
        // SAFETY: the request's completion was just dequeued, so the kernel is done
        // with it; the slot kept it allocated.
        let outcome = unsafe { Request::outcome(slot.req) };
        match slot.state {
            State::Zombie => self.release(i),
            State::Free | State::Parked => {}
            // A stopped watch (empty interest) kept its old poll to make stop/start
            // free; whatever that poll met is not reported, and nothing is re-armed.
            State::Live if slot.interest.is_empty() => self.enqueue(i),
            State::Live => match outcome {
                Outcome::Cancelled => self.enqueue(i),
                Outcome::Failed(_) => {
                    slot.state = State::Parked;
                    self.push(i, Ready::ERROR);
                }
                Outcome::Events(ev) if ev & AFD_POLL_LOCAL_CLOSE != 0 => {
                    slot.state = State::Parked;
                    self.push(i, Ready::ERROR);
                }
                Outcome::Events(ev) => {
                    let ready = ready_from(ev, slot.interest);
                    if !ready.is_empty() {
                        self.push(i, ready);
                    }
                    self.enqueue(i);
                }
            },
        }
    }

    fn push(&mut self, i: usize, ready: Ready) {
        let token = self.slots[i].token;
        self.events.push(BackendEvent { token, ready });
    }

    /// Report sockets whose poll could not be submitted, as far as the buffer has room
    /// (the rest by the next wait).
    fn report_failed(&mut self) {
        while self.events.len() < self.capacity {
            let Some(i) = self.failed.pop() else { break };
            let slot = &mut self.slots[i];
            if std::mem::take(&mut slot.failed) && slot.state == State::Parked {
                self.push(i, Ready::ERROR);
            }
        }
    }

    /// Report again the wakers reported before and not drained since (level-triggered),
    /// unless this wait reported them already, as far as the buffer has room.
    fn report_undrained_wakers(&mut self) {
        for (w, token) in &self.wakers {
            if self.events.len() < self.capacity
                && w.undrained()
                && !self.events.iter().any(|e| e.token == *token)
            {
                self.events.push(BackendEvent {
                    token: *token,
                    ready: Ready::READABLE,
                });
            }
        }
    }
}

impl Backend for Afd {
    const NAME: &'static str = "afd";
    const NATIVE_EDGE: bool = false;
    const MAX_FD: Option<RawSource> = None;

    fn new(event_capacity: usize) -> io::Result<Self> {
        let capacity = event_capacity.max(1);
        // SAFETY: OVERLAPPED_ENTRY is plain data for which all-zero bytes are valid.
        let zero: OVERLAPPED_ENTRY = unsafe { std::mem::zeroed() };
        Ok(Afd {
            port: Arc::new(Port::new()?),
            groups: Vec::new(),
            sockets: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            queue: Vec::new(),
            failed: Vec::new(),
            wakers: Vec::new(),
            entries: vec![zero; capacity].into_boxed_slice(),
            events: Vec::with_capacity(capacity),
            capacity,
        })
    }

    fn register(&mut self, socket: RawSource, token: u64, interest: Interest) -> io::Result<()> {
        if self.sockets.contains_key(&socket) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("socket {socket} is already registered with this backend"),
            ));
        }
        let base = base_socket(socket as usize)? as usize;
        let group = self.group_with_room()?;
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    state: State::Free,
                    socket,
                    base: 0,
                    group: 0,
                    token: 0,
                    interest: Interest::NONE,
                    req: Request::new_raw(),
                    pending: 0,
                    cancelling: false,
                    queued: false,
                    failed: false,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[i];
        slot.state = State::Live;
        slot.socket = socket;
        slot.base = base;
        slot.group = group;
        slot.token = token;
        slot.interest = interest;
        self.groups[group].members += 1;
        self.sockets.insert(socket, i);
        self.enqueue(i);
        Ok(())
    }

    fn modify(&mut self, socket: RawSource, token: u64, interest: Interest) -> io::Result<()> {
        let i = *self
            .sockets
            .get(&socket)
            .ok_or_else(|| not_registered(socket))?;
        let slot = &mut self.slots[i];
        slot.token = token;
        slot.interest = interest;
        if slot.state == State::Parked {
            slot.state = State::Live;
        }
        self.enqueue(i);
        Ok(())
    }

    fn deregister(&mut self, socket: RawSource) -> io::Result<()> {
        let i = self
            .sockets
            .remove(&socket)
            .ok_or_else(|| not_registered(socket))?;
        let slot = &mut self.slots[i];
        self.groups[slot.group].members -= 1;
        if slot.pending == 0 {
            self.release(i);
            return Ok(());
        }
        slot.state = State::Zombie;
        if !slot.cancelling {
            // If the cancel fails the poll completes on its own (at the latest when the
            // socket closes); the zombie waits for it either way.
            // SAFETY: the slot's poll is pending on this group's handle.
            let _ = unsafe { self.groups[slot.group].afd.cancel(slot.req) };
            slot.cancelling = true;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.apply_queue();
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        self.events.clear();
        loop {
            self.apply_queue();
            self.report_failed();
            let undrained = self.wakers.iter().any(|(w, _)| w.undrained());
            let mut room = self.capacity - self.events.len();
            if room == 0 {
                return Ok(self.events.len());
            }
            if undrained && room > 1 {
                room -= 1; // an undrained waker is re-reported after the port is read
            }
            let t = if !self.events.is_empty() || undrained {
                Some(Duration::ZERO)
            } else {
                match (timeout, deadline) {
                    (None, _) => None,
                    (Some(_), Some(d)) => Some(d.saturating_duration_since(Instant::now())),
                    (Some(t), None) => Some(t),
                }
            };
            let n = self.port.wait(&mut self.entries[..room], t)?;
            for k in 0..n {
                let e = self.entries[k];
                let value = e.lpOverlapped as usize;
                match e.lpCompletionKey {
                    WAKE_KEY => {
                        let hit = self
                            .wakers
                            .iter()
                            .find(|(w, _)| w.id() as usize == value)
                            .filter(|(w, _)| w.take_delivery())
                            .map(|(_, token)| *token);
                        if let Some(token) = hit {
                            self.events.push(BackendEvent {
                                token,
                                ready: Ready::READABLE,
                            });
                        }
                    }
                    AFD_KEY if value != 0 => self.complete(value - 1),
                    _ => {}
                }
            }
            self.report_undrained_wakers();
            // Completions that report nothing (cancellations, polls whose events were
            // not asked for) must not end a wait early, nor may the port's own wait,
            // which can return a little before its timeout: wait again for what remains.
            let expired = t == Some(Duration::ZERO)
                || deadline.is_some_and(|d| Instant::now() >= d)
                || (n == 0 && timeout.is_some() && deadline.is_none());
            if !self.events.is_empty() || expired {
                return Ok(self.events.len());
            }
        }
    }

    fn event(&self, i: usize) -> BackendEvent {
        self.events[i]
    }

    fn reinit(&mut self) -> io::Result<()> {
        // Windows has no fork: nothing is ever shared with another process.
        Ok(())
    }

    fn len(&self) -> usize {
        self.sockets.len() + self.wakers.len()
    }

    fn register_waker(&mut self, waker: &Waker, token: u64) -> io::Result<()> {
        if self.wakers.iter().any(|(w, _)| w.is(waker)) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "this waker is already registered with this backend",
            ));
        }
        let w = waker.handle();
        w.bind(&self.port)?;
        self.wakers.push((w, token));
        Ok(())
    }

    fn deregister_waker(&mut self, waker: &Waker) -> io::Result<()> {
        let k = self
            .wakers
            .iter()
            .position(|(w, _)| w.is(waker))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "this waker is not registered with this backend",
                )
            })?;
        let (w, _) = self.wakers.swap_remove(k);
        w.unbind(&self.port);
        Ok(())
    }
}

impl Drop for Afd {
    fn drop(&mut self) {
        for (w, _) in &self.wakers {
            w.unbind(&self.port);
        }
        let mut pending = 0;
        for slot in &mut self.slots {
            if slot.pending != 0 {
                pending += 1;
                if !slot.cancelling {
                    // SAFETY: the slot's poll is pending on this group's handle.
                    let _ = unsafe { self.groups[slot.group].afd.cancel(slot.req) };
                    slot.cancelling = true;
                }
            }
        }
        let deadline = Instant::now() + DROP_GRACE;
        while pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            let n = match self.port.wait(&mut self.entries, Some(left)) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for e in &self.entries[..n] {
                let value = e.lpOverlapped as usize;
                if e.lpCompletionKey == AFD_KEY && value != 0 {
                    if let Some(slot) = self.slots.get_mut(value - 1) {
                        if slot.pending != 0 {
                            slot.pending = 0;
                            pending -= 1;
                        }
                    }
                }
            }
        }
        for slot in &self.slots {
            if slot.pending == 0 {
                // SAFETY: no poll is pending on it (it never had one, or its completion
                // was dequeued), so the kernel no longer touches it.
                unsafe { Request::free(slot.req) };
            }
            // A poll still pending after the grace period: its memory is leaked, since
            // the kernel might still write it.
        }
    }
}

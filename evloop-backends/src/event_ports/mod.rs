//! Event ports (`port_create(3C)`): the default backend on illumos and Solaris. See
//! [`EventPorts`].
//!
//! `records.rs` holds the pure logic (poll-bit mapping, record decoding, the one-shot
//! re-association bookkeeping, timeout and `port_getn` outcome handling); it is compiled
//! for the tests on every system. This file holds the system calls.

#[cfg(any(all(test, unix), target_os = "illumos", target_os = "solaris"))]
pub(crate) mod records;

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
pub use imp::EventPorts;

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod imp {
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
    use std::time::Duration;

    use super::records::{self, Getn, PortEvent, PortOp};
    use crate::changelist::ChangeList;
    use crate::sys::{
        already_registered, check_open, negative_fd, not_registered, syscall, timeout_timespec,
        Deadline,
    };
    use crate::{Backend, BackendEvent, Interest, Ready};

    /// Event ports: `port_associate(PORT_SOURCE_FD)` per fd, `port_getn` to wait. The
    /// default backend on illumos and Solaris.
    ///
    /// * **One-shot associations.** The kernel dissociates an fd when it delivers its event.
    ///   `wait` records every fd it decodes as "fired" in the change list (the same
    ///   bookkeeping that coalesces `modify`), so the next `wait` (or `flush`) re-associates it, once,
    ///   batched with the other pending changes, with the interest it has by then: an fd
    ///   deregistered or stopped in between is never re-associated. A level that persists
    ///   fires again right after the re-association, so readiness is level-triggered.
    /// * **Registration** calls `port_associate` at once, so a closed fd is refused by
    ///   `register` (`EBADF`; the kernel's `EBADFD` is mapped to it). With an empty
    ///   interest nothing is associated and the fd is checked with `fcntl(F_GETFD)`.
    ///   `modify` is coalesced until the next wait (an interest that goes empty is
    ///   `port_dissociate`d, so a hung-up fd with a stopped watcher stays quiet); a
    ///   token-only change needs no kernel call, as tokens are looked up in our table.
    ///   `deregister` dissociates at once, ignoring `ENOENT` (the fd fired and was not
    ///   re-associated yet; dissociating still frees the kernel's association object,
    ///   which would otherwise live until the fd is closed) and `EBADFD`. Dissociating
    ///   also discards an event already queued for the fd, so none arrives after it.
    /// * **Waiting**: `port_getn(nget = 1)` returns as soon as one event is queued, with up
    ///   to the buffer's capacity; the rest stay queued in the port for the next wait (and
    ///   re-associated fds queue behind them, so no fd starves). The timeout is a
    ///   nanosecond `timespec` (nothing rounds down to zero), clamped to 10^8 s.
    ///   `ETIME` is a timeout, not an error, and `EINTR` is retried with the time left;
    ///   events the kernel returns along with either are kept.
    /// * **Readiness** maps like poll's: `POLLIN` readable, `POLLOUT` writable, `POLLRDHUP`
    ///   read-closed (illumos only; `PEER_CLOSED` asks for it there, Solaris has none),
    ///   `POLLHUP` hup, `POLLERR`/`POLLNVAL` error, `POLLPRI` priority; the kernel always
    ///   adds `POLLHUP` and `POLLERR`. [`Interest::EDGE`] is delivered level-triggered.
    /// * A closed fd is dropped by the kernel (closing an fd dissociates it from every
    ///   port): the loop never spins on it. Its pending re-association, if any, is refused
    ///   and reported once as an ERROR event.
    /// * **Waking** goes through the fd-based [`crate::Waker`] (a self-pipe here), which
    ///   the core registers like any fd: `wake_raw` from a signal handler is a plain
    ///   `write(2)`. (`port_send` would need the port fd in the waker, queues one event per
    ///   call instead of coalescing, can fail with `EAGAIN` when the port's event quota is
    ///   reached, and would not serve the /dev/poll backend that shares the waker.)
    /// * **Fork**: a port is shared with a forked child (events would be split between the
    ///   two processes, and the child may not dissociate the parent's associations), so
    ///   [`Backend::reinit`] creates a fresh port and re-associates every registered fd.
    /// * [`Backend::pollable_fd`] is the port itself: a port fd polls readable when events
    ///   are queued.
    ///
    /// ```
    /// # #[cfg(any(target_os = "illumos", target_os = "solaris"))]
    /// # {
    /// use evloop_backends::{Backend, EventPorts, Interest};
    /// use std::io::Write;
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    ///
    /// let mut ports = EventPorts::new(64).unwrap();
    /// assert_eq!(EventPorts::NAME, "event ports");
    /// assert!(ports.pollable_fd().is_some());
    /// let (a, mut b) = UnixStream::pair().unwrap();
    /// ports.register(a.as_raw_fd(), 7, Interest::READ).unwrap();
    /// b.write_all(b"ping").unwrap();
    /// assert_eq!(ports.wait(Some(Duration::from_secs(5))).unwrap(), 1);
    /// assert_eq!(ports.event(0).token, 7);
    /// // Still readable: re-associated by the next wait, so reported again.
    /// assert_eq!(ports.wait(Some(Duration::from_secs(5))).unwrap(), 1);
    /// ports.deregister(a.as_raw_fd()).unwrap();
    /// # }
    /// ```
    pub struct EventPorts {
        port: OwnedFd,
        /// What `port_getn` fills (layout of `port_event_t`), allocated once.
        raw: Box<[PortEvent]>,
        /// The decoded events of the last wait, allocated once.
        events: Box<[BackendEvent]>,
        table: ChangeList,
        /// Tokens whose (re-)association the kernel refused: reported as ERROR events by
        /// the next wait. Capacity fixed at the event capacity.
        failed: Vec<u64>,
    }

    fn new_port() -> io::Result<OwnedFd> {
        // SAFETY: port_create takes no arguments and touches no memory of ours.
        let fd = unsafe { syscall!(port_create()) }?;
        // SAFETY: port_create just returned this fd; nothing else owns it.
        let port = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `port` is the port just created and owned here (open for the call);
        // F_SETFD takes an int of fd flags, no pointer.
        unsafe { syscall!(fcntl(port.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC)) }?;
        Ok(port)
    }

    /// The kernel says `EBADFD` for a closed fd; report it as `EBADF`, like every other
    /// backend.
    fn normalize(e: io::Error) -> io::Error {
        if e.raw_os_error() == Some(libc::EBADFD) {
            io::Error::from_raw_os_error(libc::EBADF)
        } else {
            e
        }
    }

    fn associate(port: RawFd, fd: RawFd, events: i32, token: u64) -> io::Result<()> {
        // The token rides along as `portev_user` for debugging; we decode tokens from our
        // table, so truncation on a 32-bit target would be harmless.
        let user = std::ptr::without_provenance_mut::<libc::c_void>(token as usize);
        // SAFETY: all arguments are integers to the kernel: `user` is an opaque value
        // (no provenance) the kernel stores and hands back in `portev_user`, never
        // dereferenced by it or by us. `port` is the backend's own port; `fd` is a plain
        // number (a closed one fails with EBADF/EBADFD).
        unsafe {
            syscall!(port_associate(
                port,
                libc::PORT_SOURCE_FD,
                fd as libc::uintptr_t,
                events,
                user,
            ))
        }
        .map(|_| ())
        .map_err(normalize)
    }

    fn dissociate(port: RawFd, fd: RawFd) -> io::Result<()> {
        // SAFETY: integers only: the backend's own port, the source kind and the fd
        // number (a closed or unassociated one fails, handled below). No memory is passed.
        match unsafe {
            syscall!(port_dissociate(
                port,
                libc::PORT_SOURCE_FD,
                fd as libc::uintptr_t
            ))
        } {
            Ok(_) => Ok(()),
            // Not associated right now (it fired), or already closed (closing dissociates):
            // the kernel holds nothing for it, which is the goal.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT) | Some(libc::EBADFD) | Some(libc::EBADF)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Run one kernel call the change list asked for.
    fn exec(port: RawFd, op: PortOp) -> io::Result<()> {
        match op {
            PortOp::Associate { fd, events, token } => associate(port, fd, events, token),
            PortOp::Dissociate { fd } => dissociate(port, fd),
        }
    }

    impl EventPorts {
        fn apply_changes(&mut self) {
            let port = self.port.as_raw_fd();
            records::apply_changes(&mut self.table, &mut self.failed, |op| exec(port, op));
        }

        /// Move refused changes into the event buffer as ERROR events.
        #[cold]
        fn report_failed(&mut self) -> usize {
            let n = self.failed.len().min(self.events.len());
            for (slot, &token) in self.events.iter_mut().zip(&self.failed[..n]) {
                *slot = BackendEvent {
                    token,
                    ready: Ready::ERROR,
                };
            }
            self.failed.drain(..n);
            n
        }
    }

    impl Backend for EventPorts {
        const NAME: &'static str = "event ports";
        const NATIVE_EDGE: bool = false;
        const MAX_FD: Option<RawFd> = None;

        fn new(event_capacity: usize) -> io::Result<Self> {
            let cap = event_capacity.clamp(1, i32::MAX as usize);
            Ok(EventPorts {
                port: new_port()?,
                raw: vec![PortEvent::default(); cap].into_boxed_slice(),
                events: vec![
                    BackendEvent {
                        token: 0,
                        ready: Ready::EMPTY,
                    };
                    cap
                ]
                .into_boxed_slice(),
                table: ChangeList::new(),
                failed: Vec::with_capacity(cap),
            })
        }

        fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
            if fd < 0 {
                return Err(negative_fd(fd));
            }
            if self.table.get(fd).is_some() {
                return Err(already_registered(fd));
            }
            let events = records::poll_events(interest);
            if events != 0 {
                associate(self.port.as_raw_fd(), fd, events, token)?;
            } else {
                // Nothing to associate yet; still refuse a closed fd now.
                check_open(fd)?;
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
            // Even when the fd fired (and so is not associated): the kernel keeps its
            // association object until the fd is closed, and dissociating frees it now.
            dissociate(self.port.as_raw_fd(), fd)
        }

        fn flush(&mut self) -> io::Result<()> {
            self.apply_changes();
            Ok(())
        }

        fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
            self.apply_changes();
            if !self.failed.is_empty() {
                // Report refused changes as ERROR events without blocking.
                return Ok(self.report_failed());
            }
            let deadline = Deadline::new(timeout);
            let mut t = timeout;
            let max = self.raw.len() as libc::c_uint;
            let got = loop {
                let mut ts = timeout_timespec(t, records::PORT_MAX_WAIT_SECS);
                let tsp = ts
                    .as_mut()
                    .map_or(std::ptr::null_mut(), |ts| ts as *mut libc::timespec);
                let mut nget: libc::c_uint = 1;
                // SAFETY: `self.raw` is a boxed slice owned by `self` and mutably borrowed
                // for the call, of `max` (its length, 1..=i32::MAX) records laid out as
                // `port_event_t` (checked at compile time in records.rs): the kernel
                // writes at most `max` of them. `nget` is a local `c_uint` the kernel
                // reads and writes, alive for the call; `tsp` is null ("wait forever") or
                // points to `ts` on this frame. `self.port` is the port `self` owns.
                let r = unsafe {
                    syscall!(port_getn(
                        self.port.as_raw_fd(),
                        self.raw.as_mut_ptr().cast::<libc::port_event>(),
                        max,
                        &mut nget,
                        tsp,
                    ))
                };
                let ret = r.map(|_| ()).map_err(|e| e.raw_os_error().unwrap_or(0));
                match records::classify_getn(ret, nget, max) {
                    Getn::Events(n) => break n,
                    Getn::Interrupted => {
                        t = deadline.remaining(timeout);
                        if t == Some(Duration::ZERO) && timeout != Some(Duration::ZERO) {
                            return Ok(0);
                        }
                    }
                    Getn::Failed(errno) => return Err(io::Error::from_raw_os_error(errno)),
                }
            };
            let mut out = 0;
            for i in 0..got {
                if let Some(ev) = records::decode(&self.raw[i], &mut self.table) {
                    self.events[out] = ev;
                    out += 1;
                }
            }
            Ok(out)
        }

        #[inline]
        fn event(&self, i: usize) -> BackendEvent {
            self.events[i]
        }

        fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
            Some(self.port.as_fd())
        }

        fn reinit(&mut self) -> io::Result<()> {
            let port = new_port()?;
            let raw_port = port.as_raw_fd();
            records::reassociate_all(&mut self.table, &mut self.failed, |op| exec(raw_port, op));
            // Dropping the old port closes only this process's reference to it.
            self.port = port;
            Ok(())
        }

        fn len(&self) -> usize {
            self.table.len()
        }
    }

    impl std::fmt::Debug for EventPorts {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("EventPorts")
                .field("port", &self.port)
                .field("registered", &self.table.len())
                .field("event_capacity", &self.events.len())
                .finish()
        }
    }
}

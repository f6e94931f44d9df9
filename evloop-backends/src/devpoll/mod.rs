//! `/dev/poll` (`poll(4D)`) on illumos and Solaris: see [`DevPoll`]. Chosen by naming the
//! type, or as `DefaultBackend` with the `backend-devpoll` feature.
//!
//! `sys.rs` declares the ABI `libc` lacks (`DP_POLL`, `POLLREMOVE`, `struct dvpoll`);
//! `records.rs` holds the pure logic (the entries each change writes, decoding), compiled
//! for the tests on every system; this file holds the system calls.

#[cfg(any(all(test, unix), target_os = "illumos", target_os = "solaris"))]
mod records;
#[cfg(any(all(test, unix), target_os = "illumos", target_os = "solaris"))]
mod sys;

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
pub use imp::DevPoll;

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod imp {
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
    use std::time::Duration;

    use super::records::{self, PollFd};
    use super::sys::{DvPoll, DP_POLL, POLLREMOVE};
    use crate::changelist::ChangeList;
    use crate::sys::{
        already_registered, check_open, negative_fd, not_registered, syscall, timeout_ms, Deadline,
    };
    use crate::{Backend, BackendEvent, Interest, Ready};

    /// `/dev/poll`: the kernel caches the watched set; `write(2)` changes it, the `DP_POLL`
    /// ioctl waits. Level-triggered only. Its [`Backend::NAME`] is `"/dev/poll"`, the
    /// mechanism's own name (names are for display: compare `"event ports"`); the cargo
    /// feature that makes it the default is `backend-devpoll`.
    ///
    /// * **Changes.** Writing a `pollfd` ORs its events into the fd's cached ones, so
    ///   taking events away needs a `POLLREMOVE` entry first, and an empty interest is a
    ///   `POLLREMOVE` alone (a stopped watcher on a hung-up fd then stays quiet). `modify`
    ///   is coalesced in the change list (see [`crate::contract`]); the next `wait` (or `flush`)
    ///   writes every pending entry in one `write(2)`. If the kernel refuses that write, the
    ///   entries are rewritten one fd at a time to find the culprits, which are reported as
    ///   ERROR events by the next wait and left stopped (a later `modify` retries them).
    /// * **Registration** writes its entry at once. The kernel accepts a closed fd there
    ///   (and would report `POLLNVAL` later), so `register` first checks the fd with
    ///   `fcntl(F_GETFD)` and refuses a closed one. `deregister` writes its `POLLREMOVE` at
    ///   once. Tokens live in our table, so a token-only change writes nothing.
    /// * **Waiting**: `DP_POLL` with the timeout in `int` milliseconds, rounded up (never to
    ///   zero) and clamped to `i32::MAX`; `EINTR` is retried with the time left. The kernel
    ///   resumes its scan where the previous one stopped, so when more fds are ready than
    ///   fit, the others come first next time.
    /// * **Readiness** maps like poll's (`POLLIN`, `POLLOUT`, `POLLRDHUP` on illumos,
    ///   `POLLHUP`, `POLLERR`/`POLLNVAL` -> ERROR, `POLLPRI`); `POLLHUP` and `POLLERR` come
    ///   whatever was asked. [`Interest::EDGE`] is delivered level-triggered (the kernel's
    ///   `POLLET` is not used).
    /// * An fd closed while registered comes back as `POLLNVAL` on every `DP_POLL` until it
    ///   is removed: it is reported once as ERROR, and the same `wait` writes its
    ///   `POLLREMOVE` and leaves it stopped, so the loop never spins.
    /// * **Fork**: the child may not use an inherited /dev/poll fd (`EACCES`), so
    ///   [`Backend::reinit`] opens a new instance and writes every registration into it.
    /// * [`Backend::pollable_fd`] is `None`: polling a /dev/poll fd returns `POLLERR`
    ///   (illumos only supports it for instances in epoll-compatibility mode).
    ///
    /// ```
    /// # #[cfg(any(target_os = "illumos", target_os = "solaris"))]
    /// # {
    /// use evloop_backends::{Backend, DevPoll, Interest};
    /// use std::io::Write;
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    ///
    /// let mut dp = DevPoll::new(64).unwrap();
    /// assert_eq!(DevPoll::NAME, "/dev/poll");
    /// assert!(dp.pollable_fd().is_none());
    /// let (a, mut b) = UnixStream::pair().unwrap();
    /// dp.register(a.as_raw_fd(), 7, Interest::READ).unwrap();
    /// b.write_all(b"ping").unwrap();
    /// assert_eq!(dp.wait(Some(Duration::from_secs(5))).unwrap(), 1);
    /// assert_eq!(dp.event(0).token, 7);
    /// dp.modify(a.as_raw_fd(), 7, Interest::WRITE).unwrap(); // POLLREMOVE, then POLLOUT
    /// assert_eq!(dp.wait(Some(Duration::from_secs(5))).unwrap(), 1);
    /// assert!(dp.event(0).ready.is_writable() && !dp.event(0).ready.is_readable());
    /// dp.deregister(a.as_raw_fd()).unwrap();
    /// # }
    /// ```
    pub struct DevPoll {
        dpfd: OwnedFd,
        /// Where `DP_POLL` writes the ready entries, allocated once.
        results: Box<[PollFd]>,
        /// The decoded events of the last wait, allocated once.
        events: Box<[BackendEvent]>,
        table: ChangeList,
        /// The batch being built for the next write; cleared (not freed) after each.
        writes: Vec<PollFd>,
        /// Tokens of fds whose entries the kernel refused: reported as ERROR events by the
        /// next wait. Capacity fixed at the event capacity.
        failed: Vec<u64>,
    }

    fn open_devpoll() -> io::Result<OwnedFd> {
        // SAFETY: the path is a `'static` NUL-terminated C string literal, only read;
        // O_RDWR | O_CLOEXEC without O_CREAT, so open(2) reads no mode argument.
        let fd = unsafe { syscall!(open(c"/dev/poll".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC)) }?;
        // SAFETY: open just returned this fd; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Write `entries` in one `write(2)`, retrying on `EINTR` (rewriting a batch is
    /// harmless: `POLLREMOVE`-then-add and add-only entries give the same cached set when
    /// applied twice, and the kernel applies a write fully or reports an error).
    fn write_entries(dpfd: RawFd, entries: &[PollFd]) -> io::Result<()> {
        let len = std::mem::size_of_val(entries);
        loop {
            // SAFETY: the buffer is `entries`, borrowed for the call: `len` =
            // `size_of_val(entries)` readable bytes of `pollfd` records (layout checked in
            // records.rs), only read. `dpfd` is the /dev/poll fd of the calling backend,
            // which owns it and keeps it open for the call.
            match unsafe { syscall!(write(dpfd, entries.as_ptr().cast(), len)) } {
                Ok(n) if n as usize == len => return Ok(()),
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "short write to /dev/poll",
                    ))
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    impl DevPoll {
        /// Write the pending batch. If the kernel refuses it, rewrite it one fd at a time;
        /// an fd whose entries are refused is removed (best effort, so the kernel cannot
        /// keep reporting it), disabled, and reported by the next wait, unless all it
        /// needed was a removal.
        fn write_pending(&mut self) {
            if self.writes.is_empty() {
                return;
            }
            let dpfd = self.dpfd.as_raw_fd();
            if write_entries(dpfd, &self.writes).is_err() {
                for group in records::per_fd(&self.writes) {
                    if write_entries(dpfd, group).is_ok() {
                        continue;
                    }
                    let fd = group[0].fd;
                    let removal_only = group.iter().all(|e| e.events == POLLREMOVE);
                    if !removal_only {
                        let _ = write_entries(dpfd, &[records::remove_entry(fd)]);
                        if let Some(token) = records::disable(&mut self.table, fd) {
                            if self.failed.len() < self.failed.capacity() {
                                self.failed.push(token);
                            }
                        }
                    }
                }
            }
            self.writes.clear();
        }

        fn apply_changes(&mut self) {
            records::queue_changes(&mut self.table, &mut self.writes);
            self.write_pending();
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

    impl Backend for DevPoll {
        const NAME: &'static str = "/dev/poll";
        const NATIVE_EDGE: bool = false;
        const MAX_FD: Option<RawFd> = None;

        fn new(event_capacity: usize) -> io::Result<Self> {
            let cap = event_capacity.clamp(1, i32::MAX as usize);
            Ok(DevPoll {
                dpfd: open_devpoll()?,
                results: vec![PollFd::default(); cap].into_boxed_slice(),
                events: vec![
                    BackendEvent {
                        token: 0,
                        ready: Ready::EMPTY,
                    };
                    cap
                ]
                .into_boxed_slice(),
                table: ChangeList::new(),
                writes: Vec::with_capacity(256),
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
            // /dev/poll caches a closed fd without complaint: refuse it here.
            check_open(fd)?;
            let entries = records::change_entries(fd, Interest::NONE, interest);
            if !entries.as_slice().is_empty() {
                write_entries(self.dpfd.as_raw_fd(), entries.as_slice())?;
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
            let st = self.table.remove(fd).ok_or_else(|| not_registered(fd))?;
            if records::mask(st.kernel) != 0 {
                write_entries(self.dpfd.as_raw_fd(), &[records::remove_entry(fd)])?;
            }
            Ok(())
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
            let got = loop {
                let mut arg = DvPoll {
                    dp_fds: self.results.as_mut_ptr(),
                    dp_nfds: self.results.len() as libc::c_ulong,
                    dp_timeout: timeout_ms(t),
                };
                // SAFETY: DP_POLL takes a `struct dvpoll *`: `arg` is one on this stack
                // frame, alive for the call, whose `dp_fds` points at `self.results`, a
                // boxed slice owned by `self` and mutably borrowed here, of exactly
                // `dp_nfds` writable `pollfd` records (layout checked in records.rs); the
                // kernel writes at most that many. `self.dpfd` is the /dev/poll fd `self`
                // owns, open until `self` drops.
                let r = unsafe {
                    syscall!(ioctl(
                        self.dpfd.as_raw_fd(),
                        DP_POLL,
                        &mut arg as *mut DvPoll
                    ))
                };
                match r {
                    Ok(n) => break (n as usize).min(self.results.len()),
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                        t = deadline.remaining(timeout);
                        if t == Some(Duration::ZERO) && timeout != Some(Duration::ZERO) {
                            return Ok(0);
                        }
                    }
                    Err(e) => return Err(e),
                }
            };
            let mut out = 0;
            for i in 0..got {
                if let Some(ev) =
                    records::decode(&self.results[i], &mut self.table, &mut self.writes)
                {
                    self.events[out] = ev;
                    out += 1;
                }
            }
            // POLLREMOVE the fds found closed (POLLNVAL) now, so the next DP_POLL does not
            // report them again.
            self.write_pending();
            Ok(out)
        }

        #[inline]
        fn event(&self, i: usize) -> BackendEvent {
            self.events[i]
        }

        fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
            None
        }

        fn reinit(&mut self) -> io::Result<()> {
            // The inherited instance belongs to the parent: the child gets EACCES on it.
            self.dpfd = open_devpoll()?;
            let writes = &mut self.writes;
            writes.clear();
            for (fd, st) in self.table.iter_mut() {
                writes.extend_from_slice(
                    records::change_entries(fd, Interest::NONE, st.want).as_slice(),
                );
                st.kernel = st.want;
                st.kernel_token = st.want_token;
            }
            self.write_pending();
            Ok(())
        }

        fn len(&self) -> usize {
            self.table.len()
        }
    }

    impl std::fmt::Debug for DevPoll {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("DevPoll")
                .field("dpfd", &self.dpfd)
                .field("registered", &self.table.len())
                .field("event_capacity", &self.events.len())
                .finish()
        }
    }
}

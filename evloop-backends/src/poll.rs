//! The portable `poll(2)` backend: see [`Poll`].

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use crate::sys::{
    already_registered, check_open, negative_fd, not_registered, syscall, timeout_ms, Deadline,
};
use crate::{Backend, BackendEvent, Interest, Ready};

/// Marks an fd that has no entry in the `pollfd` array.
const NO_INDEX: u32 = u32::MAX;

/// Portable `poll(2)`: available on every Unix, no fd-number limit, no kernel state.
///
/// The backend keeps the `pollfd` array itself, plus a parallel array of registrations
/// (token and interest) and an fd -> array-index map, so every operation is O(1) except
/// the wait, which is O(registered fds) as poll(2) itself is.
///
/// * There is no kernel object, so there is nothing to coalesce: [`Backend::modify`]
///   rewrites the entry in place and the next [`Backend::wait`] hands the array to the
///   kernel as it stands. A stop/start pair therefore costs nothing, as the contract asks.
/// * `register` is still checked **at once**: the fd must be open (`fcntl(F_GETFD)`), so a
///   closed or invalid fd is an error from the call, not a surprise in the next wait.
/// * An empty interest parks the entry by storing a negative fd (`!fd`, so fd 0 works
///   too): poll(2) skips negative entries entirely. Merely clearing `events` would not do,
///   because poll reports `POLLHUP`/`POLLERR` whatever `events` holds, and a hung-up fd
///   with a stopped watcher would then wake the loop forever.
/// * An fd that is closed while registered comes back as `POLLNVAL`: it is reported once
///   as [`Ready::ERROR`] and then parked like an empty interest (and stays parked until it
///   is deregistered), so it never makes the loop spin.
/// * [`Interest::EDGE`] is delivered level-triggered ([`Backend::NATIVE_EDGE`] is false).
/// * Interest maps to `READ` -> `POLLIN | POLLPRI`, `WRITE` -> `POLLOUT`, `PEER_CLOSED` ->
///   `POLLRDHUP` (Linux and Android only; elsewhere a closed peer shows up as readable
///   with EOF, and as `HUP` once both directions are closed).
/// * Fairness: when more entries are ready than the event buffer holds, the next wait
///   starts its scan at the first entry that did not fit, so every ready fd is reported
///   within `ceil(ready / capacity)` waits.
///
/// ```
/// use evloop_backends::{Backend, Interest, Poll};
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let mut poll = Poll::new(16).unwrap();
/// assert!(poll.pollable_fd().is_none());
/// let (a, mut b) = UnixStream::pair().unwrap();
/// poll.register(a.as_raw_fd(), 7, Interest::READ).unwrap();
/// b.write_all(b"ping").unwrap();
/// assert_eq!(poll.wait(Some(Duration::from_secs(5))).unwrap(), 1);
/// assert_eq!(poll.event(0).token, 7);
/// assert!(poll.event(0).ready.is_readable());
/// poll.deregister(a.as_raw_fd()).unwrap();
/// assert!(poll.is_empty());
/// ```
pub struct Poll {
    /// What the kernel is handed by every wait.
    fds: Vec<libc::pollfd>,
    /// Parallel to `fds`: the registration behind each entry.
    regs: Vec<Reg>,
    /// fd number -> index into `fds`/`regs`, or [`NO_INDEX`].
    index: Vec<u32>,
    /// The event buffer, allocated once by `new`.
    events: Box<[BackendEvent]>,
    /// Where the next scan of `fds` starts (fairness rotation).
    scan_start: usize,
}

/// One registration.
#[derive(Clone, Copy, Debug)]
struct Reg {
    /// The real fd (the `pollfd` entry holds `!fd` while parked).
    fd: RawFd,
    token: u64,
    interest: Interest,
    /// Reported `POLLNVAL` (closed while registered): parked until deregistered.
    invalid: bool,
}

impl Reg {
    /// The value for `pollfd.fd`: the fd itself, or a negative value that poll skips.
    fn poll_fd(&self) -> RawFd {
        if self.interest.is_empty() || self.invalid {
            !self.fd
        } else {
            self.fd
        }
    }
}

fn mask(interest: Interest) -> libc::c_short {
    let mut m: libc::c_short = 0;
    if interest.is_readable() {
        m |= libc::POLLIN | libc::POLLPRI;
    }
    if interest.is_writable() {
        m |= libc::POLLOUT;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if interest.is_peer_closed() {
        m |= libc::POLLRDHUP;
    }
    m
}

fn ready(revents: libc::c_short) -> Ready {
    let mut r = Ready::EMPTY;
    if revents & libc::POLLIN != 0 {
        r |= Ready::READABLE;
    }
    if revents & libc::POLLOUT != 0 {
        r |= Ready::WRITABLE;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if revents & libc::POLLRDHUP != 0 {
        r |= Ready::READ_CLOSED;
    }
    if revents & libc::POLLHUP != 0 {
        r |= Ready::HUP;
    }
    if revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        r |= Ready::ERROR;
    }
    if revents & libc::POLLPRI != 0 {
        r |= Ready::PRIORITY;
    }
    r
}

impl Poll {
    /// Position of `fd` in the arrays, if registered.
    fn position(&self, fd: RawFd) -> Option<usize> {
        if fd < 0 {
            return None;
        }
        match self.index.get(fd as usize) {
            Some(&i) if i != NO_INDEX => Some(i as usize),
            _ => None,
        }
    }

    /// Copy the ready entries into the event buffer, starting at the rotation point.
    /// `nready` is poll's return value: the number of entries with a non-zero `revents`.
    fn collect(&mut self, nready: usize) -> usize {
        let len = self.fds.len();
        let cap = self.events.len();
        let start = if self.scan_start < len {
            self.scan_start
        } else {
            0
        };
        let mut seen = 0;
        let mut out = 0;
        let mut i = start;
        for _ in 0..len {
            if seen == nready {
                break;
            }
            let revents = self.fds[i].revents;
            if revents != 0 {
                seen += 1;
                if out == cap {
                    // Full: this one and the rest go first next time.
                    self.scan_start = i;
                    break;
                }
                let reg = &mut self.regs[i];
                if revents & libc::POLLNVAL != 0 {
                    // Closed behind our back: report once, then park the entry.
                    reg.invalid = true;
                    self.fds[i].fd = reg.poll_fd();
                }
                let r = ready(revents);
                if !r.is_empty() {
                    self.events[out] = BackendEvent {
                        token: reg.token,
                        ready: r,
                    };
                    out += 1;
                }
            }
            i += 1;
            if i == len {
                i = 0;
            }
        }
        out
    }
}

impl Backend for Poll {
    const NAME: &'static str = "poll";
    const NATIVE_EDGE: bool = false;
    const MAX_FD: Option<RawFd> = None;

    fn new(event_capacity: usize) -> io::Result<Self> {
        let cap = event_capacity.max(1);
        Ok(Poll {
            fds: Vec::with_capacity(64),
            regs: Vec::with_capacity(64),
            index: vec![NO_INDEX; crate::open_file_limit()],
            events: vec![
                BackendEvent {
                    token: 0,
                    ready: Ready::EMPTY,
                };
                cap
            ]
            .into_boxed_slice(),
            scan_start: 0,
        })
    }

    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        if fd < 0 {
            return Err(negative_fd(fd));
        }
        if self.position(fd).is_some() {
            return Err(already_registered(fd));
        }
        check_open(fd)?;
        let slot = fd as usize;
        if slot >= self.index.len() {
            let new_len = (slot + 1).next_power_of_two();
            self.index.resize(new_len, NO_INDEX);
        }
        let pos = self.fds.len();
        if pos >= NO_INDEX as usize {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "too many fds registered with the poll backend",
            ));
        }
        let reg = Reg {
            fd,
            token,
            interest,
            invalid: false,
        };
        self.fds.push(libc::pollfd {
            fd: reg.poll_fd(),
            events: mask(interest),
            revents: 0,
        });
        self.regs.push(reg);
        self.index[slot] = pos as u32;
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        let i = self.position(fd).ok_or_else(|| not_registered(fd))?;
        let reg = &mut self.regs[i];
        reg.token = token;
        reg.interest = interest;
        self.fds[i] = libc::pollfd {
            fd: reg.poll_fd(),
            events: mask(interest),
            revents: 0,
        };
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let i = self.position(fd).ok_or_else(|| not_registered(fd))?;
        self.fds.swap_remove(i);
        self.regs.swap_remove(i);
        self.index[fd as usize] = NO_INDEX;
        if let Some(moved) = self.regs.get(i) {
            self.index[moved.fd as usize] = i as u32;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // No kernel state: the array is always up to date.
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let deadline = Deadline::new(timeout);
        let mut t = timeout;
        let nready = loop {
            // SAFETY: `self.fds` is a Vec of `len()` initialised `pollfd`s owned by `self`
            // and mutably borrowed for the call; poll(2) reads each entry and writes only
            // their `revents`, within those `len()` records (an empty Vec passes a
            // dangling but aligned pointer with nfds 0, which the kernel never touches).
            // The fds inside are plain integers to the kernel (a closed one reports
            // POLLNVAL).
            let r = unsafe {
                syscall!(poll(
                    self.fds.as_mut_ptr(),
                    self.fds.len() as libc::nfds_t,
                    timeout_ms(t),
                ))
            };
            match r {
                Ok(n) => break n as usize,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {
                    t = deadline.remaining(timeout);
                    if t == Some(Duration::ZERO) && timeout != Some(Duration::ZERO) {
                        return Ok(0);
                    }
                }
                Err(e) => return Err(e),
            }
        };
        if nready == 0 {
            return Ok(0);
        }
        Ok(self.collect(nready))
    }

    #[inline]
    fn event(&self, i: usize) -> BackendEvent {
        self.events[i]
    }

    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn reinit(&mut self) -> io::Result<()> {
        // No kernel object is shared with the parent: the array is all there is.
        Ok(())
    }

    fn len(&self) -> usize {
        self.fds.len()
    }
}

impl std::fmt::Debug for Poll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poll")
            .field("registered", &self.regs)
            .field("event_capacity", &self.events.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    const FIVE_S: Option<Duration> = Some(Duration::from_secs(5));

    #[test]
    fn masks_and_readiness_map_as_documented() {
        assert_eq!(mask(Interest::READ), libc::POLLIN | libc::POLLPRI);
        assert_eq!(mask(Interest::WRITE), libc::POLLOUT);
        assert_eq!(mask(Interest::EDGE), 0);
        assert_eq!(mask(Interest::NONE), 0);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            assert_eq!(mask(Interest::PEER_CLOSED), libc::POLLRDHUP);
            assert_eq!(ready(libc::POLLRDHUP), Ready::READ_CLOSED);
        }
        assert_eq!(ready(libc::POLLIN), Ready::READABLE);
        assert_eq!(ready(libc::POLLOUT), Ready::WRITABLE);
        assert_eq!(ready(libc::POLLHUP), Ready::HUP);
        assert_eq!(ready(libc::POLLERR), Ready::ERROR);
        assert_eq!(ready(libc::POLLNVAL), Ready::ERROR);
        assert_eq!(ready(libc::POLLPRI), Ready::PRIORITY);
    }

    #[test]
    fn parked_entries_use_a_negative_fd_even_for_fd_zero() {
        let reg = Reg {
            fd: 0,
            token: 0,
            interest: Interest::NONE,
            invalid: false,
        };
        assert!(reg.poll_fd() < 0);
        let reg = Reg {
            interest: Interest::READ,
            ..reg
        };
        assert_eq!(reg.poll_fd(), 0);
        let reg = Reg {
            invalid: true,
            ..reg
        };
        assert!(reg.poll_fd() < 0);
    }

    #[test]
    fn swap_remove_keeps_the_index_consistent() {
        let mut p = Poll::new(8).unwrap();
        let pairs: Vec<_> = (0..3).map(|_| UnixStream::pair().unwrap()).collect();
        for (k, (a, _)) in pairs.iter().enumerate() {
            p.register(a.as_raw_fd(), k as u64, Interest::READ).unwrap();
        }
        // Removing the first moves the last into its place.
        p.deregister(pairs[0].0.as_raw_fd()).unwrap();
        assert_eq!(p.len(), 2);
        p.modify(pairs[2].0.as_raw_fd(), 22, Interest::READ)
            .unwrap();
        (&pairs[2].1).write_all(b"x").unwrap();
        assert_eq!(p.wait(FIVE_S).unwrap(), 1);
        assert_eq!(p.event(0).token, 22);
        // The moved entry can still be deregistered, and the middle one too.
        p.deregister(pairs[2].0.as_raw_fd()).unwrap();
        p.deregister(pairs[1].0.as_raw_fd()).unwrap();
        assert!(p.is_empty());
        assert_eq!(
            p.deregister(pairs[1].0.as_raw_fd()).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn index_grows_for_an_fd_beyond_the_hint() {
        let mut p = Poll::new(8).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let want = p.index.len() as RawFd + 10;
        // SAFETY: F_DUPFD_CLOEXEC duplicates an open fd onto the lowest free number >= want.
        let high = unsafe { libc::fcntl(a.as_raw_fd(), libc::F_DUPFD_CLOEXEC, want) };
        if high < 0 {
            // The fd limit is too low to test this here.
            return;
        }
        p.register(high, 9, Interest::READ).unwrap();
        assert!(p.index.len() > high as usize);
        (&b).write_all(b"x").unwrap();
        assert_eq!(p.wait(FIVE_S).unwrap(), 1);
        assert_eq!(p.event(0).token, 9);
        p.deregister(high).unwrap();
        // SAFETY: `high` was duplicated above and is closed exactly once, here.
        unsafe { libc::close(high) };
    }

    #[test]
    fn rotation_reports_the_entries_that_did_not_fit_first() {
        let mut p = Poll::new(2).unwrap();
        let pairs: Vec<_> = (0..5).map(|_| UnixStream::pair().unwrap()).collect();
        for (k, (a, b)) in pairs.iter().enumerate() {
            p.register(a.as_raw_fd(), k as u64, Interest::READ).unwrap();
            (&*b).write_all(b"x").unwrap();
        }
        let mut order = vec![];
        for _ in 0..3 {
            let n = p.wait(FIVE_S).unwrap();
            order.extend((0..n).map(|i| p.event(i).token));
        }
        // 0,1 | 2,3 | 4 and then 0 again (the scan wraps with room left).
        assert_eq!(order, vec![0, 1, 2, 3, 4, 0]);
    }
}

//! The `select(2)` backend (fds below `FD_SETSIZE`): see [`Select`].

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use crate::sys::{already_registered, check_open, negative_fd, not_registered, syscall, Deadline};
use crate::{Backend, BackendEvent, Interest, Ready};

/// The number of fds an `fd_set` holds.
const SETSIZE: usize = libc::FD_SETSIZE;

/// The longest timeout handed to select(2): `i32::MAX` milliseconds, in whole seconds.
const MAX_TIMEOUT_SECS: u64 = (i32::MAX / 1000) as u64;

/// `select(2)`: the oldest and most portable mechanism, for fds below `FD_SETSIZE` only.
///
/// The backend keeps three master `fd_set`s (read, write, except) plus a per-fd table of
/// `FD_SETSIZE` registrations, and copies the sets into each `select` call. Everything
/// except the wait is O(1); the wait is O(highest registered fd).
///
/// * fds at or above `FD_SETSIZE` cannot be put in an `fd_set` at all (doing so writes
///   past its end): registering one is an `InvalidInput` error that names the limit and
///   points to the poll or epoll backend. [`Backend::MAX_FD`] is `FD_SETSIZE - 1`.
/// * Like [`Poll`](crate::Poll), there is no kernel state: [`Backend::modify`] edits the
///   master sets in place, so a stop/start pair costs nothing. `register` checks the fd is
///   open (`fcntl(F_GETFD)`) so a closed fd is an error from the call itself. An empty
///   interest takes the fd out of the master sets; it stays registered.
/// * `READ` puts the fd in the read and except sets (the except set reports urgent data as
///   [`Ready::PRIORITY`], like `POLLPRI`); `WRITE` puts it in the write set.
/// * select(2) has no hang-up or error bits: a hung-up or failed fd shows up as readable
///   and/or writable, and the I/O call then returns EOF or the error. A watch with
///   `WRITE` but not `READ` would never see that EOF, so when such an fd is reported
///   writable the backend asks `poll(2)` (zero timeout, one fd) for its `POLLHUP`/`POLLERR`
///   and adds [`Ready::HUP`]/[`Ready::ERROR`], as the contract requires; this costs one
///   extra syscall per writable report of a write-only watch. `PEER_CLOSED` is
///   emulated for stream sockets: when an fd with `READ | PEER_CLOSED` interest is
///   readable, a one-byte `recv(MSG_PEEK | MSG_DONTWAIT)` that returns 0 means the peer
///   shut down its writing side and adds [`Ready::READ_CLOSED`]. While unread data is still
///   buffered the peek returns data, so `READ_CLOSED` comes with the wait *after* the data
///   has been drained (never instead of `READABLE`). `PEER_CLOSED` without `READ` is not
///   watched by this backend: without reading, a readable fd would wake every wait.
/// * An fd that is closed while registered makes select fail with `EBADF`. The backend
///   then finds the culprits with `fcntl(F_GETFD)`, reports each once as
///   [`Ready::ERROR`] and takes it out of the master sets (it stays registered, disabled,
///   until deregistered), so the loop never spins on it.
/// * Timeouts are rounded **up** to whole microseconds and clamped to `i32::MAX`
///   milliseconds (about 24.8 days), which every kernel accepts. [`Interest::EDGE`] is
///   delivered level-triggered. Fairness across waits is the same rotation as
///   [`Poll`](crate::Poll)'s.
///
/// ```
/// use evloop_backends::{Backend, Interest, Select};
/// use std::io::Write;
/// use std::os::fd::AsRawFd;
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
///
/// let mut sel = Select::new(16).unwrap();
/// assert_eq!(Select::MAX_FD, Some(libc::FD_SETSIZE as i32 - 1));
/// let (a, mut b) = UnixStream::pair().unwrap();
/// sel.register(a.as_raw_fd(), 3, Interest::READ | Interest::WRITE).unwrap();
/// b.write_all(b"ping").unwrap();
/// assert_eq!(sel.wait(Some(Duration::from_secs(5))).unwrap(), 1);
/// let ev = sel.event(0);
/// assert_eq!(ev.token, 3);
/// assert!(ev.ready.is_readable() && ev.ready.is_writable());
///
/// // fds beyond FD_SETSIZE are refused with a clear error.
/// let err = sel.register(libc::FD_SETSIZE as i32, 4, Interest::READ).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// assert!(err.to_string().contains("FD_SETSIZE"));
/// ```
pub struct Select {
    read: libc::fd_set,
    write: libc::fd_set,
    except: libc::fd_set,
    /// One entry per fd below `FD_SETSIZE`.
    slots: Box<[Slot]>,
    /// The highest registered fd, or -1.
    max_fd: RawFd,
    count: usize,
    /// The event buffer, allocated once by `new`.
    events: Box<[BackendEvent]>,
    /// Where the next scan of the result sets starts (fairness rotation).
    scan_start: usize,
}

/// What a socket's type says about the `PEER_CLOSED` probe (found out on first use).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
enum Kind {
    #[default]
    Unknown,
    /// A `SOCK_STREAM` socket: a peek of 0 bytes means EOF.
    Stream,
    /// Anything else (datagrams can be empty; non-sockets cannot be peeked).
    Other,
}

#[derive(Clone, Copy, Default, Debug)]
struct Slot {
    registered: bool,
    /// Reported once after select's EBADF: out of the master sets until deregistered.
    invalid: bool,
    token: u64,
    interest: Interest,
    kind: Kind,
}

fn empty_set() -> libc::fd_set {
    let mut set = MaybeUninit::<libc::fd_set>::uninit();
    // SAFETY: FD_ZERO initialises every bit of the set it is given.
    unsafe {
        libc::FD_ZERO(set.as_mut_ptr());
        set.assume_init()
    }
}

/// Whether `fd` is in `set`. `fd` must be in `0..FD_SETSIZE`.
fn is_set(fd: usize, set: &libc::fd_set) -> bool {
    debug_assert!(fd < SETSIZE);
    // SAFETY: `fd` is below FD_SETSIZE (callers only pass slot indices), so FD_ISSET reads
    // inside the set.
    unsafe { libc::FD_ISSET(fd as RawFd, set) }
}

fn add(fd: usize, set: &mut libc::fd_set) {
    debug_assert!(fd < SETSIZE);
    // SAFETY: `fd` is below FD_SETSIZE, so FD_SET writes inside the set.
    unsafe { libc::FD_SET(fd as RawFd, set) }
}

fn remove(fd: usize, set: &mut libc::fd_set) {
    debug_assert!(fd < SETSIZE);
    // SAFETY: `fd` is below FD_SETSIZE, so FD_CLR writes inside the set.
    unsafe { libc::FD_CLR(fd as RawFd, set) }
}

/// The select(2) timeout for `timeout`: rounded up to whole microseconds (so a tiny
/// timeout never becomes a zero-timeout spin) and clamped to [`MAX_TIMEOUT_SECS`].
fn timeval(timeout: Duration) -> libc::timeval {
    let mut secs = timeout.as_secs();
    let mut usecs = timeout.subsec_nanos().div_ceil(1000);
    if usecs == 1_000_000 {
        secs = secs.saturating_add(1);
        usecs = 0;
    }
    if secs >= MAX_TIMEOUT_SECS {
        secs = MAX_TIMEOUT_SECS;
        usecs = 0;
    }
    libc::timeval {
        tv_sec: secs as libc::time_t,
        tv_usec: usecs as libc::suseconds_t,
    }
}

fn socket_kind(fd: RawFd) -> Kind {
    let mut ty: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `ty` and `len` are valid, writable, and `len` holds the size of `ty`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r == 0 && ty == libc::SOCK_STREAM {
        Kind::Stream
    } else {
        Kind::Other
    }
}

/// The hang-up and error bits of `fd`, asked of `poll(2)` with no events and a zero
/// timeout (it reports `POLLHUP`/`POLLERR` whatever `events` holds). select(2) shows a
/// hung-up fd only as readable or writable; a write-only watch would never learn of the
/// hang-up without this.
fn hangup_bits(fd: RawFd) -> Ready {
    let mut p = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: `p` is one valid, writable pollfd and nfds is 1; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    let mut r = Ready::EMPTY;
    if n == 1 {
        if p.revents & libc::POLLHUP != 0 {
            r |= Ready::HUP;
        }
        if p.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            r |= Ready::ERROR;
        }
    }
    r
}

/// Whether a readable stream socket is at EOF: a peek of one byte returns 0.
fn peer_closed(fd: RawFd) -> bool {
    let mut byte = 0u8;
    // SAFETY: peeks at most one byte into a valid, writable byte; MSG_DONTWAIT keeps the
    // call from blocking whatever the fd's mode. ENOTSOCK and friends return -1.
    let n = unsafe {
        libc::recv(
            fd,
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == 0
}

impl Select {
    /// The registered slot for `fd`, if any.
    fn slot(&self, fd: RawFd) -> Option<usize> {
        if fd < 0 || fd as usize >= SETSIZE || !self.slots[fd as usize].registered {
            None
        } else {
            Some(fd as usize)
        }
    }

    /// Put `fd` in the master sets its interest asks for (and only those).
    fn arm(&mut self, fd: usize) {
        remove(fd, &mut self.read);
        remove(fd, &mut self.write);
        remove(fd, &mut self.except);
        let s = self.slots[fd];
        if !s.registered || s.invalid {
            return;
        }
        if s.interest.is_readable() {
            add(fd, &mut self.read);
            add(fd, &mut self.except);
        }
        if s.interest.is_writable() {
            add(fd, &mut self.write);
        }
    }

    fn in_master_sets(&self, fd: usize) -> bool {
        is_set(fd, &self.read) || is_set(fd, &self.write) || is_set(fd, &self.except)
    }

    /// select failed with EBADF: report each watched fd that is no longer open as ERROR,
    /// once, and disarm it. Returns how many were reported.
    #[cold]
    fn report_bad_fds(&mut self) -> usize {
        let cap = self.events.len();
        let mut out = 0;
        let span = (self.max_fd + 1).max(0) as usize;
        for fd in 0..span {
            if out == cap {
                break;
            }
            if !self.in_master_sets(fd) {
                continue;
            }
            if let Err(e) = check_open(fd as RawFd) {
                if e.raw_os_error() == Some(libc::EBADF) {
                    self.slots[fd].invalid = true;
                    self.arm(fd);
                    self.events[out] = BackendEvent {
                        token: self.slots[fd].token,
                        ready: Ready::ERROR,
                    };
                    out += 1;
                }
            }
        }
        out
    }

    /// Copy what select reported into the event buffer, starting at the rotation point.
    /// `nbits` is select's return value: the number of bits set in the three sets.
    fn collect(
        &mut self,
        nbits: usize,
        r: &libc::fd_set,
        w: &libc::fd_set,
        e: &libc::fd_set,
    ) -> usize {
        let span = (self.max_fd + 1).max(0) as usize;
        let cap = self.events.len();
        let start = if self.scan_start < span {
            self.scan_start
        } else {
            0
        };
        let mut seen = 0;
        let mut out = 0;
        let mut fd = start;
        for _ in 0..span {
            if seen >= nbits {
                break;
            }
            let mut ready = Ready::EMPTY;
            let mut bits = 0;
            if is_set(fd, r) {
                ready |= Ready::READABLE;
                bits += 1;
            }
            if is_set(fd, w) {
                ready |= Ready::WRITABLE;
                bits += 1;
            }
            if is_set(fd, e) {
                ready |= Ready::PRIORITY;
                bits += 1;
            }
            if bits != 0 {
                seen += bits;
                if out == cap {
                    // Full: this one and the rest go first next time.
                    self.scan_start = fd;
                    break;
                }
                let slot = &mut self.slots[fd];
                if ready.is_readable() && slot.interest.is_peer_closed() {
                    if slot.kind == Kind::Unknown {
                        slot.kind = socket_kind(fd as RawFd);
                    }
                    if slot.kind == Kind::Stream && peer_closed(fd as RawFd) {
                        ready |= Ready::READ_CLOSED;
                    }
                }
                if ready.is_writable() && !slot.interest.is_readable() {
                    // Write-only: nothing would read the EOF, so ask for the hang-up.
                    ready |= hangup_bits(fd as RawFd);
                }
                self.events[out] = BackendEvent {
                    token: slot.token,
                    ready,
                };
                out += 1;
            }
            fd += 1;
            if fd == span {
                fd = 0;
            }
        }
        out
    }
}

impl Backend for Select {
    const NAME: &'static str = "select";
    const NATIVE_EDGE: bool = false;
    const MAX_FD: Option<RawFd> = Some(SETSIZE as RawFd - 1);

    fn new(event_capacity: usize) -> io::Result<Self> {
        let cap = event_capacity.max(1);
        Ok(Select {
            read: empty_set(),
            write: empty_set(),
            except: empty_set(),
            slots: vec![Slot::default(); SETSIZE].into_boxed_slice(),
            max_fd: -1,
            count: 0,
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
        if fd as usize >= SETSIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "fd {fd} is too large for the select backend: select(2) can only watch \
                     fds below FD_SETSIZE ({SETSIZE}); use the poll or epoll backend \
                     (e.g. the `backend-poll` feature) for programs with many fds"
                ),
            ));
        }
        if self.slot(fd).is_some() {
            return Err(already_registered(fd));
        }
        check_open(fd)?;
        let i = fd as usize;
        self.slots[i] = Slot {
            registered: true,
            invalid: false,
            token,
            interest,
            kind: Kind::Unknown,
        };
        self.arm(i);
        self.max_fd = self.max_fd.max(fd);
        self.count += 1;
        Ok(())
    }

    fn modify(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        let i = self.slot(fd).ok_or_else(|| not_registered(fd))?;
        self.slots[i].token = token;
        self.slots[i].interest = interest;
        self.arm(i);
        Ok(())
    }

    fn deregister(&mut self, fd: RawFd) -> io::Result<()> {
        let i = self.slot(fd).ok_or_else(|| not_registered(fd))?;
        self.slots[i] = Slot::default();
        self.arm(i);
        self.count -= 1;
        if fd == self.max_fd {
            self.max_fd = (0..fd)
                .rev()
                .find(|&k| self.slots[k as usize].registered)
                .unwrap_or(-1);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // No kernel state: the master sets are always up to date.
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let deadline = Deadline::new(timeout);
        let mut t = timeout;
        loop {
            let mut r = self.read;
            let mut w = self.write;
            let mut e = self.except;
            let mut tv = t.map(timeval);
            let tvp = match tv.as_mut() {
                Some(tv) => tv as *mut libc::timeval,
                None => std::ptr::null_mut(),
            };
            // SAFETY: `r`, `w` and `e` are initialised `fd_set`s on this stack frame,
            // alive for the call, and `nfds` = `max_fd + 1` is at most FD_SETSIZE
            // (`register` refuses larger fds), so the kernel reads and writes only bits
            // inside them. `tvp` is null (wait forever) or points to `tv`, alive on this
            // frame for the call (Linux may write the time left into it).
            let res = unsafe { syscall!(select(self.max_fd + 1, &mut r, &mut w, &mut e, tvp)) };
            match res {
                Ok(0) => return Ok(0),
                Ok(n) => return Ok(self.collect(n as usize, &r, &w, &e)),
                Err(err) if err.raw_os_error() == Some(libc::EINTR) => {
                    t = deadline.remaining(timeout);
                    if t == Some(Duration::ZERO) && timeout != Some(Duration::ZERO) {
                        return Ok(0);
                    }
                }
                Err(err) if err.raw_os_error() == Some(libc::EBADF) => {
                    let n = self.report_bad_fds();
                    return if n > 0 { Ok(n) } else { Err(err) };
                }
                Err(err) => return Err(err),
            }
        }
    }

    #[inline]
    fn event(&self, i: usize) -> BackendEvent {
        self.events[i]
    }

    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn reinit(&mut self) -> io::Result<()> {
        // No kernel object is shared with the parent: the sets are all there is.
        Ok(())
    }

    fn len(&self) -> usize {
        self.count
    }
}

impl std::fmt::Debug for Select {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let regs: Vec<_> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.registered)
            .collect();
        f.debug_struct("Select")
            .field("registered", &regs)
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
    fn timeval_rounds_up_and_clamps() {
        let tv = timeval(Duration::from_nanos(1));
        assert_eq!((tv.tv_sec, tv.tv_usec), (0, 1));
        let tv = timeval(Duration::from_nanos(999_999_999));
        assert_eq!((tv.tv_sec, tv.tv_usec), (1, 0));
        let tv = timeval(Duration::from_micros(1_500_001));
        assert_eq!((tv.tv_sec, tv.tv_usec), (1, 500_001));
        let tv = timeval(Duration::ZERO);
        assert_eq!((tv.tv_sec, tv.tv_usec), (0, 0));
        let tv = timeval(Duration::MAX);
        assert_eq!(
            (tv.tv_sec, tv.tv_usec),
            (MAX_TIMEOUT_SECS as libc::time_t, 0)
        );
        let tv = timeval(Duration::from_secs(86_400 * 365));
        assert_eq!(tv.tv_sec, MAX_TIMEOUT_SECS as libc::time_t);
    }

    #[test]
    fn max_fd_follows_registrations() {
        let mut s = Select::new(4).unwrap();
        let (a, _a2) = UnixStream::pair().unwrap();
        let (b, _b2) = UnixStream::pair().unwrap();
        let (lo, hi) = if a.as_raw_fd() < b.as_raw_fd() {
            (a.as_raw_fd(), b.as_raw_fd())
        } else {
            (b.as_raw_fd(), a.as_raw_fd())
        };
        s.register(lo, 1, Interest::READ).unwrap();
        s.register(hi, 2, Interest::READ).unwrap();
        assert_eq!(s.max_fd, hi);
        s.deregister(hi).unwrap();
        assert_eq!(s.max_fd, lo);
        s.deregister(lo).unwrap();
        assert_eq!(s.max_fd, -1);
        assert!(s.is_empty());
        // Nothing registered: a wait is just a sleep.
        assert_eq!(s.wait(Some(Duration::from_millis(1))).unwrap(), 0);
    }

    #[test]
    fn empty_interest_leaves_the_master_sets() {
        let mut s = Select::new(4).unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        s.register(fd, 1, Interest::READ | Interest::WRITE).unwrap();
        assert!(s.in_master_sets(fd as usize));
        s.modify(fd, 1, Interest::NONE).unwrap();
        assert!(!s.in_master_sets(fd as usize));
        assert_eq!(s.len(), 1);
        (&b).write_all(b"x").unwrap();
        assert_eq!(s.wait(Some(Duration::from_millis(5))).unwrap(), 0);
        s.modify(fd, 5, Interest::READ).unwrap();
        assert_eq!(s.wait(FIVE_S).unwrap(), 1);
        assert_eq!(
            s.event(0),
            BackendEvent {
                token: 5,
                ready: Ready::READABLE
            }
        );
    }

    #[test]
    fn peer_closed_probe_only_fires_at_eof_of_a_stream() {
        let (a, b) = UnixStream::pair().unwrap();
        (&b).write_all(b"x").unwrap();
        assert!(!peer_closed(a.as_raw_fd()), "data pending is not EOF");
        drop(b);
        let mut buf = [0u8; 4];
        assert_eq!(std::io::Read::read(&mut &a, &mut buf).unwrap(), 1);
        assert!(peer_closed(a.as_raw_fd()));
        assert_eq!(socket_kind(a.as_raw_fd()), Kind::Stream);
        let (d1, _d2) = std::os::unix::net::UnixDatagram::pair().unwrap();
        assert_eq!(socket_kind(d1.as_raw_fd()), Kind::Other);
    }
}

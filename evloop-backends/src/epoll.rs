//! Linux `epoll(7)`: the default backend on Linux.
//!
//! Level-triggered unless [`Interest::EDGE`] is asked for. New registrations and
//! deregistrations reach the kernel at once; interest changes go through the
//! [change list](crate::changelist) and reach it once per iteration, as `EPOLL_CTL_MOD`,
//! or `EPOLL_CTL_DEL` for an fd whose interest became empty (a stopped watcher: deleting
//! it rather than leaving an empty mask keeps a hung-up fd from reporting EPOLLHUP
//! forever). The kernel call falls back from ADD to MOD on `EEXIST` and from MOD to ADD
//! on `ENOENT`, as libev does, so a kernel set that drifted from our table (an fd closed
//! behind our back) heals instead of failing.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::changelist::ChangeList;
use crate::sys::{already_registered, negative_fd, not_registered, syscall, timeout_ms, Deadline};
use crate::{Backend, BackendEvent, Interest, Ready};

/// The epoll backend: level-triggered unless [`Interest::EDGE`]; new registrations and
/// deregistrations reach the kernel at once, interest changes once per iteration through
/// the change list (see [`crate::contract`]).
///
/// ```
/// use evloop_backends::{Backend, Epoll};
/// let ep = Epoll::new(256).unwrap();
/// assert!(ep.pollable_fd().is_some());
/// assert_eq!(Epoll::NAME, "epoll");
/// ```
pub struct Epoll {
    epfd: OwnedFd,
    events: Box<[libc::epoll_event]>,
    table: ChangeList,
    /// Changes the kernel refused when the change list was applied: reported as ERROR
    /// events by the next wait, so a failure is never silent.
    failed: Vec<u64>,
    nfailed_reported: usize,
    ctl_calls: std::cell::Cell<u64>,
}

fn mask(interest: Interest) -> u32 {
    let mut m = 0u32;
    if interest.is_readable() {
        m |= (libc::EPOLLIN | libc::EPOLLPRI) as u32;
    }
    if interest.is_writable() {
        m |= libc::EPOLLOUT as u32;
    }
    if interest.is_peer_closed() {
        m |= libc::EPOLLRDHUP as u32;
    }
    if interest.is_edge() {
        m |= libc::EPOLLET as u32;
    }
    m
}

/// Map epoll's bits to [`Ready`] without branches (this runs once per event).
#[inline]
fn ready(bits: u32) -> Ready {
    const _: () = assert!(
        libc::EPOLLIN == 0x1
            && libc::EPOLLPRI == 0x2
            && libc::EPOLLOUT == 0x4
            && libc::EPOLLERR == 0x8
            && libc::EPOLLHUP == 0x10
            && libc::EPOLLRDHUP == 0x2000
    );
    // IN, PRI, OUT, ERR and HUP are the low five bits: one table lookup maps them;
    // RDHUP (0x2000) is moved into place with one shift.
    const fn map_low(b: u32) -> u16 {
        let mut r = 0;
        if b & 0x1 != 0 {
            r |= Ready::READABLE.bits();
        }
        if b & 0x2 != 0 {
            r |= Ready::PRIORITY.bits();
        }
        if b & 0x4 != 0 {
            r |= Ready::WRITABLE.bits();
        }
        if b & 0x8 != 0 {
            r |= Ready::ERROR.bits();
        }
        if b & 0x10 != 0 {
            r |= Ready::HUP.bits();
        }
        r
    }
    const TABLE: [u16; 32] = {
        let mut t = [0u16; 32];
        let mut i = 0;
        while i < 32 {
            t[i] = map_low(i as u32);
            i += 1;
        }
        t
    };
    let r = TABLE[(bits & 0x1f) as usize] as u32 | ((bits >> 11) & 0x4);
    Ready::from_bits(r as u16)
}

#[cfg(test)]
#[test]
fn ready_mapping_matches_flags() {
    let cases = [
        (libc::EPOLLIN, Ready::READABLE),
        (libc::EPOLLOUT, Ready::WRITABLE),
        (libc::EPOLLRDHUP, Ready::READ_CLOSED),
        (libc::EPOLLHUP, Ready::HUP),
        (libc::EPOLLERR, Ready::ERROR),
        (libc::EPOLLPRI, Ready::PRIORITY),
        (libc::EPOLLET, Ready::EMPTY),
    ];
    for (bit, want) in cases {
        assert_eq!(ready(bit as u32), want, "bit {bit:#x}");
    }
    assert_eq!(
        ready((libc::EPOLLIN | libc::EPOLLRDHUP) as u32),
        Ready::READABLE | Ready::READ_CLOSED
    );
}

fn new_epoll_fd() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1 takes only a flags integer (EPOLL_CLOEXEC is valid) and
    // touches no memory of ours.
    let fd = unsafe { syscall!(epoll_create1(libc::EPOLL_CLOEXEC)) }?;
    // SAFETY: epoll_create1 just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ctl(epfd: RawFd, op: i32, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: mask(interest),
        u64: token,
    };
    // SAFETY: `&mut ev` points to an initialised `epoll_event` on this stack frame,
    // alive for the whole call; the kernel only reads it (for ADD/MOD; DEL ignores it).
    // `epfd` and `fd` are plain integers to the kernel: a stale one fails with EBADF.
    unsafe { syscall!(epoll_ctl(epfd, op, fd, &mut ev)) }.map(|_| ())
}

/// ADD, falling back to MOD when the kernel already holds this (file, fd) pair.
fn add(epfd: RawFd, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
    match ctl(epfd, libc::EPOLL_CTL_ADD, fd, token, interest) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            ctl(epfd, libc::EPOLL_CTL_MOD, fd, token, interest)
        }
        r => r,
    }
}

/// MOD, falling back to ADD when the kernel forgot the fd.
fn modify(epfd: RawFd, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
    match ctl(epfd, libc::EPOLL_CTL_MOD, fd, token, interest) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            ctl(epfd, libc::EPOLL_CTL_ADD, fd, token, interest)
        }
        r => r,
    }
}

fn del(epfd: RawFd, fd: RawFd) -> io::Result<()> {
    // A non-null event pointer keeps pre-2.6.9 kernels happy; it is ignored.
    match ctl(epfd, libc::EPOLL_CTL_DEL, fd, 0, Interest::NONE) {
        // Already gone from the kernel's set (closed, or never added): that is the goal.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::EBADF)) => Ok(()),
        r => r,
    }
}

impl Epoll {
    /// How many `epoll_ctl` calls this backend has made (introspection: shows what the
    /// change list saved).
    ///
    /// ```
    /// use evloop_backends::{Backend, Epoll, Interest};
    /// use std::os::fd::AsRawFd;
    /// let mut ep = Epoll::new(8).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// ep.register(a.as_raw_fd(), 1, Interest::READ).unwrap();
    /// let before = ep.ctl_calls();
    /// ep.modify(a.as_raw_fd(), 1, Interest::NONE).unwrap(); // stop
    /// ep.modify(a.as_raw_fd(), 1, Interest::READ).unwrap(); // start again
    /// ep.flush().unwrap();
    /// assert_eq!(ep.ctl_calls(), before); // no kernel call
    /// ```
    pub fn ctl_calls(&self) -> u64 {
        self.ctl_calls.get()
    }

    fn apply_changes(&mut self) {
        let epfd = self.epfd.as_raw_fd();
        let failed = &mut self.failed;
        let calls = &self.ctl_calls;
        self.table.drain(|fd, st| {
            calls.set(calls.get() + 1);
            let r = if st.want.is_empty() {
                del(epfd, fd).map(|_| Interest::NONE)
            } else if st.kernel.is_empty() {
                add(epfd, fd, st.want_token, st.want).map(|_| st.want)
            } else {
                modify(epfd, fd, st.want_token, st.want).map(|_| st.want)
            };
            match r {
                Ok(now) => now,
                Err(_) => {
                    if failed.len() < failed.capacity() {
                        failed.push(st.want_token);
                    }
                    Interest::NONE
                }
            }
        });
    }
}

impl Backend for Epoll {
    const NAME: &'static str = "epoll";
    const NATIVE_EDGE: bool = true;
    const MAX_FD: Option<RawFd> = None;

    fn new(event_capacity: usize) -> io::Result<Self> {
        let cap = event_capacity.clamp(1, i32::MAX as usize);
        Ok(Epoll {
            epfd: new_epoll_fd()?,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; cap].into_boxed_slice(),
            table: ChangeList::new(),
            failed: Vec::with_capacity(cap),
            nfailed_reported: 0,
            ctl_calls: std::cell::Cell::new(0),
        })
    }

    fn register(&mut self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        if fd < 0 {
            return Err(negative_fd(fd));
        }
        if self.table.get(fd).is_some() {
            return Err(already_registered(fd));
        }
        self.ctl_calls.set(self.ctl_calls.get() + 1);
        if !interest.is_empty() {
            add(self.epfd.as_raw_fd(), fd, token, interest)?;
        } else {
            // Check the fd is valid and pollable even though nothing is watched yet.
            add(self.epfd.as_raw_fd(), fd, token, interest)?;
            self.ctl_calls.set(self.ctl_calls.get() + 1);
            del(self.epfd.as_raw_fd(), fd)?;
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
        if !st.kernel.is_empty() {
            self.ctl_calls.set(self.ctl_calls.get() + 1);
            del(self.epfd.as_raw_fd(), fd)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.apply_changes();
        Ok(())
    }

    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        if self.nfailed_reported != 0 {
            // Forget only what the last wait reported: refusals found since (by `flush`)
            // are still to be reported.
            self.failed.drain(..self.nfailed_reported);
            self.nfailed_reported = 0;
        }
        self.apply_changes();
        if !self.failed.is_empty() {
            // Report refused changes as ERROR events without blocking.
            self.nfailed_reported = self.failed.len();
            return Ok(self.nfailed_reported);
        }
        let deadline = Deadline::new(timeout);
        let mut t = timeout;
        loop {
            // SAFETY: `self.events` is a boxed slice of `len()` initialised `epoll_event`s
            // (1..=i32::MAX of them, clamped in `new`, so the `as i32` is exact), owned by
            // `self` and mutably borrowed for the call: the kernel writes at most that
            // many records into it. `self.epfd` is the epoll fd `self` owns, open until
            // `self` drops.
            let r = unsafe {
                syscall!(epoll_wait(
                    self.epfd.as_raw_fd(),
                    self.events.as_mut_ptr(),
                    self.events.len() as i32,
                    timeout_ms(t),
                ))
            };
            match r {
                Ok(n) => return Ok(n as usize),
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
        if self.nfailed_reported != 0 {
            return self.failed_event(i);
        }
        let ev = self.events[i];
        BackendEvent {
            token: ev.u64,
            ready: ready(ev.events),
        }
    }

    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(self.epfd.as_fd())
    }

    fn reinit(&mut self) -> io::Result<()> {
        let epfd = new_epoll_fd()?;
        let failed = &mut self.failed;
        for (fd, st) in self.table.iter_mut() {
            st.kernel = Interest::NONE;
            if !st.want.is_empty() {
                match add(epfd.as_raw_fd(), fd, st.want_token, st.want) {
                    Ok(()) => st.kernel = st.want,
                    // One fd the new instance refuses must not cost every other
                    // registration (or leave the table out of step with the kernel):
                    // report it as an ERROR event, like a refused change.
                    Err(_) => {
                        if failed.len() < failed.capacity() {
                            failed.push(st.want_token);
                        }
                    }
                }
            }
            st.kernel_token = st.want_token;
        }
        self.epfd = epfd;
        Ok(())
    }

    fn len(&self) -> usize {
        self.table.len()
    }
}

impl std::fmt::Debug for Epoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Epoll")
            .field("registered", &self.len())
            .finish()
    }
}

impl Epoll {
    #[cold]
    fn failed_event(&self, i: usize) -> BackendEvent {
        BackendEvent {
            token: self.failed[i],
            ready: Ready::ERROR,
        }
    }
}

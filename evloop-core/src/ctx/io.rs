//! I/O sources: registering fds, the chain of sources sharing one fd (the backend sees
//! one registration per fd, with the union of its sources' interests), and idle timeouts.

use evloop_backends::RawSource;
use std::time::Duration;

use evloop_backends::{Backend, Interest};

use super::slots::{nanos, IoSlot, SlotKind};
use super::Ctx;
use crate::ready_queue::NONE;
use crate::sys::{self, AsSource};
use crate::{Error, Machine, Result, SourceId, Token, Watch};

impl<M: Machine> Ctx<M> {
    /// Watch an fd-backed source (any `AsFd`: `TcpListener`, `TcpStream`, `UdpSocket`,
    /// `UnixStream`, `File`, `OwnedFd`...). Events come back with `token`. The source must
    /// stay open until [`remove`](Self::remove)d; the machine normally owns it
    /// (as a field, or in a [`Slab`](crate::Slab)).
    ///
    /// Several sources may watch one fd (say, one for read and one for write); each gets
    /// the readiness it asked for. They must agree on edge- versus level-triggering.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let id = el.ctx().add_io(&listener, Token(1), Watch::read()).unwrap();
    /// assert_eq!(el.ctx().source_count(), 1);
    /// el.ctx().remove(id).unwrap();
    /// ```
    pub fn add_io<S: AsSource + ?Sized>(
        &mut self,
        source: &S,
        token: Token,
        watch: impl Into<Watch>,
    ) -> Result<SourceId> {
        self.add_io_raw(sys::raw_source(source), token, watch)
    }

    /// Like [`add_io`](Self::add_io) for a raw fd. The caller keeps `fd` open until
    /// it deregisters it. A negative or closed fd is refused with
    /// [`Error::InvalidFd`].
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// assert!(matches!(el.ctx().add_io_raw(-1, Token(0), Watch::read()), Err(Error::InvalidFd(-1))));
    /// ```
    pub fn add_io_raw(
        &mut self,
        fd: RawSource,
        token: Token,
        watch: impl Into<Watch>,
    ) -> Result<SourceId> {
        let w = watch.into();
        if sys::is_invalid(fd) {
            return Err(Error::InvalidFd(fd));
        }
        if let Some(max) = <M::Backend as Backend>::MAX_FD {
            if fd > max {
                return Err(Error::FdTooLarge {
                    fd,
                    max,
                    backend: <M::Backend as Backend>::NAME,
                });
            }
        }
        let prio = w.priority.unwrap_or(self.default_prio);
        let head = self.fd_heads.get(fd);
        if head != NONE
            && self.slots[head as usize]
                .io()
                .is_some_and(|io| io.interest.is_edge() != w.interest.is_edge())
        {
            return Err(Error::Conflict {
                reason: "this fd already has a source with the other triggering: edge- and level-triggered sources cannot share one fd",
            });
        }
        let io = IoSlot {
            fd,
            interest: w.interest,
            oneshot: w.oneshot,
        };
        let idx = self.alloc(SlotKind::Io(io), token, prio)?;
        self.slots[idx as usize].enabled = true;
        let r = if head == NONE {
            let tok = self.id(idx).to_u64();
            self.backend.register(fd, tok, w.interest)
        } else {
            // Append to the fd's chain; the backend keeps the head's token.
            let mut last = head;
            while self.slots[last as usize].next != NONE {
                last = self.slots[last as usize].next;
            }
            self.slots[last as usize].next = idx;
            self.sync_fd(fd);
            Ok(())
        };
        if let Err(e) = r {
            self.release(idx);
            return Err(if sys::is_bad_handle(&e) {
                Error::InvalidFd(fd)
            } else {
                Error::Io(e)
            });
        }
        if head == NONE {
            self.fd_heads.set(fd, idx);
        }
        self.live_io += 1;
        if let Some(t) = w.timeout {
            let d = nanos(t);
            self.slots[idx as usize].timer = d;
            let now = self.clock();
            if self.timers.arm(idx, now, d).is_err() {
                let id = self.id(idx);
                let _ = self.remove(id);
                return Err(Error::TimerCapacity {
                    capacity: self.timers.capacity(),
                });
            }
        }
        Ok(self.id(idx))
    }

    /// Recompute the union interest of an fd's sources and tell the backend (coalesced).
    pub(super) fn sync_fd(&mut self, fd: RawSource) {
        let head = self.fd_heads.get(fd);
        let mut union = Interest::NONE;
        let mut cur = head;
        while cur != NONE {
            let s = &self.slots[cur as usize];
            if let (true, Some(io)) = (s.enabled, s.io()) {
                union |= io.interest;
            }
            cur = s.next;
        }
        if union.is_empty() {
            // Nothing watched; a completion-mode fd stays in completion mode (its sends
            // and untaken bytes are the backend's).
            union = if union.is_completion() {
                Interest::COMPLETION
            } else {
                Interest::NONE
            };
        }
        let tok = self.id(head).to_u64();
        // The fd is registered (it has a head), so modify cannot fail.
        let _ = self.backend.modify(fd, tok, union);
    }

    /// Change what an I/O source watches. Coalesced: changing and changing back before
    /// the next wait costs no kernel call.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let id = el.ctx().add_io(&a, Token(1), Watch::read()).unwrap();
    /// el.ctx().set_interest(id, Interest::READ | Interest::WRITE).unwrap();
    /// ```
    pub fn set_interest(&mut self, id: SourceId, interest: Interest) -> Result<()> {
        let idx = self.lookup(id)?;
        let Some(io) = self.slots[idx as usize].io_mut() else {
            return Err(Error::WrongKind {
                operation: "set_interest",
                applies_to: "I/O sources",
            });
        };
        io.interest = if io.interest.is_edge() {
            interest | Interest::EDGE
        } else {
            interest.remove(Interest::EDGE)
        };
        let fd = io.fd;
        self.sync_fd(fd);
        Ok(())
    }

    /// Set (or clear, with `None`) an I/O source's idle timeout and restart it from now.
    /// The source is dispatched with `Ready::TIMEOUT` when no I/O readiness was
    /// dispatched for that long; when I/O and the timeout coincide, both bits arrive in
    /// one dispatch. Timeouts of equal duration are O(1) to set and reset.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let id = el.ctx().add_io(&a, Token(1), Watch::read()).unwrap();
    /// el.ctx().set_idle_timeout(id, Some(std::time::Duration::from_secs(30))).unwrap();
    /// assert!(el.ctx().timer_remaining(id).unwrap() <= std::time::Duration::from_secs(30));
    /// ```
    pub fn set_idle_timeout(&mut self, id: SourceId, timeout: Option<Duration>) -> Result<()> {
        let idx = self.lookup(id)?;
        let s = &mut self.slots[idx as usize];
        if s.io().is_none() {
            return Err(Error::WrongKind {
                operation: "set_idle_timeout",
                applies_to: "I/O sources (for a timer, use `set_timer_duration`)",
            });
        }
        match timeout {
            Some(t) => {
                let d = nanos(t);
                s.timer = d;
                if s.enabled {
                    self.arm(idx, d)?;
                }
            }
            None => {
                s.timer = 0;
                self.timers.cancel(idx);
                if idx == self.current {
                    self.current_rearmed = true;
                }
            }
        }
        Ok(())
    }

    /// The source watching `source`'s fd (the first, if several do), e.g. to change
    /// what a field registered by `#[event_machine]` watches from outside its handlers.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// assert_eq!(el.ctx().source_of(&a), None);
    /// let id = el.ctx().add_io(&a, Token(1), Watch::read()).unwrap();
    /// assert_eq!(el.ctx().source_of(&a), Some(id));
    /// ```
    pub fn source_of<S: AsSource + ?Sized>(&self, source: &S) -> Option<SourceId> {
        let head = self.fd_heads.get(sys::raw_source(source));
        (head != NONE).then(|| self.id(head))
    }

    /// Remove every source watching `source`'s fd (as [`remove`](Self::remove)
    /// each), and return how many there were. Handy for a field registered by
    /// `#[event_machine]`, whose [`SourceId`] the program never saw: a server stops
    /// accepting with `ctx.remove_fd(&self.listener)`.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// el.ctx().add_io(&listener, Token(1), Watch::read()).unwrap();
    /// assert_eq!(el.ctx().remove_fd(&listener).unwrap(), 1);
    /// assert_eq!(el.ctx().source_count(), 0);
    /// ```
    pub fn remove_fd<S: AsSource + ?Sized>(&mut self, source: &S) -> Result<usize> {
        let fd = sys::raw_source(source);
        let mut n = 0;
        loop {
            let head = self.fd_heads.get(fd);
            if head == NONE {
                return Ok(n);
            }
            let id = self.id(head);
            self.remove(id)?;
            n += 1;
        }
    }
}

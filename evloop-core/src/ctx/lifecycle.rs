//! What every kind of source shares: stopping, starting, priorities and removal.

use evloop_backends::{Backend, Ready};

use super::slots::SlotKind;
use super::Ctx;
use crate::ready_queue::NONE;
use crate::{Error, Machine, Result, SourceId};

impl<M: Machine> Ctx<M> {
    /// Stop a source without removing it (libev's `ev_io_stop`, libevent's `event_del`):
    /// an I/O source stops watching its fd and its timeout is cancelled; a timer is
    /// disarmed; a signal or user source is no longer dispatched. A dispatch still pending
    /// for it in this iteration (readiness, expiry, activation) is cancelled, as by
    /// `event_del`. The source keeps its id, token and options; [`start`](Self::start)
    /// resumes it. Stopping and starting an I/O source in one iteration costs no kernel
    /// call.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let id = el.ctx().add_io(&a, Token(1), Watch::read()).unwrap();
    /// el.ctx().stop(id).unwrap();
    /// assert!(!el.ctx().is_active(id));
    /// el.ctx().start(id).unwrap();
    /// assert!(el.ctx().is_active(id));
    /// ```
    pub fn stop(&mut self, id: SourceId) -> Result<()> {
        let idx = self.lookup(id)?;
        self.disable(idx);
        // Cancel a pending dispatch too. (Not in `disable`: a one-shot source is disabled
        // right after being marked, and that dispatch must happen.)
        if self.unqueue(idx).is_some() {
            let s = &mut self.slots[idx as usize];
            s.queued = false;
            s.deferred = false;
            s.pending = Ready::EMPTY;
            s.count = 0;
        }
        Ok(())
    }

    pub(super) fn disable(&mut self, idx: u32) {
        let s = &mut self.slots[idx as usize];
        if !s.enabled {
            return;
        }
        s.enabled = false;
        let kind = s.kind;
        self.timers.cancel(idx);
        match kind {
            SlotKind::Io(io) => {
                self.live_io -= 1;
                self.sync_fd(io.fd);
            }
            SlotKind::Signal { .. } => self.live_signals -= 1,
            _ => {}
        }
    }

    /// Resume a stopped source (see [`stop`](Self::stop)); also re-arms a one-shot
    /// source after it fired. An I/O source's timeout and a timer restart from now.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let t = el.ctx().add_timer(Token(1), std::time::Duration::from_secs(60)).unwrap();
    /// el.ctx().stop(t).unwrap();
    /// assert!(el.ctx().timer_remaining(t).is_none());
    /// el.ctx().start(t).unwrap();
    /// assert!(el.ctx().timer_remaining(t).is_some());
    /// ```
    pub fn start(&mut self, id: SourceId) -> Result<()> {
        let idx = self.lookup(id)?;
        let s = &mut self.slots[idx as usize];
        let (kind, d, was) = (s.kind, s.start_duration(), s.enabled);
        s.enabled = true;
        if !was {
            match kind {
                SlotKind::Io(io) => {
                    self.live_io += 1;
                    self.sync_fd(io.fd);
                }
                SlotKind::Signal { .. } => self.live_signals += 1,
                _ => {}
            }
        }
        if let Some(d) = d {
            if !self.timers.is_armed(idx) {
                self.arm(idx, d)?;
            }
        }
        Ok(())
    }

    /// Whether the source is started (an I/O source watching, a timer armed, a signal
    /// or user source enabled).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let id = el.ctx().add_user(Token(1)).unwrap();
    /// assert!(el.ctx().is_active(id));
    /// ```
    pub fn is_active(&self, id: SourceId) -> bool {
        match self.lookup(id) {
            Ok(idx) => {
                let s = &self.slots[idx as usize];
                match s.kind {
                    SlotKind::Timer { .. } => self.timers.is_armed(idx),
                    _ => s.enabled,
                }
            }
            Err(_) => false,
        }
    }

    /// Change a source's dispatch priority (0 is the most urgent).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = Builder::new().priorities(3).build(M).unwrap();
    /// let id = el.ctx().add_user(Token(1)).unwrap();
    /// el.ctx().set_priority(id, 0).unwrap();
    /// assert!(el.ctx().set_priority(id, 3).is_err());
    /// ```
    pub fn set_priority(&mut self, id: SourceId, priority: u8) -> Result<()> {
        let idx = self.lookup(id)?;
        if priority >= self.levels {
            return Err(Error::InvalidPriority {
                priority,
                levels: self.levels,
            });
        }
        let s = self.slots[idx as usize];
        if let Some(deferred) = self.unqueue(idx) {
            let q = if deferred {
                &mut self.deferred
            } else {
                &mut self.queues
            };
            q.push(&mut self.links, idx, priority);
        }
        self.count_level(s.prio, false);
        self.count_level(priority, true);
        self.slots[idx as usize].prio = priority;
        Ok(())
    }

    /// Remove a source of any kind. Its pending dispatch, if any, is cancelled (a source
    /// removed by an earlier handler of the same iteration is not dispatched), its timer
    /// disarmed, its fd deregistered at once (so the fd can be closed right after), its
    /// signal disposition restored if it was the last watcher. The id becomes stale.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let id = el.ctx().add_timer(Token(1), std::time::Duration::from_secs(1)).unwrap();
    /// el.ctx().remove(id).unwrap();
    /// assert_eq!(el.ctx().source_count(), 0);
    /// ```
    pub fn remove(&mut self, id: SourceId) -> Result<()> {
        let idx = self.lookup(id)?;
        let s = self.slots[idx as usize];
        self.unqueue(idx);
        self.timers.cancel(idx);
        let mut result = Ok(());
        match s.kind {
            SlotKind::Io(io) => {
                if s.enabled {
                    self.live_io -= 1;
                }
                let fd = io.fd;
                let head = self.fd_heads.get(fd);
                if head == idx {
                    self.fd_heads.set(fd, s.next);
                    if s.next == NONE {
                        result = self.backend.deregister(fd).map_err(Error::Io);
                    }
                } else {
                    let mut cur = head;
                    while self.slots[cur as usize].next != idx {
                        cur = self.slots[cur as usize].next;
                    }
                    self.slots[cur as usize].next = s.next;
                }
                // Release before re-syncing so the head's token (generation) is current.
                self.release(idx);
                if self.fd_heads.get(fd) != NONE {
                    self.sync_fd(fd);
                }
                return result;
            }
            SlotKind::Signal { signo, sub } => self.forget_signal(signo, sub, s.enabled),
            SlotKind::Wake => self.wake_slot = NONE,
            SlotKind::Timer { .. } | SlotKind::User | SlotKind::Free => {}
        }
        self.release(idx);
        result
    }
}

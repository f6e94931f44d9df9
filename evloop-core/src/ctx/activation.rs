//! Sources dispatched by hand or from other threads: user sources, the wake source,
//! activation (deferred to the next iteration unless more urgent than the running
//! handler), and what a wake of the loop brings in (cross-thread activations, exit
//! requests, signals).

use std::sync::atomic::Ordering;

use evloop_backends::Ready;

use super::slots::SlotKind;
use super::Ctx;
use crate::ready_queue::NONE;
use crate::wake::WakeHandle;
use crate::{Error, Machine, Result, SourceId, Token};

impl<M: Machine> Ctx<M> {
    /// A source with no fd, dispatched only when activated (by
    /// [`activate`](Self::activate) or a [`WakeHandle`]); libevent's `event_active` on a
    /// pure event. It does not keep the loop running on its own.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let id = el.ctx().add_user(Token(3)).unwrap();
    /// el.ctx().activate(id, Ready::EMPTY).unwrap();
    /// assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    /// ```
    pub fn add_user(&mut self, token: Token) -> Result<SourceId> {
        let prio = self.default_prio;
        let idx = self.alloc(SlotKind::User, token, prio)?;
        self.slots[idx as usize].enabled = true;
        Ok(self.id(idx))
    }

    /// The loop's wake source: dispatched with `Ready::WAKE` after
    /// [`WakeHandle::wake`], once per burst of wakes. One per loop.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().add_wake(Token(7)).unwrap();
    /// assert!(el.ctx().add_wake(Token(8)).is_err());
    /// ```
    pub fn add_wake(&mut self, token: Token) -> Result<SourceId> {
        if self.wake_slot != NONE {
            return Err(Error::Conflict {
                reason: "the loop already has its wake source (a loop has one)",
            });
        }
        let prio = self.default_prio;
        let idx = self.alloc(SlotKind::Wake, token, prio)?;
        self.slots[idx as usize].enabled = true;
        self.wake_slot = idx;
        Ok(self.id(idx))
    }

    /// A handle to wake this loop or activate its sources from another thread.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let h = el.ctx().wake_handle();
    /// std::thread::spawn(move || h.wake().unwrap()).join().unwrap();
    /// ```
    pub fn wake_handle(&self) -> WakeHandle {
        WakeHandle {
            shared: self.shared.clone(),
        }
    }

    /// Activate a source by hand: it is dispatched with `ready | Ready::ACTIVATED`, merged
    /// with anything else that happened to it. Called from a handler, a source *more
    /// urgent* than the handler's own runs in this iteration, before everything less
    /// urgent still waiting; any other runs in the next iteration (so a source that
    /// re-activates itself yields to I/O and timers instead of starving them). Called
    /// outside the loop, it runs in the next iteration.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, ev: Event) { assert!(ev.ready.is_activated()) } }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let id = el.ctx().add_io(&a, Token(1), Watch::read()).unwrap();
    /// el.ctx().activate(id, Ready::READABLE).unwrap();
    /// el.run_nowait().unwrap();
    /// ```
    pub fn activate(&mut self, id: SourceId, ready: Ready) -> Result<()> {
        let idx = self.lookup(id)?;
        let ready = ready | Ready::ACTIVATED;
        let cur = self.current;
        if cur != NONE && self.slots[idx as usize].prio >= self.slots[cur as usize].prio {
            // Not more urgent than the running handler's source: next iteration, so a
            // source re-activating itself (or two activating each other) cannot starve
            // I/O and timers.
            let s = &mut self.slots[idx as usize];
            s.pending |= ready;
            if !s.queued {
                s.queued = true;
                s.deferred = true;
                let prio = s.prio;
                self.deferred.push(&mut self.links, idx, prio);
            }
            return Ok(());
        }
        self.mark(idx, ready);
        Ok(())
    }

    /// Move activations deferred by handlers into the ready queues (start of an
    /// iteration; they make its wait non-blocking).
    pub(crate) fn promote_deferred(&mut self) {
        while let Some(idx) = self.deferred.pop(&mut self.links) {
            let s = &mut self.slots[idx as usize];
            s.deferred = false;
            let prio = s.prio;
            self.queues.push(&mut self.links, idx, prio);
        }
    }

    pub(crate) fn reset_current(&mut self) {
        self.current = NONE;
    }

    pub(super) fn on_wake(&mut self) {
        self.shared.waker.drain();
        if self.shared.exit.swap(false, Ordering::AcqRel) {
            self.control.exit = true; // `WakeHandle::exit` from another thread
        }
        if self.shared.woken.swap(false, Ordering::AcqRel) && self.wake_slot != NONE {
            let w = self.wake_slot;
            if self.slots[w as usize].enabled {
                self.mark(w, Ready::WAKE);
            }
        }
        if self.shared.has_activations.swap(false, Ordering::AcqRel) {
            loop {
                let next = {
                    let mut ring = self.shared.ring.lock().unwrap_or_else(|e| e.into_inner());
                    ring.pop()
                };
                let Some(id) = next else { break };
                if let Ok(idx) = self.lookup(id) {
                    self.mark(idx, Ready::ACTIVATED);
                }
            }
        }
        self.take_signals();
    }
}

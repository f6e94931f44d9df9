//! One iteration's dispatch: what the wait may block for, turning backend events into
//! handler events (straight from the event buffer when that is equivalent to queueing,
//! otherwise through the ready queues), and the bookkeeping after each handler.

use std::time::Duration;

use super::slots::{accepts, SlotKind};
use super::{Ctx, WAKE_TOKEN};
use crate::ready_queue::NONE;
use crate::{Event, Machine, SourceId};

impl<M: Machine> Ctx<M> {
    /// Whether nothing can make the loop dispatch again.
    pub(crate) fn is_idle(&self) -> bool {
        !self.control.idle
            && self.live_io == 0
            && self.timers.armed() == 0
            && self.live_signals == 0
            && self.queues.is_empty()
            && self.deferred.is_empty()
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.queues.is_empty() || !self.deferred.is_empty()
    }

    /// How long the backend may block: until the next timer or delayed exit.
    pub(crate) fn wait_timeout(&self) -> Option<Duration> {
        if self.has_ready() || self.control.idle {
            return Some(Duration::ZERO);
        }
        let next = match (self.timers.next_deadline(), self.control.exit_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }?;
        if next == u64::MAX {
            return None;
        }
        Some(Duration::from_nanos(next.saturating_sub(self.clock())))
    }

    /// Handle one backend event. Returns the event to dispatch right away when that is
    /// equivalent to queueing it (one priority level in use, a single source on the fd,
    /// nothing already pending for it); otherwise records it as pending and returns
    /// `None`. Each call re-validates its slot, so a source removed or stopped by an
    /// earlier handler of this iteration is skipped.
    #[inline]
    pub(crate) fn io_event(&mut self, ev: evloop_backends::BackendEvent) -> Option<Event> {
        if ev.token == WAKE_TOKEN {
            self.on_wake();
            return None;
        }
        let id = SourceId::from_u64(ev.token);
        let idx = id.index;
        let s = self.slots.get(idx as usize)?;
        let io = match s.kind {
            SlotKind::Io(io) if s.gen == id.gen => io,
            _ => return None, // stale: the source was removed since
        };
        if !self.direct || s.next != NONE || s.queued {
            self.collect_one(ev);
            return None;
        }
        if !s.enabled {
            return None;
        }
        let ready = ev.ready.intersection(accepts(io.interest));
        if ready.is_empty() {
            return None;
        }
        let (token, oneshot) = (s.token, io.oneshot);
        if oneshot {
            self.disable(idx);
        }
        self.current = idx;
        self.current_rearmed = false;
        Some(Event {
            token,
            ready,
            source: id,
            count: 0,
        })
    }

    /// Record a backend event as pending on every source of its fd.
    pub(crate) fn collect_one(&mut self, ev: evloop_backends::BackendEvent) {
        if ev.token == WAKE_TOKEN {
            self.on_wake();
            return;
        }
        let id = SourceId::from_u64(ev.token);
        let mut idx = id.index;
        match self.slots.get(idx as usize) {
            Some(s) if s.gen == id.gen && matches!(s.kind, SlotKind::Io(_)) => {}
            _ => return, // stale: the source was removed since
        }
        while idx != NONE {
            let s = &self.slots[idx as usize];
            let next = s.next;
            if let (true, Some(&io)) = (s.enabled, s.io()) {
                let r = ev.ready.intersection(accepts(io.interest));
                if !r.is_empty() {
                    self.mark(idx, r);
                    if io.oneshot {
                        self.disable(idx);
                    }
                }
            }
            idx = next;
        }
    }

    /// Pop the next source to dispatch, most urgent first.
    #[inline]
    pub(crate) fn next_event(&mut self) -> Option<Event> {
        let idx = self.queues.pop(&mut self.links)?;
        let s = &mut self.slots[idx as usize];
        s.queued = false;
        let ready = std::mem::take(&mut s.pending);
        let count = std::mem::take(&mut s.count);
        self.current = idx;
        self.current_rearmed = false;
        Some(Event {
            token: s.token,
            ready,
            source: SourceId {
                index: idx,
                gen: s.gen,
            },
            count,
        })
    }

    /// After a handler: restart an I/O source's idle timeout unless the handler re-armed
    /// or cleared it itself.
    #[inline]
    pub(crate) fn finish(&mut self, ev: &Event) {
        let idx = ev.source.index;
        self.current = NONE;
        let s = &self.slots[idx as usize];
        if s.timer != 0
            && matches!(s.kind, SlotKind::Io(_))
            && s.gen == ev.source.gen
            && s.enabled
            && ev.ready.is_io()
            && !self.current_rearmed
        {
            let d = s.timer;
            let now = self.clock();
            let _ = self.timers.arm(idx, now, d);
        }
    }
}

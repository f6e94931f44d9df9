//! Timers: one-shot and periodic timer sources, I/O idle timeouts, and expiry. The heap
//! and the common-timeout queues themselves are in `crate::timer`.

use std::time::Duration;

use evloop_backends::Ready;

use super::slots::{nanos, SlotKind};
use super::Ctx;
use crate::{Error, Machine, Result, SourceId, Token};

impl<M: Machine> Ctx<M> {
    pub(super) fn arm(&mut self, idx: u32, d: u64) -> Result<()> {
        let now = self.clock();
        if idx == self.current {
            self.current_rearmed = true;
        }
        self.timers
            .arm(idx, now, d)
            .map_err(|_| Error::TimerCapacity {
                capacity: self.timers.capacity(),
            })
    }

    /// A one-shot timer: dispatched once with `Ready::TIMEOUT` after `after`. It stays
    /// registered (unarmed) until removed; [`reset_timer`](Self::reset_timer) arms it
    /// again. Durations too large to represent are clamped: they never fire and never
    /// overflow.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().add_timer(Token(1), std::time::Duration::from_millis(1)).unwrap();
    /// assert_eq!(el.run().unwrap(), Exit::Empty); // fired, then nothing was left
    /// ```
    pub fn add_timer(&mut self, token: Token, after: Duration) -> Result<SourceId> {
        self.add_timer_inner(token, after, false)
    }

    /// A periodic timer: dispatched every `period`. If the process stalls for several
    /// periods it fires once (with `Event::count` saying how many periods passed), not in
    /// a burst, and stays on its original phase.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M(u32); impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, ctx: &mut Ctx<Self>, _: Event) { self.0 += 1; if self.0 == 2 { ctx.exit() } } }
    /// let mut el = EventLoop::new(M(0)).unwrap();
    /// el.ctx().add_periodic(Token(1), std::time::Duration::from_millis(1)).unwrap();
    /// assert_eq!(el.run().unwrap(), Exit::Exited);
    /// ```
    pub fn add_periodic(&mut self, token: Token, period: Duration) -> Result<SourceId> {
        if period.is_zero() {
            return Err(Error::InvalidArgument {
                operation: "add_periodic",
                reason: "a periodic timer needs a period above zero",
            });
        }
        self.add_timer_inner(token, period, true)
    }

    pub(super) fn add_timer_inner(
        &mut self,
        token: Token,
        d: Duration,
        periodic: bool,
    ) -> Result<SourceId> {
        let prio = self.default_prio;
        let idx = self.alloc(SlotKind::Timer { periodic }, token, prio)?;
        let s = &mut self.slots[idx as usize];
        s.timer = nanos(d);
        s.enabled = true;
        if let Err(e) = self.arm(idx, nanos(d)) {
            self.release(idx);
            return Err(e);
        }
        Ok(self.id(idx))
    }

    /// Re-arm a timer from now with its own duration (a one-shot timer that fired, or a
    /// running one pushed back). O(1) when other timers share its duration.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let t = el.ctx().add_timer(Token(1), std::time::Duration::from_secs(5)).unwrap();
    /// el.ctx().reset_timer(t).unwrap();
    /// ```
    pub fn reset_timer(&mut self, id: SourceId) -> Result<()> {
        let idx = self.lookup(id)?;
        let s = &mut self.slots[idx as usize];
        let SlotKind::Timer { .. } = s.kind else {
            return Err(Error::WrongKind {
                operation: "reset_timer",
                applies_to: "timers (for an I/O source's idle timeout, use `set_idle_timeout`)",
            });
        };
        s.enabled = true;
        let d = s.timer;
        self.arm(idx, d)
    }

    /// Change a timer's duration (delay or period) and re-arm it from now.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let t = el.ctx().add_timer(Token(1), std::time::Duration::from_secs(5)).unwrap();
    /// el.ctx().set_timer_duration(t, std::time::Duration::from_secs(1)).unwrap();
    /// assert!(el.ctx().timer_remaining(t).unwrap() <= std::time::Duration::from_secs(1));
    /// ```
    pub fn set_timer_duration(&mut self, id: SourceId, duration: Duration) -> Result<()> {
        let idx = self.lookup(id)?;
        let s = &mut self.slots[idx as usize];
        let SlotKind::Timer { periodic } = s.kind else {
            return Err(Error::WrongKind {
                operation: "set_timer_duration",
                applies_to: "timers (for an I/O source's idle timeout, use `set_idle_timeout`)",
            });
        };
        if periodic && duration.is_zero() {
            return Err(Error::InvalidArgument {
                operation: "set_timer_duration",
                reason: "a periodic timer needs a period above zero",
            });
        }
        s.timer = nanos(duration);
        s.enabled = true;
        let d = s.timer;
        self.arm(idx, d)
    }

    /// Time left before the source's timer (or I/O timeout) fires, from the cached now;
    /// `None` if it is not armed.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let t = el.ctx().add_timer(Token(1), std::time::Duration::from_secs(5)).unwrap();
    /// assert!(el.ctx().timer_remaining(t).is_some());
    /// ```
    pub fn timer_remaining(&self, id: SourceId) -> Option<Duration> {
        let idx = self.lookup(id).ok()?;
        let d = self.timers.deadline(idx)?;
        Some(Duration::from_nanos(d.saturating_sub(self.clock())))
    }

    /// Mark every expired timer's source.
    pub(crate) fn expire_timers(&mut self) {
        if self.timers.armed() == 0 && self.control.exit_at.is_none() {
            return;
        }
        let now = self.clock();
        while let Some((idx, deadline)) = self.timers.pop_expired(now) {
            let s = self.slots[idx as usize];
            match s.kind {
                SlotKind::Timer { periodic: true } => {
                    // Fire once however many periods were missed, and keep the phase.
                    let period = s.timer.max(1);
                    let missed = (now - deadline) / period;
                    let next = deadline.saturating_add(period.saturating_mul(missed + 1));
                    let _ = self.timers.arm_at(idx, next, period);
                    let s = &mut self.slots[idx as usize];
                    s.count = s
                        .count
                        .saturating_add(u32::try_from(missed + 1).unwrap_or(u32::MAX));
                    self.mark(idx, Ready::TIMEOUT);
                }
                SlotKind::Timer { .. } => self.mark(idx, Ready::TIMEOUT),
                SlotKind::Io(io) => {
                    self.mark(idx, Ready::TIMEOUT);
                    if io.oneshot {
                        self.disable(idx);
                    } else {
                        // A persistent source keeps timing out every idle period.
                        let _ = self.timers.arm(idx, now, s.timer);
                    }
                }
                _ => {}
            }
        }
        if let Some(at) = self.control.exit_at {
            if at <= now {
                self.control.exit_at = None;
                self.control.exit = true;
            }
        }
    }
}

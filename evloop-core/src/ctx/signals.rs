//! Signal sources: subscribing to the process-wide registry (`crate::signal`), collecting
//! arrivals after a wake, and giving every disposition back when the loop goes.

use evloop_backends::Ready;
#[cfg(unix)]
use evloop_backends::Waker;

use super::slots::SlotKind;
use super::Ctx;
use crate::ready_queue::NONE;
use crate::signal::registry::{self, Refusal};
use crate::{Error, Machine, Result, SourceId, Token};

impl<M: Machine> Ctx<M> {
    /// Watch a signal. Its handler runs in loop context (never in the signal handler),
    /// dispatched with `Ready::SIGNAL` and `Event::count` = arrivals since the last
    /// dispatch. Our `sigaction` chains to the handler installed before it and restores it
    /// when the last watcher goes. Several loops may watch one signal; all hear it.
    /// SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGILL and SIGFPE are refused.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// assert!(matches!(el.ctx().add_signal(libc::SIGKILL, Token(9)), Err(Error::SignalRefused(_))));
    /// assert!(matches!(el.ctx().add_signal(999, Token(9)), Err(Error::InvalidSignal(999))));
    /// ```
    pub fn add_signal(&mut self, signo: i32, token: Token) -> Result<SourceId> {
        match registry::check(signo) {
            Err(Refusal::Refused) => return Err(Error::SignalRefused(signo)),
            Err(_) => return Err(Error::InvalidSignal(signo)),
            Ok(()) => {}
        }
        if self.signal_slots[signo as usize] != NONE {
            return Err(Error::SignalBusy(signo));
        }
        let prio = self.default_prio;
        // Take the slot first: a full table must not cost a sigaction.
        let idx = self.alloc(SlotKind::Signal { signo, sub: 0 }, token, prio)?;
        let sub = match registry::subscribe(signo, &self.shared.waker) {
            Ok(sub) => sub as u32,
            Err(r) => {
                self.release(idx);
                return Err(match r {
                    Refusal::Busy => Error::SignalBusy(signo),
                    Refusal::Refused => Error::SignalRefused(signo),
                    Refusal::Invalid => Error::InvalidSignal(signo),
                });
            }
        };
        let s = &mut self.slots[idx as usize];
        s.kind = SlotKind::Signal { signo, sub };
        s.enabled = true;
        self.signal_slots[signo as usize] = idx;
        self.signal_mask |= 1 << signo;
        self.nsignals += 1;
        self.live_signals += 1;
        Ok(self.id(idx))
    }

    /// Forget a removed signal source's subscription (restoring the disposition if it
    /// was the last watcher of its signal in the process).
    pub(super) fn forget_signal(&mut self, signo: i32, sub: u32, enabled: bool) {
        registry::unsubscribe(signo, sub as usize);
        self.signal_slots[signo as usize] = NONE;
        self.signal_mask &= !(1 << signo);
        self.nsignals -= 1;
        if enabled {
            self.live_signals -= 1;
        }
    }

    /// Every watched signal: (signal number, slot, registry subscriber).
    fn watched_signals(&self) -> impl Iterator<Item = (i32, u32, usize)> + '_ {
        let mut mask = self.signal_mask;
        std::iter::from_fn(move || {
            if mask == 0 {
                return None;
            }
            let signo = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let idx = self.signal_slots[signo];
            let sub = match self.slots[idx as usize].kind {
                SlotKind::Signal { sub, .. } => sub as usize,
                _ => unreachable!("signal_slots points at a signal slot"),
            };
            Some((signo as i32, idx, sub))
        })
    }

    /// Mark every watched signal that arrived since the last look (after a wake).
    pub(super) fn take_signals(&mut self) {
        let mut mask = self.signal_mask;
        while mask != 0 {
            let signo = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let idx = self.signal_slots[signo];
            let s = &self.slots[idx as usize];
            let SlotKind::Signal { sub, .. } = s.kind else {
                continue;
            };
            let n = registry::take(signo as i32, sub as usize);
            if n > 0 && s.enabled {
                let s = &mut self.slots[idx as usize];
                s.count = s.count.saturating_add(n);
                self.mark(idx, Ready::SIGNAL);
            }
        }
    }

    /// After `fork()`: point every watched signal at the new waker.
    #[cfg(unix)]
    pub(super) fn rebind_signals(&self, waker: &Waker) {
        for (signo, _, sub) in self.watched_signals() {
            registry::rebind(signo, sub, waker);
        }
    }
}

impl<M: Machine> Drop for Ctx<M> {
    fn drop(&mut self) {
        // Signals are process-wide: give back every disposition we took.
        for (signo, _, sub) in self.watched_signals() {
            registry::unsubscribe(signo, sub);
        }
    }
}

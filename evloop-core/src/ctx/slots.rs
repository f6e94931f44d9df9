//! The slot table: one slot per source, a free list through the unused ones, and a
//! generation per slot so that stale ids and stale kernel events are recognised.
//!
//! What a slot holds beyond the common bookkeeping depends on its kind, so the kind is an
//! enum that carries that data ([`SlotKind`]): an I/O slot its fd and interest, a timer
//! whether it is periodic, a signal its number and registry subscription. Every slot owns
//! at most one timer in the heap (indexed by slot), whose duration is the common field
//! [`Slot::timer`]: a timer source's delay or period, an I/O source's idle timeout.

use evloop_backends::RawSource;
use std::time::Duration;

use evloop_backends::{Interest, Ready};

use super::Ctx;
use crate::ready_queue::NONE;
use crate::{Error, Machine, Result, SourceId, Token};

/// What an I/O slot watches.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) struct IoSlot {
    pub(super) fd: RawSource,
    pub(super) interest: Interest,
    /// Disabled after each dispatch until started again.
    pub(super) oneshot: bool,
}

/// A slot's kind, with the data only that kind has.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum SlotKind {
    Free,
    Io(IoSlot),
    Timer {
        /// Fires every [`Slot::timer`] rather than once.
        periodic: bool,
    },
    Signal {
        signo: i32,
        /// Subscriber index in the process-wide signal registry.
        sub: u32,
    },
    User,
    Wake,
}

impl SlotKind {
    /// A short name for [`Dump`](super::Dump).
    pub(super) fn name(&self) -> &'static str {
        match self {
            SlotKind::Free => "free",
            SlotKind::Io(_) => "io",
            SlotKind::Timer { .. } => "timer",
            SlotKind::Signal { .. } => "signal",
            SlotKind::User => "user",
            SlotKind::Wake => "wake",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    pub(super) gen: u32,
    pub(super) kind: SlotKind,
    pub(super) enabled: bool,
    pub(super) queued: bool,
    /// Queued in `deferred` rather than the ready queues.
    pub(super) deferred: bool,
    pub(super) prio: u8,
    pub(super) token: Token,
    pub(super) pending: Ready,
    pub(super) count: u32,
    /// Next source on the same fd (I/O), or next free slot (Free).
    pub(super) next: u32,
    /// The duration of this slot's timer, in nanoseconds: a timer source's delay or
    /// period; an I/O source's idle timeout (0: none). Unused by other kinds.
    pub(super) timer: u64,
}

impl Slot {
    pub(super) const FREE: Slot = Slot {
        gen: 0,
        kind: SlotKind::Free,
        enabled: false,
        queued: false,
        deferred: false,
        prio: 0,
        token: Token(0),
        pending: Ready::EMPTY,
        count: 0,
        next: NONE,
        timer: 0,
    };

    /// The I/O data, if this is an I/O slot.
    #[inline]
    pub(super) fn io(&self) -> Option<&IoSlot> {
        match &self.kind {
            SlotKind::Io(io) => Some(io),
            _ => None,
        }
    }

    /// The I/O data, mutably, if this is an I/O slot.
    #[inline]
    pub(super) fn io_mut(&mut self) -> Option<&mut IoSlot> {
        match &mut self.kind {
            SlotKind::Io(io) => Some(io),
            _ => None,
        }
    }

    /// The duration its timer is (re)armed with when it starts: a timer's delay or
    /// period, an I/O source's idle timeout; `None` when starting arms nothing.
    pub(super) fn start_duration(&self) -> Option<u64> {
        match self.kind {
            SlotKind::Io(_) if self.timer != 0 => Some(self.timer),
            SlotKind::Timer { .. } => Some(self.timer),
            _ => None,
        }
    }
}

/// Which I/O readiness bits a source with `interest` receives. Errors and hang-ups are
/// always reported (as by the kernel), so a handler learns of them whatever it watches.
#[inline]
pub(super) fn accepts(interest: Interest) -> Ready {
    const ALWAYS: u16 = Ready::ERROR.bits() | Ready::HUP.bits();
    const READ: u16 = Ready::READABLE.bits() | Ready::PRIORITY.bits() | Ready::READ_CLOSED.bits();
    const WRITE: u16 = Ready::WRITABLE.bits();
    const CLOSED: u16 = Ready::READ_CLOSED.bits();
    // Indexed by READ (1) | WRITE (2) | PEER_CLOSED (4).
    const TABLE: [u16; 8] = [
        ALWAYS,
        ALWAYS | READ,
        ALWAYS | WRITE,
        ALWAYS | READ | WRITE,
        ALWAYS | CLOSED,
        ALWAYS | READ | CLOSED,
        ALWAYS | WRITE | CLOSED,
        ALWAYS | READ | WRITE | CLOSED,
    ];
    Ready::from_bits(TABLE[(interest.bits() & 7) as usize])
}

/// A duration in nanoseconds, saturating at `u64::MAX` (about 584 years: never fires).
pub(super) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<M: Machine> Ctx<M> {
    pub(super) fn alloc(&mut self, kind: SlotKind, token: Token, prio: u8) -> Result<u32> {
        if prio >= self.levels {
            return Err(Error::InvalidPriority {
                priority: prio,
                levels: self.levels,
            });
        }
        let idx = self.free;
        if idx == NONE {
            return Err(Error::SourcesFull {
                capacity: self.slots.len(),
            });
        }
        let s = &mut self.slots[idx as usize];
        self.free = s.next;
        *s = Slot {
            gen: s.gen,
            kind,
            token,
            prio,
            ..Slot::FREE
        };
        self.used += 1;
        self.count_level(prio, true);
        Ok(idx)
    }

    pub(super) fn count_level(&mut self, prio: u8, add: bool) {
        let c = &mut self.level_count[prio as usize];
        if add {
            *c += 1;
        } else {
            *c -= 1;
        }
        self.direct = self.level_count.iter().filter(|&&c| c != 0).count() <= 1;
    }

    pub(super) fn release(&mut self, idx: u32) {
        let prio = self.slots[idx as usize].prio;
        self.count_level(prio, false);
        let s = &mut self.slots[idx as usize];
        let gen = s.gen.wrapping_add(1);
        *s = Slot {
            gen,
            next: self.free,
            ..Slot::FREE
        };
        self.free = idx;
        self.used -= 1;
    }

    #[inline]
    pub(super) fn id(&self, idx: u32) -> SourceId {
        SourceId {
            index: idx,
            gen: self.slots[idx as usize].gen,
        }
    }

    /// The slot index behind `id`, if `id` is current.
    #[inline]
    pub(super) fn lookup(&self, id: SourceId) -> Result<u32> {
        match self.slots.get(id.index as usize) {
            Some(s) if s.gen == id.gen && !matches!(s.kind, SlotKind::Free) => Ok(id.index),
            _ => Err(Error::StaleSource),
        }
    }

    /// Take slot `idx` off the queue it waits in, if any (the ready queues, or the
    /// deferred activations); returns `Some(deferred)` if it was queued. Its `queued`
    /// flag and pending bits are left to the caller.
    pub(super) fn unqueue(&mut self, idx: u32) -> Option<bool> {
        let s = self.slots[idx as usize];
        if !s.queued {
            return None;
        }
        let q = if s.deferred {
            &mut self.deferred
        } else {
            &mut self.queues
        };
        q.unlink(&mut self.links, idx, s.prio);
        Some(s.deferred)
    }

    #[inline]
    pub(super) fn mark(&mut self, idx: u32, ready: Ready) {
        let s = &mut self.slots[idx as usize];
        s.pending |= ready;
        if !s.queued {
            s.queued = true;
            let prio = s.prio;
            self.queues.push(&mut self.links, idx, prio);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_receives_what_it_watches_plus_errors_and_hangups() {
        let always = Ready::ERROR | Ready::HUP;
        assert_eq!(accepts(Interest::NONE), always);
        let w = accepts(Interest::WRITE);
        assert!(w.contains(always | Ready::WRITABLE));
        assert!(!w.intersects(Ready::READABLE | Ready::READ_CLOSED | Ready::PRIORITY));
        let r = accepts(Interest::READ);
        assert!(r.contains(always | Ready::READABLE | Ready::PRIORITY | Ready::READ_CLOSED));
        assert!(!r.is_writable());
        let c = accepts(Interest::PEER_CLOSED);
        assert!(c.is_read_closed() && !c.is_readable());
        // EDGE changes nothing about which bits arrive.
        assert_eq!(
            accepts(Interest::READ | Interest::EDGE),
            accepts(Interest::READ)
        );
    }

    #[test]
    fn start_duration_is_per_kind() {
        let mut s = Slot::FREE;
        assert_eq!(s.start_duration(), None);
        s.kind = SlotKind::Io(IoSlot {
            fd: 3,
            interest: Interest::READ,
            oneshot: false,
        });
        assert_eq!(s.start_duration(), None, "no idle timeout: nothing to arm");
        s.timer = 7;
        assert_eq!(s.start_duration(), Some(7));
        assert!(s.io_mut().is_some());
        s.kind = SlotKind::Timer { periodic: false };
        s.timer = 0;
        assert_eq!(s.start_duration(), Some(0), "a zero-delay timer still arms");
        s.kind = SlotKind::Signal { signo: 1, sub: 0 };
        assert_eq!(s.start_duration(), None);
        assert!(s.io().is_none());
    }

    #[test]
    fn durations_saturate_instead_of_wrapping() {
        assert_eq!(nanos(Duration::from_nanos(5)), 5);
        assert_eq!(nanos(Duration::MAX), u64::MAX);
    }

    #[test]
    fn kind_names_match_the_dump() {
        assert_eq!(SlotKind::Wake.name(), "wake");
        assert_eq!(SlotKind::User.name(), "user");
        assert_eq!(SlotKind::Timer { periodic: true }.name(), "timer");
    }
}

//! [`Dump`]: a printable listing of a loop's sources, for debugging.

use std::fmt;
use std::time::Duration;

use evloop_backends::Backend;

use super::slots::SlotKind;
use super::Ctx;
use crate::Machine;

/// A printable listing of a loop's sources; see [`Ctx::dump`].
///
/// ```
/// # use evloop_core::*;
/// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
/// let mut el = EventLoop::new(M).unwrap();
/// println!("{}", el.ctx().dump());
/// ```
pub struct Dump<'a, M: Machine> {
    pub(super) ctx: &'a Ctx<M>,
}

impl<M: Machine> fmt::Display for Dump<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.ctx;
        writeln!(
            f,
            "evloop ({} backend): {} sources, {} timers armed, {} signals",
            <M::Backend as Backend>::NAME,
            c.used,
            c.timers.armed(),
            c.nsignals
        )?;
        for (i, s) in c.slots.iter().enumerate() {
            if s.kind == SlotKind::Free {
                continue;
            }
            let kind = s.kind.name();
            write!(
                f,
                "  #{i} {kind} token={} prio={} {}",
                s.token.0,
                s.prio,
                if s.enabled { "active" } else { "stopped" }
            )?;
            match s.kind {
                SlotKind::Io(io) => write!(
                    f,
                    " fd={} {:?}{}",
                    io.fd,
                    io.interest,
                    if io.oneshot { " oneshot" } else { "" }
                )?,
                SlotKind::Signal { signo, .. } => write!(f, " signo={signo}")?,
                SlotKind::Timer { periodic, .. } => {
                    write!(f, " {}", if periodic { "periodic" } else { "once" })?
                }
                _ => {}
            }
            if let Some(d) = c.timers.deadline(i as u32) {
                write!(
                    f,
                    " due_in={:?}",
                    Duration::from_nanos(d.saturating_sub(c.now.get()))
                )?;
            }
            if s.queued {
                write!(f, " pending={:?}", s.pending)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

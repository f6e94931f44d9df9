//! Timers: periodic work plus per-connection idle timeouts.
//!
//! A TCP echo server that closes any connection idle for [`IDLE_MS`] (every byte
//! received restarts that connection's timeout: one O(1) timer reset, since all share
//! one duration), and runs a periodic job every [`TICK_MS`] (here: counting ticks and
//! the connections it saw). `#[on_wake]` lets another thread stop it.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

use evloop::prelude::*;

/// Idle timeout of a connection, in milliseconds (short, for the demo).
pub const IDLE_MS: u64 = 300;
/// Period of the periodic job, in milliseconds.
pub const TICK_MS: u64 = 100;
/// Most connections at once.
pub const MAX_CONNS: usize = 4096;

/// The server's state.
#[event_machine]
pub struct Timers {
    listener: Listener,
    conns: Slab<TcpStream>,
    /// Periodic job runs so far.
    pub ticks: u64,
    /// Connections closed for being idle.
    pub closed_idle: u64,
    /// Most connections open at one tick.
    pub peak: usize,
}

impl Timers {
    /// Bind `addr`.
    pub fn new(addr: SocketAddr) -> io::Result<Timers> {
        let listener = Listener::tcp(addr)?;
        Ok(Timers {
            listener,
            conns: Slab::with_capacity(MAX_CONNS),
            ticks: 0,
            closed_idle: 0,
            peak: 0,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

#[event_machine]
impl Timers {
    #[on_read(listener)]
    fn accept(&mut self, ctx: &mut Ctx<Self>) {
        // A `Listener`: batches, and no spinning when descriptors run out.
        let conns = &mut self.conns;
        self.listener.accept(ctx, |ctx, conn| {
            // Registered with the collection's watch: read, plus the idle timeout.
            let _ = conns.insert(ctx, conn.into_tcp());
        });
    }

    #[on_read(conns)]
    fn data(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let Some(stream) = self.conns.get_mut(key) else {
            return;
        };
        let mut buf = [0u8; 2048];
        match stream.read(&mut buf) {
            Ok(0) => {
                let _ = self.conns.remove(ctx, key);
            }
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    let _ = self.conns.remove(ctx, key);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(_) => {
                let _ = self.conns.remove(ctx, key);
            }
        }
    }

    #[on_timeout(conns, ms = 300)]
    fn idle(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        if self.conns.remove(ctx, key).is_ok() {
            self.closed_idle += 1; // dropping the stream closes it
        }
    }

    #[on_timer(100)]
    fn tick(&mut self, _ctx: &mut Ctx<Self>) {
        self.ticks += 1;
        self.peak = self.peak.max(self.conns.len());
    }

    #[on_wake]
    fn stop(&mut self, ctx: &mut Ctx<Self>) {
        ctx.exit();
    }
}

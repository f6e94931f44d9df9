//! A TCP echo server with `#[event_machine]`: a [`Listener`], a [`Slab`] of up to
//! [`MAX_CONNS`] connections, SIGINT/SIGTERM for a clean stop, and `#[on_wake]` so
//! another thread can stop it too.
//!
//! The listener accepts in batches, and when the process runs out of file descriptors it
//! closes the connections it cannot take (or pauses) instead of spinning: a
//! level-triggered listener whose handler just returns on `EMFILE` would be called again
//! at once, forever.
//!
//! Each connection has a fixed 1 KiB buffer (nothing is allocated per event). Bytes
//! read are written back; when the socket will not take them all, the connection stops
//! reading and watches for writability instead until the buffer is flushed
//! (backpressure: a client that does not read cannot make the server buffer more).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

use evloop::prelude::*;
use evloop::ListenerStats;

/// Most connections served at once.
pub const MAX_CONNS: usize = 16_384;
const BUF: usize = 1024;

/// One client: its socket and the bytes read but not yet echoed.
pub struct Conn {
    stream: TcpStream,
    buf: [u8; BUF],
    start: usize,
    end: usize,
}

evloop::impl_as_source!(Conn => stream);

/// The echo server's state.
#[event_machine(timers = 16)]
pub struct Echo {
    listener: Listener,
    conns: Slab<Conn>,
    /// Connections accepted so far.
    pub accepted: u64,
    /// Bytes echoed so far.
    pub echoed: u64,
}

enum Flush {
    Done,
    Blocked,
    Failed,
}

impl Echo {
    /// Bind a listener on `addr` (use port 0 for any free port).
    pub fn bind(addr: SocketAddr) -> io::Result<Echo> {
        let listener = Listener::tcp(addr)?;
        Ok(Echo {
            listener,
            conns: Slab::with_capacity(MAX_CONNS),
            accepted: 0,
            echoed: 0,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// The listener's counters (accepted, dropped or paused for lack of descriptors).
    pub fn listener_stats(&self) -> ListenerStats {
        self.listener.stats()
    }

    /// Write out what is buffered for `key`.
    fn flush(&mut self, key: Key) -> Flush {
        let Some(c) = self.conns.get_mut(key) else {
            return Flush::Failed;
        };
        while c.start < c.end {
            match c.stream.write(&c.buf[c.start..c.end]) {
                Ok(n) => {
                    c.start += n;
                    self.echoed += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Flush::Blocked,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Flush::Failed,
            }
        }
        c.start = 0;
        c.end = 0;
        Flush::Done
    }

    fn close(&mut self, ctx: &mut Ctx<Self>, key: Key) {
        let _ = self.conns.remove(ctx, key); // dropping the stream closes it
    }
}

#[event_machine]
impl Echo {
    #[on_read(listener)]
    fn accept(&mut self, ctx: &mut Ctx<Self>) {
        // A bounded batch per wake-up (64), so a busy listener cannot starve connections.
        // Out of descriptors, the listener closes what it cannot take, or pauses: it
        // never spins, and the report (ignored here) says so; `listener_stats` counts it.
        let (conns, accepted) = (&mut self.conns, &mut self.accepted);
        self.listener.accept(ctx, |ctx, conn| {
            let stream = conn.into_tcp(); // already non-blocking
            let _ = stream.set_nodelay(true);
            let conn = Conn {
                stream,
                buf: [0; BUF],
                start: 0,
                end: 0,
            };
            // A full slab drops the connection (closing it), not the server.
            if conns.insert(ctx, conn).is_ok() {
                *accepted += 1;
            }
        });
    }

    #[on_read(conns)]
    fn readable(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        match c.stream.read(&mut c.buf) {
            Ok(0) => return self.close(ctx, key),
            Ok(n) => {
                c.start = 0;
                c.end = n;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => return,
            Err(_) => return self.close(ctx, key),
        }
        match self.flush(key) {
            Flush::Done => {}
            // Stop reading until the client has taken what we owe it.
            Flush::Blocked => {
                let _ = self.conns.set_interest(ctx, key, Interest::WRITE);
            }
            Flush::Failed => self.close(ctx, key),
        }
    }

    #[on_write(conns)]
    fn writable(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        match self.flush(key) {
            Flush::Done => {
                let _ = self.conns.set_interest(ctx, key, Interest::READ);
            }
            Flush::Blocked => {}
            Flush::Failed => self.close(ctx, key),
        }
    }

    #[on_signal(SIGINT)]
    fn interrupt(&mut self, ctx: &mut Ctx<Self>) {
        ctx.exit();
    }

    #[on_signal(SIGTERM)]
    fn terminate(&mut self, ctx: &mut Ctx<Self>) {
        ctx.exit();
    }

    #[on_wake]
    fn stop(&mut self, ctx: &mut Ctx<Self>) {
        ctx.exit();
    }
}

/// A built echo server: run it with [`EventLoop::run`]; stop it from another thread with
/// the handle's `wake()`.
pub fn server(addr: SocketAddr) -> evloop::Result<(EventLoop<Echo>, WakeHandle)> {
    let mut el = Echo::bind(addr)?.event_loop()?;
    let stop = el.ctx().wake_handle();
    Ok((el, stop))
}

/// Serve until SIGINT/SIGTERM; returns how the loop ended.
pub fn run(addr: SocketAddr) -> evloop::Result<Exit> {
    let (mut el, _stop) = server(addr)?;
    eprintln!(
        "echo: listening on {} ({} backend); Ctrl-C to stop",
        el.machine().local_addr()?,
        <DefaultBackend as Backend>::NAME
    );
    let exit = el.run()?;
    let m = el.machine();
    eprintln!(
        "echo: stopped ({exit:?}); {} connections, {} bytes echoed",
        m.accepted, m.echoed
    );
    Ok(exit)
}

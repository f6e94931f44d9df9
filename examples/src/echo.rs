//! A TCP echo server written by hand against [`evloop::Machine`]: a listener field, a
//! [`Slab`] of connections, SIGINT/SIGTERM for a clean stop, and a wake source so another
//! thread can stop it too.
//!
//! Each connection has a fixed 1 KiB buffer. Bytes read are written back; if the socket
//! will not take them all, the connection stops reading until it is writable again
//! (backpressure: a client that does not read cannot make the server buffer more).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use evloop::{
    Ctx, DefaultBackend, Event, EventLoop, Exit, Interest, Key, Machine, Result, Slab, Token,
    WakeHandle, Watch,
};

/// Most connections served at once.
pub const MAX_CONNS: usize = 8192;
const BUF: usize = 1024;

const LISTENER: Token = Token(0);
const STOP: Token = Token(1);
const SIGINT: Token = Token(2);
const SIGTERM: Token = Token(3);
const CONNS: u16 = 1;

/// One client: its socket and the bytes read but not yet echoed.
pub struct Conn {
    stream: TcpStream,
    buf: [u8; BUF],
    start: usize,
    end: usize,
}

/// The echo server's state.
pub struct Echo {
    listener: TcpListener,
    conns: Slab<Conn, MAX_CONNS>,
    /// Connections accepted so far.
    pub accepted: u64,
    /// Bytes echoed so far.
    pub echoed: u64,
}

impl std::os::fd::AsFd for Conn {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl Echo {
    /// Bind a listener on `addr` (use port 0 for any free port).
    pub fn bind(addr: SocketAddr) -> io::Result<Echo> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(Echo {
            listener,
            conns: Slab::new(CONNS),
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

    fn accept(&mut self, ctx: &mut Ctx<Self>) {
        // Accept a bounded batch per wake-up so one busy listener cannot starve the
        // connections.
        for _ in 0..64 {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let conn = Conn {
                        stream,
                        buf: [0; BUF],
                        start: 0,
                        end: 0,
                    };
                    // A full slab drops the connection (closing it) rather than the server.
                    if self.conns.insert_with(ctx, conn, Watch::read()).is_ok() {
                        self.accepted += 1;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return, // EMFILE and friends: try again on the next readiness
            }
        }
    }

    fn serve(&mut self, ctx: &mut Ctx<Self>, key: Key, ev: Event) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut close = ev.ready.is_error();
        if !close && ev.ready.is_readable() && conn.start == conn.end {
            match conn.stream.read(&mut conn.buf) {
                Ok(0) => close = true,
                Ok(n) => {
                    conn.start = 0;
                    conn.end = n;
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(_) => close = true,
            }
        }
        let mut blocked = false;
        while !close && conn.start < conn.end {
            match conn.stream.write(&conn.buf[conn.start..conn.end]) {
                Ok(n) => {
                    conn.start += n;
                    self.echoed += n as u64;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    blocked = true;
                    break;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => close = true,
            }
        }
        if close {
            let _ = self.conns.remove(ctx, key); // dropping the stream closes it
            return;
        }
        if conn.start == conn.end {
            conn.start = 0;
            conn.end = 0;
        }
        // Wait for writability while bytes are pending, for readability otherwise.
        let want = if blocked {
            Interest::WRITE
        } else {
            Interest::READ
        };
        if let Some(id) = self.conns.source(key) {
            let _ = ctx.set_interest(id, want);
        }
    }
}

impl Machine for Echo {
    type Backend = DefaultBackend;

    fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
        ctx.register(&self.listener, LISTENER, Watch::read())?;
        ctx.add_wake(STOP)?;
        ctx.add_signal(libc::SIGINT, SIGINT)?;
        ctx.add_signal(libc::SIGTERM, SIGTERM)?;
        Ok(())
    }

    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        match ev.token {
            LISTENER => self.accept(ctx),
            STOP | SIGINT | SIGTERM => ctx.exit(),
            t => {
                if let Some(key) = self.conns.key_of(t) {
                    self.serve(ctx, key, ev);
                }
            }
        }
    }
}

/// A built echo server: run it with [`EventLoop::run`]; stop it from another thread with
/// the handle's `wake()`.
pub fn server(addr: SocketAddr) -> Result<(EventLoop<Echo>, WakeHandle)> {
    let echo = Echo::bind(addr)?;
    let mut el = EventLoop::<Echo>::builder()
        .sources(MAX_CONNS + 8)
        .timers(16)
        .build(echo)?;
    let stop = el.ctx().wake_handle();
    Ok((el, stop))
}

/// Serve until SIGINT/SIGTERM; returns how the loop ended.
pub fn run(addr: SocketAddr) -> Result<Exit> {
    let (mut el, _stop) = server(addr)?;
    eprintln!(
        "echo: listening on {} ({} backend); Ctrl-C to stop",
        el.machine().local_addr()?,
        <DefaultBackend as evloop::Backend>::NAME
    );
    let exit = el.run()?;
    let m = el.machine();
    eprintln!(
        "echo: stopped ({exit:?}); {} connections, {} bytes echoed",
        m.accepted, m.echoed
    );
    Ok(exit)
}

//! A line-based chat room on a [`BufSlab`]: every line a client sends is broadcast to
//! all the others as `ID: line`, where `ID` is the sender's number (told to it on
//! arrival, `*** welcome, you are client ID`). Arrivals and departures are announced as
//! `*** ID joined` and `*** ID left`.
//!
//! # Slow readers
//!
//! One client that does not read must neither stall the others nor make the server
//! buffer without bound. Each client has a fixed output buffer ([`ChatConfig::output`]
//! bytes, allocated on arrival), and the policy is the one IRC servers and most chat
//! relays follow, minus the abrupt kick:
//!
//! * **Drop, count, tell once.** A line is queued for a client only while its queue
//!   stays at or below the high watermark ([`ChatConfig::high`]). Once a line does not
//!   fit, the client is *lagging*: every line for it is dropped and counted until its
//!   queue has drained to the low watermark ([`ChatConfig::low`]). Then it gets one
//!   `*** dropped N lines` notice, and lines flow again. A reader that is merely slow
//!   loses a stretch of the conversation and is told so; the others never wait for it,
//!   and the server never holds more than `high` bytes (plus one notice) for it.
//! * **Stalled clients leave.** A client whose queue has not moved for
//!   [`ChatConfig::stall_timeout`] (nothing written to it, nothing sent by it) is
//!   disconnected and announced as `*** ID left (not reading)`, so a dead peer does not
//!   hold a slot forever.
//!
//! Lines longer than [`ChatConfig::max_line`] are not broadcast: the sender gets
//! `*** line too long`, and the rest of that line is skipped. Empty lines are ignored.
//!
//! Each client's state (id, lag counters) is a [`Member`], kept next to its socket in
//! the slab as a `WithState<TcpStream, Member>` ([`Client`]).
//!
//! Clients are accepted by a [`Listener`]: in batches, and without spinning when the
//! process runs out of file descriptors (it closes what it cannot take, or pauses).

use std::io::{self, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use evloop::buffered::{BufConfig, BufConn, BufSlab, Eol, WithState};
use evloop::prelude::*;

/// Most clients in the room at once.
pub const MAX_CLIENTS: usize = 1024;

/// Most connections accepted per wake-up of the listener.
const ACCEPT_BATCH: usize = 64;

/// Longest notice the server writes on its own (`*** dropped N lines`, ...), which may go
/// past the high watermark: the output buffer keeps this much room above it.
const NOTICE_ROOM: usize = 64;

/// Sizes and limits of the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatConfig {
    /// Longest line a client may send, in bytes (the input buffer's capacity).
    pub max_line: usize,
    /// Capacity of each client's output buffer.
    pub output: usize,
    /// Lines are queued for a client only while its queue stays at or below this.
    pub high: usize,
    /// A lagging client gets lines again once its queue has drained to this.
    pub low: usize,
    /// Disconnect a client whose queue has not moved for this long (`None`: never).
    pub stall_timeout: Option<Duration>,
    /// `SO_SNDBUF` for client sockets (`None`: the kernel's autotuning). Bounds the
    /// kernel's share of a slow reader's backlog, as `high` bounds ours.
    pub send_buffer: Option<usize>,
}

impl Default for ChatConfig {
    /// 1 KiB lines; 64 KiB output per client, queued up to 32 KiB, resumed at 8 KiB;
    /// stalled clients are dropped after 60 s; the kernel sizes socket buffers.
    fn default() -> Self {
        ChatConfig {
            max_line: 1024,
            output: 64 * 1024,
            high: 32 * 1024,
            low: 8 * 1024,
            stall_timeout: Some(Duration::from_secs(60)),
            send_buffer: None,
        }
    }
}

impl ChatConfig {
    fn check(&self) -> io::Result<()> {
        // A whole message (`ID: ` + line + `\n`) must fit under `high`, and a notice
        // above it.
        let ok = self.max_line >= 16
            && self.high >= self.max_line + 32
            && self.low < self.high
            && self.output >= self.high + NOTICE_ROOM;
        if ok {
            Ok(())
        } else {
            Err(io::Error::new(
                ErrorKind::InvalidInput,
                "chat: need max_line >= 16, high >= max_line + 32, low < high, output >= high + 64",
            ))
        }
    }

    fn buf_config(&self) -> BufConfig {
        // Reading pauses only above `high`, which our own queueing never passes by more
        // than a notice: a lagging client can still talk.
        BufConfig::new(self.max_line, self.output)
            .write_watermarks(self.low, self.high + NOTICE_ROOM)
            .write_timeout(self.stall_timeout)
    }
}

/// One member of the room: its socket and the server's bookkeeping for it, kept
/// together in the [`BufSlab`].
pub type Client = WithState<TcpStream, Member>;

/// The server's bookkeeping for one member of the room.
pub struct Member {
    id: u64,
    /// Dropping lines until the queue drains to the low watermark.
    lagging: bool,
    /// Lines dropped in the current lag, not yet reported.
    dropped: u64,
    /// Lines dropped since arrival.
    dropped_total: u64,
    /// Lines queued since arrival.
    delivered: u64,
    /// Largest queue seen, in bytes.
    peak: usize,
    /// Skipping the rest of an overlong line.
    skipping: bool,
    /// Written to during this dispatch; flush before returning.
    dirty: bool,
}

/// What the server knows about one client (see [`Chat::clients`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientStats {
    /// The client's number, as told in its welcome line.
    pub id: u64,
    /// Bytes queued for it now.
    pub queued: usize,
    /// The most ever queued for it.
    pub peak: usize,
    /// Its output buffer's capacity.
    pub capacity: usize,
    /// Lines queued for it since it arrived.
    pub delivered: u64,
    /// Lines dropped for it since it arrived.
    pub dropped: u64,
    /// Whether lines for it are being dropped now.
    pub lagging: bool,
}

/// The chat server's state.
#[event_machine]
pub struct Chat {
    listener: Listener,
    conns: BufSlab<Client>,
    /// Connections just accepted, joined after the batch (reused: no allocation).
    arrivals: Vec<TcpStream>,
    /// Keys of the members, in arrival order (the broadcast list).
    members: Vec<Key>,
    /// The message being broadcast (reused: no allocation per line).
    msg: Vec<u8>,
    cfg: ChatConfig,
    next_id: u64,
    /// Clients accepted so far.
    pub joined: u64,
    /// Lines received and broadcast.
    pub lines: u64,
    /// Lines dropped for lagging clients, all clients together.
    pub dropped: u64,
    /// Clients disconnected because they stalled.
    pub stalled: u64,
}

enum Reason {
    Left,
    Stalled,
}

impl Chat {
    /// Bind a listener on `addr` (port 0 for any free port) with the default sizes.
    pub fn bind(addr: SocketAddr) -> io::Result<Chat> {
        Chat::with_config(addr, ChatConfig::default())
    }

    /// Bind a listener on `addr` with the given sizes and limits.
    pub fn with_config(addr: SocketAddr, cfg: ChatConfig) -> io::Result<Chat> {
        cfg.check()?;
        let listener = ListenerBuilder::new().batch(ACCEPT_BATCH).tcp(addr)?;
        Ok(Chat {
            listener,
            conns: BufSlab::with_capacity(MAX_CLIENTS, cfg.buf_config()),
            arrivals: Vec::with_capacity(ACCEPT_BATCH),
            members: Vec::with_capacity(MAX_CLIENTS),
            msg: Vec::with_capacity(cfg.max_line + 32),
            cfg,
            next_id: 1,
            joined: 0,
            lines: 0,
            dropped: 0,
            stalled: 0,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The configuration.
    pub fn config(&self) -> &ChatConfig {
        &self.cfg
    }

    /// Every client in the room, with its queue and lag counters.
    pub fn clients(&self) -> impl Iterator<Item = ClientStats> + '_ {
        self.conns.iter().map(|(_, c)| {
            let s = &c.stream().state;
            ClientStats {
                id: s.id,
                queued: c.output().len(),
                peak: s.peak,
                capacity: c.output().capacity(),
                delivered: s.delivered,
                dropped: s.dropped_total,
                lagging: s.lagging,
            }
        })
    }

    /// The client numbered `id`, if it is in the room.
    pub fn client(&self, id: u64) -> Option<ClientStats> {
        self.clients().find(|c| c.id == id)
    }

    /// Queue `self.msg` for every member but `except`, under the drop policy.
    fn broadcast(&mut self, except: Option<Key>) {
        for &k in &self.members {
            if Some(k) == except {
                continue;
            }
            let Some(c) = self.conns.get_mut(k) else {
                continue;
            };
            if !deliver(c, &self.msg, &self.cfg) {
                self.dropped += 1;
            }
        }
    }

    /// Flush every member written to since the last call.
    fn flush_dirty(&mut self, ctx: &mut Ctx<Self>) {
        for &k in &self.members {
            if let Some(c) = self.conns.get_mut(k) {
                if c.stream().state.dirty {
                    c.stream_mut().state.dirty = false;
                    // A failed write comes back as an ERROR event on that client.
                    let _ = self.conns.flush(ctx, k);
                }
            }
        }
    }

    /// Remove `key` from the room and tell the others.
    fn leave(&mut self, ctx: &mut Ctx<Self>, key: Key, why: Reason) {
        let Ok(conn) = self.conns.remove(ctx, key) else {
            return;
        };
        self.members.retain(|&k| k != key);
        let id = conn.stream().state.id;
        drop(conn); // closes the socket
        self.msg.clear();
        let _ = match why {
            Reason::Left => writeln!(self.msg, "*** {id} left"),
            Reason::Stalled => writeln!(self.msg, "*** {id} left (not reading)"),
        };
        self.broadcast(None);
        self.flush_dirty(ctx);
    }

    fn join(&mut self, ctx: &mut Ctx<Self>, stream: TcpStream) {
        let id = self.next_id;
        let member = Member {
            id,
            lagging: false,
            dropped: 0,
            dropped_total: 0,
            delivered: 0,
            peak: 0,
            skipping: false,
            dirty: false,
        };
        let client = WithState::new(stream, member);
        // A full room (or a failed registration) closes the newcomer, nobody else.
        let Ok(key) = self.conns.insert(ctx, client) else {
            return;
        };
        self.next_id += 1;
        self.joined += 1;
        self.msg.clear();
        let _ = writeln!(self.msg, "*** {id} joined");
        self.broadcast(None);
        self.members.push(key);
        if let Some(c) = self.conns.get_mut(key) {
            let _ = writeln!(c.output_mut(), "*** welcome, you are client {id}");
            c.stream_mut().state.dirty = true;
        }
        self.flush_dirty(ctx);
    }
}

/// Queue `msg` for `c` unless it is lagging; returns whether it was queued.
fn deliver(c: &mut BufConn<Client>, msg: &[u8], cfg: &ChatConfig) -> bool {
    let queued = c.output().len();
    if c.stream().state.lagging {
        if queued > cfg.low {
            c.stream_mut().state.dropped += 1;
            c.stream_mut().state.dropped_total += 1;
            return false;
        }
        catch_up(c);
    }
    let queued = c.output().len();
    if queued + msg.len() > cfg.high {
        let s = &mut c.stream_mut().state;
        s.lagging = true;
        s.dropped += 1;
        s.dropped_total += 1;
        return false;
    }
    // Fits: `high` is below the capacity.
    let _ = c.write(msg);
    let queued = c.output().len();
    let s = &mut c.stream_mut().state;
    s.delivered += 1;
    s.dirty = true;
    s.peak = s.peak.max(queued);
    true
}

/// A lagging client's queue has drained to the low watermark: lines flow again, and it
/// hears how many it missed.
fn catch_up(c: &mut BufConn<Client>) {
    let s = &mut c.stream_mut().state;
    s.lagging = false;
    let n = std::mem::take(&mut s.dropped);
    if n > 0 {
        s.dirty = true;
        let plural = if n == 1 { "" } else { "s" };
        // NOTICE_ROOM is kept free above `high` for this.
        let _ = writeln!(c.output_mut(), "*** dropped {n} line{plural}");
        let queued = c.output().len();
        let s = &mut c.stream_mut().state;
        s.peak = s.peak.max(queued);
    }
}

/// Set `SO_SNDBUF` (best effort: a refusal leaves the kernel's default; on Windows,
/// whose send buffering differs, it is left alone).
#[cfg(windows)]
fn set_send_buffer(_stream: &TcpStream, _size: usize) {}

/// Set `SO_SNDBUF` (best effort: a refusal leaves the kernel's default).
#[cfg(unix)]
fn set_send_buffer(stream: &TcpStream, size: usize) {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket fd, and a pointer to a c_int with its size.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(stream),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[event_machine]
impl Chat {
    #[on_read(listener)]
    fn accept(&mut self, ctx: &mut Ctx<Self>) {
        // A bounded batch per wake-up, so a busy listener cannot starve the room; out of
        // descriptors, the listener drops or pauses instead of spinning.
        let arrivals = &mut self.arrivals;
        self.listener
            .accept(ctx, |_, conn| arrivals.push(conn.into_tcp()));
        // `join` needs the whole room, so the batch joins after the listener is done.
        let mut arrivals = std::mem::take(&mut self.arrivals);
        for stream in arrivals.drain(..) {
            let _ = stream.set_nodelay(true);
            if let Some(size) = self.cfg.send_buffer {
                set_send_buffer(&stream, size);
            }
            self.join(ctx, stream);
        }
        self.arrivals = arrivals;
    }

    #[on_read(conns)]
    fn data(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            let id = c.stream().state.id;
            if c.stream().state.skipping {
                // The tail of an overlong line: drop it up to its end.
                match c.input().find(b"\n") {
                    Some(i) => {
                        c.input_mut().consume(i + 1);
                        c.stream_mut().state.skipping = false;
                    }
                    None => {
                        c.input_mut().clear();
                        break;
                    }
                }
            }
            match c.read_line(Eol::Crlf) {
                Ok(Some([])) => {}
                Ok(Some(line)) => {
                    self.msg.clear();
                    let _ = write!(self.msg, "{id}: ");
                    self.msg.extend_from_slice(line);
                    self.msg.push(b'\n');
                    self.lines += 1;
                    self.broadcast(Some(key));
                }
                Ok(None) => break,
                Err(_) => {
                    c.input_mut().clear();
                    c.stream_mut().state.skipping = true;
                    let _ = writeln!(c.output_mut(), "*** line too long");
                }
            }
        }
        self.flush_dirty(ctx);
        let Some(c) = self.conns.get(key) else {
            return;
        };
        if c.events().is_eof() || c.events().is_error() {
            self.leave(ctx, key, Reason::Left);
        }
    }

    #[on_write(conns)]
    fn drained(&mut self, key: Key, _ctx: &mut Ctx<Self>) {
        // DRAINED: the queue is down to the low watermark (flushed after we return).
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.events().is_drained() && c.stream().state.lagging {
            catch_up(c);
        }
    }

    // The `ms` here is the read (idle) timeout of connections: a year, i.e. none (idle
    // chatters are welcome). The write timeout, set from `stall_timeout`, is what fires.
    #[on_timeout(conns, ms = 31_536_000_000)]
    fn timeout(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let Some(c) = self.conns.get(key) else {
            return;
        };
        if c.events()
            .contains(evloop::buffered::BufEvents::WRITE_TIMEOUT)
        {
            self.stalled += 1;
            self.leave(ctx, key, Reason::Stalled);
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

/// A built chat server: run it with [`EventLoop::run`]; stop it from another thread with
/// the handle's `wake()`, then take the state back with [`EventLoop::into_machine`].
pub fn server(addr: SocketAddr, cfg: ChatConfig) -> evloop::Result<(EventLoop<Chat>, WakeHandle)> {
    let mut el = Chat::with_config(addr, cfg)?.event_loop()?;
    let stop = el.ctx().wake_handle();
    Ok((el, stop))
}

/// Serve until SIGINT/SIGTERM; returns how the loop ended.
pub fn run(addr: SocketAddr) -> evloop::Result<Exit> {
    let (mut el, _stop) = server(addr, ChatConfig::default())?;
    eprintln!(
        "chat: listening on {} ({} backend); Ctrl-C to stop",
        el.machine().local_addr()?,
        <DefaultBackend as Backend>::NAME
    );
    let exit = el.run()?;
    let m = el.machine();
    eprintln!(
        "chat: stopped ({exit:?}); {} clients, {} lines, {} dropped for slow readers, {} stalled",
        m.joined, m.lines, m.dropped, m.stalled
    );
    Ok(exit)
}

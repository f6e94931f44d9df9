//! A daemon: a line server whose greeting comes from a config file.
//!
//! * `SIGHUP` re-reads the config file;
//! * `SIGTERM`/`SIGINT` shut down gracefully: close the listening socket (so new
//!   clients are refused at once, not left in the kernel's backlog unanswered), keep
//!   serving the open connections until they close (or a grace period passes), then
//!   exit;
//! * `SIGCHLD` reaps children: the `spawn` command starts one (`true`), and the reaper
//!   collects it, however many exited since the last delivery (signals coalesce).
//!
//! It accepts with a [`Listener`], which does not spin when the process runs out of file
//! descriptors: it closes the connections it cannot take, or pauses.
//!
//! Protocol, one line per request: `stats` answers `reloads=R spawned=S reaped=P
//! draining=D` (D is 1 once a shutdown signal arrived),
//! `spawn` answers `spawned PID`, anything else is answered `<greeting> <line>`.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use evloop::prelude::*;

/// Most connections served at once.
pub const MAX_CONNS: usize = 1024;
/// How long a shutdown waits for open connections to finish.
pub const GRACE: Duration = Duration::from_secs(5);

/// One client: its socket and the bytes of an unfinished line.
pub struct Conn {
    stream: TcpStream,
    buf: [u8; 512],
    len: usize,
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

/// The daemon's state.
#[event_machine(timers = 16)]
pub struct Daemon {
    listener: Listener,
    conns: Slab<Conn>,
    config_path: PathBuf,
    greeting: String,
    draining: bool,
    /// Times the config was re-read.
    pub reloads: u32,
    /// Children started.
    pub spawned: u32,
    /// Children reaped.
    pub reaped: u32,
}

/// Read `greeting = ...` from a config file (other lines are ignored).
pub fn read_greeting(path: &Path) -> io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "greeting")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "hello".to_string()))
}

impl Daemon {
    /// Bind `addr` and read the config at `config_path`.
    pub fn new(addr: SocketAddr, config_path: &Path) -> io::Result<Daemon> {
        let listener = Listener::tcp(addr)?;
        Ok(Daemon {
            listener,
            conns: Slab::with_capacity(MAX_CONNS),
            greeting: read_greeting(config_path)?,
            config_path: config_path.to_path_buf(),
            draining: false,
            reloads: 0,
            spawned: 0,
            reaped: 0,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    fn answer(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        match line {
            "stats" => {
                let _ = writeln!(
                    out,
                    "reloads={} spawned={} reaped={} draining={}",
                    self.reloads,
                    self.spawned,
                    self.reaped,
                    u8::from(self.draining)
                );
            }
            "spawn" => match std::process::Command::new("true").spawn() {
                // Not waited for here: SIGCHLD's handler reaps it.
                Ok(child) => {
                    self.spawned += 1;
                    let _ = writeln!(out, "spawned {}", child.id());
                }
                Err(e) => {
                    let _ = writeln!(out, "error {e}");
                }
            },
            _ => {
                let _ = writeln!(out, "{} {line}", self.greeting);
            }
        }
    }

    fn shutdown(&mut self, ctx: &mut Ctx<Self>) {
        if self.draining {
            return;
        }
        self.draining = true;
        // Stop accepting, and close the socket: a client connecting from now on is
        // refused, not accepted by the kernel and left unanswered.
        if let Err(e) = self.listener.close(ctx) {
            eprintln!("daemon: closing the listener: {e}");
        }
        if self.conns.is_empty() {
            ctx.exit();
        } else {
            ctx.exit_after(GRACE);
        }
    }
}

#[event_machine]
impl Daemon {
    #[on_read(listener)]
    fn accept(&mut self, ctx: &mut Ctx<Self>) {
        // Up to 64 per wake-up; out of descriptors, the listener drops or pauses rather
        // than spin, and says so.
        let conns = &mut self.conns;
        let report = self.listener.accept(ctx, |ctx, conn| {
            let conn = Conn {
                stream: conn.into_tcp(), // already non-blocking
                buf: [0; 512],
                len: 0,
            };
            // A full slab drops (closes) the connection.
            let _ = conns.insert(ctx, conn);
        });
        if let Some(e) = report.error {
            eprintln!("daemon: {e}");
        }
    }

    #[on_read(conns)]
    fn request(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let mut out = Vec::new();
        let mut close = false;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.len == conn.buf.len() {
                close = true; // a line longer than the buffer: drop the client
                break;
            }
            match conn.stream.read(&mut conn.buf[conn.len..]) {
                Ok(0) => {
                    close = true;
                    break;
                }
                Ok(n) => conn.len += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    close = true;
                    break;
                }
            }
            // Answer every complete line.
            while let Some(nl) = self
                .conns
                .get(key)
                .and_then(|c| c.buf[..c.len].iter().position(|&b| b == b'\n'))
            {
                let line: Vec<u8> = self
                    .conns
                    .get(key)
                    .map(|c| c.buf[..nl].to_vec())
                    .unwrap_or_default();
                self.answer(&line, &mut out);
                let conn = self.conns.get_mut(key).expect("entry is live");
                conn.buf.copy_within(nl + 1..conn.len, 0);
                conn.len -= nl + 1;
            }
        }
        if let Some(conn) = self.conns.get_mut(key) {
            if !out.is_empty() && conn.stream.write_all(&out).is_err() {
                close = true;
            }
        }
        if close {
            let _ = self.conns.remove(ctx, key);
            if self.draining && self.conns.is_empty() {
                ctx.exit(); // the last in-flight connection is done
            }
        }
    }

    #[on_signal(SIGHUP)]
    fn reload(&mut self, _ctx: &mut Ctx<Self>) {
        match read_greeting(&self.config_path) {
            Ok(g) => {
                self.greeting = g;
                self.reloads += 1;
            }
            Err(e) => eprintln!("daemon: keeping the old config: {e}"),
        }
    }

    #[on_signal(SIGTERM)]
    fn terminate(&mut self, ctx: &mut Ctx<Self>) {
        self.shutdown(ctx);
    }

    #[on_signal(SIGINT)]
    fn interrupt(&mut self, ctx: &mut Ctx<Self>) {
        self.shutdown(ctx);
    }

    #[on_signal(SIGCHLD)]
    fn reap(&mut self, _ctx: &mut Ctx<Self>) {
        // One dispatch may stand for several exits: reap until none is left.
        loop {
            let mut status = 0;
            // SAFETY: waitpid with a valid status pointer; WNOHANG never blocks.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            self.reaped += 1;
        }
    }
}

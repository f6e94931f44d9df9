//! `-A` and `shutdown`: the memcached example in a child process (this test binary
//! re-executed with `EVLOOP_MEMCACHED_CHILD` set), since `shutdown` stops the whole
//! process as memcached's does.
//!
//! * Without `-A`, `shutdown` is refused (`ERROR: shutdown not enabled`) and the server
//!   goes on.
//! * With `-A`, a bad mode is `CLIENT_ERROR invalid shutdown mode`; `shutdown` and
//!   `shutdown graceful` close the connection and stop the server, which exits 0.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const CHILD: &str = "EVLOOP_MEMCACHED_CHILD";
const DEADLINE: Duration = Duration::from_secs(10);

/// Not a test: the server, when the tests below re-execute this binary.
#[test]
fn child_server() {
    let Ok(flags) = std::env::var(CHILD) else {
        return;
    };
    let code = evloop_examples::memcached::main_with_args(flags.split_whitespace());
    std::process::exit(code);
}

/// The example in a child process with `flags`, stopped on drop; its address.
struct Server {
    child: Child,
    addr: SocketAddr,
    drain: Option<JoinHandle<()>>,
}

impl Server {
    fn start(flags: &str) -> Server {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_server", "--nocapture", "--test-threads=1"])
            .env(CHILD, format!("-l 127.0.0.1 -p 0 -U 0 -t 1 -v {flags}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let drain = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Its fault counts under `.ci/faults` (`EVLOOP_FAULT_REPORT`), past
                // libtest's capture.
                if line.starts_with("evloop-fault-counts:") {
                    let _ = writeln!(std::io::stderr(), "{line}");
                }
                if let Some(i) = line.find("listening on ") {
                    let a = line[i + 13..].split_whitespace().next().unwrap_or("");
                    if let Ok(a) = a.parse::<SocketAddr>() {
                        let _ = tx.send(a);
                    }
                }
            }
        });
        let addr = rx.recv_timeout(DEADLINE).expect("the server listens");
        Server {
            child,
            addr,
            drain: Some(drain),
        }
    }

    /// Sends `request` and reads until `reply` has arrived or the server closes.
    fn exchange(&self, request: &[u8], until: &[u8]) -> (Vec<u8>, bool) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(request).unwrap();
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        loop {
            match s.read(&mut tmp) {
                Ok(0) | Err(_) => return (buf, true),
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
            if !until.is_empty() && buf.ends_with(until) {
                return (buf, false);
            }
        }
    }

    fn exit_code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM, so that it exits as it does on a stop (and reports what faults it
        // injected); SIGKILL if it has not within the deadline.
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill only sends a signal, to our own child, not yet reaped.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let _ = self.exit_code();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }
}

#[test]
fn shutdown_is_refused_without_a() {
    let mut server = Server::start("");
    let (reply, closed) = server.exchange(b"shutdown\r\nmn\r\n", b"MN\r\n");
    assert_eq!(reply, b"ERROR: shutdown not enabled\r\nMN\r\n");
    assert!(!closed);
    assert!(server.child.try_wait().unwrap().is_none(), "still running");
}

#[test]
fn shutdown_with_a_stops_the_server() {
    for command in ["shutdown", "shutdown graceful"] {
        let mut server = Server::start("-A");
        let (reply, _) = server.exchange(b"shutdown x\r\nshutdown graceful x\r\nmn\r\n", b"MN\r\n");
        assert_eq!(
            reply,
            b"CLIENT_ERROR invalid shutdown mode\r\nCLIENT_ERROR invalid shutdown mode\r\nMN\r\n"
        );
        let (reply, closed) = server.exchange(format!("{command}\r\n").as_bytes(), b"");
        assert!(closed, "{command}: the connection is closed");
        assert_eq!(reply, b"", "{command}");
        assert_eq!(server.exit_code(), Some(0), "{command}: the server exits 0");
    }
}

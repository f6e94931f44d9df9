//! The real memcached for differential tests: starting it on a free port of 127.0.0.1
//! (killed on drop), and the reply normalisation both sides of a comparison go through.
//!
//! Included with `#[path]` by the engine's `tests/differential.rs` and by the memcached
//! example's `examples/tests/memcached_differential.rs`. Whether those tests run at all
//! is decided when they are built: each crate's `build.rs` looks for memcached (with
//! `find_memcached.rs`, as [`RealMemcached::start`] does) and, when it is missing outside
//! CI, sets the cfg `memcached_missing`, under which every test that needs it is
//! `#[ignore]`d, so `cargo test` counts it as ignored, never as passed.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "find_memcached.rs"]
mod find_memcached;

/// Whether this process runs as root (memcached then needs `-u root`): the effective uid
/// from `/proc/self/status` on Linux, from POSIX `id -u` where there is no `/proc`
/// (macOS, the BSDs, illumos).
fn is_root() -> bool {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        return status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
            .unwrap_or(false);
    }
    Command::new("id")
        .arg("-u")
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.trim_ascii() == b"0")
}

/// A memcached process on a free port of 127.0.0.1, killed on drop.
pub struct RealMemcached {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl RealMemcached {
    /// Start memcached with one worker thread, no UDP and `extra` flags.
    ///
    /// # Panics
    ///
    /// If memcached is not found (the tests that call this are ignored when the build
    /// script did not find it either, unless `CI` is set), or does not start.
    pub fn start(extra: &[&str]) -> RealMemcached {
        let Some(bin) = find_memcached::find_memcached() else {
            let why = if find_memcached::in_ci() {
                "memcached is required in CI (CI is set in the environment)"
            } else {
                "the build script found memcached, but this run does not"
            };
            panic!(
                "{why}: no `memcached` at $MEMCACHED, on the PATH, or in /usr/bin, \
                 /usr/local/bin or /usr/sbin; install Debian's package \
                 (apt-get install memcached) or set MEMCACHED=/path/to/memcached"
            );
        };
        for _attempt in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut cmd = Command::new(&bin);
            cmd.args([
                "-l",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "0",
                "-t",
                "1",
            ])
            // No background LRU threads: they briefly hold references to items, and
            // memcached does not increment an item in place (with space padding)
            // while something else references it, which would make replies depend
            // on timing.
            .args(["-o", "no_lru_maintainer,no_lru_crawler"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            if is_root() {
                cmd.args(["-u", "root"]);
            }
            let child = cmd.spawn().expect("memcached starts");
            let mut mc = RealMemcached {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            // Wait for the listener with a deadline: connect fails at once until
            // memcached listens.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = mc.child.try_wait() {
                    break; // e.g. the port was taken meanwhile: try another
                }
                if TcpStream::connect(mc.addr).is_ok() {
                    return mc;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = mc.child.kill();
        }
        panic!("memcached did not start");
    }

    /// A new connection to it, with Nagle off.
    #[allow(dead_code)] // not every including test connects this way
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect to memcached");
        s.set_nodelay(true).unwrap();
        s
    }
}

impl Drop for RealMemcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replaces CAS uniques in `VALUE` lines and meta replies (`c<cas>`) by their order of
/// first appearance (the two servers number them differently), and, with `version`, the
/// version string. In meta replies, a positive time to live (`t<n>`) and the seconds
/// since the last access (`l<n>`) are masked too: they depend on when each server's
/// clock ticks.
struct Normaliser {
    cas: Vec<Vec<u8>>,
    version: bool,
}

impl Normaliser {
    fn line(&mut self, line: &[u8], out: &mut Vec<u8>) {
        let toks: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        if self.version && line.starts_with(b"VERSION ") {
            out.extend_from_slice(b"VERSION <version>");
        } else if toks[0] == b"VALUE" && toks.len() == 5 {
            let i = match self.cas.iter().position(|c| c == toks[4]) {
                Some(i) => i,
                None => {
                    self.cas.push(toks[4].to_vec());
                    self.cas.len() - 1
                }
            };
            out.extend_from_slice(&toks[..4].join(&b' '));
            out.extend_from_slice(format!(" <cas{i}>").as_bytes());
        } else if toks[0] == b"ME" && toks.len() == 8 {
            // ME <key> exp= la= cas= fetch= cls= size=
            out.extend_from_slice(&toks[..2].join(&b' '));
            for tok in &toks[2..] {
                out.push(b' ');
                if let Some(cas) = tok.strip_prefix(b"cas=") {
                    let i = self.cas_index(cas);
                    out.extend_from_slice(format!("cas=<cas{i}>").as_bytes());
                } else if tok.starts_with(b"exp=") && *tok != b"exp=-1" {
                    out.extend_from_slice(b"exp=<exp>");
                } else if tok.starts_with(b"la=") {
                    out.extend_from_slice(b"la=<la>");
                } else {
                    out.extend_from_slice(tok);
                }
            }
        } else if is_meta_reply(toks[0]) {
            let start = if toks[0] == b"VA" { 2 } else { 1 };
            out.extend_from_slice(&toks[..start.min(toks.len())].join(&b' '));
            for tok in toks.iter().skip(start) {
                out.push(b' ');
                let digits = tok.len() > 1 && tok[1..].iter().all(u8::is_ascii_digit);
                match tok.first() {
                    Some(b'c') if digits => {
                        let i = self.cas_index(&tok[1..]);
                        out.extend_from_slice(format!("c<cas{i}>").as_bytes());
                    }
                    Some(b't') if digits => out.extend_from_slice(b"t<ttl>"),
                    Some(b'l') if digits => out.extend_from_slice(b"l<la>"),
                    _ => out.extend_from_slice(tok),
                }
            }
        } else {
            out.extend_from_slice(line);
        }
    }

    fn cas_index(&mut self, cas: &[u8]) -> usize {
        match self.cas.iter().position(|c| c == cas) {
            Some(i) => i,
            None => {
                self.cas.push(cas.to_vec());
                self.cas.len() - 1
            }
        }
    }

    fn reply(&mut self, buf: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < buf.len() {
            let Some(nl) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
                out.extend_from_slice(&buf[pos..]);
                break;
            };
            let line = &buf[pos..pos + nl];
            self.line(line, &mut out);
            out.extend_from_slice(b"\r\n");
            pos += nl + 2;
            if let Some(n) = block_len(line) {
                let end = (pos + n + 2).min(buf.len());
                out.extend_from_slice(&buf[pos..end]);
                pos = end;
            }
        }
        out
    }
}

/// The meta commands' status codes.
fn is_meta_reply(code: &[u8]) -> bool {
    matches!(code, b"HD" | b"VA" | b"EN" | b"NS" | b"EX" | b"NF" | b"MN")
}

/// The length of the data block a reply line announces: `VALUE <key> <flags> <n>`,
/// `VA <n> ...`.
pub fn block_len(line: &[u8]) -> Option<usize> {
    let field = if line.starts_with(b"VALUE ") {
        3
    } else if line.starts_with(b"VA ") {
        1
    } else {
        return None;
    };
    let n = line.split(|&b| b == b' ').nth(field)?;
    std::str::from_utf8(n)
        .ok()?
        .parse::<usize>()
        .ok()
        .or(Some(0))
}

/// How many `MN` replies (to `mn`) `buf` holds.
#[allow(dead_code)] // not every including test pipelines mn
pub fn count_mn(buf: &[u8]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while let Some(nl) = buf[pos..].windows(2).position(|w| w == b"\r\n") {
        let line = &buf[pos..pos + nl];
        if line == b"MN" {
            n += 1;
        }
        pos += nl + 2;
        if let Some(len) = block_len(line) {
            pos = (pos + len + 2).min(buf.len());
        }
    }
    n
}

/// Normalise a sequence of `(reply, connection closed)` steps (see `Normaliser`).
pub fn normalise(replies: &[(Vec<u8>, bool)], version: bool) -> Vec<(Vec<u8>, bool)> {
    let mut n = Normaliser {
        cas: Vec::new(),
        version,
    };
    replies.iter().map(|(r, c)| (n.reply(r), *c)).collect()
}

/// Bytes for an assertion message, escaped and cut to a readable length.
pub fn show(b: &[u8]) -> String {
    let s = b.escape_ascii().to_string();
    if s.len() > 3000 {
        format!("{}...[{} bytes]", &s[..3000], b.len())
    } else {
        s
    }
}

/// The CAS unique of `key` in a `gets` reply.
pub fn cas_of(reply: &[u8], key: &[u8]) -> String {
    let mut prefix = b"VALUE ".to_vec();
    prefix.extend_from_slice(key);
    prefix.push(b' ');
    let line = reply
        .split(|&b| b == b'\n')
        .find(|l| l.starts_with(&prefix))
        .expect("gets reply has the key");
    let line = std::str::from_utf8(line).unwrap().trim_end();
    line.rsplit(' ').next().unwrap().to_owned()
}

/// Concatenate byte strings.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

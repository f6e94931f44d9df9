//! Differential tests: the same bytes go over TCP to the real memcached and to the
//! example server (in-process), and the replies must be equal byte for byte, after
//! normalising only CAS unique values (compared by order of appearance).
//!
//! Needs Debian's `memcached` 1.6 at `$MEMCACHED`, on the PATH, or in `/usr/bin`,
//! `/usr/local/bin` or `/usr/sbin`; `.ci/run` installs it. Without it, every test here
//! is reported as ignored ("memcached not installed"): `build.rs` looks for it when the
//! tests are built and sets the cfg `memcached_missing` that ignores them. With `CI` set
//! (`CI=true`), they are never ignored: without memcached they fail, saying it is
//! required.
//!
//! Both servers run as `-U 0 -t 1`; memcached also without its background LRU
//! threads (`-o no_lru_maintainer,no_lru_crawler`), which make some of its replies
//! depend on timing. Each exchange ends with a sentinel (`set` then `get` of a
//! sentinel key) whose reply marks the end, so replies are read completely without
//! sleeping; exchanges that end with the server closing are read to EOF.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use evloop::{EventLoop, Exit, WakeHandle};
use evloop_examples::memcached::{self, Memcached};
use evloop_memcache_engine::{parse_args, Command};

// ---------------------------------------------------------------------------------
// The two servers.

#[path = "../../memcache-engine/tests/support/real_memcached.rs"]
mod real_memcached;
use real_memcached::{cas_of, cat, show, RealMemcached as Real};

/// Replies with CAS uniques masked; the version string is compared as it is.
fn normalise(replies: &[(Vec<u8>, bool)]) -> Vec<(Vec<u8>, bool)> {
    real_memcached::normalise(replies, false)
}

/// The example, on its own thread, stopped on drop.
struct Ours {
    addr: SocketAddr,
    stop: WakeHandle,
    thread: Option<JoinHandle<(Exit, EventLoop<Memcached>)>>,
}

impl Ours {
    fn start(extra: &[&str]) -> Ours {
        let mut args = vec!["-l", "127.0.0.1", "-p", "0", "-U", "0", "-t", "1"];
        args.extend_from_slice(extra);
        let Ok(Command::Run(config)) = parse_args(&args) else {
            panic!("flags {args:?}")
        };
        let (mut el, stop) = memcached::server(&config).unwrap();
        let addr = el.machine().local_addrs()[0];
        let thread = std::thread::spawn(move || {
            let exit = el.run().unwrap();
            (exit, el)
        });
        Ours {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        let _ = self.stop.wake();
        if let Some(t) = self.thread.take() {
            let (exit, _) = t.join().unwrap();
            if !std::thread::panicking() {
                assert_eq!(exit, Exit::Exited);
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Exchanges.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum End {
    /// The commands are complete: read every reply (up to the sentinel's).
    Replies,
    /// The server must close the connection: read until EOF.
    Close,
}

const SENTINEL: &[u8] = b"set __sentinel__ 0 0 8\r\nSENTINEL\r\nget __sentinel__\r\n";
const SENTINEL_REPLY: &[u8] = b"STORED\r\nVALUE __sentinel__ 0 8\r\nSENTINEL\r\nEND\r\n";
const DEADLINE: Duration = Duration::from_secs(10);

struct Conn {
    stream: TcpStream,
    closed: bool,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            closed: false,
        }
    }

    /// One read into `buf` before `deadline`; false at EOF, error or deadline.
    fn read_some(&mut self, buf: &mut Vec<u8>, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.stream.set_read_timeout(Some(left)).unwrap();
        let mut tmp = [0u8; 65536];
        match self.stream.read(&mut tmp) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(_) => {
                self.closed = true;
                false
            }
        }
    }

    /// Writes each chunk, then reads the replies; returns them and whether the server
    /// closed the connection.
    fn exchange(&mut self, chunks: &[&[u8]], end: End) -> (Vec<u8>, bool) {
        for c in chunks {
            if self.stream.write_all(c).is_err() {
                self.closed = true;
            }
        }
        let deadline = Instant::now() + DEADLINE;
        let mut buf = Vec::new();
        match end {
            End::Replies => {
                if self.stream.write_all(SENTINEL).is_err() {
                    self.closed = true;
                }
                while !buf.ends_with(SENTINEL_REPLY) {
                    if !self.read_some(&mut buf, deadline) {
                        break; // compared as it is: both servers should agree
                    }
                }
                if buf.ends_with(SENTINEL_REPLY) {
                    buf.truncate(buf.len() - SENTINEL_REPLY.len());
                }
            }
            End::Close => {
                while self.read_some(&mut buf, deadline) {}
                assert!(self.closed, "the server did not close the connection");
            }
        }
        (buf, self.closed)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

struct Session {
    conn: Conn,
    replies: Vec<(Vec<u8>, bool)>,
}

impl Session {
    fn step(&mut self, chunks: &[&[u8]], end: End) -> Vec<u8> {
        let (reply, closed) = self.conn.exchange(chunks, end);
        self.replies.push((reply.clone(), closed));
        reply
    }

    fn send(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.step(&[bytes], End::Replies)
    }
}

type Script = Box<dyn Fn(&mut Session)>;

/// Runs each script on a new connection to each server (the stores persist across
/// scripts; each script starts with `flush_all`) and compares the replies.
fn run_scripts(real: SocketAddr, ours: SocketAddr, scripts: Vec<(String, Script)>) {
    for (name, script) in scripts {
        let mut got = Vec::new();
        for addr in [real, ours] {
            let mut s = Session {
                conn: Conn::new(addr),
                replies: Vec::new(),
            };
            s.send(b"flush_all\r\n");
            script(&mut s);
            got.push(normalise(&s.replies));
        }
        let (m, e) = (&got[0], &got[1]);
        assert_eq!(m.len(), e.len(), "{name}: number of steps");
        for (i, (m, e)) in m.iter().zip(e).enumerate() {
            assert!(
                m == e,
                "case `{name}`, step {i}:\n  memcached: {} (closed: {})\n  evloop:    {} (closed: {})",
                show(&m.0),
                m.1,
                show(&e.0),
                e.1
            );
        }
    }
}

fn sends(steps: &[&[u8]]) -> Script {
    let steps: Vec<Vec<u8>> = steps.iter().map(|s| s.to_vec()).collect();
    Box::new(move |s| {
        for step in &steps {
            s.send(step);
        }
    })
}

fn sends_owned(steps: Vec<Vec<u8>>) -> Script {
    Box::new(move |s| {
        for step in &steps {
            s.send(step);
        }
    })
}

fn closes(bytes: Vec<u8>) -> Script {
    Box::new(move |s| {
        s.step(&[&bytes], End::Close);
    })
}

// ---------------------------------------------------------------------------------
// The cases.

fn protocol_scripts() -> Vec<(String, Script)> {
    let k250 = vec![b'k'; 250];
    let k251 = vec![b'k'; 251];
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let v = |n: usize| vec![b'v'; n];
    let scripts: Vec<(&str, Script)> = vec![
        (
            "storage commands",
            sends(&[
                b"set a 0 0 1\r\nx\r\nget a\r\n",
                b"add a 0 0 1\r\ny\r\nadd b 5 0 2\r\nbb\r\nreplace c 0 0 1\r\nz\r\nreplace a 7 0 3\r\nxyz\r\n",
                b"append a 9 0 2\r\n12\r\nprepend a 9 0 2\r\n00\r\nappend nokey 0 0 1\r\nq\r\nprepend nokey 0 0 1\r\nq\r\n",
                b"get a b c nokey a\r\ngets a b\r\nbget a\r\n",
                b"set f 4294967295 0 1\r\nx\r\nset g 4294967296 0 1\r\nx\r\nget f g\r\n",
                b"set e 0 0 0\r\n\r\nget e\r\nappend e 0 0 0\r\n\r\nget e\r\nprepend e 0 0 2\r\nab\r\nget e\r\n",
            ]),
        ),
        (
            "binary value",
            sends_owned(vec![cat(&[b"set bin 0 0 256\r\n", &all_bytes, b"\r\nget bin\r\ngets bin\r\n"])]),
        ),
        (
            "noreply",
            sends(&[
                b"set n 0 0 1 noreply\r\n1\r\nadd n 0 0 1 noreply\r\n2\r\nreplace n 0 0 1 noreply\r\n3\r\n",
                b"append n 0 0 1 noreply\r\n4\r\nprepend n 0 0 1 noreply\r\n5\r\nget n\r\n",
                b"incr n 1 noreply\r\ndecr n 1 noreply\r\ntouch n 0 noreply\r\nget n\r\n",
                b"delete n noreply\r\nget n\r\nflush_all noreply\r\nverbosity 1 noreply\r\n",
                b"set a 0 0 bad noreply\r\nget a\r\nincr nokey 1 noreply\r\nincr a x noreply\r\n",
                b"set a 0 0 2 noreply\r\nxyz\r\nget a\r\n",
            ]),
        ),
        (
            "malformed commands",
            sends(&[
                b"set\r\nset a\r\nset a 0\r\nset a 0 0\r\nset a 0 0 1 noreply extra\r\nadd a 0 0\r\n",
                b"incr\r\nincr a\r\nincr a 1 2 3\r\ndecr a\r\ntouch a\r\ntouch a 1 2 3\r\n",
                b"delete\r\nget\r\ngets\r\ngat\r\ngat 1\r\nverbosity\r\nflush_all 1 2 3\r\n",
                b"set a x 0 1\r\nx\r\nset a -1 0 1\r\nx\r\nset a 0 x 1\r\nx\r\nset a 0 0 x\r\nx\r\n",
                b"set a 0 0 -1\r\nset a 0 0 1.0\r\nx\r\nset a 0 0 4294967297\r\nx\r\nget a\r\n",
                b"incr a abc\r\nincr a -1\r\nincr a 18446744073709551616\r\ntouch a abc\r\n",
                b"bogus\r\nGet a\r\n\r\n \r\nVERSION\r\nshutdown\r\nstats foo\r\n",
                b"set a 0 0 2\r\nxyz\r\nget a\r\nset a 0 0 5\r\nab\r\n\r\nget a\r\nset a 0 0 1\nx\nget a\n",
            ]),
        ),
        (
            "keys",
            sends_owned(vec![
                cat(&[b"set ", &k250, b" 0 0 1\r\nx\r\nget ", &k250, b"\r\ntouch ", &k250, b" 0\r\n"]),
                cat(&[b"set ", &k251, b" 0 0 1\r\nx\r\nget ", &k251, b"\r\n"]),
                cat(&[b"set a 0 0 1\r\nx\r\nget a ", &k251, b" a\r\nincr ", &k251, b" 1\r\n"]),
                b"set a\tb 0 0 1\r\nx\r\nget a\tb a\r\nset \x01\x7f\xff 0 0 1\r\nx\r\nget \x01\x7f\xff\r\n".to_vec(),
                b"get a\x00b\r\nset q\x00 0 0 1\r\nx\r\nget q\r\nset  z  0  0  1 \r\nx\r\nget z   z\r\n".to_vec(),
            ]),
        ),
        (
            "too large",
            sends_owned(vec![
                cat(&[b"set k 0 0 1048516\r\n", &v(1048516), b"\r\nget k\r\n"]),
                cat(&[b"set k 0 0 1048517\r\n", &v(1048517), b"\r\nget k\r\n"]),
                cat(&[b"set k 0 0 1\r\nx\r\nset k 0 0 2000000\r\n", &v(2000000), b"\r\nget k\r\n"]),
                cat(&[b"set k 0 0 2000000\r\n", &v(2000000), b"XXget k\r\n"]),
                cat(&[b"set k 0 0 1048000\r\n", &v(1048000), b"\r\nappend k 0 0 1000\r\n", &v(1000), b"\r\n"]),
            ]),
        ),
        (
            "incr decr",
            sends(&[
                b"incr n 1\r\ndecr n 1\r\nset n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nget n\r\n",
                b"incr n 18446744073709551615\r\nincr n 2\r\nget n\r\ngets n\r\nincr n 1\r\ngets n\r\n",
                b"set n 0 0 3\r\nabc\r\nincr n 1\r\nset n 0 0 3\r\n 12\r\nincr n 1\r\nget n\r\n",
                b"set n 0 0 3\r\n100\r\ndecr n 1\r\nget n\r\ndecr n 99\r\nget n\r\ndecr n 1\r\n",
            ]),
        ),
        (
            "touch gat expiry delete",
            sends(&[
                b"set t 0 0 1\r\nx\r\ntouch t 100\r\ntouch nokey 100\r\ngat 100 t nokey t\r\ngats 0 t\r\n",
                b"gat -1 t\r\nget t\r\nset t 0 0 1\r\nx\r\ntouch t -1\r\nget t\r\ntouch t 0\r\n",
                b"set t 0 -1 1\r\nx\r\nget t\r\nset t 0 2592000 1\r\nx\r\nget t\r\nset t 0 1000000000 1\r\nx\r\nget t\r\n",
                b"set d 0 0 1\r\nx\r\ndelete d\r\ndelete d\r\nset d 0 0 1\r\nx\r\ndelete d 0\r\ndelete d 1\r\n",
            ]),
        ),
        (
            "cas",
            Box::new(|s| {
                s.send(b"set c 0 0 1\r\nx\r\n");
                let cas = cas_of(&s.send(b"gets c\r\n"), b"c");
                s.send(format!("cas c 0 0 1 {cas}\r\ny\r\ncas c 0 0 1 {cas}\r\nz\r\nget c\r\n").as_bytes());
                s.send(b"cas c 0 0 1 0\r\nz\r\ncas nokey 0 0 1 1\r\nz\r\n");
                let cas = cas_of(&s.send(b"gets c\r\n"), b"c");
                s.send(format!("append c 0 0 1\r\n!\r\ncas c 0 0 1 {cas}\r\nw\r\ngets c\r\n").as_bytes());
            }),
        ),
        (
            "flush_all",
            sends(&[
                b"set a 0 0 1\r\nx\r\nflush_all\r\nget a\r\nset a 0 0 1\r\nx\r\nget a\r\n",
                b"flush_all 0\r\nget a\r\nflush_all noreply\r\nflush_all abc\r\nflush_all 1000\r\nget a\r\n",
            ]),
        ),
        (
            "misc",
            sends(&[
                b"version\r\nversion extra\r\nverbosity 1\r\nverbosity 5\r\nverbosity 0\r\n",
                b"stats reset\r\nstats detail on\r\nstats detail dump\r\nstats detail off\r\n",
                b"cache_memlimit 100\r\ncache_memlimit abc\r\ncache_memlimit 64\r\n",
            ]),
        ),
        ("quit", closes(b"set a 0 0 1\r\nx\r\nget a\r\nversion\r\nquit\r\nget a\r\n".to_vec())),
        ("http request", closes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec())),
        ("http after replies", closes(b"set a 0 0 1\r\nx\r\nget a\r\nHEAD /x HTTP/1.0\r\n".to_vec())),
        ("line of 2049 bytes without newline", closes(vec![b'x'; 2049])),
        ("line beyond the read buffer", closes(cat(&[&[b'x'; 20000], b"\r\n"]))),
        ("long line after replies", closes(cat(&[b"get a\r\nversion\r\n", &[b'x'; 3000]]))),
        (
            "long get line",
            sends_owned(vec![{
                let keys: Vec<u8> = (0..3000).flat_map(|i| format!("k{i} ").into_bytes()).collect();
                cat(&[b"set k2999 0 0 1\r\nx\r\nget ", &keys, b"\r\n"])
            }]),
        ),
        (
            "split commands",
            Box::new(|s| {
                s.step(&[b"set a 0 0 10\r\nabc", b"defghij\r\nget a", b"\r\n"], End::Replies);
                s.step(&[b"get a\r\nset b 0 0 3\r\nab", b"c\r", b"\nget b\r\n"], End::Replies);
            }),
        ),
        (
            "pipeline",
            sends_owned(vec![
                b"set p 0 0 1\r\n1\r\nincr p 1\r\nget p\r\nbogus\r\n\r\ndelete p\r\nversion\r\ntouch p 1\r\n"
                    .repeat(40),
                cat(&[&b"set q 0 0 1 noreply\r\nq\r\nincr q 1 noreply\r\n".repeat(30), b"get q\r\n"]),
                (0..500)
                    .flat_map(|i| format!("set p{i} 0 0 {}\r\n{i}\r\nget p{i} p{}\r\n", i.to_string().len(), i / 2).into_bytes())
                    .collect(),
            ]),
        ),
    ];
    let mut v: Vec<(String, Script)> = scripts
        .into_iter()
        .map(|(n, s)| (n.to_owned(), s))
        .collect();
    // The meta commands through the server: values referred to, not copied, and large
    // meta gets across its 256 KiB output limit.
    let big = vec![b'm'; 700_000];
    v.push((
        "meta commands".to_owned(),
        sends_owned(vec![
            b"ms a 3 T0 F5 c k O1\r\nabc\r\nmg a v f s t c k h O2\r\nmg a v q\r\nmg none v q k\r\nmn\r\n".to_vec(),
            b"ma n N0 J10 v\r\nma n MD D3 v c\r\nmd n q\r\nmd n\r\nms Zm9v 2 b MA\r\nhi\r\nms Zm9v 2 b k\r\nhi\r\nmg Zm9v b k v\r\nme foo\r\n".to_vec(),
            b"mg viv N30 v c\r\nmg viv v c\r\nmd viv I\r\nmg viv v c\r\nms viv 1 I C1\r\nx\r\nmg viv\r\n".to_vec(),
            cat(&[b"ms big 700000\r\n", &big, b"\r\n"]),
            b"mg big v\r\nmg big s v k\r\nmg big v q\r\nmn\r\nmg a v\r\nmg big v\r\nget big a\r\nmg big v\r\n".to_vec(),
            b"set n 0 0 3\r\n100\r\nmg n v\r\nincr n 1\r\nma n MD D100 v\r\nget n\r\n".to_vec(),
        ]),
    ));
    // memcached processes 20 requests per read event (21 in the first batch), flushing
    // after each `get`; an abrupt close drops what it has not flushed.
    for n in [1usize, 20, 21, 22, 41, 62] {
        v.push((
            format!("versions then http (n = {n})"),
            closes(cat(&[&b"version\r\n".repeat(n), b"GET / HTTP/1.1\r\n"])),
        ));
        v.push((
            format!("get, sets then http (n = {n})"),
            closes(cat(&[
                b"get a\r\n",
                &b"set a 0 0 1\r\nx\r\n".repeat(n),
                b"GET / HTTP/1.1\r\n",
            ])),
        ));
    }
    v
}

// ---------------------------------------------------------------------------------
// The tests.

#[test]
#[cfg_attr(
    memcached_missing,
    ignore = "memcached not installed (apt-get install memcached, or set MEMCACHED)"
)]
fn replies_match_memcached() {
    let real = Real::start(&[]);
    let ours = Ours::start(&[]);
    run_scripts(real.addr, ours.addr, protocol_scripts());
}

#[test]
#[cfg_attr(
    memcached_missing,
    ignore = "memcached not installed (apt-get install memcached, or set MEMCACHED)"
)]
fn item_size_flag_matches_memcached() {
    let real = Real::start(&["-I", "2m"]);
    let ours = Ours::start(&["-I", "2m"]);
    let v = |n: usize| vec![b'v'; n];
    let mut scripts: Vec<(String, Script)> = Vec::new();
    for n in [1048517usize, 2097092, 2097093, 3000000] {
        scripts.push((
            format!("value of {n} bytes with -I 2m"),
            sends_owned(vec![cat(&[
                format!("set k 0 0 {n}\r\n").as_bytes(),
                &v(n),
                b"\r\nget nothing\r\n",
            ])]),
        ));
    }
    run_scripts(real.addr, ours.addr, scripts);
}

/// `stats`: the connection counts and item counters are memcached's after the same
/// traffic on fresh servers.
#[test]
#[cfg_attr(
    memcached_missing,
    ignore = "memcached not installed (apt-get install memcached, or set MEMCACHED)"
)]
fn stats_match_memcached() {
    let real = Real::start(&[]);
    let ours = Ours::start(&[]);
    // `Real::start` made (and closed) one connection to see memcached listening: the
    // same to ours, closed by the server itself so that it is counted before we go on.
    Conn::new(ours.addr).exchange(&[b"quit\r\n"], End::Close);
    let mut stats = Vec::new();
    for addr in [real.addr, ours.addr] {
        // Three clients, each answered (so accepted), then a fourth asks.
        let mut held: Vec<Conn> = (0..3).map(|_| Conn::new(addr)).collect();
        for c in &mut held {
            c.exchange(&[b"set a 0 0 1\r\nx\r\nget a b\r\n"], End::Replies);
        }
        let mut c = Conn::new(addr);
        let (reply, _) = c.exchange(&[b"stats\r\n"], End::Replies);
        let text = String::from_utf8(reply).unwrap();
        let map: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("STAT "))
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        stats.push(map);
    }
    let get = |m: &[(String, String)], k: &str| {
        m.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no stat {k}"))
    };
    for k in [
        "max_connections",
        "curr_connections",
        "total_connections",
        "rejected_connections",
        "connection_structures",
        "threads",
        "curr_items",
        "total_items",
        "cmd_get",
        "cmd_set",
        "get_hits",
        "get_misses",
        "evictions",
        "limit_maxbytes",
        "bytes",
        "version",
    ] {
        assert_eq!(get(&stats[0], k), get(&stats[1], k), "stat {k}");
    }
    for k in ["pid", "uptime", "time"] {
        let (a, b) = (get(&stats[0], k), get(&stats[1], k));
        assert!(
            a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok(),
            "{k}: {a} {b}"
        );
    }
    // Every field we print is one of memcached's, in memcached's order.
    let names: Vec<&str> = stats[0].iter().map(|(k, _)| k.as_str()).collect();
    let mut at = 0;
    for (k, _) in &stats[1] {
        let Some(i) = names[at..].iter().position(|n| n == k) else {
            panic!("stat `{k}` is not among memcached's, or out of its order");
        };
        at += i + 1;
    }
}

/// A client that pipelines big `get`s and never reads: both servers go on serving the
/// others, and the slow client's replies, when it reads at last, are the same.
#[test]
#[cfg_attr(
    memcached_missing,
    ignore = "memcached not installed (apt-get install memcached, or set MEMCACHED)"
)]
fn slow_reader_does_not_stall_others() {
    let real = Real::start(&[]);
    let ours = Ours::start(&[]);
    let big = vec![b'b'; 300_000];
    let mut results = Vec::new();
    for addr in [real.addr, ours.addr] {
        let mut setup = Conn::new(addr);
        setup.exchange(
            &[&cat(&[b"set big 0 0 300000\r\n", &big, b"\r\n"])],
            End::Replies,
        );
        let mut slow = Conn::new(addr);
        slow.stream
            .set_write_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let req = b"get big\r\n".repeat(10_000);
        let mut sent = 0;
        for _ in 0..1000 {
            // Until our own send buffer is full too: the server stopped reading.
            if slow.stream.write_all(&req).is_err() {
                break;
            }
            sent += 1;
        }
        assert!(
            sent < 1000,
            "the server kept reading from a client that does not read"
        );
        // Others are served meanwhile, and correctly.
        let mut others = Vec::new();
        for i in 0..20 {
            let mut c = Conn::new(addr);
            others.push(c.exchange(
                &[format!("set o{i} 0 0 1\r\n{}\r\nget o{i} big\r\n", i % 10).as_bytes()],
                End::Replies,
            ));
        }
        // The slow client's first replies are whole.
        let mut head = vec![0u8; 2 * (300_000 + 27)];
        slow.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        slow.stream.read_exact(&mut head).unwrap();
        results.push((others, head));
    }
    assert!(
        results[0].0 == results[1].0,
        "replies to the other clients differ"
    );
    assert!(
        results[0].1 == results[1].1,
        "the slow client's replies differ"
    );
}

//! Differential tests of what the example does that memcached does not: stop a
//! `process` call at its output limit or keys per call (`Next::Pause`) and go on once
//! the replies are written, with replies that refer to stored values. The bytes must
//! still be memcached's: the same traffic goes to the real memcached and to the
//! example (in-process), and the replies are compared byte for byte (CAS uniques by
//! order of appearance), as in `memcached_differential.rs`.
//!
//! Skipped (reported as ignored) when memcached is not installed, outside CI.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use evloop::WakeHandle;
use evloop_examples::memcached::{self, KEYS_PER_CALL, OUT_LIMIT};
use evloop_memcache_engine::{parse_args, Command};

#[allow(dead_code)] // not every helper is used here
#[path = "../../memcache-engine/tests/support/real_memcached.rs"]
mod real_memcached;
use real_memcached::{normalise, show, RealMemcached as Real};

const SENTINEL: &[u8] = b"set __sentinel__ 0 0 8\r\nSENTINEL\r\nget __sentinel__\r\n";
const SENTINEL_REPLY: &[u8] = b"STORED\r\nVALUE __sentinel__ 0 8\r\nSENTINEL\r\nEND\r\n";
const DEADLINE: Duration = Duration::from_secs(20);

/// The example on its own thread, stopped on drop.
struct Ours {
    addr: SocketAddr,
    stop: WakeHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ours {
    fn start() -> Ours {
        let args = ["-l", "127.0.0.1", "-p", "0", "-U", "0", "-t", "1"];
        let Ok(Command::Run(config)) = parse_args(args) else {
            panic!("flags")
        };
        let (mut el, stop) = memcached::server(&config).unwrap();
        let addr = el.machine().local_addrs()[0];
        let thread = std::thread::spawn(move || {
            el.run().unwrap();
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
            t.join().unwrap();
        }
    }
}

/// Writes `bytes` and the sentinel, then reads every reply up to the sentinel's.
fn exchange(s: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    s.write_all(bytes).unwrap();
    s.write_all(SENTINEL).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 1 << 16];
    while !buf.ends_with(SENTINEL_REPLY) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no sentinel in time: {}", show(&buf));
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut tmp) {
            Ok(0) => panic!("closed: {}", show(&buf)),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("{e}"),
        }
    }
    buf.truncate(buf.len() - SENTINEL_REPLY.len());
    buf
}

/// Runs each script (a list of writes, each followed by reading all replies) on a new
/// connection to each server, and compares the replies.
fn compare(real: SocketAddr, ours: SocketAddr, scripts: &[(&str, Vec<Vec<u8>>)]) {
    for (name, steps) in scripts {
        let mut got = Vec::new();
        for addr in [real, ours] {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            exchange(&mut s, b"flush_all\r\n");
            let replies: Vec<(Vec<u8>, bool)> = steps
                .iter()
                .map(|step| (exchange(&mut s, step), false))
                .collect();
            got.push(normalise(&replies, false));
        }
        for (i, (m, o)) in got[0].iter().zip(&got[1]).enumerate() {
            assert!(
                m == o,
                "`{name}`, step {i}:\n  memcached: {}\n  example:   {}",
                show(&m.0),
                show(&o.0)
            );
        }
    }
}

fn set(key: &str, flags: u32, value: &[u8]) -> Vec<u8> {
    let mut v = format!("set {key} {flags} 0 {}\r\n", value.len()).into_bytes();
    v.extend_from_slice(value);
    v.extend_from_slice(b"\r\n");
    v
}

/// Twenty values of 60 KB: a `get` of them all is over the output limit several
/// times.
fn big_values() -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..20u8 {
        v.extend(set(&format!("v{i}"), u32::from(i), &vec![b'a' + i; 60_000]));
    }
    v
}

fn keys(prefix: &str, n: usize) -> String {
    (0..n).map(|i| format!(" {prefix}{}", i % 20)).collect()
}

#[test]
#[cfg_attr(
    memcached_missing,
    ignore = "memcached not installed (apt-get install memcached, or set MEMCACHED)"
)]
fn paused_gets_reply_as_memcached() {
    // The scripts must reach the limits for this test to mean anything.
    const { assert!(46 * 60_000 > 4 * OUT_LIMIT && 3000 > 2 * KEYS_PER_CALL) };
    let real = Real::start(&[]);
    let ours = Ours::start();
    let small: Vec<u8> = (0..20)
        .flat_map(|i| set(&format!("s{i}"), 0, b"x"))
        .collect();
    let scripts: Vec<(&str, Vec<Vec<u8>>)> =
        vec![
            (
                "one get over the output limit, then more commands",
                vec![
                    big_values(),
                    format!(
                        "get{} miss v0 v5\r\nversion\r\nincr v0 1\r\nget v3\r\n",
                        keys("v", 20)
                    )
                    .into_bytes(),
                ],
            ),
            (
                "gets, gat and gats over the output limit",
                vec![
                    big_values(),
                    format!(
                        "gets{k}\r\ngat 100{k}\r\ngats 0{k}\r\nget v1\r\n",
                        k = keys("v", 20)
                    )
                    .into_bytes(),
                ],
            ),
            (
                "3,000 keys in one get (keys per call)",
                vec![
                    small.clone(),
                    format!("get{} nothing\r\nget s1\r\n", keys("s", 3000)).into_bytes(),
                ],
            ),
            (
                "an over-long key at the end of a long line",
                vec![
                    big_values(),
                    format!("get{} {}\r\nget v2\r\n", keys("v", 40), "k".repeat(251)).into_bytes(),
                ],
            ),
            (
                "pipelined gets over the output limit",
                vec![big_values(), b"get v0\r\nget v1 v2\r\n".repeat(30)],
            ),
            (
                "incr and decr of a value a pending reply refers to",
                vec![
                b"set n 0 0 2\r\n10\r\nget n n n\r\ndecr n 1\r\nget n\r\nincr n 100\r\nget n\r\n"
                    .to_vec(),
                format!("set n 0 0 2\r\n10\r\nget{} n\r\ndecr n 3\r\ngets n\r\n", keys("v", 20))
                    .into_bytes(),
            ],
            ),
        ];
    compare(real.addr, ours.addr, &scripts);
}

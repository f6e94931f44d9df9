//! Drives the memcached example in-process (127.0.0.1, any free port) with the
//! `memcache` client crate over the ASCII protocol: every storage and retrieval
//! command, counters, expiry, flush, stats and version, many keys, values at the item
//! size limit, many clients at once, the `-c` limit, and a client that stops reading.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{RwLock, RwLockReadGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use evloop::backends::Backend;
use evloop::{EventLoop, Exit, WakeHandle};
use evloop_examples::memcached::{self, Memcached};
use evloop_memcache_engine::{parse_args, Command, Config, Store};
use memcache::{Client, MemcacheError};

/// `connection_limit_of_5000_is_honoured` holds thousands of fds: while it runs, a server
/// started by a test beside it (the harness runs them on parallel threads) would get fd
/// numbers past select(2)'s FD_SETSIZE, which the select backend refuses, as documented.
/// It takes this lock to write, every other test to read.
static FDS: RwLock<()> = RwLock::new(());

/// For a test that needs few fds: waits while the 5000-connection test runs.
fn few_fds() -> RwLockReadGuard<'static, ()> {
    FDS.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A server running on its own thread, stopped (and checked) on drop.
struct Server {
    addr: SocketAddr,
    stop: WakeHandle,
    thread: Option<JoinHandle<(Exit, EventLoop<Memcached>)>>,
}

impl Server {
    fn start(flags: &[&str]) -> Server {
        let mut args = vec!["-p", "0", "-t", "1", "-U", "0"];
        args.extend_from_slice(flags);
        let Command::Run(config) = parse_args(&args).unwrap() else {
            panic!("flags {args:?}")
        };
        Server::with_config(&config)
    }

    fn with_config(config: &Config) -> Server {
        let (mut el, stop) = memcached::server(config).unwrap();
        let addr = el.machine().local_addrs()[0];
        let thread = std::thread::spawn(move || {
            let exit = el.run().unwrap();
            (exit, el)
        });
        Server {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn client(&self) -> Client {
        let c = Client::connect(format!(
            "memcache://{}?protocol=ascii&timeout=10",
            self.addr
        ))
        .unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    }

    fn raw(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.wake().unwrap();
        if let Some(t) = self.thread.take() {
            let (exit, _el) = t.join().unwrap();
            if !std::thread::panicking() {
                assert_eq!(exit, Exit::Exited);
            }
        }
    }
}

/// Reads until `buf` ends with `end` (or the deadline passes, which fails).
fn read_until(s: &mut TcpStream, end: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = Vec::new();
    let mut tmp = [0u8; 65536];
    while !buf.ends_with(end) {
        assert!(
            Instant::now() < deadline,
            "no {:?} in time",
            end.escape_ascii()
        );
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0, "closed early: {}", buf.escape_ascii());
        buf.extend_from_slice(&tmp[..n]);
    }
    buf
}

#[test]
fn storage_commands() {
    let _few = few_fds();
    let server = Server::start(&[]);
    let c = server.client();
    c.set("a", "1", 0).unwrap();
    assert_eq!(c.get::<String>("a").unwrap().as_deref(), Some("1"));
    assert_eq!(c.get::<String>("missing").unwrap(), None);

    // add only when absent, replace only when present.
    // (The crate maps NOT_STORED to Ok: check the values instead.)
    c.add("a", "2", 0).unwrap();
    assert_eq!(c.get::<String>("a").unwrap().as_deref(), Some("1"));
    c.add("b", "2", 0).unwrap();
    c.replace("nope", "x", 0).unwrap();
    assert_eq!(c.get::<String>("nope").unwrap(), None);
    c.replace("b", "3", 0).unwrap();
    assert_eq!(c.get::<String>("b").unwrap().as_deref(), Some("3"));

    // append and prepend.
    c.append("a", "x").unwrap();
    c.prepend("a", "y").unwrap();
    assert_eq!(c.get::<String>("a").unwrap().as_deref(), Some("y1x"));
    c.append("nope", "x").unwrap();
    assert_eq!(c.get::<String>("nope").unwrap(), None);

    // Flags round-trip: the crate stores u32 flags with integers.
    c.set("n", 42u64, 0).unwrap();
    assert_eq!(c.get::<u64>("n").unwrap(), Some(42));

    // delete.
    assert!(c.delete("b").unwrap());
    assert!(!c.delete("b").unwrap());
    assert_eq!(c.get::<String>("b").unwrap(), None);
}

#[test]
fn cas_incr_decr_touch() {
    let _few = few_fds();
    let server = Server::start(&[]);
    let c = server.client();
    c.set("k", "v1", 0).unwrap();
    let (_, _, cas) = c.get::<(Vec<u8>, u32, Option<u64>)>("k").unwrap().unwrap();
    let cas = cas.expect("gets gives a cas unique");
    assert!(c.cas("k", "v2", 0, cas).unwrap());
    // The unique changed with the modification: the old one no longer matches.
    assert!(!c.cas("k", "v3", 0, cas).unwrap());
    assert_eq!(c.get::<String>("k").unwrap().as_deref(), Some("v2"));
    let (_, _, cas2) = c.get::<(Vec<u8>, u32, Option<u64>)>("k").unwrap().unwrap();
    assert_ne!(cas2, Some(cas));

    c.set("counter", "10", 0).unwrap();
    assert_eq!(c.increment("counter", 5).unwrap(), 15);
    assert_eq!(c.decrement("counter", 20).unwrap(), 0); // decr stops at 0
    c.set("counter", u64::MAX.to_string().as_str(), 0).unwrap();
    assert_eq!(c.increment("counter", 2).unwrap(), 1); // incr wraps
    assert!(c.increment("missing", 1).is_err());
    c.set("text", "abc", 0).unwrap();
    assert!(matches!(
        c.increment("text", 1),
        Err(MemcacheError::ClientError(_))
    ));

    assert!(c.touch("k", 100).unwrap());
    assert!(!c.touch("missing", 100).unwrap());
    // Expiry: an item set to expire in the past is gone at once.
    let mut s = server.raw();
    s.write_all(b"set gone 0 -1 1\r\nx\r\nget gone\r\n")
        .unwrap();
    assert_eq!(read_until(&mut s, b"END\r\n"), b"STORED\r\nEND\r\n");
}

#[test]
fn flush_stats_version() {
    let _few = few_fds();
    let server = Server::start(&[]);
    let c = server.client();
    for i in 0..10 {
        c.set(&format!("f{i}"), i, 0).unwrap();
    }
    c.flush().unwrap();
    for i in 0..10 {
        assert_eq!(c.get::<u32>(&format!("f{i}")).unwrap(), None);
    }
    let versions = c.version().unwrap();
    assert_eq!(versions.len(), 1);
    assert!(versions[0].1.starts_with("1.6."), "{versions:?}");

    c.set("s", "x", 0).unwrap();
    let _ = c.get::<String>("s").unwrap();
    let _ = c.get::<String>("nothing").unwrap();
    // The crate's `stats()` stops at the first line (it reads `STAT` lines as the
    // end), so ask on a plain socket.
    let mut raw = server.raw();
    let mut stat = |k: &str| stat(&mut raw, k);
    assert_eq!(stat("pid"), std::process::id().to_string());
    assert_eq!(stat("threads"), "1");
    assert_eq!(stat("curr_items"), "1");
    assert_eq!(stat("get_hits"), "1");
    assert_eq!(stat("get_misses"), "11");
    assert_eq!(stat("limit_maxbytes"), (64u64 << 20).to_string());
    // This client's connection (its pool holds one).
    assert!(stat("curr_connections").parse::<u64>().unwrap() >= 1);
    assert!(stat("uptime").parse::<u64>().unwrap() >= 2);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(stat("time").parse::<u64>().unwrap().abs_diff(now) <= 2);
}

#[test]
fn many_keys_and_multi_get() {
    let _few = few_fds();
    let server = Server::start(&[]);
    let c = server.client();
    for i in 0..5000 {
        c.set(&format!("key:{i}"), format!("value-{i}").as_str(), 0)
            .unwrap();
    }
    for i in (0..5000).step_by(7) {
        assert_eq!(
            c.get::<String>(&format!("key:{i}")).unwrap(),
            Some(format!("value-{i}"))
        );
    }
    let keys: Vec<String> = (0..200).map(|i| format!("key:{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got = c.gets::<String>(&refs).unwrap();
    assert_eq!(got.len(), 200);
    assert_eq!(got["key:199"], "value-199");
    assert_eq!(stat(&mut server.raw(), "curr_items"), "5000");
}

#[test]
fn values_at_the_item_size_limit() {
    let _few = few_fds();
    for (flags, limit) in [(&[][..], 1usize << 20), (&["-I", "2m"][..], 2 << 20)] {
        let server = Server::start(flags);
        let c = server.client();
        // The largest value that fits: memcached counts header, key, value and CAS.
        let key = "big";
        let mut n = limit;
        while Store::item_size(key.len(), 0, n) > limit {
            n -= 1;
        }
        let value: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
        c.set(key, &value[..], 0).unwrap();
        assert!(c.get::<Vec<u8>>(key).unwrap() == Some(value.clone()));
        // One byte more is refused, and (as memcached does) the old value is gone.
        let over: Vec<u8> = vec![b'o'; n + 1];
        match c.set(key, &over[..], 0) {
            Err(MemcacheError::ServerError(e)) => {
                assert!(e.to_string().contains("too large"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.get::<Vec<u8>>(key).unwrap(), None);
        // The connection is still in step: the next command works.
        c.set("after", "ok", 0).unwrap();
        assert_eq!(c.get::<String>("after").unwrap().as_deref(), Some("ok"));
    }
}

#[test]
fn concurrent_clients() {
    let _few = few_fds();
    let server = Server::start(&[]);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = server.client();
            std::thread::spawn(move || {
                for i in 0..500 {
                    let k = format!("t{t}:{i}");
                    c.set(&k, i, 0).unwrap();
                    assert_eq!(c.get::<u32>(&k).unwrap(), Some(i));
                    c.increment(&k, 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let c = server.client();
    assert_eq!(c.get::<u32>("t3:499").unwrap(), Some(500));
}

#[test]
fn connection_limit_refuses_politely() {
    let _few = few_fds();
    let server = Server::start(&["-c", "2"]);
    let mut a = server.raw();
    let mut b = server.raw();
    // Both are served (this also proves both were accepted before the third).
    a.write_all(b"version\r\n").unwrap();
    b.write_all(b"version\r\n").unwrap();
    read_until(&mut a, b"\r\n");
    read_until(&mut b, b"\r\n");
    let mut third = server.raw();
    let mut got = Vec::new();
    third.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ERROR Too many open connections\r\n");
    drop(a);
    // Once one has gone (the server noticed: b's stats say so), a new one is served.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stat(&mut b, "curr_connections") != "1" {
        assert!(Instant::now() < deadline, "a's close was not noticed");
    }
    let mut d = server.raw();
    d.write_all(b"version\r\n").unwrap();
    assert!(read_until(&mut d, b"\r\n").starts_with(b"VERSION "));
    assert_eq!(stat(&mut b, "rejected_connections"), "1");
}

/// `-c 5000` means 5000 connections served at once, beyond the loop's default of 1024
/// sources (the connection slab is sized by `-c` when the server starts), and the
/// 5001st refused politely.
#[test]
fn connection_limit_of_5000_is_honoured() {
    let _many = FDS.write().unwrap_or_else(|poisoned| poisoned.into_inner());
    let server = Server::start(&["-c", "5000"]);
    // A backend that cannot watch every fd number (select(2): below FD_SETSIZE) serves
    // the connections it can watch and tells the others the server is full, as
    // memcached tells a client past -c; the server goes on.
    let max_fd = <memcached::ServerBackend as Backend>::MAX_FD;
    // One at a time, each served before the next connects (so none waits in the
    // listen backlog): every one of them was accepted and is being served.
    let mut conns: Vec<TcpStream> = Vec::with_capacity(5000);
    let mut full = 0;
    for _ in 0..5000 {
        let mut c = server.raw();
        c.write_all(b"version\r\n").unwrap();
        let mut reply = Vec::new();
        let mut byte = [0u8];
        while !reply.ends_with(b"\r\n") && c.read(&mut byte).unwrap() == 1 {
            reply.push(byte[0]);
        }
        if reply == b"ERROR Too many open connections\r\n" && max_fd.is_some() {
            full += 1;
            continue;
        }
        assert!(reply.starts_with(b"VERSION "), "{}", reply.escape_ascii());
        conns.push(c);
    }
    match max_fd {
        None => assert_eq!(full, 0),
        // Each served connection takes two fds here (the client's and the server's).
        Some(max) => assert!(conns.len() > (max as usize) / 2 - 100 && full > 0),
    }
    let served = conns.len();
    assert_eq!(stat(&mut conns[0], "curr_connections"), served.to_string());
    let mut over = server.raw();
    let mut got = Vec::new();
    over.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ERROR Too many open connections\r\n");
}

/// One value of `stats`, asked on `s`.
fn stat(s: &mut TcpStream, name: &str) -> String {
    s.write_all(b"stats\r\n").unwrap();
    let reply = String::from_utf8(read_until(s, b"END\r\n")).unwrap();
    let prefix = format!("STAT {name} ");
    reply
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no stat {name}"))
        .to_owned()
}

#[test]
fn a_client_that_does_not_read_stalls_nobody() {
    let _few = few_fds();
    let server = Server::start(&[]);
    let c = server.client();
    let value = vec![b'v'; 500_000];
    c.set("big", &value[..], 0).unwrap();
    // A client asks for the big value over and over and never reads the replies: the
    // server fills the socket buffers, then stops reading from that client.
    let mut slow = server.raw();
    slow.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let req = b"get big\r\n".repeat(100);
    for _ in 0..100 {
        if slow.write_all(&req).is_err() {
            break; // our send buffer is full too: the server stopped reading
        }
    }
    // Meanwhile the others are served.
    for i in 0..200 {
        c.set(&format!("o{i}"), i, 0).unwrap();
        assert_eq!(c.get::<u32>(&format!("o{i}")).unwrap(), Some(i));
    }
    let other = server.client();
    assert_eq!(other.get::<u32>("o7").unwrap(), Some(7));
    // And the slow client, when it reads at last, gets whole replies in order.
    let mut head = vec![0u8; 20];
    slow.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"VALUE big 0 500000\r\n");
}

#[test]
fn malformed_commands_do_not_disturb_others() {
    let _few = few_fds();
    let server = Server::start(&[]);
    let c = server.client();
    c.set("k", "good", 0).unwrap();
    let mut bad = server.raw();
    bad.write_all(b"bogus\r\nset k 0 0 3\r\nabcdef\r\nget k\r\n")
        .unwrap();
    assert_eq!(
        read_until(&mut bad, b"END\r\n"),
        b"ERROR\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE k 0 4\r\ngood\r\nEND\r\n"
    );
    // A line that never ends closes that connection only.
    let mut runaway = server.raw();
    runaway.write_all(&[b'x'; 20_000]).unwrap();
    let mut rest = Vec::new();
    let _ = runaway.read_to_end(&mut rest);
    assert_eq!(c.get::<String>("k").unwrap().as_deref(), Some("good"));
}

#[test]
fn quit_closes_after_replying() {
    let _few = few_fds();
    let server = Server::start(&[]);
    let mut s = server.raw();
    s.write_all(b"set q 0 0 1\r\nx\r\nget q\r\nquit\r\nget q\r\n")
        .unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"STORED\r\nVALUE q 0 1\r\nx\r\nEND\r\n");
}

#[test]
fn pipelined_requests_beyond_the_per_event_budget() {
    let _few = few_fds();
    // 1000 requests in one write: the connection yields every 20 (memcached's -R) and
    // every reply comes, in order.
    let server = Server::start(&["-R", "20"]);
    let mut s = server.raw();
    let mut req = Vec::new();
    let mut want = Vec::new();
    for i in 0..1000 {
        req.extend_from_slice(
            format!(
                "set p{i} 0 0 {}\r\n{i}\r\nget p{i}\r\n",
                i.to_string().len()
            )
            .as_bytes(),
        );
        want.extend_from_slice(
            format!(
                "STORED\r\nVALUE p{i} 0 {}\r\n{i}\r\nEND\r\n",
                i.to_string().len()
            )
            .as_bytes(),
        );
    }
    s.write_all(&req).unwrap();
    let got = read_until(&mut s, b"VALUE p999 0 3\r\n999\r\nEND\r\n");
    assert!(got == want, "replies differ");
}

#[test]
fn worker_threads_share_one_store() {
    let _few = few_fds();
    // `-t 3`: three loops on one `SharedPort` (SO_REUSEPORT listeners where the kernel
    // balances), one store.
    let Command::Run(config) = parse_args(["-p", "0", "-t", "3", "-U", "0"]).unwrap() else {
        panic!()
    };
    let (workers, addrs) = memcached::spawn_workers(&config).unwrap();
    assert_eq!(workers.len(), 3);
    let url = format!("memcache://{}?protocol=ascii&timeout=10", addrs[0]);
    // Many connections, so that the kernel spreads them over the workers; what one
    // stores, every other sees.
    let clients: Vec<Client> = (0..12)
        .map(|_| Client::connect(url.as_str()).unwrap())
        .collect();
    for (i, c) in clients.iter().enumerate() {
        c.set(&format!("w{i}"), i as u32, 0).unwrap();
    }
    for c in &clients {
        for i in 0..clients.len() {
            assert_eq!(c.get::<u32>(&format!("w{i}")).unwrap(), Some(i as u32));
        }
        c.increment("shared", 1).ok();
    }
    let mut raw = TcpStream::connect(addrs[0]).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(stat(&mut raw, "threads"), "3");
    assert_eq!(stat(&mut raw, "curr_items"), "12");
    drop(clients);
    workers.stop();
    for r in workers.join() {
        r.unwrap();
    }
}

//! Drives the chat example over 127.0.0.1. The slow-reader chat test: one client never
//! reads while several active clients exchange thousands of lines; the active ones get
//! every line, in order, within deadlines; the server's queue for the slow one stays
//! under its high watermark; the slow one is told how many lines it missed once it
//! reads again. Every wait is bounded by a deadline or a read timeout, never a sleep.

// The slow reader's small receive buffer is set with SO_RCVBUF through libc: Unix only so far.
#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use evloop::{EventLoop, Exit, WakeHandle};
use evloop_examples::chat::{self, Chat, ChatConfig};

const ACTIVE: usize = 4;
const LINES: usize = 2000;
/// Lines a sender writes at once; see the flow control in `exchange`.
const BATCH: usize = 50;
const DEADLINE: Duration = Duration::from_secs(30);

struct Member {
    id: u64,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

fn start(cfg: ChatConfig) -> (SocketAddr, WakeHandle, JoinHandle<EventLoop<Chat>>) {
    let (el, stop) = chat::server("127.0.0.1:0".parse().unwrap(), cfg).unwrap();
    let addr = el.machine().local_addr().unwrap();
    (addr, stop, run(el))
}

fn run(mut el: EventLoop<Chat>) -> JoinHandle<EventLoop<Chat>> {
    std::thread::spawn(move || {
        assert_eq!(el.run().unwrap(), Exit::Exited);
        el
    })
}

fn stop(stop: &WakeHandle, server: JoinHandle<EventLoop<Chat>>) -> EventLoop<Chat> {
    stop.wake().unwrap();
    server.join().unwrap()
}

/// Connect and read the welcome line (so the server has seated us before we go on).
fn join(addr: SocketAddr, rcvbuf: Option<i32>) -> Member {
    let s = TcpStream::connect(addr).unwrap();
    if let Some(size) = rcvbuf {
        // A small receive buffer, so the slow reader's kernel buffers fill quickly and
        // the server's own queue for it is what gets tested.
        // SAFETY: a valid socket fd and a c_int option value of the size passed.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &size as *const i32 as *const libc::c_void,
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        assert_eq!(r, 0);
    }
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let id = line
        .strip_prefix("*** welcome, you are client ")
        .and_then(|rest| rest.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("unexpected welcome {line:?}"));
    Member {
        id,
        reader,
        writer: s,
    }
}

/// Read the next line that is not a join/leave announcement, within the deadline.
fn next_chat_line(reader: &mut BufReader<TcpStream>, deadline: Instant, line: &mut String) {
    loop {
        assert!(Instant::now() < deadline, "no line before the deadline");
        line.clear();
        let n = reader
            .read_line(line)
            .expect("a line within the read timeout");
        assert!(n > 0, "server closed the connection");
        if !(line.ends_with(" joined\n") || line.ends_with(" left\n")) {
            return;
        }
    }
}

/// Received-line counts of the active members, for the senders' flow control.
type Progress = Arc<(Mutex<Vec<usize>>, Condvar)>;

/// The active members exchange `LINES` lines each; returns once every one of them has
/// received every line of the others, checked in order. Gives the sockets back (still
/// open: the members stay in the room).
fn exchange(members: Vec<Member>) -> Vec<JoinHandle<TcpStream>> {
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    let progress: Progress = Arc::new((Mutex::new(vec![0; ACTIVE]), Condvar::new()));
    let deadline = Instant::now() + DEADLINE;
    let mut threads = Vec::new();
    for (me, m) in members.into_iter().enumerate() {
        let Member {
            id,
            mut reader,
            mut writer,
        } = m;
        let ids = ids.clone();
        let p = progress.clone();
        threads.push(std::thread::spawn(move || {
            // Receive: every other member's lines, each sender's in order.
            let mut next = [0usize; ACTIVE];
            let mut line = String::new();
            for _ in 0..(ACTIVE - 1) * LINES {
                next_chat_line(&mut reader, deadline, &mut line);
                assert!(
                    !line.starts_with("***"),
                    "active client {id} got a notice: {line:?}"
                );
                let (from, text) = line.split_once(": ").expect("`ID: line`");
                let from: u64 = from.parse().unwrap();
                let sender = ids.iter().position(|&i| i == from).expect("a member");
                assert_ne!(sender, me, "own line echoed back");
                let want = format!("{sender}-{:05} the quick brown fox\n", next[sender]);
                assert_eq!(
                    text, want,
                    "client {id}: line from {from} lost or reordered"
                );
                next[sender] += 1;
                let (lock, cv) = &*p;
                lock.lock().unwrap()[me] += 1;
                cv.notify_all();
            }
            reader.into_inner()
        }));
        let p = progress.clone();
        threads.push(std::thread::spawn(move || {
            // Send in batches. Flow control as a real client's user would have it: do not
            // run more than two batches ahead of what everyone has received, so the
            // active members never lag (at most 3 * BATCH * (ACTIVE - 1) lines, ~18 KB,
            // are in flight towards any of them: under the 32 KiB high watermark even
            // without kernel buffering).
            let mut batch = String::new();
            for b in 0..LINES / BATCH {
                let need = b.saturating_sub(2) * BATCH * (ACTIVE - 1);
                let (lock, cv) = &*p;
                let mut got = lock.lock().unwrap();
                while got.iter().any(|&n| n < need) {
                    let left = deadline
                        .checked_duration_since(Instant::now())
                        .expect("senders stalled: the others are not receiving");
                    got = cv.wait_timeout(got, left).unwrap().0;
                }
                drop(got);
                batch.clear();
                for i in b * BATCH..(b + 1) * BATCH {
                    batch.push_str(&format!("{me}-{i:05} the quick brown fox\n"));
                }
                writer.write_all(batch.as_bytes()).unwrap();
            }
            writer
        }));
    }
    threads
}

#[test]
fn slow_reader_chat_test() {
    // Small kernel send buffers, so the server's own queue is what absorbs the backlog
    // (with autotuning, loopback sockets can swallow all of it).
    let cfg = ChatConfig {
        send_buffer: Some(8192),
        ..ChatConfig::default()
    };
    let (addr, wake, server) = start(cfg);

    // The slow one joins first and never reads during the exchange.
    let mut slow = join(addr, Some(16384));
    let members: Vec<Member> = (0..ACTIVE).map(|_| join(addr, None)).collect();
    let active_ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    let started = Instant::now();
    let sockets: Vec<TcpStream> = exchange(members)
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let took = started.elapsed();

    // Stop the server and look at its state: the queue for the slow one is bounded by
    // the high watermark (far below what was sent to it), and lines were dropped for it
    // and for nobody else.
    let el = stop(&wake, server);
    let m = el.machine();
    let total = (ACTIVE * LINES) as u64;
    assert_eq!(m.lines, total);
    let s = m
        .client(slow.id)
        .expect("the slow client is still in the room");
    let offered_bytes = total as usize * 30;
    assert!(s.dropped > 0, "nothing dropped for the slow reader: {s:?}");
    assert!(
        s.queued <= cfg.high,
        "queue {} > high {}",
        s.queued,
        cfg.high
    );
    assert!(s.peak <= cfg.high, "peak {} > high {}", s.peak, cfg.high);
    assert!(s.queued <= s.capacity);
    assert!(
        s.peak < offered_bytes / 4,
        "{s:?} vs {offered_bytes} offered"
    );
    // Offered to it: every chat line, and the four "joined" announcements.
    assert_eq!(s.delivered + s.dropped, total + ACTIVE as u64, "{s:?}");
    for id in &active_ids {
        let a = m.client(*id).unwrap();
        assert_eq!(a.dropped, 0, "active client {id} lagged: {a:?}");
        assert!(a.delivered >= (ACTIVE as u64 - 1) * LINES as u64, "{a:?}");
    }
    assert_eq!(m.dropped, s.dropped);
    let dropped_by_server = s.dropped;
    eprintln!(
        "exchange of {total} lines took {took:?}; slow reader: {} queued, peak {}, {} lines dropped",
        s.queued, s.peak, s.dropped
    );

    // Resume the same server; the slow one now reads. It gets the lines that were queued
    // for it, and a `*** dropped N lines` notice for each lag episode.
    let server = run(el);
    let resumed = Instant::now();
    let deadline = resumed + DEADLINE;
    let mut line = String::new();
    let mut received = 0u64;
    let mut notices = Vec::new();
    while received + notices.iter().sum::<u64>() < total {
        next_chat_line(&mut slow.reader, deadline, &mut line);
        if let Some(rest) = line.strip_prefix("*** dropped ") {
            let n: u64 = rest.split(' ').next().unwrap().parse().unwrap();
            notices.push(n);
            continue;
        }
        let (from, _) = line.split_once(": ").expect("`ID: line`");
        assert!(active_ids.contains(&from.parse().unwrap()));
        received += 1;
    }
    // One notice per lag episode (one, unless the kernel took more bytes mid-way and
    // the queue drained to the low watermark in between), adding up to what was dropped.
    assert!(
        !notices.is_empty() && notices.iter().all(|&n| n > 0),
        "{notices:?}"
    );
    assert_eq!(
        notices.iter().sum::<u64>(),
        dropped_by_server,
        "{notices:?}"
    );
    assert_eq!(received + dropped_by_server, total);
    eprintln!("the slow reader caught up in {:?}", resumed.elapsed());

    let el = stop(&wake, server);
    let s = el.machine().client(slow.id).unwrap();
    assert!(!s.lagging);
    assert_eq!(s.queued, 0);
    drop(sockets);
}

#[test]
fn a_stalled_reader_is_disconnected_and_announced() {
    let cfg = ChatConfig {
        stall_timeout: Some(Duration::from_millis(200)),
        send_buffer: Some(8192),
        ..ChatConfig::default()
    };
    let (addr, wake, server) = start(cfg);
    let slow = join(addr, Some(4096));
    let mut talker = join(addr, None);
    // Enough to fill the slow one's socket buffers and leave a queue behind.
    let mut text = String::new();
    for i in 0..5000 {
        text.push_str(&format!(
            "{i:05} the quick brown fox jumps over the lazy dog\n"
        ));
    }
    talker.writer.write_all(text.as_bytes()).unwrap();
    let want = format!("*** {} left (not reading)\n", slow.id);
    let deadline = Instant::now() + DEADLINE;
    let mut line = String::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "the stalled reader was never dropped"
        );
        line.clear();
        assert!(talker.reader.read_line(&mut line).unwrap() > 0);
        if line == want {
            break;
        }
    }
    let el = stop(&wake, server);
    let m = el.machine();
    assert_eq!(m.stalled, 1);
    assert!(m.client(slow.id).is_none());
    assert!(m.client(talker.id).is_some());
}

#[test]
fn overlong_lines_are_refused_and_skipped() {
    let (addr, wake, server) = start(ChatConfig::default());
    let mut a = join(addr, None);
    let mut b = join(addr, None);
    let long = "x".repeat(3000);
    a.writer
        .write_all(format!("{long}\nshort\n").as_bytes())
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let mut line = String::new();
    next_chat_line(&mut a.reader, deadline, &mut line);
    assert_eq!(line, "*** line too long\n");
    next_chat_line(&mut b.reader, deadline, &mut line);
    assert_eq!(line, format!("{}: short\n", a.id));
    // Leaving is announced.
    drop(a);
    line.clear();
    b.reader.read_line(&mut line).unwrap();
    assert!(line.ends_with(" left\n"), "{line:?}");
    let el = stop(&wake, server);
    assert_eq!(el.machine().lines, 1);
}

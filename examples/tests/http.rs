//! Drives the HTTP example over 127.0.0.1: keep-alive with many requests on one
//! connection, pipelining (more than the input buffer holds, in order, HEAD and GET
//! mixed), `Connection: close`, HTTP/1.0, bodies skipped, requests in pieces, and
//! malformed input. Every read has a timeout; nothing sleeps.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use evloop::{Exit, WakeHandle};
use evloop_examples::http::{self, Http};

fn start() -> (SocketAddr, WakeHandle, JoinHandle<Http>) {
    let (mut el, stop) = http::server("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = el.machine().local_addr().unwrap();
    let server = std::thread::spawn(move || {
        assert_eq!(el.run().unwrap(), Exit::Exited);
        el.into_machine()
    });
    (addr, stop, server)
}

fn connect(addr: SocketAddr) -> (BufReader<TcpStream>, TcpStream) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (BufReader::new(s.try_clone().unwrap()), s)
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read one response (`head`: to a HEAD request, so no body).
fn response(r: &mut BufReader<TcpStream>, head: bool) -> Response {
    let mut line = String::new();
    assert!(r.read_line(&mut line).unwrap() > 0, "connection closed");
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.strip_suffix("\r\n").expect("CRLF");
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(": ").expect("`name: value`");
        headers.push((n.to_string(), v.to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let len: usize = resp.header("content-length").unwrap().parse().unwrap();
    if !head {
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body).unwrap();
    }
    resp
}

/// The server closed the connection: EOF, with nothing more sent.
fn assert_closed(r: &mut BufReader<TcpStream>) {
    let mut rest = Vec::new();
    r.read_to_end(&mut rest)
        .expect("EOF within the read timeout");
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

const GET: &str = "GET / HTTP/1.1\r\nHost: test\r\n\r\n";

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let (addr, stop, server) = start();
    let (mut r, mut w) = connect(addr);
    for i in 0..2000 {
        let req = format!(
            "GET /item/{i}?q=1 HTTP/1.1\r\nHost: test\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n"
        );
        w.write_all(req.as_bytes()).unwrap();
        let resp = response(&mut r, false);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, b"hello\n");
        assert_eq!(resp.header("connection"), None);
    }
    // A request in pieces, a byte at a time.
    for b in GET.as_bytes() {
        w.write_all(std::slice::from_ref(b)).unwrap();
    }
    assert_eq!(response(&mut r, false).status, 200);
    // A body announced with Content-Length is skipped, and the next request still works.
    w.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde")
        .unwrap();
    w.write_all(GET.as_bytes()).unwrap();
    assert_eq!(response(&mut r, false).status, 200);
    assert_eq!(response(&mut r, false).status, 200);
    stop.wake().unwrap();
    let m = server.join().unwrap();
    assert_eq!(m.accepted, 1);
    assert_eq!(m.requests, 2003);
    assert_eq!(m.errors, 0);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (addr, stop, server) = start();
    let (mut r, mut w) = connect(addr);
    // Far more than the 4 KiB input buffer and than the output high watermark: the
    // server must pause reading while we are not reading, and lose or reorder nothing.
    const N: usize = 5000;
    let mut all = String::new();
    for i in 0..N {
        let method = if i % 3 == 0 { "HEAD" } else { "GET" };
        all.push_str(&format!("{method} /{i} HTTP/1.1\r\nHost: test\r\n\r\n"));
    }
    all.push_str("GET /last HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let writer = std::thread::spawn(move || {
        w.write_all(all.as_bytes()).unwrap();
        w
    });
    for i in 0..N {
        let head = i % 3 == 0;
        let resp = response(&mut r, head);
        assert_eq!(resp.status, 200, "request {i}");
        assert_eq!(resp.header("content-length"), Some("6"));
        let want: &[u8] = if head { b"" } else { b"hello\n" };
        assert_eq!(
            resp.body, want,
            "request {i}: HEAD and GET answered out of order"
        );
    }
    let last = response(&mut r, false);
    assert_eq!(last.header("connection"), Some("close"));
    assert_closed(&mut r);
    drop(writer.join().unwrap());
    stop.wake().unwrap();
    let m = server.join().unwrap();
    assert_eq!(m.requests, N as u64 + 1);
}

#[test]
fn connection_close_and_http_1_0() {
    let (addr, stop, server) = start();

    // HTTP/1.1 with Connection: close: answered, then closed; what follows is ignored.
    let (mut r, mut w) = connect(addr);
    w.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Close\r\n\r\n")
        .unwrap();
    w.write_all(GET.as_bytes()).unwrap();
    let resp = response(&mut r, false);
    assert_eq!(
        (resp.status, resp.header("connection")),
        (200, Some("close"))
    );
    assert_closed(&mut r);

    // HTTP/1.0 without keep-alive: closed after one response (no Host needed).
    let (mut r, mut w) = connect(addr);
    w.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let resp = response(&mut r, false);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(resp.body, b"hello\n");
    assert_closed(&mut r);

    // HTTP/1.0 asking for keep-alive: kept, and the response says so.
    let (mut r, mut w) = connect(addr);
    for _ in 0..3 {
        w.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let resp = response(&mut r, false);
        assert_eq!(resp.header("connection"), Some("keep-alive"));
    }
    w.write_all(b"HEAD / HTTP/1.0\r\n\r\n").unwrap();
    let resp = response(&mut r, true);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_closed(&mut r);

    // A client that half-closes after its requests still gets its answers.
    let (mut r, mut w) = connect(addr);
    w.write_all(format!("{GET}{GET}").as_bytes()).unwrap();
    w.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(response(&mut r, false).status, 200);
    assert_eq!(response(&mut r, false).status, 200);
    assert_closed(&mut r);

    stop.wake().unwrap();
    let m = server.join().unwrap();
    assert_eq!(m.requests, 8);
    assert_eq!(m.errors, 0);
}

/// Send `req` on a fresh connection: the status of the answer, which must close.
fn error_status(addr: SocketAddr, req: &[u8]) -> u16 {
    let (mut r, mut w) = connect(addr);
    // The server may answer and close before reading all of a long request: a failed
    // write is fine, the answer is what is checked.
    let _ = w.write_all(req);
    let resp = response(&mut r, false);
    assert_eq!(resp.header("connection"), Some("close"));
    let mut rest = Vec::new();
    // EOF, or a reset if unread request bytes were left behind.
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty());
    resp.status
}

#[test]
fn malformed_requests_get_an_error_and_a_close() {
    let (addr, stop, server) = start();
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(5000));
    let long_header = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n",
        "b".repeat(5000)
    );
    let mut many = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-{i}: y\r\n"));
    }
    many.push_str("\r\n");
    let cases: &[(&[u8], u16)] = &[
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),
        (b"GET  / HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n", 400),
        (b"GET / HTTX/1.1\r\nHost: t\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400), // no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nno colon\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n", 400),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
            405,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
            501,
        ),
        (long_target.as_bytes(), 414),
        (long_header.as_bytes(), 431),
        (many.as_bytes(), 431),
    ];
    for (req, want) in cases {
        let got = error_status(addr, req);
        assert_eq!(
            got,
            *want,
            "{:?}",
            String::from_utf8_lossy(&req[..req.len().min(60)])
        );
    }

    // After good requests, a bad one: the good ones are answered first, in order.
    let (mut r, mut w) = connect(addr);
    w.write_all(format!("{GET}{GET}BAD\r\n\r\n{GET}").as_bytes())
        .unwrap();
    assert_eq!(response(&mut r, false).status, 200);
    assert_eq!(response(&mut r, false).status, 200);
    assert_eq!(response(&mut r, false).status, 400);
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty(), "answered after the error");

    stop.wake().unwrap();
    let m = server.join().unwrap();
    assert_eq!(m.errors, cases.len() as u64 + 1);
    assert_eq!(m.requests, 2);
    assert_eq!(m.open_connections(), 0);
}

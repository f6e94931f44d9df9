//! An HTTP/1.1 "hello" server on a [`BufSlab`]: every `GET` (or `HEAD`) is answered
//! `200 OK` with `hello\n`.
//!
//! * **Keep-alive**: HTTP/1.1 connections stay open unless the request says
//!   `Connection: close`; HTTP/1.0 ones close after the response unless it says
//!   `Connection: keep-alive` (then the response says so too).
//! * **Pipelining**: requests are parsed one after the other from the input buffer, and
//!   their responses queued in the same order.
//! * **Parsing**: the request line and the header lines are taken with
//!   `read_line(Eol::Crlf)` as they arrive (a request may come in any number of pieces),
//!   up to the empty line that ends the head; a `Content-Length` body is skipped.
//! * **Errors** get a response and a close: `400` for a malformed request line or
//!   header (or an HTTP/1.1 request without `Host`), `405` for methods other than
//!   `GET`/`HEAD`, `414` for a request line longer than the input buffer, `431` for a
//!   header line that long or more than [`MAX_HEADERS`] headers, `501` for a
//!   `Transfer-Encoding`, `505` for an HTTP version other than 1.0 and 1.1.
//! * Idle connections are closed after [`IDLE_MS`] ms.
//! * Connections are accepted by a [`Listener`]: in batches, and without spinning when
//!   the process runs out of file descriptors (it closes what it cannot take, or pauses).
//!
//! Each connection has fixed buffers ([`INPUT`] bytes in, [`OUTPUT`] out), allocated when
//! it is accepted. Reading pauses while more than [`WRITE_HIGH`] bytes of responses are
//! queued, so a client that pipelines without reading only fills its own socket. The
//! sizes are chosen so that the requests a full input buffer can hold always have room
//! for their responses (checked at compile time below): the parser never has to stop
//! half-way through the input and wait for the output to drain.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};

use evloop::buffered::{BufConfig, BufConn, BufSlab, Eol, WithState};
use evloop::prelude::*;

/// Most connections served at once.
pub const MAX_CONNS: usize = 4096;
/// Input buffer per connection: the longest request line or header line.
pub const INPUT: usize = 4096;
/// Output buffer per connection.
pub const OUTPUT: usize = 32 * 1024;
/// Reading pauses while more than this is queued for output.
pub const WRITE_HIGH: usize = 16 * 1024;
/// Most header lines in one request.
pub const MAX_HEADERS: usize = 100;
/// Idle keep-alive connections are closed after this many milliseconds.
pub const IDLE_MS: u64 = 60_000;

/// The body every `GET` gets.
pub const BODY: &[u8] = b"hello\n";
const OK_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n";
const CLOSE: &[u8] = b"Connection: close\r\n";
const KEEP_ALIVE: &[u8] = b"Connection: keep-alive\r\n";
/// The longest response we write (an error response is the longest).
const MAX_RESPONSE: usize = 160;
/// The shortest request that gets a response without closing:
/// `GET / HTTP/1.1\nHost:\n\n`. (Stray empty lines before a request get no response.)
const MIN_REQUEST: usize = 21;
/// The longest response to such a request: `OK_HEAD`, `"\r\n"`, `BODY`.
const MAX_KEEP_ALIVE_RESPONSE: usize = OK_HEAD.len() + 2 + BODY.len();

// A full input buffer of the shortest requests has room for all its responses above the
// point where reading pauses; then one error response (which closes) still fits.
const _: () =
    assert!(INPUT / MIN_REQUEST * MAX_KEEP_ALIVE_RESPONSE + MAX_RESPONSE <= OUTPUT - WRITE_HIGH);

/// Where the parser is in the current request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the request line.
    Line,
    /// Reading header lines until the empty one.
    Headers,
    /// Skipping this many body bytes.
    Body(u64),
    /// A response that closes the connection was queued: ignore the rest.
    Closing,
}

/// The request being parsed.
#[derive(Clone, Copy, Debug)]
struct Request {
    phase: Phase,
    head: bool,
    http11: bool,
    host: bool,
    /// `Connection:` said `close` (`Some(false)`) or `keep-alive` (`Some(true)`).
    connection: Option<bool>,
    content_length: Option<u64>,
    chunked: bool,
    headers: usize,
}

impl Request {
    const NEW: Request = Request {
        phase: Phase::Line,
        head: false,
        http11: true,
        host: false,
        connection: None,
        content_length: None,
        chunked: false,
        headers: 0,
    };

    fn keep_alive(&self) -> bool {
        if self.http11 {
            self.connection != Some(false)
        } else {
            self.connection == Some(true)
        }
    }
}

/// One client connection: the socket and its parser state, kept together in the
/// [`BufSlab`].
type Peer = WithState<TcpStream, Request>;

/// An error response: its status line and the reason sent as the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    BadRequest,
    MethodNotAllowed,
    UriTooLong,
    HeadersTooLarge,
    NotImplemented,
    VersionNotSupported,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Status::BadRequest => "400 Bad Request",
            Status::MethodNotAllowed => "405 Method Not Allowed",
            Status::UriTooLong => "414 URI Too Long",
            Status::HeadersTooLarge => "431 Request Header Fields Too Large",
            Status::NotImplemented => "501 Not Implemented",
            Status::VersionNotSupported => "505 HTTP Version Not Supported",
        }
    }
}

/// What one header line means to us.
enum Header {
    Other,
    Host,
    Connection(Option<bool>),
    ContentLength(u64),
    TransferEncoding,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `METHOD SP TARGET SP HTTP/x.y` → (is `HEAD`, is HTTP/1.1).
fn parse_request_line(line: &[u8]) -> Result<(bool, bool), Status> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Status::BadRequest);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(Status::BadRequest);
    }
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic() || b >= 0x80) {
        return Err(Status::BadRequest);
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Status::VersionNotSupported)
        }
        _ => return Err(Status::BadRequest),
    };
    match method {
        b"GET" => Ok((false, http11)),
        b"HEAD" => Ok((true, http11)),
        _ => Err(Status::MethodNotAllowed),
    }
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// `name: value` (no whitespace before the colon, no line folding).
fn parse_header(line: &[u8]) -> Result<Header, Status> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(Status::BadRequest)?;
    let (name, value) = (&line[..colon], trim_ows(&line[colon + 1..]));
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(Status::BadRequest);
    }
    if value.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
        return Err(Status::BadRequest);
    }
    Ok(if name.eq_ignore_ascii_case(b"host") {
        Header::Host
    } else if name.eq_ignore_ascii_case(b"connection") {
        let mut c = None;
        for token in value.split(|&b| b == b',').map(trim_ows) {
            if token.eq_ignore_ascii_case(b"close") {
                c = Some(false);
            } else if token.eq_ignore_ascii_case(b"keep-alive") && c.is_none() {
                c = Some(true);
            }
        }
        Header::Connection(c)
    } else if name.eq_ignore_ascii_case(b"content-length") {
        if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
            return Err(Status::BadRequest);
        }
        let n = value
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
        Header::ContentLength(n)
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        Header::TransferEncoding
    } else {
        Header::Other
    })
}

/// Queue the `200` for `req`.
fn respond_ok(c: &mut BufConn<Peer>, req: &Request) {
    let out = c.output_mut();
    let _ = out.extend(OK_HEAD);
    if !req.keep_alive() {
        let _ = out.extend(CLOSE);
    } else if !req.http11 {
        let _ = out.extend(KEEP_ALIVE);
    }
    let _ = out.extend(b"\r\n");
    if !req.head {
        let _ = out.extend(BODY);
    }
}

/// Queue an error response and close once it is written.
fn respond_error(c: &mut BufConn<Peer>, status: Status) {
    let reason = &status.line()[4..];
    let _ = write!(
        c.output_mut(),
        "HTTP/1.1 {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reason}\n",
        status.line(),
        reason.len() + 1
    );
    c.stream_mut().state.phase = Phase::Closing;
    c.close_after_flush();
}

/// The HTTP server's state.
#[event_machine]
pub struct Http {
    listener: Listener,
    conns: BufSlab<Peer>,
    /// Connections accepted so far.
    pub accepted: u64,
    /// `200` responses queued so far.
    pub requests: u64,
    /// Error responses queued so far.
    pub errors: u64,
}

/// What the parser did with one step.
enum Step {
    /// Parsed something; go on.
    More,
    /// Needs more input (or is closing).
    Wait,
}

impl Http {
    /// Bind a listener on `addr` (port 0 for any free port).
    pub fn bind(addr: SocketAddr) -> io::Result<Http> {
        let listener = Listener::tcp(addr)?;
        let cfg = BufConfig::new(INPUT, OUTPUT).write_watermarks(0, WRITE_HIGH);
        Ok(Http {
            listener,
            conns: BufSlab::with_capacity(MAX_CONNS, cfg),
            accepted: 0,
            requests: 0,
            errors: 0,
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

    /// One step of the parser on `c`'s input.
    fn step(&mut self, key: Key) -> Step {
        let Some(c) = self.conns.get_mut(key) else {
            return Step::Wait;
        };
        let mut req = c.stream().state;
        match req.phase {
            Phase::Closing => return Step::Wait,
            Phase::Body(left) => {
                let n = (c.input().len() as u64).min(left);
                c.input_mut().consume(n as usize);
                if n < left {
                    c.stream_mut().state.phase = Phase::Body(left - n);
                    return Step::Wait;
                }
                self.finish(key, req);
                return Step::More;
            }
            Phase::Line => {
                let parsed = match c.read_line(Eol::Crlf) {
                    Ok(None) => return Step::Wait,
                    Ok(Some([])) => return Step::More, // stray empty lines before a request
                    Ok(Some(line)) => parse_request_line(line),
                    Err(_) => Err(Status::UriTooLong),
                };
                match parsed {
                    Ok((head, http11)) => {
                        req = Request {
                            phase: Phase::Headers,
                            head,
                            http11,
                            ..Request::NEW
                        };
                        c.stream_mut().state = req;
                    }
                    Err(status) => {
                        self.errors += 1;
                        respond_error(c, status);
                        return Step::Wait;
                    }
                }
            }
            Phase::Headers => {
                let parsed = match c.read_line(Eol::Crlf) {
                    Ok(None) => return Step::Wait,
                    Ok(Some([])) => None,
                    Ok(Some(line)) => Some(parse_header(line)),
                    Err(_) => Some(Err(Status::HeadersTooLarge)),
                };
                let Some(header) = parsed else {
                    // The empty line: the head is complete.
                    let bad = if req.chunked {
                        Some(Status::NotImplemented)
                    } else if req.http11 && !req.host {
                        Some(Status::BadRequest)
                    } else {
                        None
                    };
                    if let Some(status) = bad {
                        self.errors += 1;
                        respond_error(c, status);
                        return Step::Wait;
                    }
                    match req.content_length {
                        Some(n) if n > 0 => c.stream_mut().state.phase = Phase::Body(n),
                        _ => self.finish(key, req),
                    }
                    return Step::More;
                };
                req.headers += 1;
                let header = if req.headers > MAX_HEADERS {
                    Err(Status::HeadersTooLarge)
                } else {
                    header
                };
                match header {
                    Ok(Header::Other) => {}
                    Ok(Header::Host) if req.host => {
                        self.errors += 1;
                        respond_error(c, Status::BadRequest); // two Host headers
                        return Step::Wait;
                    }
                    Ok(Header::Host) => req.host = true,
                    Ok(Header::Connection(v)) => req.connection = v.or(req.connection),
                    Ok(Header::ContentLength(n)) if req.content_length.is_some_and(|m| m != n) => {
                        self.errors += 1;
                        respond_error(c, Status::BadRequest); // conflicting lengths
                        return Step::Wait;
                    }
                    Ok(Header::ContentLength(n)) => req.content_length = Some(n),
                    Ok(Header::TransferEncoding) => req.chunked = true,
                    Err(status) => {
                        self.errors += 1;
                        respond_error(c, status);
                        return Step::Wait;
                    }
                }
                c.stream_mut().state = req;
            }
        }
        Step::More
    }

    /// The request is complete: answer it, and get ready for the next one (or close).
    fn finish(&mut self, key: Key, req: Request) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if c.output().free() < MAX_RESPONSE {
            // Cannot happen with the sizes above (see the compile-time check); if it
            // did, closing is better than answering out of order.
            c.stream_mut().state.phase = Phase::Closing;
            c.close_after_flush();
            return;
        }
        self.requests += 1;
        respond_ok(c, &req);
        if req.keep_alive() {
            c.stream_mut().state = Request::NEW;
        } else {
            c.stream_mut().state.phase = Phase::Closing;
            c.close_after_flush();
        }
    }
}

#[event_machine]
impl Http {
    #[on_read(listener)]
    fn accept(&mut self, ctx: &mut Ctx<Self>) {
        // A bounded batch per wake-up (64), so a busy listener cannot starve connections;
        // out of descriptors, the listener drops or pauses instead of spinning.
        let (conns, accepted) = (&mut self.conns, &mut self.accepted);
        self.listener.accept(ctx, |ctx, conn| {
            let stream = conn.into_tcp();
            let _ = stream.set_nodelay(true);
            let peer = WithState::new(stream, Request::NEW);
            // A full slab drops the connection (closing it), not the server.
            if conns.insert(ctx, peer).is_ok() {
                *accepted += 1;
            }
        });
    }

    #[on_read(conns)]
    fn data(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        // Every complete request in the input, in order (pipelining); the responses are
        // flushed after we return.
        while let Step::More = self.step(key) {}
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let ev = c.events();
        if ev.is_error() {
            let _ = self.conns.remove(ctx, key);
        } else if ev.is_eof() {
            c.close_after_flush(); // answer what was asked, then close
        }
    }

    #[on_timeout(conns, ms = 60_000)]
    fn idle(&mut self, key: Key, ctx: &mut Ctx<Self>) {
        let _ = self.conns.remove(ctx, key);
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

/// A built HTTP server: run it with [`EventLoop::run`]; stop it from another thread with
/// the handle's `wake()`.
pub fn server(addr: SocketAddr) -> evloop::Result<(EventLoop<Http>, WakeHandle)> {
    let mut el = Http::bind(addr)?.event_loop()?;
    let stop = el.ctx().wake_handle();
    Ok((el, stop))
}

/// Serve until SIGINT/SIGTERM; returns how the loop ended.
pub fn run(addr: SocketAddr) -> evloop::Result<Exit> {
    let (mut el, _stop) = server(addr)?;
    eprintln!(
        "http: listening on http://{} ({} backend); Ctrl-C to stop",
        el.machine().local_addr()?,
        <DefaultBackend as Backend>::NAME
    );
    let exit = el.run()?;
    let m = el.machine();
    eprintln!(
        "http: stopped ({exit:?}); {} connections, {} requests, {} errors",
        m.accepted, m.requests, m.errors
    );
    Ok(exit)
}

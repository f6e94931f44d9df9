//! The http example as a hostile client sees it: one server for the whole run, and per
//! input a fresh connection that sends the bytes and half-closes. The server must answer
//! with well-formed HTTP/1.x responses (or nothing, for an incomplete request) and close,
//! never panic, never hang the connection, and stay up for the next input.
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;

fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (mut el, stop) = evloop_examples::http::server("127.0.0.1:0".parse().unwrap())
            .expect("the http example starts");
        let addr = el.machine().local_addr().unwrap();
        std::mem::forget(stop); // the server lives as long as the fuzzing process
        std::thread::spawn(move || {
            let exit = el.run();
            panic!("the http server stopped: {exit:?}");
        });
        addr
    })
}

fuzz_target!(|data: &[u8]| {
    let mut s = TcpStream::connect(server()).expect("the server accepts");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // A large input may be refused half-way (the server answers 431 and closes).
    let _ = s.write_all(data);
    let _ = s.shutdown(Shutdown::Write);
    let mut reply = Vec::new();
    match s.read_to_end(&mut reply) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("no end to the reply (the server hung?): {e}"),
    }
    // Every response the server wrote starts with a status line.
    if !reply.is_empty() {
        assert!(
            reply.starts_with(b"HTTP/1.1 ") || reply.starts_with(b"HTTP/1.0 "),
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&reply[..reply.len().min(80)])
        );
    }
});

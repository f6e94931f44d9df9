//! Drives the echo example over loopback: many clients, every byte comes back, a client
//! that sends more than the buffer before reading exercises backpressure, and the server
//! stops cleanly when woken.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use evloop::{Backend, DefaultBackend, Exit};

/// Thousands of clients, or as many as the backend can watch: select(2) cannot watch fds
/// at or above `FD_SETSIZE` ([`Backend::MAX_FD`]), and each connection costs two fds in
/// this process (client and server side).
/// `EVLOOP_ECHO_CLIENTS` lowers it: `.ci/wine` runs 300, since under Wine every socket
/// call is a round trip to the wineserver.
const MAX_CLIENTS: usize = match <DefaultBackend as Backend>::MAX_FD {
    None => 3000,
    Some(max) => max as usize / 2 - 64,
};

fn clients() -> usize {
    std::env::var("EVLOOP_ECHO_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(MAX_CLIENTS, |n: usize| n.min(MAX_CLIENTS))
}

#[cfg(windows)]
fn raise_fd_limit() {} // no per-process limit on Windows

#[cfg(unix)]
fn raise_fd_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid rlimit pointers.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = rl.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
    }
}

#[test]
fn echoes_thousands_of_clients_and_stops_on_wake() {
    let (mut el, stop) = evloop_examples::echo::server("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = el.machine().local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let exit = el.run().unwrap();
        (exit, el.into_machine())
    });

    // Thousands of connections: each costs two fds in this process (client and server
    // side), so raise the soft fd limit to the hard one (20000 here) first.
    raise_fd_limit();
    let n = clients();
    let mut clients: Vec<TcpStream> = (0..n)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        })
        .collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("hello {i}\n").as_bytes()).unwrap();
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let want = format!("hello {i}\n");
        let mut got = vec![0u8; want.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, want.as_bytes());
    }

    // 1 MiB through one connection, written before reading: the server must pause
    // reading when the client stops reading, and lose nothing.
    let mut big = TcpStream::connect(addr).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let payload: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let mut writer = big.try_clone().unwrap();
    let sent = payload.clone();
    let w = std::thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut back = vec![0u8; payload.len()];
    big.read_exact(&mut back).unwrap();
    w.join().unwrap();
    assert!(back == payload, "echoed bytes differ");

    // The documented behaviour past a backend's fd limit: the registration is refused
    // and the example closes the connection, so the client sees EOF, never a hang.
    #[cfg_attr(windows, allow(unused_mut))]
    let mut over_limit = 0;
    // (Windows: no backend there has a limit.)
    #[cfg(unix)]
    if let Some(max) = <DefaultBackend as Backend>::MAX_FD {
        // Fill every fd number up to the limit so that the next accept returns a larger one.
        let mut fillers = Vec::new();
        loop {
            let f = std::fs::File::open("/dev/null").unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
            fillers.push(f);
            if fd >= max {
                break;
            }
        }
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = c.write_all(b"past the limit\n");
        let mut buf = [0u8; 16];
        match c.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("a connection past the backend's fd limit must be closed: {other:?}"),
        }
        over_limit = 1;
    }

    drop(clients);
    drop(big);
    stop.wake().unwrap();
    let (exit, echo) = server.join().unwrap();
    assert_eq!(exit, Exit::Exited);
    assert_eq!(
        echo.accepted,
        n as u64 + 1,
        "{over_limit} refused past the limit"
    );
    assert!(echo.echoed >= (1 << 20));
}

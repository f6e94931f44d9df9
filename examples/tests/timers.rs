//! Drives the timers example: an idle connection is closed by its idle timeout, an
//! active one stays open, and the periodic job runs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use evloop_examples::timers::{Timers, IDLE_MS};

#[test]
fn idle_connections_close_active_ones_stay_and_the_job_ticks() {
    let server = Timers::new("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let mut el = server.event_loop().unwrap();
    let stop = el.ctx().wake_handle();
    let t = std::thread::spawn(move || {
        el.run().unwrap();
        el.into_machine()
    });

    let mut idle = TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut active = TcpStream::connect(addr).unwrap();
    active
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    // Keep one connection busy for three idle periods; each byte resets its timeout.
    let start = Instant::now();
    let mut buf = [0u8; 1];
    while start.elapsed() < Duration::from_millis(3 * IDLE_MS) {
        active.write_all(b"k").unwrap();
        active.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"k");
        std::thread::sleep(Duration::from_millis(IDLE_MS / 5)); // time passing, not sync
    }
    // The idle one was closed by the server: reading gives EOF.
    let n = idle.read(&mut buf).unwrap();
    assert_eq!(n, 0, "idle connection not closed");
    // The active one still works.
    active.write_all(b"z").unwrap();
    active.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"z");

    stop.wake().unwrap();
    let m = t.join().unwrap();
    assert_eq!(m.closed_idle, 1);
    assert!(m.ticks >= 5, "periodic job ran {} times", m.ticks);
    assert!(m.peak >= 2);
}

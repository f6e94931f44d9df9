//! Drives the UDP responder over loopback.

use std::net::UdpSocket;
use std::time::Duration;

#[test]
fn answers_every_datagram_upper_cased() {
    let server = evloop_examples::udp::Udp::new("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = server.local_addr().unwrap();
    let mut el = server.event_loop().unwrap();
    let stop = el.ctx().wake_handle();
    let t = std::thread::spawn(move || {
        el.run().unwrap();
        el.into_machine()
    });

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.connect(addr).unwrap();
    let mut buf = [0u8; 64];
    for i in 0..200 {
        let msg = format!("ping {i}");
        client.send(msg.as_bytes()).unwrap();
        let n = client.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], msg.to_uppercase().as_bytes());
    }
    stop.wake().unwrap();
    assert_eq!(t.join().unwrap().served, 200);
}

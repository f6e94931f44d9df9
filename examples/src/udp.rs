//! A UDP responder: answers every datagram with the same bytes upper-cased, draining
//! the socket on each readiness (bounded, so one flood cannot starve the rest of a
//! bigger machine).

use std::io::{self, ErrorKind};
use std::net::{SocketAddr, UdpSocket};

use evloop::prelude::*;

/// The responder's state.
#[event_machine]
pub struct Udp {
    sock: UdpSocket,
    /// Datagrams answered.
    pub served: u64,
}

impl Udp {
    /// Bind `addr`.
    pub fn new(addr: SocketAddr) -> io::Result<Udp> {
        let sock = UdpSocket::bind(addr)?;
        sock.set_nonblocking(true)?;
        Ok(Udp { sock, served: 0 })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }
}

#[event_machine]
impl Udp {
    #[on_read(sock)]
    fn datagram(&mut self, _ctx: &mut Ctx<Self>) {
        let mut buf = [0u8; 2048];
        for _ in 0..256 {
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    buf[..n].make_ascii_uppercase();
                    // A full socket buffer drops the reply, as UDP may.
                    if self.sock.send_to(&buf[..n], from).is_ok() {
                        self.served += 1;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return, // e.g. ICMP port unreachable from an earlier reply
            }
        }
    }

    #[on_wake]
    fn stop(&mut self, ctx: &mut Ctx<Self>) {
        ctx.exit();
    }
}

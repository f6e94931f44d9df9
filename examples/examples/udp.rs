//! `cargo run --release --example udp [-- ADDR]` (default 127.0.0.1:7881): answers each
//! datagram upper-cased. Try `nc -u 127.0.0.1 7881`.

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7881".into());
    let addr = addr.parse().unwrap_or_else(|e| {
        eprintln!("udp: bad address `{addr}`: {e}");
        std::process::exit(2)
    });
    let server = evloop_examples::udp::Udp::new(addr).unwrap_or_else(|e| {
        eprintln!("udp: {e}");
        std::process::exit(1)
    });
    eprintln!("udp: listening on {}", server.local_addr().unwrap());
    if let Err(e) = server.run() {
        eprintln!("udp: {e}");
        std::process::exit(1);
    }
}

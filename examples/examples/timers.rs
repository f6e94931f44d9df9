//! `cargo run --release --example timers [-- ADDR]` (default 127.0.0.1:7880): an echo
//! server that closes connections idle for 300 ms and runs a job every 100 ms.

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7880".into());
    let addr = addr.parse().unwrap_or_else(|e| {
        eprintln!("timers: bad address `{addr}`: {e}");
        std::process::exit(2)
    });
    let server = evloop_examples::timers::Timers::new(addr).unwrap_or_else(|e| {
        eprintln!("timers: {e}");
        std::process::exit(1)
    });
    eprintln!("timers: listening on {}", server.local_addr().unwrap());
    if let Err(e) = server.run() {
        eprintln!("timers: {e}");
        std::process::exit(1);
    }
}

//! TCP echo server: `cargo run --release --example echo [-- ADDR]` (default
//! 127.0.0.1:7878). Try it with `nc 127.0.0.1 7878`; Ctrl-C stops it.

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7878".to_string());
    let addr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo: bad address `{addr}`: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = evloop_examples::echo::run(addr) {
        eprintln!("echo: {e}");
        std::process::exit(1);
    }
}

//! Line-based chat room: `cargo run --release --example chat [-- ADDR]` (default
//! 127.0.0.1:7880). Join from several terminals with `nc 127.0.0.1 7880`; every line is
//! relayed to the others. Ctrl-C stops it.

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7880".to_string());
    let addr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chat: bad address `{addr}`: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = evloop_examples::chat::run(addr) {
        eprintln!("chat: {e}");
        std::process::exit(1);
    }
}

//! HTTP/1.1 keep-alive "hello" server: `cargo run --release --example http [-- ADDR]`
//! (default 127.0.0.1:8080). Try `curl -v http://127.0.0.1:8080/` or
//! `wrk -t1 -c64 -d10s http://127.0.0.1:8080/`; Ctrl-C stops it.

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_string());
    let addr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("http: bad address `{addr}`: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = evloop_examples::http::run(addr) {
        eprintln!("http: {e}");
        std::process::exit(1);
    }
}

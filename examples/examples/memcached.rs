//! A memcached 1.6 server on evloop: `cargo run --release --example memcached [-- FLAGS]`
//! with memcached's flags (`-p 11211 -l 127.0.0.1 -m 64 -c 1024 -I 1m -t 1 -v`).
//! Try it with `printf 'set k 0 0 2\r\nhi\r\nget k\r\n' | nc 127.0.0.1 11211`; Ctrl-C
//! stops it.

fn main() {
    std::process::exit(evloop_examples::memcached::main_with_args(
        std::env::args().skip(1),
    ));
}

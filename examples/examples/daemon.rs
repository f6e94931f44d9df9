//! `cargo run --release --example daemon [-- ADDR CONFIG]` (default 127.0.0.1:7879 and
//! ./daemon.conf, created if missing). Then: `kill -HUP <pid>` re-reads the config,
//! Ctrl-C or `kill <pid>` stops it gracefully.

#[cfg(unix)]
use std::path::PathBuf;

#[cfg(not(unix))]
fn main() {
    eprintln!("the daemon example is Unix only (fork, setsid, SIGHUP)");
    std::process::exit(2);
}

#[cfg(unix)]
fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7879".into());
    let config = PathBuf::from(args.next().unwrap_or_else(|| "daemon.conf".into()));
    if !config.exists() {
        if let Err(e) = std::fs::write(&config, "greeting = hello\n") {
            eprintln!("daemon: cannot create {}: {e}", config.display());
            std::process::exit(1);
        }
    }
    let addr = addr.parse().unwrap_or_else(|e| {
        eprintln!("daemon: bad address `{addr}`: {e}");
        std::process::exit(2)
    });
    let daemon = match evloop_examples::daemon::Daemon::new(addr, &config) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("daemon: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "daemon: pid {} listening on {}; kill -HUP reloads {}",
        std::process::id(),
        daemon.local_addr().unwrap(),
        config.display()
    );
    match daemon.run() {
        Ok(d) => eprintln!(
            "daemon: stopped after {} reloads, {} children reaped",
            d.reloads, d.reaped
        ),
        Err(e) => {
            eprintln!("daemon: {e}");
            std::process::exit(1);
        }
    }
}

//! Drives the daemon example with real signals. The daemon installs process-wide
//! signal handlers, so it runs in a child process: this test binary re-executed with
//! `EVLOOP_DAEMON_CHILD` set, printing its port on stdout.

// The daemon example is Unix only (fork, setsid, SIGHUP).
#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD: &str = "EVLOOP_DAEMON_CHILD";

fn child_main(config: PathBuf) {
    let d = evloop_examples::daemon::Daemon::new("127.0.0.1:0".parse().unwrap(), &config).unwrap();
    println!("port {}", d.local_addr().unwrap().port());
    std::io::stdout().flush().unwrap();
    let d = d.run().unwrap();
    println!("exited reloads={} reaped={}", d.reloads, d.reaped);
}

fn ask(conn: &mut BufReader<TcpStream>, line: &str) -> String {
    conn.get_mut()
        .write_all(format!("{line}\n").as_bytes())
        .unwrap();
    let mut reply = String::new();
    conn.read_line(&mut reply).unwrap();
    reply.trim_end().to_string()
}

fn wait_until(conn: &mut BufReader<TcpStream>, what: &str, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = ask(conn, "stats");
        if pred(&stats) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {stats}"
        );
        std::thread::yield_now();
    }
}

fn kill(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we spawned.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
}

#[test]
fn reloads_on_sighup_reaps_children_and_drains_on_sigterm() {
    if let Ok(path) = std::env::var(CHILD) {
        return child_main(PathBuf::from(path));
    }
    let dir = std::env::temp_dir().join(format!("evloop-daemon-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("daemon.conf");
    std::fs::write(&config, "greeting = hello\n").unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "reloads_on_sighup_reaps_children_and_drains_on_sigterm",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, &config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let port = loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "child exited before listening"
        );
        // libtest prints "test NAME ... " without a newline before the body runs, so
        // the port may share that line.
        if let Some(i) = line.find("port ") {
            break line[i + 5..].trim().parse::<u16>().unwrap();
        }
    };
    let pid = child.id();

    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut conn = BufReader::new(stream);
    assert_eq!(ask(&mut conn, "x"), "hello x");

    // SIGHUP: the new greeting is used once the reload has happened.
    std::fs::write(&config, "greeting = howdy\n").unwrap();
    kill(pid, libc::SIGHUP);
    wait_until(&mut conn, "the reload", |s| s.starts_with("reloads=1 "));
    assert_eq!(ask(&mut conn, "y"), "howdy y");

    // SIGCHLD: children are reaped.
    assert!(ask(&mut conn, "spawn").starts_with("spawned "));
    assert!(ask(&mut conn, "spawn").starts_with("spawned "));
    wait_until(&mut conn, "the children to be reaped", |s| {
        s.contains("reaped=2 ")
    });

    // SIGTERM: stops accepting, but the open connection is still served until it closes.
    kill(pid, libc::SIGTERM);
    assert_eq!(ask(&mut conn, "z"), "howdy z");
    wait_until(&mut conn, "the drain to start", |s| {
        s.ends_with("draining=1")
    });
    // A client arriving during the drain is refused at once, never accepted by the
    // kernel and left waiting for an answer.
    let late = TcpStream::connect(("127.0.0.1", port));
    assert_eq!(
        late.map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused,
        "a connection during the drain must be refused"
    );
    assert_eq!(ask(&mut conn, "still"), "howdy still");
    drop(conn);

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "daemon did not exit after its last connection closed"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(status.success(), "daemon failed: {rest}");
    assert!(rest.contains("exited reloads=1 reaped=2"), "{rest}");
    let _ = std::fs::remove_dir_all(&dir);
}

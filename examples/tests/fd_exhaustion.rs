//! Issue 13: out of file descriptors, a server must neither spin nor stop serving. Each
//! example server (echo, daemon, http, chat) runs under `ulimit -n 64` and gets 200
//! clients: it takes what its descriptors allow (about 56), and then, every descriptor
//! in use, it must stay (almost) idle: under 5% of one CPU, measured from its
//! `/proc/<pid>/stat` over one second. A level-triggered listener whose handler returns
//! on `EMFILE` while connections wait in its backlog is called again at once, forever:
//! about 100%. Once the clients leave, a new one must be served.
//!
//! The fd limit is process-wide, so the server runs in a process of its own: this test
//! binary re-executed through `sh -c 'ulimit -n 64; exec ...'` with `EVLOOP_FD_CHILD`
//! naming the server, which prints its port on stdout and runs until `SIGTERM`.

// Descriptor exhaustion through RLIMIT_NOFILE: Unix only (Windows has no such limit).
#![cfg(unix)]
#![cfg(target_os = "linux")] // `/proc/<pid>/stat` and `/proc/<pid>/fd`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHILD: &str = "EVLOOP_FD_CHILD";
/// The server's `RLIMIT_NOFILE`.
const FD_LIMIT: usize = 64;
/// Clients connected at once: far more than the server's descriptors.
const CLIENTS: usize = 200;
/// How long the exhausted server's CPU time is measured.
const WINDOW: Duration = Duration::from_secs(1);
/// Most CPU the exhausted server may use, as a share of the window.
const MAX_CPU_SHARE: f64 = 0.05;
/// Every wait below gives up after this.
const DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// The child: one example server
// ---------------------------------------------------------------------------------------

fn announce(port: u16) {
    println!("port {port}");
    std::io::stdout().flush().unwrap();
}

fn child_main(which: &str) {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    match which {
        "echo" => {
            let (mut el, _stop) = evloop_examples::echo::server(addr).unwrap();
            announce(el.machine().local_addr().unwrap().port());
            el.run().unwrap();
            println!("exited {:?}", el.machine().listener_stats());
        }
        "http" => {
            let (mut el, _stop) = evloop_examples::http::server(addr).unwrap();
            announce(el.machine().local_addr().unwrap().port());
            el.run().unwrap();
            println!("exited accepted={}", el.machine().accepted);
        }
        "chat" => {
            let cfg = evloop_examples::chat::ChatConfig::default();
            let (mut el, _stop) = evloop_examples::chat::server(addr, cfg).unwrap();
            announce(el.machine().local_addr().unwrap().port());
            el.run().unwrap();
            println!("exited joined={}", el.machine().joined);
        }
        "daemon" => {
            let config = std::env::var("EVLOOP_FD_CHILD_CONFIG").unwrap();
            let d = evloop_examples::daemon::Daemon::new(addr, config.as_ref()).unwrap();
            let port = d.local_addr().unwrap().port();
            let mut el = d.event_loop().unwrap();
            announce(port);
            el.run().unwrap();
            println!("exited reloads={}", el.machine().reloads);
        }
        other => panic!("no server `{other}`"),
    }
}

// ---------------------------------------------------------------------------------------
// The parent: the clients, and the measurements
// ---------------------------------------------------------------------------------------

/// The child server, killed if the test fails before it is reaped.
struct Server {
    child: Child,
    pid: u32,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    fn spawn(test: &str, which: &str, env: &[(&str, &str)]) -> Server {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {FD_LIMIT} && exec \"$0\" \"$@\""))
            .arg(exe)
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(CHILD, which)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let pid = child.id(); // `exec`: the shell's pid is the server's
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            let _ = stderr.read_to_string(&mut all);
            all
        });
        Server {
            child,
            pid,
            lines,
            stderr: Some(stderr),
        }
    }

    /// The next stdout line containing `what`, within the deadline.
    fn wait_line(&self, what: &str, deadline: Instant) -> String {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(what) => return l,
                Ok(_) => {}
                Err(e) => panic!("no `{what}` from the server: {e:?}"),
            }
        }
    }

    fn port(&self, deadline: Instant) -> u16 {
        let line = self.wait_line("port ", deadline);
        let at = line.find("port ").unwrap() + 5;
        line[at..].trim().parse().unwrap()
    }

    /// Descriptor numbers below the limit that the server has open now (it may have
    /// inherited some above it).
    fn open_fds(&self) -> usize {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fd", self.pid)) else {
            return 0;
        };
        dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<usize>().ok())
            .filter(|&fd| fd < FD_LIMIT)
            .count()
    }

    /// Poll (with a deadline) until the server's open descriptors satisfy `pred`.
    fn wait_fds(&self, what: &str, deadline: Instant, pred: impl Fn(usize) -> bool) {
        loop {
            let n = self.open_fds();
            if pred(n) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: the server has {n} descriptors open"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The server's CPU time so far (user + system), from `/proc/<pid>/stat`.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap();
        // After the command name (in parentheses): state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf only reads a configuration value.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_nanos(ticks * 1_000_000_000 / hz)
    }

    /// SIGTERM, then the exit status and the child's stderr.
    fn stop(mut self, deadline: Instant) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(5));
        };
        let stderr = self.stderr.take().unwrap().join().unwrap();
        let exited = self.wait_line("exited", deadline);
        assert!(status.success(), "the server failed: {status:?}\n{stderr}");
        eprintln!("server: {exited}");
    }
}

/// The scenario, for one server; `served` checks that a fresh client is served.
fn exhaust_then_serve(
    test: &str,
    which: &str,
    env: &[(&str, &str)],
    served: impl Fn(TcpStream) -> Result<(), String>,
) {
    if let Ok(w) = std::env::var(CHILD) {
        return child_main(&w);
    }
    let deadline = Instant::now() + DEADLINE;
    let server = Server::spawn(test, which, env);
    let addr: SocketAddr = ([127, 0, 0, 1], server.port(deadline)).into();
    let baseline = server.open_fds();
    assert!(baseline > 0 && baseline < FD_LIMIT / 4, "{baseline}");

    // 200 clients. The server cannot hold them all: it takes what its descriptors
    // allow; the others are closed by it, or wait in the backlog (or, a backlog full,
    // in connect, for which the timeout is short: the rest of the test needs none).
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        if let Ok(c) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            clients.push(c);
        }
    }
    // Every descriptor number below the limit in use: the server is out of them (with
    // its loop, listener and reserve fd, it holds about 56 connections).
    server.wait_fds("the server to run out of descriptors", deadline, |n| {
        n >= FD_LIMIT
    });

    let (cpu0, t0) = (server.cpu(), Instant::now());
    std::thread::sleep(WINDOW); // the measurement window
    let (cpu, wall) = (server.cpu() - cpu0, t0.elapsed());
    let still = server.open_fds();
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    eprintln!(
        "{which}: {} clients connected, server out of descriptors ({still} open): \
         {cpu:?} of CPU in {wall:?} ({:.1}%)",
        clients.len(),
        share * 100.0
    );
    assert!(
        still >= FD_LIMIT,
        "descriptors were freed during the window"
    );
    assert!(
        share < MAX_CPU_SHARE,
        "{which} spins while out of descriptors: {cpu:?} of CPU in {wall:?} ({:.0}%)",
        share * 100.0
    );

    // The clients leave; the server frees their descriptors and serves a new one.
    drop(clients);
    server.wait_fds("the server to close its connections", deadline, |n| {
        n <= baseline
    });
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now())))
        .unwrap();
    if let Err(e) = served(c) {
        panic!("{which}: a new client is not served after the others left: {e}");
    }
    server.stop(deadline);
}

fn read_line(c: TcpStream) -> Result<String, String> {
    let mut line = String::new();
    BufReader::new(c)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    Ok(line)
}

#[test]
fn echo_does_not_spin_out_of_fds_and_serves_again() {
    exhaust_then_serve(
        "echo_does_not_spin_out_of_fds_and_serves_again",
        "echo",
        &[],
        |mut c| {
            c.write_all(b"ping\n").map_err(|e| e.to_string())?;
            let line = read_line(c)?;
            (line == "ping\n").then_some(()).ok_or(line)
        },
    );
}

#[test]
fn http_does_not_spin_out_of_fds_and_serves_again() {
    exhaust_then_serve(
        "http_does_not_spin_out_of_fds_and_serves_again",
        "http",
        &[],
        |mut c| {
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let mut reply = String::new();
            c.read_to_string(&mut reply).map_err(|e| e.to_string())?;
            (reply.starts_with("HTTP/1.1 200") && reply.ends_with("hello\n"))
                .then_some(())
                .ok_or(reply)
        },
    );
}

#[test]
fn chat_does_not_spin_out_of_fds_and_serves_again() {
    exhaust_then_serve(
        "chat_does_not_spin_out_of_fds_and_serves_again",
        "chat",
        &[],
        |c| {
            let line = read_line(c)?;
            line.starts_with("*** welcome, you are client ")
                .then_some(())
                .ok_or(line)
        },
    );
}

#[test]
fn daemon_does_not_spin_out_of_fds_and_serves_again() {
    let test = "daemon_does_not_spin_out_of_fds_and_serves_again";
    let config = std::env::temp_dir().join(format!("evloop-fd-daemon-{}.conf", std::process::id()));
    if std::env::var_os(CHILD).is_none() {
        std::fs::write(&config, "greeting = hello\n").unwrap();
    }
    let path = config.to_str().unwrap().to_string();
    exhaust_then_serve(
        test,
        "daemon",
        &[("EVLOOP_FD_CHILD_CONFIG", &path)],
        |mut c| {
            c.write_all(b"x\n").map_err(|e| e.to_string())?;
            let line = read_line(c)?;
            (line == "hello x\n").then_some(()).ok_or(line)
        },
    );
    if std::env::var_os(CHILD).is_none() {
        let _ = std::fs::remove_file(&config);
    }
}

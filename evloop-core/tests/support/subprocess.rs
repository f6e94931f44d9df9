//! One process per test: a `#[test]` function re-executes its own test binary so that
//! its body runs alone in a fresh process (for process-wide state such as signal
//! dispositions, or a process that forks).
//!
//! Included with `#[path = …] mod subprocess;` by the test binaries that need it
//! (evloop-core's `signals.rs`, `fork.rs` and `workers.rs`, evloop's
//! `derived_signals.rs`).

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// A child that takes longer than this is killed and the test fails.
pub const CHILD_DEADLINE: Duration = Duration::from_secs(30);

/// In the child named `name` (the environment variable `env` is set to `name`), run
/// `body`; anywhere else, re-execute this test binary with `--exact name` and `env=name`,
/// wait for it (killing it after [`CHILD_DEADLINE`]) and assert that it exited
/// successfully after passing its one test, showing its output otherwise.
pub fn isolated(env: &str, name: &str, body: fn()) {
    if std::env::var_os(env).is_some_and(|v| v == name) {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(env, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the test binary");
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    let waiter = thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let (out, timed_out) = match rx.recv_timeout(CHILD_DEADLINE) {
        Ok(out) => (out, false),
        Err(_) => {
            // SAFETY: `pid` is our own child, not yet reaped (the waiter has not returned).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            (rx.recv().expect("waiter"), true)
        }
    };
    waiter.join().expect("waiter thread");
    let out = out.expect("wait for the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !timed_out && out.status.success() && stdout.contains("1 passed"),
        "child `{name}` failed ({}; timed out: {timed_out})\n--- child stdout ---\n{stdout}\n--- child stderr ---\n{stderr}",
        out.status
    );
}

/// The name libtest knows a test by, for `--exact`: the `module_path!()` of the test's
/// module without the crate's own name, then the function's name
/// (`epoll_signals::signal_realtime`).
#[allow(dead_code)] // not every includer names its tests with it
pub fn test_name(module_path: &str, function: &str) -> String {
    match module_path.split_once("::") {
        Some((_crate, path)) => format!("{path}::{function}"),
        None => function.to_string(),
    }
}

/// `isolated_tests!(Backend; body_a, body_b, …)`: one `#[test]` per body, named after
/// it, each running `isolated(<its full test name>, body::<Backend>)`. Used inside one
/// module per backend (`mod epoll_signals { … }`), so that every test's name says which
/// backend it runs under and adding a backend is one module. `isolated` and the bodies
/// are resolved in the parent module (the test crate's root), so the caller provides an
/// `isolated(name, body)` that passes its own environment variable on.
#[allow(unused_macros)] // not every includer has per-backend tests
macro_rules! isolated_tests {
    ($backend:ty; $($body:ident),* $(,)?) => {$(
        #[test]
        fn $body() {
            let name = super::subprocess::test_name(module_path!(), stringify!($body));
            super::isolated(&name, super::$body::<$backend>);
        }
    )*};
}

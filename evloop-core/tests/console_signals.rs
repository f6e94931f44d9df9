//! Windows console events as signals: Ctrl-C (`SIGINT`) and Ctrl-Break (`SIGBREAK`)
//! reach a loop's signal handler, which runs in loop context (on the loop's thread, not
//! the system's control-handler thread), with the count of arrivals.
//!
//! A console event goes to every process on the console, and the control handler is
//! process-wide, so this runs as a process of its own (`harness = false`). On Unix it
//! runs nothing (Unix signals have their own tests: `signals.rs`, `signal_churn.rs`).
//!
//! On Windows it raises both events itself (`GenerateConsoleCtrlEvent`). Under Wine that
//! call succeeds but delivers nothing to the caller; Wine turns a Unix `SIGINT` sent to
//! the process into `CTRL_C_EVENT` instead, so `.ci/wine` runs this with
//! `EVLOOP_CONSOLE_EXTERNAL=1`: it prints `ready`, the script sends `SIGINT`, and the
//! test checks Ctrl-C alone.

#[cfg(windows)]
mod windows {
    use std::thread::ThreadId;
    use std::time::{Duration, Instant};

    use evloop_core::{Ctx, DefaultBackend, Event, EventLoop, Machine, Ready, Token};
    use windows_sys::Win32::System::Console::{
        AllocConsole, GenerateConsoleCtrlEvent, CTRL_BREAK_EVENT, CTRL_C_EVENT,
    };

    const SIGINT: i32 = 2;
    const SIGBREAK: i32 = 21;

    struct M {
        heard: Vec<(u64, u32, ThreadId)>,
        want: usize,
    }

    impl Machine for M {
        type Backend = DefaultBackend;
        fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
            assert!(ev.ready.contains(Ready::SIGNAL), "{ev:?}");
            self.heard
                .push((ev.token.0, ev.count, std::thread::current().id()));
            if self.heard.len() == self.want {
                ctx.exit();
            }
        }
    }

    fn generate(event: u32) {
        // SAFETY: plain calls; group 0 is every process on this console (only us).
        let ok = unsafe { GenerateConsoleCtrlEvent(event, 0) };
        assert_ne!(
            ok,
            0,
            "GenerateConsoleCtrlEvent: {}",
            std::io::Error::last_os_error()
        );
    }

    pub fn main() {
        // A console to raise the events on (a test may run without one, output piped).
        // SAFETY: no arguments; fails harmlessly if the process already has a console.
        let external = std::env::var_os("EVLOOP_CONSOLE_EXTERNAL").is_some();
        let want = if external { 1 } else { 2 };
        let mut el = EventLoop::new(M {
            heard: Vec::new(),
            want,
        })
        .unwrap();
        el.ctx().add_signal(SIGINT, Token(1)).unwrap();
        el.ctx().add_signal(SIGBREAK, Token(2)).unwrap();
        let loop_thread = std::thread::current().id();
        let sender = std::thread::spawn(move || {
            if external {
                println!("ready");
                return;
            }
            // SAFETY: no arguments; fails harmlessly if the process has a console.
            unsafe { AllocConsole() };
            generate(CTRL_C_EVENT);
            generate(CTRL_BREAK_EVENT);
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while el.machine().heard.len() < want {
            assert!(
                Instant::now() < deadline,
                "heard only {:?}",
                el.machine().heard
            );
            el.poll(Some(Duration::from_secs(1))).unwrap();
        }
        sender.join().unwrap();
        let mut heard = el.machine().heard.clone();
        heard.sort_by_key(|h| h.0);
        assert_eq!(heard.len(), want, "{heard:?}");
        for (token, count, thread) in &heard {
            assert!(*count >= 1, "token {token}: count {count}");
            assert_eq!(
                *thread, loop_thread,
                "token {token} ran off the loop's thread"
            );
        }
        if external {
            assert_eq!(heard[0].0, 1);
            println!(
                "console_signals: Ctrl-C (raised by Wine from SIGINT) as SIGINT, handled on the loop's thread ({heard:?})"
            );
        } else {
            assert_eq!((heard[0].0, heard[1].0), (1, 2));
            println!(
                "console_signals: Ctrl-C as SIGINT and Ctrl-Break as SIGBREAK, each handled on the loop's thread ({heard:?})"
            );
        }
    }
}

fn main() {
    #[cfg(windows)]
    windows::main();
    #[cfg(not(windows))]
    println!("console_signals: SKIPPED (Windows only): nothing ran");
}

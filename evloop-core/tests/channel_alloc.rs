//! No heap allocation per message: a `channel` allocates only in its constructor.
//!
//! A counting global allocator wraps the system one (it counts every thread). Two cases:
//! a producer thread floods a loop's receiver (retrying on `Full`), and two loops on two
//! threads play ping-pong through a pair of channels, each sending from its handler.
//! Each runs a warm-up round first (thread start-up, the loops' one-time growth), then the
//! counters must not move while `MESSAGES` messages go through. A self-check runs the
//! flood with a receiving handler that allocates and expects the counters to move, so the
//! test is known to catch an allocation.
//!
//! `harness = false`: a plain program printing one line per case; it exits non-zero on
//! failure.

#[cfg(unix)]
#[path = "support/counting_alloc.rs"]
mod counting_alloc;

// Unix only so far (Unix sockets, signals, or the Unix-only core modules); on Windows the
// binary runs nothing.
#[cfg(unix)]
mod unix {
    #[allow(unused_imports)]
    use super::*;

    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use evloop_core::channel::{channel, Receiver, Sender};
    use evloop_core::{Ctx, DefaultBackend, Event, EventLoop, Exit, Machine, Token, Watch};

    use counting_alloc::counters;

    const MESSAGES: u64 = 100_000;
    const WARMUP: u64 = 1_000;
    const INBOX: Token = Token(1);
    const GUARD: Token = Token(2);
    const DEADLINE: Duration = Duration::from_secs(20);

    struct Sink {
        rx: Receiver<u64, 256>,
        got: u64,
        sum: u64,
        until: u64,
        allocate: bool,
    }

    impl Machine for Sink {
        type Backend = DefaultBackend;
        fn setup(&mut self, ctx: &mut Ctx<Self>) -> evloop_core::Result<()> {
            ctx.add_io(&self.rx, INBOX, Watch::read())?;
            ctx.add_timer(GUARD, DEADLINE)?;
            Ok(())
        }
        fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
            assert_ne!(ev.token, GUARD, "stalled after {} messages", self.got);
            while let Some(v) = self.rx.try_recv() {
                self.got += 1;
                self.sum = self.sum.wrapping_add(v);
                if self.allocate {
                    drop(std::hint::black_box(Vec::<u8>::with_capacity(8)));
                }
                if self.got == self.until {
                    ctx.exit();
                    return;
                }
            }
        }
    }

    fn send_spin(tx: &Sender<u64, 256>, mut v: u64) {
        let deadline = Instant::now() + DEADLINE;
        while let Err(e) = tx.try_send(v) {
            v = e.into_inner();
            assert!(Instant::now() < deadline, "receiver stalled");
            std::hint::spin_loop();
        }
    }

    /// Returns the allocations made while `MESSAGES` messages were received.
    fn flood(allocate: bool) -> usize {
        let (tx, rx) = channel::<u64, 256>().unwrap();
        let go = Arc::new(AtomicU32::new(0));
        let producer = std::thread::spawn({
            let go = go.clone();
            move || {
                for i in 0..WARMUP {
                    send_spin(&tx, i);
                }
                let deadline = Instant::now() + DEADLINE;
                while go.load(Ordering::Acquire) == 0 {
                    assert!(Instant::now() < deadline, "never told to go");
                    std::hint::spin_loop();
                }
                for i in 0..MESSAGES {
                    send_spin(&tx, i);
                }
            }
        });
        let mut el = EventLoop::new(Sink {
            rx,
            got: 0,
            sum: 0,
            until: WARMUP,
            allocate,
        })
        .unwrap();
        assert_eq!(el.run().unwrap(), Exit::Exited);
        el.machine_mut().until = WARMUP + MESSAGES;
        let before = counters();
        go.store(1, Ordering::Release);
        assert_eq!(el.run().unwrap(), Exit::Exited);
        let after = counters();
        producer.join().unwrap();
        assert_eq!(el.machine().got, WARMUP + MESSAGES);
        after.0 - before.0
    }

    struct Player {
        rx: Receiver<u64, 8>,
        tx: Sender<u64, 8>,
        last: u64,
        until: u64,
    }

    impl Machine for Player {
        type Backend = DefaultBackend;
        fn setup(&mut self, ctx: &mut Ctx<Self>) -> evloop_core::Result<()> {
            ctx.add_io(&self.rx, INBOX, Watch::read())?;
            ctx.add_timer(GUARD, DEADLINE)?;
            Ok(())
        }
        fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
            assert_ne!(ev.token, GUARD, "ping-pong stalled at {}", self.last);
            while let Some(n) = self.rx.try_recv() {
                self.last = n;
                let _ = self.tx.try_send(n + 1);
                if n + 2 > self.until {
                    ctx.exit();
                    return;
                }
            }
        }
    }

    /// Ping-pong: A serves 0; each side answers n with n + 1. Both exit once they have
    /// answered `until - 1` or `until`. B's rounds are told by `ROUNDS`; A waits for B's end
    /// of a round on an atomic (no std channel: its blocking receive allocates).
    fn ping_pong() -> usize {
        const ROUNDS: [u64; 2] = [WARMUP, WARMUP + 10 + MESSAGES];
        let (to_a, a_rx) = channel::<u64, 8>().unwrap();
        let (to_b, b_rx) = channel::<u64, 8>().unwrap();
        let done = Arc::new(AtomicU32::new(0));
        let b = std::thread::spawn({
            let to_a = to_a.clone();
            let done = done.clone();
            move || {
                let mut el = EventLoop::new(Player {
                    rx: b_rx,
                    tx: to_a,
                    last: 0,
                    until: 0,
                })
                .unwrap();
                for until in ROUNDS {
                    el.machine_mut().until = until;
                    el.run().unwrap();
                    done.fetch_add(1, Ordering::Release);
                }
            }
        });
        let mut el = EventLoop::new(Player {
            rx: a_rx,
            tx: to_b.clone(),
            last: 0,
            until: 0,
        })
        .unwrap();
        let mut round = |i: u32, start: u64| {
            el.machine_mut().until = ROUNDS[i as usize];
            to_b.try_send(start).unwrap();
            el.run().unwrap();
            let deadline = Instant::now() + DEADLINE;
            while done.load(Ordering::Acquire) <= i {
                assert!(Instant::now() < deadline, "B never finished round {i}");
                std::hint::spin_loop();
            }
            while el.machine_mut().rx.try_recv().is_some() {} // B's last answer
        };
        round(0, 0);
        let before = counters();
        round(1, WARMUP + 10);
        let after = counters();
        b.join().unwrap();
        assert!(el.machine().last >= ROUNDS[1] - 1);
        after.0 - before.0
    }

    /// A named case; `true` when it passed.
    type Case = (&'static str, fn() -> bool);

    pub fn main() {
        let args: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .collect();
        let cases: [Case; 3] = [
            ("flood", || flood(false) == 0),
            ("ping_pong", || ping_pong() == 0),
            ("self_check_allocating_handler_is_caught", || {
                flood(true) > 0
            }),
        ];
        if std::env::args().any(|a| a == "--list") {
            for (name, _) in cases {
                println!("{name}: test");
            }
            return;
        }
        let (mut passed, mut failed) = (0, 0);
        for (name, case) in cases {
            if !args.is_empty() && !args.iter().any(|a| name.contains(a.as_str())) {
                continue;
            }
            if case() {
                println!("test {name} ... ok");
                passed += 1;
            } else {
                println!("test {name} ... FAILED (allocations while messages flowed)");
                failed += 1;
            }
        }
        println!("{passed} passed, {failed} failed");
        if failed > 0 {
            std::process::exit(1);
        }
    }
}

fn main() {
    #[cfg(unix)]
    unix::main();
    #[cfg(not(unix))]
    println!("channel_alloc: SKIPPED (Unix only): nothing ran");
}

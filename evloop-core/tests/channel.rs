//! `channel`: a receiver is a source, under every backend; wakes coalesce per burst;
//! sending never blocks and a full channel is an error value; two loops on two threads
//! talk through a pair of channels.

use std::marker::PhantomData;
use std::time::Duration;

use evloop_core::channel::{channel, Receiver, SendError, Sender};
use evloop_core::{Backend, Ctx, Event, EventLoop, Exit, Machine, Token, Watch};

const INBOX: Token = Token(1);
/// Fires if something expected never happens.
const GUARD: Token = Token(2);
const GUARD_AFTER: Duration = Duration::from_secs(10);
const KICK: Token = Token(3);

struct Inbox<B> {
    rx: Receiver<u64, 64>,
    got: Vec<u64>,
    dispatches: u32,
    until: usize,
    _b: PhantomData<B>,
}

impl<B> Inbox<B> {
    fn new(rx: Receiver<u64, 64>, until: usize) -> Self {
        Inbox {
            rx,
            got: Vec::new(),
            dispatches: 0,
            until,
            _b: PhantomData,
        }
    }
}

impl<B: Backend> Machine for Inbox<B> {
    type Backend = B;
    fn setup(&mut self, ctx: &mut Ctx<Self>) -> evloop_core::Result<()> {
        ctx.add_io(&self.rx, INBOX, Watch::read())?;
        ctx.add_timer(GUARD, GUARD_AFTER)?;
        Ok(())
    }
    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        assert_ne!(
            ev.token,
            GUARD,
            "timed out with {} messages",
            self.got.len()
        );
        assert!(ev.ready.is_readable());
        self.dispatches += 1;
        while let Some(v) = self.rx.try_recv() {
            self.got.push(v);
        }
        if self.got.len() >= self.until || self.rx.is_disconnected() {
            ctx.exit();
        }
    }
}

fn burst_is_one_dispatch<B: Backend>() {
    let (tx, rx) = channel::<u64, 64>().unwrap();
    let mut el = EventLoop::new(Inbox::<B>::new(rx, 64)).unwrap();
    // The sender comes back alive: dropping it would wake the receiver too, and the
    // test is that the burst alone is one wake-up. It is dropped after the run.
    let tx = std::thread::spawn(move || {
        for i in 0..64 {
            tx.try_send(i).unwrap();
        }
        tx
    })
    .join()
    .unwrap();
    assert_eq!(el.run().unwrap(), Exit::Exited);
    drop(tx);
    assert_eq!(el.machine().got, (0..64).collect::<Vec<_>>());
    assert_eq!(el.machine().dispatches, 1, "one wake-up per burst");
}

fn last_sender_gone_wakes_the_receiver<B: Backend>() {
    let (tx, rx) = channel::<u64, 64>().unwrap();
    let mut el = EventLoop::new(Inbox::<B>::new(rx, usize::MAX)).unwrap();
    let t = std::thread::spawn(move || {
        tx.try_send(7).unwrap();
        drop(tx);
    });
    assert_eq!(el.run().unwrap(), Exit::Exited);
    t.join().unwrap();
    assert_eq!(el.machine().got, [7]);
    assert!(el.machine().rx.is_disconnected());
}

/// A loop whose handler sends into a channel nobody drains: the send never blocks and
/// the message comes back in `Full`.
struct Flooder<B> {
    tx: Sender<u64, 4>,
    sent: u64,
    refused: Option<u64>,
    _b: PhantomData<B>,
}

impl<B: Backend> Machine for Flooder<B> {
    type Backend = B;
    fn setup(&mut self, ctx: &mut Ctx<Self>) -> evloop_core::Result<()> {
        ctx.add_periodic(KICK, Duration::from_millis(1))?;
        Ok(())
    }
    fn dispatch(&mut self, ctx: &mut Ctx<Self>, _: Event) {
        loop {
            match self.tx.try_send(self.sent) {
                Ok(()) => self.sent += 1,
                Err(SendError::Full(m)) => {
                    self.refused = Some(m);
                    ctx.exit();
                    return;
                }
                Err(SendError::Closed(_)) => panic!("receiver is alive"),
            }
        }
    }
}

fn full_is_an_error_value<B: Backend>() {
    let (tx, mut rx) = channel::<u64, 4>().unwrap();
    let mut el = EventLoop::new(Flooder::<B> {
        tx,
        sent: 0,
        refused: None,
        _b: PhantomData,
    })
    .unwrap();
    assert_eq!(el.run().unwrap(), Exit::Exited);
    assert_eq!(el.machine().sent, 4);
    assert_eq!(el.machine().refused, Some(4));
    assert_eq!(rx.try_recv(), Some(0));
}

/// One side of a ping-pong: receives a number, sends it + 1 to the other side.
struct Player<B> {
    rx: Receiver<u64, 8>,
    tx: Sender<u64, 8>,
    last: u64,
    rounds: u64,
    _b: PhantomData<B>,
}

impl<B: Backend> Machine for Player<B> {
    type Backend = B;
    fn setup(&mut self, ctx: &mut Ctx<Self>) -> evloop_core::Result<()> {
        ctx.add_io(&self.rx, INBOX, Watch::read())?;
        ctx.add_timer(GUARD, GUARD_AFTER)?;
        Ok(())
    }
    fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
        assert_ne!(ev.token, GUARD, "ping-pong stalled at {}", self.last);
        while let Some(n) = self.rx.try_recv() {
            self.last = n;
            if n >= self.rounds {
                ctx.exit();
                let _ = self.tx.try_send(n + 1); // let the other side finish too
                return;
            }
            self.tx.try_send(n + 1).expect("one message in flight");
        }
    }
}

fn ping_pong_between_two_loops<B: Backend>() {
    const ROUNDS: u64 = 20_000;
    let (to_a, a_rx) = channel::<u64, 8>().unwrap();
    let (to_b, b_rx) = channel::<u64, 8>().unwrap();
    let b = std::thread::spawn({
        let to_a = to_a.clone();
        move || {
            let mut el = EventLoop::new(Player::<B> {
                rx: b_rx,
                tx: to_a,
                last: 0,
                rounds: ROUNDS,
                _b: PhantomData,
            })
            .unwrap();
            el.run().unwrap();
            el.machine().last
        }
    });
    let mut el = EventLoop::new(Player::<B> {
        rx: a_rx,
        tx: to_b.clone(),
        last: 0,
        rounds: ROUNDS,
        _b: PhantomData,
    })
    .unwrap();
    to_b.try_send(0).unwrap(); // serve
    el.run().unwrap();
    let b_last = b.join().unwrap();
    let a_last = el.machine().last;
    assert!(a_last >= ROUNDS || b_last >= ROUNDS, "{a_last} {b_last}");
    assert!(a_last.abs_diff(b_last) <= 1);
    drop(to_a);
}

/// The generic bodies above, one `#[test]` each, under the backend given; one module per
/// backend below (`epoll_channel::burst_is_one_dispatch`, `kqueue_channel::…`).
macro_rules! channel_tests {
    ($backend:ty) => {
        channel_tests! { @emit $backend;
            burst_is_one_dispatch,
            last_sender_gone_wakes_the_receiver,
            full_is_an_error_value,
            ping_pong_between_two_loops,
        }
    };
    (@emit $backend:ty; $($body:ident),* $(,)?) => {$(
        #[test]
        fn $body() {
            super::$body::<$backend>()
        }
    )*};
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll_channel {
    channel_tests!(evloop_core::Epoll);
}

#[cfg(unix)]
mod poll_channel {
    channel_tests!(evloop_core::Poll);
}

#[cfg(unix)]
mod select_channel {
    channel_tests!(evloop_core::Select);
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
mod kqueue_channel {
    channel_tests!(evloop_core::Kqueue);
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod event_ports_channel {
    channel_tests!(evloop_core::EventPorts);
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod devpoll_channel {
    channel_tests!(evloop_core::DevPoll);
}

#[cfg(windows)]
mod afd_channel {
    channel_tests!(evloop_core::Afd);
}

/// Producers spin on a small channel; the receiver reads only when `poll(2)` says its fd
/// is readable. A lost wake-up shows as a poll that times out while messages wait.
/// (Unix: it asks `poll(2)` directly.)
#[cfg(unix)]
#[test]
fn no_lost_wakeup_under_contention() {
    use std::os::fd::{AsFd, AsRawFd};
    use std::time::Instant;
    const PRODUCERS: usize = 3;
    const PER: u64 = 20_000;
    for round in 0..10 {
        let (tx, mut rx) = channel::<u64, 4>().unwrap();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|_| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let deadline = Instant::now() + GUARD_AFTER;
                    for i in 0..PER {
                        let mut v = i;
                        while let Err(e) = tx.try_send(v) {
                            v = e.into_inner();
                            assert!(Instant::now() < deadline, "receiver stalled");
                            std::hint::spin_loop();
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let mut got = 0;
        while got < PRODUCERS as u64 * PER {
            let mut pfd = libc::pollfd {
                fd: rx.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, GUARD_AFTER.as_millis() as i32) };
            assert_eq!(
                n,
                1,
                "round {round}: lost wake-up at {got}, {} waiting",
                rx.len()
            );
            while rx.try_recv().is_some() {
                got += 1;
            }
        }
        for p in producers {
            p.join().unwrap();
        }
    }
}

/// Every body again under epoll with injected EINTR and spurious wake-ups
/// (`evloop_backends::fault`, the `fault-injection` feature; `.ci/faults`). A spurious
/// wake-up returns no event, so it adds no dispatch: a burst is still one.
#[cfg(all(
    feature = "fault-injection",
    any(target_os = "linux", target_os = "android")
))]
mod fault_epoll_channel {
    channel_tests!(evloop_backends::fault::FaultInjecting<evloop_core::Epoll>);
}

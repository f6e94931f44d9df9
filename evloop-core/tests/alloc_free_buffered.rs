//! No heap allocation per event for buffered connections, in steady state, under every
//! backend: io_uring's completion I/O (the backend receives into its buffer ring and
//! sends from the connection's reused send buffer) as well as the readiness backends'
//! read and write calls.
//!
//! A `BufSlab` echo server with `CONNS` connections; the test plays the clients over the
//! other ends of socketpairs, from the loop's own thread (the machine's idle hook reads
//! the replies back and sends each connection its next request). After a warm-up round, the
//! allocator's counters must not move while `REQUESTS` more round trips are served.
//!
//! `harness = false`: a plain program printing one line per case and `N passed, N
//! failed`; it exits non-zero on failure. Arguments: `--list`, or words selecting cases.

#[cfg(unix)]
#[path = "support/cases.rs"]
mod cases;
#[cfg(unix)]
#[path = "support/counting_alloc.rs"]
mod counting_alloc;

// Unix only so far (Unix sockets, signals, or the Unix-only core modules); on Windows the
// binary runs nothing.
#[cfg(unix)]
mod unix {
    #[allow(unused_imports)]
    use super::*;

    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    use evloop_core::buffered::{BufConfig, BufSlab, Eol};
    use evloop_core::{
        Backend, Builder, Ctx, Event, EventLoop, Exit, Key, Machine, Ready, Source, Watch,
    };

    use counting_alloc::counters;

    const CONNS: usize = 8;
    const WARMUP: u64 = 2_000;
    const REQUESTS: u64 = 20_000;
    const CONNS_TAG: u16 = 1;
    const REQUEST: &[u8] = b"get some:key\r\n";

    struct Echo<B> {
        conns: BufSlab<UnixStream>,
        clients: Vec<UnixStream>,
        /// Per client: a request is out and its reply not yet read back.
        waiting: Vec<bool>,
        served: u64,
        target: u64,
        completion: bool,
        fail: Option<String>,
        _b: std::marker::PhantomData<B>,
    }

    impl<B: Backend> Echo<B> {
        /// Read back the replies that arrived; send the next request on each idle client.
        fn play_clients(&mut self, ctx: &mut Ctx<Self>) {
            let mut buf = [0u8; 256];
            for (i, c) in self.clients.iter().enumerate() {
                if self.waiting[i] {
                    match (&*c).read(&mut buf) {
                        Ok(n) if n == REQUEST.len() => self.waiting[i] = false,
                        Ok(n) => {
                            // A reply split in two: read the rest.
                            let mut rest = [0u8; 64];
                            let need = REQUEST.len() - n;
                            if (&*c).read_exact(&mut rest[..need]).is_err() {
                                self.fail = Some(format!("client {i}: short reply ({n} bytes)"));
                            }
                            self.waiting[i] = false;
                        }
                        Err(_) => continue, // not back yet
                    }
                }
                if self.served < self.target && !self.waiting[i] {
                    if (&*c).write_all(REQUEST).is_err() {
                        self.fail = Some(format!("client {i}: write failed"));
                    }
                    self.waiting[i] = true;
                }
            }
            if self.fail.is_some() || (self.served >= self.target && !self.waiting.contains(&true))
            {
                ctx.exit();
            }
        }
    }

    impl<B: Backend> Machine for Echo<B> {
        type Backend = B;

        fn setup(&mut self, ctx: &mut Ctx<Self>) -> evloop_core::Result<()> {
            self.conns.attach(ctx, CONNS_TAG, Watch::read())?;
            ctx.set_idle(true);
            Ok(())
        }

        fn idle(&mut self, ctx: &mut Ctx<Self>) {
            self.play_clients(ctx);
        }

        fn dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event) {
            let Some(key) = self.conns.entry(ev.token) else {
                return;
            };
            let ready = self.conns.before_dispatch(ctx, key, ev.ready);
            if ready.intersects(Ready::READABLE | Ready::READ_CLOSED) {
                self.serve(key);
            }
            self.conns.after_dispatch(ctx, key);
        }
    }

    impl<B: Backend> Echo<B> {
        fn serve(&mut self, key: Key) {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            let (input, output) = c.buffers();
            while let Ok(Some(line)) = input.read_line(Eol::Crlf) {
                if output
                    .extend(line)
                    .and_then(|_| output.extend(b"\r\n"))
                    .is_err()
                {
                    self.fail = Some("output full".to_string());
                }
                self.served += 1;
            }
        }
    }

    fn measure<B: Backend>() -> Result<String, String> {
        let mut conns = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..CONNS {
            let (a, b) = UnixStream::pair().map_err(|e| e.to_string())?;
            b.set_nonblocking(true).map_err(|e| e.to_string())?;
            conns.push(a);
            clients.push(b);
        }
        let machine = Echo::<B> {
            conns: BufSlab::with_capacity(CONNS, BufConfig::new(4096, 4096)),
            clients,
            waiting: vec![false; CONNS],
            served: 0,
            target: WARMUP,
            completion: false,
            fail: None,
            _b: std::marker::PhantomData,
        };
        let mut el: EventLoop<Echo<B>> = Builder::new()
            .sources(64)
            .build(machine)
            .map_err(|e| format!("build: {e}"))?;
        {
            let (m, ctx) = el.parts();
            for a in conns {
                m.conns.insert(ctx, a).map_err(|e| format!("insert: {e}"))?;
            }
            m.completion = m.conns.uses_completion_io();
        }
        // Warm-up: every connection's buffers (and, under io_uring, its send buffer and the
        // buffer ring) made.
        let exit = el.run().map_err(|e| format!("run: {e}"))?;
        if exit != Exit::Exited {
            return Err(format!("warm-up: run returned {exit:?}"));
        }
        let m = el.machine_mut();
        let start = m.served;
        m.target = start + REQUESTS;
        let (a0, d0) = counters();
        let t0 = Instant::now();
        let r = el.run();
        let elapsed = t0.elapsed();
        let (a1, d1) = counters();
        let exit = r.map_err(|e| format!("run: {e}"))?;
        let m = el.machine();
        if let Some(why) = &m.fail {
            return Err(format!("the machine failed: {why}"));
        }
        if exit != Exit::Exited {
            return Err(format!("run returned {exit:?}"));
        }
        let served = m.served - start;
        let mode = if m.completion {
            "completion I/O"
        } else {
            "readiness"
        };
        let line = format!(
            "alloc_free_buffered {} ({mode}): {served} requests served, {} allocations, {} deallocations ({elapsed:?})",
            B::NAME,
            a1 - a0,
            d1 - d0
        );
        if served < REQUESTS {
            return Err(format!("{line}: fewer than {REQUESTS}"));
        }
        if a1 != a0 || d1 != d0 {
            return Err(format!("{line}: the buffered path touched the heap"));
        }
        Ok(line)
    }

    /// io_uring must actually be in completion mode, or the case above proves nothing new.
    #[cfg(target_os = "linux")]
    fn uring_uses_completion() -> Result<String, String> {
        let line = measure::<evloop_core::Uring>()?;
        if !line.contains("(completion I/O)") {
            return Err(format!("{line}: not in completion mode"));
        }
        Ok(line)
    }

    use cases::Case;

    fn cases() -> Vec<Case> {
        vec![
            #[cfg(any(target_os = "linux", target_os = "android"))]
            ("alloc_free_buffered_epoll", measure::<evloop_core::Epoll>),
            #[cfg(target_os = "linux")]
            (
                "alloc_free_buffered_uring_completion",
                uring_uses_completion,
            ),
            ("alloc_free_buffered_poll", measure::<evloop_core::Poll>),
            ("alloc_free_buffered_select", measure::<evloop_core::Select>),
        ]
    }

    pub fn main() {
        cases::main(cases());
    }
}

fn main() {
    #[cfg(unix)]
    unix::main();
    #[cfg(not(unix))]
    println!("alloc_free_buffered: SKIPPED (Unix only): nothing ran");
}

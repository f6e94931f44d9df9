//! Timers: one-shot, periodic, I/O idle timeouts, stalls, huge and tiny durations,
//! never early, many equal durations, random churn, and the cached clock.

use std::io::Write;
use std::time::{Duration, Instant};

use evloop_core::{Backend, Builder, Ctx, Event, Exit, Ready, SourceId, Token, Watch};

use super::util::*;

/// A one-shot timer fires once, no earlier than its delay, then stays registered but
/// unarmed (the loop is empty); `reset_timer` arms it again.
pub fn one_shot_timer_fires_once<B: Backend>() {
    let mut el = harness::<B, ()>((), nothing);
    let t0 = el.ctx().refresh_now();
    let d = Duration::from_millis(15);
    let t = el.ctx().add_timer(Token(7), d).unwrap();
    assert!(el.ctx().is_active(t));
    assert_eq!(el.run().unwrap(), Exit::Empty);
    assert!(t0.elapsed() >= d, "fired early: {:?}", t0.elapsed());
    let log = &el.machine().log;
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].token, log[0].ready, log[0].source),
        (Token(7), Ready::TIMEOUT, t)
    );
    assert!(!el.ctx().is_active(t));
    assert_eq!(el.ctx().timer_remaining(t), None);
    assert_eq!(el.ctx().source_count(), 1);

    el.ctx().reset_timer(t).unwrap();
    assert_eq!(el.run().unwrap(), Exit::Empty);
    assert_eq!(el.machine().log.len(), 2);
    el.ctx().remove(t).unwrap();
    assert_eq!(el.ctx().source_count(), 0);
}

struct Ticks {
    at: Vec<Instant>,
}

fn tick<B: Backend>(s: &mut Ticks, ctx: &mut Ctx<Harness<B, Ticks>>, ev: &Event) {
    assert!(ev.ready.is_timeout() && ev.count >= 1, "{ev:?}");
    s.at.push(ctx.now());
    if s.at.len() == 5 {
        ctx.remove(ev.source).unwrap();
    }
}

/// A periodic timer fires every period, each time no earlier than its phase, until
/// removed.
pub fn periodic_timer_fires_every_period<B: Backend>() {
    let mut el = harness::<B, Ticks>(Ticks { at: Vec::new() }, tick);
    let p = Duration::from_millis(3);
    let t0 = el.ctx().refresh_now();
    el.ctx().add_periodic(Token(1), p).unwrap();
    assert_eq!(el.run().unwrap(), Exit::Empty);
    let at = &el.machine().state.at;
    assert_eq!(at.len(), 5);
    let mut periods = 0;
    for (ev, when) in el.machine().log.iter().zip(at) {
        periods += ev.count;
        assert!(*when >= t0 + p * periods, "period {periods} fired early");
    }
}

/// An I/O idle timeout is pushed back by every I/O dispatch, and fires (only) once the
/// source has been idle for the whole timeout; a persistent source keeps timing out.
pub fn io_timeout_reset_by_activity<B: Backend>() {
    let (a, mut b) = stream_pair();
    let mut el = harness::<B, ()>((), nothing);
    let timeout = Duration::from_millis(200);
    let id = el
        .ctx()
        .add_io(&a, Token(1), Watch::read().timeout(timeout))
        .unwrap();
    for i in 0..3 {
        std::thread::sleep(Duration::from_millis(40));
        b.write_all(b"x").unwrap();
        assert_eq!(el.run_once().unwrap(), Exit::Done);
        let ev = el.machine().log[i];
        assert!(
            ev.ready.is_readable() && !ev.ready.is_timeout(),
            "{:?}",
            ev.ready
        );
        drain(&a);
        // Without the reset, 40 ms or more of the timeout would be gone.
        let left = el.ctx().timer_remaining(id).unwrap();
        assert!(
            left > Duration::from_millis(190),
            "not reset by activity: {left:?}"
        );
    }
    let idle_since = el.ctx().refresh_now();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    let ev = el.machine().log[3];
    assert_eq!(ev.ready, Ready::TIMEOUT);
    assert!(idle_since.elapsed() >= Duration::from_millis(190));

    // Persistent: it times out again, every idle period.
    el.ctx()
        .set_idle_timeout(id, Some(Duration::from_millis(2)))
        .unwrap();
    for i in 4..7 {
        assert_eq!(el.run_once().unwrap(), Exit::Done);
        assert_eq!(el.machine().log[i].ready, Ready::TIMEOUT);
    }
    el.ctx().set_idle_timeout(id, None).unwrap();
    assert_eq!(el.ctx().timer_remaining(id), None);
}

/// A periodic timer whose process stalled for many periods fires once, with the number
/// of elapsed periods in `Event::count`, and keeps its phase.
pub fn stalled_periodic_timer_fires_once_with_count<B: Backend>() {
    let mut el = harness::<B, ()>((), nothing);
    let p = Duration::from_millis(2);
    el.ctx().refresh_now();
    let t = el.ctx().add_periodic(Token(1), p).unwrap();
    std::thread::sleep(Duration::from_millis(25)); // the stall: 12 periods or more
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    let log = &el.machine().log;
    assert_eq!(log.len(), 1, "a burst instead of one dispatch: {log:?}");
    assert!(
        log[0].count >= 12,
        "count {} < elapsed periods",
        log[0].count
    );
    assert!(el.ctx().timer_remaining(t).unwrap() <= p, "lost its phase");
}

/// Huge timeouts (`Duration::MAX`, `u64::MAX` ms, thousands of days) are clamped: they
/// never overflow, never fire early, and a loop waiting on them still wakes for its other
/// timers.
pub fn huge_timeouts_never_fire_or_overflow<B: Backend>() {
    let (a, _b) = stream_pair();
    let mut el = harness::<B, ()>((), nothing);
    let day = Duration::from_secs(86_400);
    let ctx = el.ctx();
    let ids = [
        ctx.add_timer(Token(1), Duration::MAX).unwrap(),
        ctx.add_timer(Token(2), Duration::from_millis(u64::MAX))
            .unwrap(),
        ctx.add_timer(Token(3), day * 10_000).unwrap(),
        ctx.add_periodic(Token(4), Duration::MAX).unwrap(),
        ctx.add_io(&a, Token(5), Watch::read().timeout(Duration::MAX))
            .unwrap(),
        ctx.add_io(&a, Token(6), Watch::read()).unwrap(),
    ];
    ctx.set_idle_timeout(ids[5], Some(day * 3)).unwrap();
    ctx.exit_after(Duration::MAX);
    for id in ids {
        let left = el.ctx().timer_remaining(id).unwrap();
        assert!(left >= day * 2, "{left:?}");
    }
    if let Some(d) = el.next_timeout() {
        assert!(d >= day * 2, "next timeout {d:?}");
    }
    let start = Instant::now();
    assert_eq!(el.poll(Some(Duration::from_millis(30))).unwrap(), 0);
    assert!(start.elapsed() >= Duration::from_millis(20), "did not wait");

    el.ctx()
        .add_timer(Token(9), Duration::from_millis(5))
        .unwrap();
    turn_until(&mut el, "the short timer", |el| {
        !el.machine().log.is_empty()
    });
    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    assert_eq!(el.machine().tokens(), [9], "a huge timeout fired");
}

struct Trial {
    fired: Option<(Instant, Instant)>,
}

fn record_fire<B: Backend>(s: &mut Trial, ctx: &mut Ctx<Harness<B, Trial>>, ev: &Event) {
    if ev.token == Token(1) {
        s.fired = Some((Instant::now(), ctx.now()));
    }
}

/// Over 1000 short trials, a timer never fires before its deadline: neither the cached
/// clock nor the real one at dispatch is earlier than arming time plus delay. A second,
/// fast periodic timer keeps the loop checking its timers at all phases before the
/// deadline, where an early expiry would show.
pub fn timer_never_fires_early<B: Backend>() {
    let mut el = harness::<B, Trial>(Trial { fired: None }, record_fire);
    let t = el
        .ctx()
        .add_timer(Token(1), Duration::from_secs(3600))
        .unwrap();
    el.ctx()
        .add_periodic(Token(2), Duration::from_micros(97))
        .unwrap();
    for i in 0..1000u64 {
        let d = Duration::from_nanos((i * 7_919 + 13) % 1_200_000);
        let armed = el.ctx().refresh_now();
        el.ctx().set_timer_duration(t, d).unwrap();
        el.machine_mut().state.fired = None;
        while el.machine().state.fired.is_none() {
            assert_eq!(el.run_once().unwrap(), Exit::Done);
        }
        let (wall, cached) = el.machine().state.fired.unwrap();
        assert!(
            cached >= armed + d,
            "trial {i}: fired {:?} early",
            armed + d - cached
        );
        assert!(
            wall >= armed + d,
            "trial {i}: fired early by the real clock"
        );
        assert!(cached <= wall);
    }
    let fired = el
        .machine()
        .log
        .iter()
        .filter(|e| e.token == Token(1))
        .count();
    assert_eq!(fired, 1000);
}

/// Sub-millisecond timeouts fire, and do not turn into a busy loop: almost every turn of
/// the loop dispatches something.
pub fn sub_millisecond_timeouts_do_not_spin<B: Backend>() {
    let mut el = harness::<B, ()>((), nothing);
    el.ctx().refresh_now();
    let t = el
        .ctx()
        .add_timer(Token(1), Duration::from_micros(100))
        .unwrap();
    let mut turns = 0;
    while el.machine().log.is_empty() {
        turns += 1;
        assert!(turns <= 3, "a 100 µs timer needed more than 3 turns");
        el.poll(None).unwrap();
    }
    el.ctx().remove(t).unwrap();

    let p = el
        .ctx()
        .add_periodic(Token(2), Duration::from_micros(250))
        .unwrap();
    let wall = Duration::from_millis(40);
    let start = Instant::now();
    let (mut turns, mut empty) = (0u32, 0u32);
    while start.elapsed() < wall {
        turns += 1;
        if el.poll(None).unwrap() == 0 {
            empty += 1;
        }
    }
    let periods: u32 = el.machine().log[1..].iter().map(|e| e.count).sum();
    assert!(empty <= 10, "{empty} of {turns} turns dispatched nothing");
    assert!(
        periods >= 100,
        "only {periods} periods of 250 µs counted in {wall:?}"
    );
    el.ctx().remove(p).unwrap();
}

struct Idle {
    deadline: Vec<Instant>,
    fired: Vec<u32>,
    last: Option<Instant>,
}

fn idle_fired<B: Backend>(s: &mut Idle, ctx: &mut Ctx<Harness<B, Idle>>, ev: &Event) {
    let i = ev.token.0 as usize;
    let due = s.deadline[i];
    assert!(ctx.now() >= due, "timer {i} fired early");
    if let Some(last) = s.last {
        assert!(due >= last, "timer {i} fired out of deadline order");
    }
    s.last = Some(due);
    s.fired[i] += 1;
}

/// 10,000 timers of one duration (per-connection idle timeouts), each reset five times:
/// every one fires exactly once, never early, in deadline order.
pub fn many_equal_duration_timers<B: Backend>() {
    const N: usize = 10_000;
    let d = Duration::from_millis(30);
    let state = Idle {
        deadline: vec![Instant::now(); N],
        fired: vec![0; N],
        last: None,
    };
    let builder = Builder::new().sources(N + 8).timers(N + 8);
    let mut el = harness_with::<B, Idle>(builder, state, idle_fired);
    let now = el.ctx().refresh_now();
    let ids: Vec<SourceId> = (0..N)
        .map(|i| el.ctx().add_timer(Token(i as u64), d).unwrap())
        .collect();
    el.machine_mut().state.deadline = vec![now + d; N];
    for _round in 0..5 {
        for k in 0..N {
            let i = (k * 7) % N;
            let now = el.ctx().refresh_now();
            el.ctx().reset_timer(ids[i]).unwrap();
            el.machine_mut().state.deadline[i] = now + d;
        }
    }
    turn_until(&mut el, "10k timers", |el| el.machine().log.len() >= N);
    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    assert_eq!(el.machine().log.len(), N);
    assert!(el.machine().state.fired.iter().all(|&n| n == 1));
}

struct ChurnModel {
    ids: Vec<SourceId>,
    /// When each timer is due, as far as the test knows (`None`: disarmed).
    due: Vec<Option<Instant>>,
    rng: u64,
    fired: u64,
    target: u64,
}

impl ChurnModel {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
    fn duration(&mut self) -> Duration {
        const COMMON: [u64; 4] = [100, 250, 1_000, 2_000];
        let r = self.next();
        if r.is_multiple_of(3) {
            Duration::from_micros(COMMON[(r / 3 % 4) as usize])
        } else {
            Duration::from_micros(r / 3 % 3_000)
        }
    }
}

/// Check the loop's view of timer `j` against the model (only where the model is sure:
/// a timer due by now may already be expired and waiting for its dispatch).
fn check_timer<M: evloop_core::Machine>(ctx: &Ctx<M>, m: &ChurnModel, j: usize) {
    let now = ctx.now();
    match m.due[j] {
        Some(due) if due > now => {
            assert!(ctx.is_active(m.ids[j]), "timer {j} lost");
            assert_eq!(
                ctx.timer_remaining(m.ids[j]),
                Some(due - now),
                "timer {j} moved"
            );
        }
        Some(_) => {}
        None => {
            assert!(!ctx.is_active(m.ids[j]), "cancelled timer {j} still armed");
            assert_eq!(ctx.timer_remaining(m.ids[j]), None);
        }
    }
}

fn churn<B: Backend>(m: &mut ChurnModel, ctx: &mut Ctx<Harness<B, ChurnModel>>, ev: &Event) {
    let i = ev.token.0 as usize;
    let now = ctx.now();
    let due = m.due[i].unwrap_or_else(|| panic!("timer {i} fired while disarmed"));
    assert!(now >= due, "timer {i} fired {:?} early", due - now);
    m.due[i] = None;
    m.fired += 1;

    let j = (m.next() % m.ids.len() as u64) as usize;
    // Leave alone a timer that may be expired and waiting for its dispatch.
    if j != i && m.due[j].is_none_or(|d| d > now) {
        match m.next() % 3 {
            0 => {
                ctx.stop(m.ids[j]).unwrap();
                m.due[j] = None;
            }
            _ => {
                let d = m.duration();
                ctx.set_timer_duration(m.ids[j], d).unwrap();
                m.due[j] = Some(now + d);
            }
        }
    }
    let k = (m.next() % m.ids.len() as u64) as usize;
    check_timer(ctx, m, k);

    let d = Duration::from_micros(1 + m.next() % 2_000);
    ctx.set_timer_duration(ev.source, d).unwrap();
    m.due[i] = Some(now + d);
    if m.fired == m.target {
        ctx.exit();
    }
}

/// Random churn: 20,000 timers whose handlers re-arm themselves and randomly cancel or
/// re-arm others, until 200,000 have fired. No timer fires early or while cancelled, and
/// the loop's view matches the model throughout and at the end.
pub fn random_timer_churn<B: Backend>() {
    const N: usize = 20_000;
    let state = ChurnModel {
        ids: Vec::with_capacity(N),
        due: vec![None; N],
        rng: 0x2545_f491_4f6c_dd1d,
        fired: 0,
        target: 200_000,
    };
    let builder = Builder::new().sources(N).timers(N);
    let mut el = harness_with::<B, ChurnModel>(builder, state, churn);
    let (m, ctx) = el.parts();
    let now = ctx.refresh_now();
    for i in 0..N {
        let d = m.state.duration();
        m.state.ids.push(ctx.add_timer(Token(i as u64), d).unwrap());
        m.state.due[i] = Some(now + d);
    }
    assert_eq!(el.run().unwrap(), Exit::Exited);

    let (m, ctx) = el.parts();
    assert!(m.state.fired >= m.state.target);
    for j in 0..N {
        check_timer(ctx, &m.state, j);
        if let Some(due) = m.state.due[j] {
            assert!(ctx.is_active(m.state.ids[j]));
            let left = ctx.timer_remaining(m.state.ids[j]).unwrap();
            assert_eq!(left, due.saturating_duration_since(ctx.now()));
        }
    }
    let armed = m.state.due.iter().filter(|d| d.is_some()).count();
    let dump = ctx.dump().to_string();
    assert!(
        dump.lines()
            .next()
            .unwrap()
            .contains(&format!(" {armed} timers armed")),
        "the loop's armed count drifted from {armed}: {}",
        dump.lines().next().unwrap()
    );
}

#[derive(Default)]
struct Clock {
    seen: Vec<Instant>,
}

fn watch_clock<B: Backend>(s: &mut Clock, ctx: &mut Ctx<Harness<B, Clock>>, ev: &Event) {
    let a = ctx.now();
    s.seen.push(a);
    if ev.token == Token(1) {
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(ctx.now(), a, "the cached now moved within a handler");
    }
}

/// The cached now is read once per iteration: every handler of one iteration sees the
/// same value, the next iteration a later one, and `refresh_now` reads the clock again.
pub fn cached_now_is_stable_within_an_iteration<B: Backend>() {
    let mut el = harness::<B, Clock>(Clock::default(), watch_clock);
    let u1 = el.ctx().add_user(Token(1)).unwrap();
    let u2 = el.ctx().add_user(Token(2)).unwrap();
    el.ctx().activate(u1, Ready::EMPTY).unwrap();
    el.ctx().activate(u2, Ready::EMPTY).unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    let seen = el.machine().state.seen.clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0], seen[1],
        "two handlers of one iteration saw different times"
    );
    assert_eq!(el.ctx().now(), seen[0], "still the same iteration's now");

    let fresh = el.ctx().refresh_now();
    assert!(
        fresh >= seen[0] + Duration::from_millis(2),
        "refresh_now did not advance"
    );
    assert_eq!(el.ctx().now(), fresh);

    el.ctx().activate(u2, Ready::EMPTY).unwrap();
    assert_eq!(el.run_once().unwrap(), Exit::Done);
    assert!(
        el.machine().state.seen[2] >= fresh,
        "a later iteration saw an older now"
    );
}

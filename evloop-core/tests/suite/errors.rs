//! Invalid input and exhausted capacities: each refused with a clear error, with nothing
//! registered and nothing else disturbed.

use std::io::Write;
#[cfg(unix)]
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use evloop_core::{
    Backend, Builder, Error, EventLoop, Exit, Interest, Key, Ready, Slab, Source, Token, Watch,
};

use super::util::*;

/// A loop with one healthy source, to show an error disturbed nothing: returns the loop,
/// and the pair whose first end is registered under token 1000.
fn with_bystander<B: Backend>(builder: Builder) -> (EventLoop<Harness<B, ()>>, (Stream, Stream)) {
    let pair = stream_pair();
    let mut el = harness_with::<B, ()>(builder, (), nothing);
    el.ctx()
        .add_io(&pair.0, Token(1000), Watch::read())
        .unwrap();
    (el, pair)
}

/// The bystander still works: data on it is dispatched.
fn bystander_fires<B: Backend>(el: &mut EventLoop<Harness<B, ()>>, pair: &(Stream, Stream)) {
    (&pair.1).write_all(b"x").unwrap();
    let before = el.machine().log.len();
    turn_until(el, "the bystander", |el| {
        el.machine().log[before..]
            .iter()
            .any(|e| e.token == Token(1000))
    });
    drain(&pair.0);
}

/// Negative fds are refused with `InvalidFd`.
pub fn negative_fd_is_refused<B: Backend>() {
    let (mut el, pair) = with_bystander::<B>(Builder::new());
    #[cfg(unix)]
    let bad = [-1, -42, i32::MIN];
    // INVALID_SOCKET
    #[cfg(windows)]
    let bad = [evloop_core::RawSource::MAX];
    for fd in bad {
        let e = el.ctx().add_io_raw(fd, Token(1), Watch::read());
        assert!(matches!(e, Err(Error::InvalidFd(f)) if f == fd), "{e:?}");
    }
    assert_eq!(el.ctx().source_count(), 1);
    bystander_fires(&mut el, &pair);
}

/// A closed fd is refused with `InvalidFd` (exclusive: the number must stay closed).
pub fn closed_fd_is_refused<B: Backend>() {
    let (mut el, pair) = with_bystander::<B>(Builder::new());
    let (a, _b) = stream_pair();
    let closed = raw(&a);
    drop(a); // the number stays free: no other test opens fds while we hold the lock
    let backend_fds = el.ctx().backend().len();
    let e = el.ctx().add_io_raw(closed, Token(1), Watch::read());
    assert!(
        matches!(e, Err(Error::InvalidFd(f)) if f == closed),
        "{e:?}"
    );
    assert_eq!(el.ctx().source_count(), 1);
    assert_eq!(el.ctx().backend().len(), backend_fds);
    bystander_fires(&mut el, &pair);
}

#[cfg(unix)]
/// An fd number beyond the backend's limit (select: `FD_SETSIZE`) is refused with
/// `FdTooLarge`, also through a slab, which stays unchanged; backends without a limit
/// watch it like any other (exclusive: it raises the fd limit and takes a high number).
pub fn fd_beyond_backend_limit<B: Backend>() {
    let limit = raise_fd_limit();
    let min = libc::FD_SETSIZE as i32 + 100;
    if limit <= min as u64 + 8 {
        eprintln!("skipped: RLIMIT_NOFILE hard limit {limit} leaves no fd above {min}");
        return;
    }
    let (a, mut b) = stream_pair();
    let high = Stream::from(dup_at_least(a.as_fd(), min).unwrap());
    let fd = high.as_raw_fd();
    assert!(fd >= min);
    let (mut el, pair) = with_bystander::<B>(Builder::new());
    let r = el.ctx().add_io(&high, Token(1), Watch::read());
    match B::MAX_FD {
        Some(max) => {
            assert!(
                matches!(r, Err(Error::FdTooLarge { fd: f, max: m, backend }) if f == fd && m == max && backend == B::NAME),
                "{r:?}"
            );
            let mut slab: Slab<Stream> = Slab::with_capacity(2);
            slab.attach(el.ctx(), 1, Watch::read()).unwrap();
            let e = slab.insert_with(el.ctx(), high, Watch::read());
            assert!(matches!(e, Err(Error::FdTooLarge { .. })), "{e:?}");
            assert!(slab.is_empty());
            assert_eq!(el.ctx().source_count(), 1);
        }
        None => {
            let id = r.unwrap();
            b.write_all(b"x").unwrap();
            turn_until(&mut el, "the high fd", |el| {
                el.machine().log.iter().any(|e| e.token == Token(1))
            });
            el.ctx().remove(id).unwrap();
            drop(high);
        }
    }
    bystander_fires(&mut el, &pair);
}

/// A `SourceId` kept after its source was removed is `StaleSource` for every operation,
/// and never touches the source that reuses its slot.
pub fn stale_source_id_is_refused<B: Backend>() {
    let (mut el, pair) = with_bystander::<B>(Builder::new());
    let ctx = el.ctx();
    let old = ctx.add_timer(Token(1), Duration::from_secs(60)).unwrap();
    ctx.remove(old).unwrap();
    let new = ctx.add_timer(Token(2), Duration::from_secs(60)).unwrap();
    assert_eq!(new.index(), old.index());
    let stale = |r: Result<(), Error>| matches!(r, Err(Error::StaleSource));
    assert!(stale(ctx.remove(old)));
    assert!(stale(ctx.stop(old)));
    assert!(stale(ctx.start(old)));
    assert!(stale(ctx.activate(old, Ready::EMPTY)));
    assert!(stale(ctx.set_priority(old, 0)));
    assert!(stale(ctx.reset_timer(old)));
    assert!(stale(ctx.set_timer_duration(old, Duration::ZERO)));
    assert!(stale(ctx.set_idle_timeout(old, None)));
    assert!(stale(ctx.set_interest(old, Interest::READ)));
    assert!(!ctx.is_active(old));
    assert_eq!(ctx.timer_remaining(old), None);
    assert!(ctx.is_active(new), "the new occupant was disturbed");
    assert!(ctx.timer_remaining(new).unwrap() > Duration::from_secs(50));
    assert_eq!(ctx.source_count(), 2);
    bystander_fires(&mut el, &pair);
    assert!(!el
        .machine()
        .log
        .iter()
        .any(|e| e.token == Token(2) || e.token == Token(1)));
}

/// A slab `Key` kept after its entry was removed is `StaleKey`, and never reaches the
/// entry that reuses its slot.
pub fn stale_key_is_refused<B: Backend>() {
    let (mut el, pair) = with_bystander::<B>(Builder::new());
    let mut slab: Slab<Stream> = Slab::with_capacity(1);
    slab.attach(el.ctx(), 2, Watch::read()).unwrap();
    let (a, _pa) = stream_pair();
    let (b, _pb) = stream_pair();
    let old = slab.insert_with(el.ctx(), a, Watch::read()).unwrap();
    slab.remove(el.ctx(), old).unwrap();
    assert!(matches!(slab.remove(el.ctx(), old), Err(Error::StaleKey)));
    let new = slab.insert_with(el.ctx(), b, Watch::read()).unwrap();
    assert_eq!(new.index(), old.index());
    assert!(matches!(slab.remove(el.ctx(), old), Err(Error::StaleKey)));
    assert!(slab.get(old).is_none() && slab.source(old).is_none());
    assert!(slab.contains(new), "the new entry was disturbed");
    let forged = Key::from_parts(old.index(), old.generation().wrapping_add(7));
    assert!(matches!(
        slab.remove(el.ctx(), forged),
        Err(Error::StaleKey)
    ));
    assert_eq!(el.ctx().source_count(), 2);
    bystander_fires(&mut el, &pair);
}

/// A full slab refuses with `SlabFull` before registering anything; removing an entry
/// makes room again.
pub fn full_slab_is_refused<B: Backend>() {
    let (mut el, pair) = with_bystander::<B>(Builder::new());
    let mut slab: Slab<Stream> = Slab::with_capacity(2);
    slab.attach(el.ctx(), 2, Watch::read()).unwrap();
    let mut peers = Vec::new();
    let mut keys = Vec::new();
    for _ in 0..2 {
        let (a, b) = stream_pair();
        keys.push(slab.insert_with(el.ctx(), a, Watch::read()).unwrap());
        peers.push(b);
    }
    let (c, _pc) = stream_pair();
    let e = slab.insert_with(el.ctx(), c, Watch::read());
    assert!(matches!(e, Err(Error::SlabFull { capacity: 2 })), "{e:?}");
    assert_eq!(el.ctx().source_count(), 3);
    slab.remove(el.ctx(), keys[0]).unwrap();
    let (d, _pd) = stream_pair();
    slab.insert_with(el.ctx(), d, Watch::read()).unwrap();
    assert_eq!(slab.len(), 2);
    bystander_fires(&mut el, &pair);
}

/// A full source table refuses every kind of source with `SourcesFull`, registering
/// nothing with the kernel; removing one makes room again.
pub fn full_source_table_is_refused<B: Backend>() {
    let (mut el, pair) = with_bystander::<B>(Builder::new().sources(4));
    let ctx = el.ctx();
    let users: Vec<_> = (0..3).map(|i| ctx.add_user(Token(i)).unwrap()).collect();
    let (a, _pa) = stream_pair();
    let kernel = ctx.backend().len();
    let full = |r: Result<evloop_core::SourceId, Error>| {
        matches!(r, Err(Error::SourcesFull { capacity: 4 }))
    };
    assert!(full(ctx.add_io(&a, Token(9), Watch::read())));
    assert!(full(ctx.add_user(Token(9))));
    assert!(full(ctx.add_timer(Token(9), Duration::from_millis(1))));
    assert!(full(ctx.add_periodic(Token(9), Duration::from_millis(1))));
    assert!(full(ctx.add_wake(Token(9))));
    assert_eq!(
        ctx.backend().len(),
        kernel,
        "a refused source reached the kernel"
    );
    assert_eq!(ctx.source_count(), 4);
    ctx.remove(users[0]).unwrap();
    ctx.add_io(&a, Token(9), Watch::read()).unwrap();
    bystander_fires(&mut el, &pair);
}

fn over<T>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::TimerCapacity { capacity: 2 }))
}

/// Arming more timers than the loop was built for is refused with `TimerCapacity` (a new
/// timer, an fd with a timeout, a timeout set later), leaving nothing half-registered;
/// disarming one makes room again.
pub fn timer_capacity_is_enforced<B: Backend>() {
    let (mut el, pair) = with_bystander::<B>(Builder::new().timers(2));
    let ctx = el.ctx();
    let t1 = ctx.add_timer(Token(1), Duration::from_secs(60)).unwrap();
    ctx.add_periodic(Token(2), Duration::from_secs(60)).unwrap();
    assert!(over(&ctx.add_timer(Token(3), Duration::from_secs(1))));
    let (a, _pa) = stream_pair();
    let kernel = ctx.backend().len();
    let r = ctx.add_io(&a, Token(4), Watch::read().timeout(Duration::from_secs(1)));
    assert!(over(&r), "{r:?}");
    assert_eq!(ctx.backend().len(), kernel, "half-registered in the kernel");
    assert_eq!(ctx.source_count(), 3);
    let io = ctx.add_io(&a, Token(5), Watch::read()).unwrap();
    assert!(over(
        &ctx.set_idle_timeout(io, Some(Duration::from_secs(1)))
    ));

    ctx.stop(t1).unwrap();
    ctx.set_idle_timeout(io, Some(Duration::from_secs(1)))
        .unwrap();
    assert!(over(&ctx.start(t1)));
    ctx.set_idle_timeout(io, None).unwrap();
    ctx.start(t1).unwrap();
    bystander_fires(&mut el, &pair);
}

/// Misuse that names the wrong kind of source is refused with `WrongKind`; a zero period
/// with `InvalidArgument`; mixing edge- and level-triggered sources on one fd and a
/// second wake source with `Conflict`.
pub fn wrong_kind_is_refused<B: Backend>() {
    let (mut el, pair) = with_bystander::<B>(Builder::new());
    let ctx = el.ctx();
    let t = ctx.add_timer(Token(1), Duration::from_secs(60)).unwrap();
    let (a, _pa) = stream_pair();
    let io = ctx.add_io(&a, Token(2), Watch::read()).unwrap();
    let wrong = |r: Result<(), Error>| matches!(r, Err(Error::WrongKind { .. }));
    assert!(wrong(ctx.set_idle_timeout(t, Some(Duration::from_secs(1)))));
    assert!(wrong(ctx.set_interest(t, Interest::READ)));
    assert!(wrong(ctx.reset_timer(io)));
    assert!(wrong(ctx.set_timer_duration(io, Duration::from_secs(1))));
    assert!(matches!(
        ctx.add_periodic(Token(3), Duration::ZERO),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        ctx.add_io(&a, Token(4), Watch::read().edge()),
        Err(Error::Conflict { .. })
    ));
    ctx.add_wake(Token(5)).unwrap();
    assert!(matches!(
        ctx.add_wake(Token(6)),
        Err(Error::Conflict { .. })
    ));
    // The message of a wrong kind names the call for the other kind.
    let e = ctx.set_idle_timeout(t, None).unwrap_err().to_string();
    assert!(e.contains("set_timer_duration"), "{e}");
    let e = ctx
        .set_timer_duration(io, Duration::from_secs(1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("set_idle_timeout"), "{e}");
    assert_eq!(ctx.source_count(), 4);
    bystander_fires(&mut el, &pair);
}

/// Cross-thread activations beyond the fixed queue are refused with
/// `ActivationQueueFull`, never blocking; once the loop has run there is room again.
pub fn activation_queue_full_is_refused<B: Backend>() {
    let (mut el, pair) = with_bystander::<B>(Builder::new().activations(4));
    let u = el.ctx().add_user(Token(1)).unwrap();
    let h = el.ctx().wake_handle();
    let results = std::thread::spawn(move || (0..5).map(|_| h.activate(u)).collect::<Vec<_>>())
        .join()
        .unwrap();
    assert!(results[..4].iter().all(|r| r.is_ok()));
    assert!(matches!(results[4], Err(Error::ActivationQueueFull)));
    assert_eq!(el.run_nowait().unwrap(), Exit::Done);
    assert_eq!(
        el.machine().tokens(),
        [1],
        "queued activations of one source merge"
    );
    assert!(el.ctx().wake_handle().activate(u).is_ok());
    bystander_fires(&mut el, &pair);
}

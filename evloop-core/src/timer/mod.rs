//! Timers: one deadline per source, kept in an [indexed 4-ary heap](heap) for O(log n)
//! add/cancel/reset, plus automatic **common-timeout queues** for O(1) add/reset.
//!
//! A common-timeout queue (libevent's idea, made automatic here) holds every timer armed
//! with one particular duration. The loop's clock never goes backwards, so appending
//! `now + d` to the tail keeps such a queue sorted by deadline: arming, re-arming and
//! cancelling are O(1) list operations, and the whole queue occupies one heap slot keyed
//! by its head. Per-connection idle timeouts (thousands of timers, one duration, reset on
//! every read) are exactly this case. Sixteen queues are direct-mapped by duration and
//! released when empty; a duration whose slot is taken uses the heap.
//!
//! Pushing a heap timer's deadline *later* (an idle timeout reset by activity) is O(1)
//! too: the node records its new deadline and its heap key is left early. When that key
//! reaches the top, the heap re-keys the node instead of firing it. A timer therefore
//! never fires before its real deadline, and the price of laziness is at most one early
//! wake-up per stale key, which a busy loop doesn't notice.
//!
//! Deadlines are nanoseconds on the loop's monotonic clock; `u64::MAX` means "never"
//! (a timeout too large to represent is clamped there, so it never fires early and never
//! overflows).

pub(crate) mod heap;

use heap::IndexedHeap;

const NONE: u32 = u32::MAX;
/// How many distinct durations get a common-timeout queue.
pub(crate) const MAX_QUEUES: usize = 16;

#[derive(Clone, Copy)]
struct Node {
    deadline: u64,
    queue: u8,
    armed: bool,
    prev: u32,
    next: u32,
}

const NO_QUEUE: u8 = u8::MAX;

#[derive(Clone, Copy)]
struct Queue {
    duration: u64,
    head: u32,
    tail: u32,
}

/// All timers of one loop. Timer ids are source slot indexes.
pub(crate) struct Timers {
    heap: IndexedHeap,
    nodes: Box<[Node]>,
    queues: [Queue; MAX_QUEUES],
    armed: usize,
    capacity: usize,
    nslots: u32,
}

/// Arming would exceed the timer capacity.
#[derive(Debug)]
pub(crate) struct Full;

impl Timers {
    /// Timers for `nslots` sources, at most `capacity` armed at once.
    pub(crate) fn new(nslots: usize, capacity: usize) -> Self {
        Timers {
            heap: IndexedHeap::new(capacity + MAX_QUEUES, nslots + MAX_QUEUES),
            nodes: vec![
                Node {
                    deadline: 0,
                    queue: NO_QUEUE,
                    armed: false,
                    prev: NONE,
                    next: NONE
                };
                nslots
            ]
            .into_boxed_slice(),
            queues: [Queue {
                duration: 0,
                head: NONE,
                tail: NONE,
            }; MAX_QUEUES],
            armed: 0,
            capacity,
            nslots: nslots as u32,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of armed timers.
    pub(crate) fn armed(&self) -> usize {
        self.armed
    }

    pub(crate) fn is_armed(&self, id: u32) -> bool {
        self.nodes[id as usize].armed
    }

    pub(crate) fn deadline(&self, id: u32) -> Option<u64> {
        let n = &self.nodes[id as usize];
        n.armed.then_some(n.deadline)
    }

    /// Arm (or re-arm) timer `id` to fire `duration` ns after `now`.
    pub(crate) fn arm(&mut self, id: u32, now: u64, duration: u64) -> Result<(), Full> {
        self.arm_at(id, now.saturating_add(duration), duration)
    }

    /// Arm (or re-arm) timer `id` for an absolute `deadline`; `duration` picks its
    /// common-timeout queue.
    pub(crate) fn arm_at(&mut self, id: u32, deadline: u64, duration: u64) -> Result<(), Full> {
        let n = self.nodes[id as usize];
        if n.armed && n.queue == NO_QUEUE {
            // Already in the heap: a later deadline only needs recording (lazy re-key at
            // the top); an earlier one moves the key up now.
            if deadline >= n.deadline || deadline >= self.heap.key(id) {
                self.nodes[id as usize].deadline = deadline;
            } else {
                self.nodes[id as usize].deadline = deadline;
                self.heap.update(id, deadline);
            }
            return Ok(());
        }
        if n.armed {
            self.unlink(id);
        } else if self.armed == self.capacity {
            return Err(Full);
        } else {
            self.armed += 1;
        }
        let node = &mut self.nodes[id as usize];
        node.armed = true;
        node.deadline = deadline;
        if let Some(q) = self.queue_for(duration) {
            let tail = self.queues[q].tail;
            if tail == NONE || self.nodes[tail as usize].deadline <= deadline {
                self.append(q, id);
                return Ok(());
            }
        }
        let pushed = self.heap.push(id, deadline);
        debug_assert!(pushed, "heap sized for capacity");
        Ok(())
    }

    /// Disarm timer `id` if armed.
    pub(crate) fn cancel(&mut self, id: u32) {
        if self.nodes[id as usize].armed {
            self.unlink(id);
            self.nodes[id as usize].armed = false;
            self.armed -= 1;
        }
    }

    /// The earliest deadline, possibly a little early (a queue's heap key may lag behind
    /// its head); the caller then wakes, finds nothing due, and waits again.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.heap.peek().map(|it| it.deadline)
    }

    /// Disarm and return one timer whose deadline is at or before `now`, with that
    /// deadline.
    pub(crate) fn pop_expired(&mut self, now: u64) -> Option<(u32, u64)> {
        loop {
            let top = self.heap.peek()?;
            if top.deadline > now {
                return None;
            }
            if top.id < self.nslots {
                let real = self.nodes[top.id as usize].deadline;
                if real > top.deadline {
                    // Lazily extended: re-key instead of firing.
                    self.heap.update(top.id, real);
                    continue;
                }
                self.heap.pop();
                let n = &mut self.nodes[top.id as usize];
                n.armed = false;
                self.armed -= 1;
                return Some((top.id, top.deadline));
            }
            let q = (top.id - self.nslots) as usize;
            let head = self.queues[q].head;
            if head == NONE {
                self.heap.pop();
                continue;
            }
            let hd = self.nodes[head as usize].deadline;
            if hd > top.deadline {
                // The key lags (the old head was cancelled or re-armed): re-key before
                // firing, or this head could fire ahead of an earlier timer elsewhere.
                self.heap.update(top.id, hd);
                continue;
            }
            self.unlink(head);
            self.nodes[head as usize].armed = false;
            self.armed -= 1;
            // Keep the queue's heap key exact so expiries come out in deadline order.
            let new_head = self.queues[q].head;
            if new_head != NONE {
                self.heap
                    .update(top.id, self.nodes[new_head as usize].deadline);
            }
            return Some((head, hd));
        }
    }

    /// The common-timeout queue for `duration`: direct-mapped by a hash of the duration
    /// (queue index = hash slot), so finding it costs one comparison. A free slot is
    /// claimed by the first duration that hashes there and released when its queue
    /// empties; a duration whose slot is busy with another uses the heap.
    #[inline]
    fn queue_for(&mut self, duration: u64) -> Option<usize> {
        if duration == 0 || duration == u64::MAX {
            return None;
        }
        let q = (duration.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % MAX_QUEUES;
        let queue = &mut self.queues[q];
        if queue.duration == duration {
            return Some(q);
        }
        if queue.duration == 0 {
            queue.duration = duration;
            return Some(q);
        }
        None
    }

    fn append(&mut self, q: usize, id: u32) {
        let tail = self.queues[q].tail;
        {
            let n = &mut self.nodes[id as usize];
            n.queue = q as u8;
            n.prev = tail;
            n.next = NONE;
        }
        if tail == NONE {
            self.queues[q].head = id;
            let qid = self.nslots + q as u32;
            let deadline = self.nodes[id as usize].deadline;
            if self.heap.contains(qid) {
                self.heap.update(qid, deadline);
            } else {
                let pushed = self.heap.push(qid, deadline);
                debug_assert!(pushed, "heap has a slot per queue");
            }
        } else {
            self.nodes[tail as usize].next = id;
        }
        self.queues[q].tail = id;
    }

    /// Remove `id` from wherever it is (queue or heap), leaving `armed` to the caller.
    fn unlink(&mut self, id: u32) {
        let n = self.nodes[id as usize];
        if n.queue == NO_QUEUE {
            self.heap.remove(id);
            return;
        }
        let q = n.queue as usize;
        if n.prev == NONE {
            self.queues[q].head = n.next;
        } else {
            self.nodes[n.prev as usize].next = n.next;
        }
        if n.next == NONE {
            self.queues[q].tail = n.prev;
        } else {
            self.nodes[n.next as usize].prev = n.prev;
        }
        if self.queues[q].head == NONE {
            self.heap.remove(self.nslots + q as u32);
            self.queues[q].duration = 0; // free for another duration
        }
        let n = &mut self.nodes[id as usize];
        n.queue = NO_QUEUE;
        n.prev = NONE;
        n.next = NONE;
    }

    /// Check every invariant (tests).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        self.heap.check();
        let mut count = 0;
        for q in 0..MAX_QUEUES {
            let mut cur = self.queues[q].head;
            let mut prev = NONE;
            let mut last = 0;
            while cur != NONE {
                let n = &self.nodes[cur as usize];
                assert!(n.armed && n.queue as usize == q && n.prev == prev);
                assert!(n.deadline >= last, "queue {q} out of order");
                last = n.deadline;
                prev = cur;
                cur = n.next;
                count += 1;
            }
            assert_eq!(self.queues[q].tail, prev);
            if self.queues[q].head != NONE {
                let qid = self.nslots + q as u32;
                assert!(self.heap.contains(qid), "non-empty queue {q} not in heap");
            } else {
                assert_eq!(self.queues[q].duration, 0, "empty queue {q} not released");
            }
        }
        for i in 0..self.nslots {
            if self.heap.contains(i) {
                assert!(
                    self.heap.key(i) <= self.nodes[i as usize].deadline,
                    "heap key late"
                );
            }
        }
        let in_heap = (0..self.nslots).filter(|&i| self.heap.contains(i)).count();
        assert_eq!(count + in_heap, self.armed, "armed count drifted");
        let armed = self.nodes.iter().filter(|n| n.armed).count();
        assert_eq!(armed, self.armed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    #[test]
    fn fires_in_deadline_order_mixing_queue_and_heap() {
        let mut t = Timers::new(8, 8);
        t.arm(0, 0, 50).unwrap(); // queue(50)
        t.arm(1, 10, 50).unwrap(); // queue(50), deadline 60
        t.arm(2, 0, 55).unwrap(); // queue(55)
        t.arm(3, 0, 5).unwrap();
        t.check();
        assert_eq!(t.pop_expired(4), None);
        assert_eq!(t.pop_expired(100), Some((3, 5)));
        assert_eq!(t.pop_expired(100), Some((0, 50)));
        assert_eq!(t.pop_expired(100), Some((2, 55)));
        assert_eq!(t.pop_expired(100), Some((1, 60)));
        assert_eq!(t.pop_expired(100), None);
        t.check();
    }

    #[test]
    fn reset_in_a_queue_moves_to_tail() {
        let mut t = Timers::new(4, 4);
        t.arm(0, 0, 100).unwrap();
        t.arm(1, 0, 100).unwrap();
        t.arm(0, 50, 100).unwrap(); // reset: now deadline 150, after 1
        t.check();
        assert_eq!(t.pop_expired(120), Some((1, 100)));
        assert_eq!(t.pop_expired(120), None);
        assert_eq!(t.next_deadline(), Some(150));
        assert_eq!(t.pop_expired(150), Some((0, 150)));
    }

    #[test]
    fn capacity_is_enforced_and_freed_by_cancel() {
        let mut t = Timers::new(4, 2);
        t.arm(0, 0, 1).unwrap();
        t.arm(1, 0, 2).unwrap();
        assert!(t.arm(2, 0, 3).is_err());
        t.arm(1, 0, 9).unwrap(); // re-arm needs no new capacity
        t.cancel(0);
        t.arm(2, 0, 3).unwrap();
        t.check();
    }

    #[test]
    fn never_deadline_does_not_overflow() {
        let mut t = Timers::new(2, 2);
        t.arm(0, 1_000, u64::MAX).unwrap();
        assert_eq!(t.deadline(0), Some(u64::MAX));
        assert_eq!(t.pop_expired(u64::MAX - 1), None);
    }

    /// Found by the model test: cancelling (or re-arming) a queue's head leaves the
    /// queue's heap key at the old head's deadline. `pop_expired` used to trust that
    /// key whenever the new head was due, so the queue's head fired before an earlier
    /// timer elsewhere.
    #[test]
    fn stale_queue_key_does_not_reorder_expiries() {
        let mut t = Timers::new(4, 4);
        t.arm(0, 0, 10).unwrap(); // queue(10), deadline 10
        t.arm(1, 5, 10).unwrap(); // queue(10), deadline 15
        t.arm(2, 5, 7).unwrap(); // deadline 12
        t.cancel(0); // queue(10)'s heap key stays 10, its head is now 1 (15)
        t.check();
        assert_eq!(t.pop_expired(20), Some((2, 12)));
        assert_eq!(t.pop_expired(20), Some((1, 15)));
        assert_eq!(t.pop_expired(20), None);
    }

    /// Random churn: many timers whose expiry randomly arms and cancels others.
    #[test]
    fn random_churn_keeps_invariants() {
        let (n, target) = if cfg!(miri) {
            (64, 500)
        } else {
            (20_000, 200_000)
        };
        let mut t = Timers::new(n, n);
        let mut s = 0xdead_beefu64;
        let mut now = 0u64;
        let durations = [10u64, 20, 35, 1000];
        for id in 0..n as u32 {
            let d = if id % 3 == 0 {
                durations[(id % 4) as usize]
            } else {
                rng(&mut s) % 5000
            };
            t.arm(id, now, d).unwrap();
        }
        let mut fired = 0;
        let mut steps = 0;
        while fired < target {
            now += rng(&mut s) % 40;
            while let Some((id, deadline)) = t.pop_expired(now) {
                assert!(deadline <= now, "fired early");
                assert!(t.deadline(id).is_none());
                fired += 1;
                let other = (rng(&mut s) % n as u64) as u32;
                match rng(&mut s) % 4 {
                    0 => t.cancel(other),
                    1 => {
                        let _ = t.arm(other, now, rng(&mut s) % 3000);
                    }
                    _ => {
                        let _ = t.arm(other, now, durations[(rng(&mut s) % 4) as usize]);
                    }
                }
                let _ = t.arm(id, now, 1 + rng(&mut s) % 2000);
            }
            steps += 1;
            if steps % 500 == 0 {
                t.check();
            }
        }
        t.check();
    }

    // ---- Model test: random operation sequences against a naive model ----
    //
    // The model is a `BTreeMap<id, deadline>` of armed timers and a clock. Every step is
    // applied to both and everything observable is compared: each timer's deadline, the
    // armed count, capacity refusals, which timer `pop_expired` hands out (one whose
    // deadline is the earliest of all armed timers, and not after `now`) and that
    // `next_deadline` is never later than the model's earliest deadline.
    //
    // Cases: 16_000 by default, or `PROPTEST_CASES` if set (proptest's own variable, read
    // here because a hard-coded count would shadow it). Skipped under Miri: the plain
    // random tests above cover the unsafe-free code there at a Miri-sized scale.

    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// proptest's defaults (which read the `PROPTEST_*` variables), except where the
    /// variable is unset: `cases` cases, the XorShift generator (ChaCha, the default,
    /// takes ~40% of a debug build's run time) and at most 30 s of shrinking a failure.
    fn config(cases: u32) -> ProptestConfig {
        let unset = |var: &str| std::env::var_os(var).is_none();
        let mut config = ProptestConfig::default();
        if unset("PROPTEST_CASES") {
            config.cases = cases;
        }
        if unset("PROPTEST_RNG_ALGORITHM") {
            config.rng_algorithm = prop::test_runner::RngAlgorithm::XorShift;
        }
        if unset("PROPTEST_MAX_SHRINK_TIME") {
            config.max_shrink_time = 30_000;
        }
        config
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// `arm(id, now, dur)`.
        Arm {
            id: u32,
            dur: u64,
        },
        /// `arm_at(id, now + offset, dur)` (offset may be negative: a deadline already
        /// past), or `arm_at(id, u64::MAX, dur)` when `offset` is `None`.
        ArmAt {
            id: u32,
            offset: Option<i64>,
            dur: u64,
        },
        Cancel {
            id: u32,
        },
        Advance {
            dt: u64,
        },
        /// One `pop_expired(now)`.
        Pop,
        /// `pop_expired(now)` until it returns `None`.
        PopAll,
    }

    /// Durations: a few shared ones (so common-timeout queues fill, empty, get reused and
    /// collide in their 16 direct-mapped slots), any small one, and the edge values.
    fn duration() -> impl Strategy<Value = u64> {
        prop_oneof![
            6 => prop::sample::select(vec![1u64, 5, 10, 20, 35, 50, 64, 100, 1000, 4096]),
            3 => 0u64..300,
            1 => Just(0u64),
            1 => prop::sample::select(vec![u64::MAX, u64::MAX - 3, u64::MAX / 2]),
        ]
    }

    fn op(nslots: u32) -> impl Strategy<Value = Op> {
        let id = 0..nslots;
        prop_oneof![
            8 => (id.clone(), duration()).prop_map(|(id, dur)| Op::Arm { id, dur }),
            2 => (
                id.clone(),
                prop_oneof![4 => (-40i64..400).prop_map(Some), 1 => Just(None)],
                duration()
            )
                .prop_map(|(id, offset, dur)| Op::ArmAt { id, offset, dur }),
            3 => id.prop_map(|id| Op::Cancel { id }),
            4 => prop_oneof![3 => 0u64..30, 1 => 30u64..400].prop_map(|dt| Op::Advance { dt }),
            3 => Just(Op::Pop),
            1 => Just(Op::PopAll),
        ]
    }

    fn scenario() -> impl Strategy<Value = (u32, usize, Vec<Op>)> {
        (1u32..=12)
            .prop_flat_map(|nslots| (Just(nslots), 1..=nslots as usize + 2))
            .prop_flat_map(|(nslots, cap)| {
                (
                    Just(nslots),
                    Just(cap),
                    prop::collection::vec(op(nslots), 0..120),
                )
            })
    }

    struct Model {
        now: u64,
        armed: BTreeMap<u32, u64>,
        capacity: usize,
    }

    impl Model {
        fn earliest(&self) -> Option<u64> {
            self.armed.values().copied().min()
        }

        fn arm(&mut self, id: u32, deadline: u64) -> bool {
            if !self.armed.contains_key(&id) && self.armed.len() == self.capacity {
                return false;
            }
            self.armed.insert(id, deadline);
            true
        }
    }

    /// One `pop_expired` on both; returns whether a timer fired.
    fn pop_one(t: &mut Timers, m: &mut Model) -> Result<bool, TestCaseError> {
        match t.pop_expired(m.now) {
            Some((id, deadline)) => {
                prop_assert!(
                    deadline <= m.now,
                    "fired early: {id} at {deadline}, now {}",
                    m.now
                );
                prop_assert_eq!(
                    m.armed.get(&id).copied(),
                    Some(deadline),
                    "fired {} with the wrong deadline",
                    id
                );
                prop_assert_eq!(
                    Some(deadline),
                    m.earliest(),
                    "fired {} out of deadline order (armed: {:?})",
                    id,
                    m.armed
                );
                m.armed.remove(&id);
                Ok(true)
            }
            None => {
                prop_assert!(
                    m.earliest().is_none_or(|d| d > m.now),
                    "nothing fired at {} but the model has {:?}",
                    m.now,
                    m.armed
                );
                prop_assert!(
                    t.next_deadline().is_none_or(|d| d > m.now),
                    "pop_expired gave up with a due key at the top"
                );
                Ok(false)
            }
        }
    }

    fn compare(t: &Timers, m: &Model, nslots: u32) -> Result<(), TestCaseError> {
        t.check();
        prop_assert_eq!(t.armed(), m.armed.len());
        for id in 0..nslots {
            prop_assert_eq!(
                t.deadline(id),
                m.armed.get(&id).copied(),
                "deadline of {}",
                id
            );
            prop_assert_eq!(t.is_armed(id), m.armed.contains_key(&id));
        }
        match (t.next_deadline(), m.earliest()) {
            (None, None) => {}
            // A queue's heap key may lag behind its head (early, never late).
            (Some(next), Some(earliest)) => prop_assert!(
                next <= earliest,
                "next_deadline {} is after the earliest deadline {}",
                next,
                earliest
            ),
            (next, earliest) => prop_assert!(
                false,
                "next_deadline {:?} but earliest {:?}",
                next,
                earliest
            ),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config(16_000))]

        #[test]
        #[cfg_attr(miri, ignore)]
        fn model_timers_and_common_timeout_queues((nslots, capacity, ops) in scenario()) {
            let mut t = Timers::new(nslots as usize, capacity);
            let mut m = Model { now: 0, armed: BTreeMap::new(), capacity };
            prop_assert_eq!(t.capacity(), capacity);
            for op in ops {
                match op {
                    Op::Arm { id, dur } => {
                        let ok = t.arm(id, m.now, dur).is_ok();
                        prop_assert_eq!(ok, m.arm(id, m.now.saturating_add(dur)), "arm {}", id);
                    }
                    Op::ArmAt { id, offset, dur } => {
                        let deadline = match offset {
                            Some(o) => m.now.saturating_add_signed(o),
                            None => u64::MAX,
                        };
                        let ok = t.arm_at(id, deadline, dur).is_ok();
                        prop_assert_eq!(ok, m.arm(id, deadline), "arm_at {}", id);
                    }
                    Op::Cancel { id } => {
                        t.cancel(id);
                        m.armed.remove(&id);
                    }
                    Op::Advance { dt } => m.now += dt,
                    Op::Pop => {
                        pop_one(&mut t, &mut m)?;
                    }
                    Op::PopAll => while pop_one(&mut t, &mut m)? {},
                }
                compare(&t, &m, nslots)?;
            }
        }
    }
}

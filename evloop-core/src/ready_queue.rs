//! The ready queues: one intrusive FIFO per priority level, threaded through the source
//! slots (no allocation, O(1) push/pop/unlink), and a bitmask of non-empty levels so the
//! most urgent level is found with one `trailing_zeros`.

pub(crate) const NONE: u32 = u32::MAX;
/// Most priority levels a loop can have.
pub(crate) const MAX_LEVELS: usize = 32;

/// Intrusive links stored in each slot.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Links {
    pub prev: u32,
    pub next: u32,
}

impl Links {
    pub(crate) const UNLINKED: Links = Links {
        prev: NONE,
        next: NONE,
    };
}

pub(crate) struct ReadyQueues {
    head: [u32; MAX_LEVELS],
    tail: [u32; MAX_LEVELS],
    nonempty: u32,
}

impl ReadyQueues {
    pub(crate) fn new() -> Self {
        ReadyQueues {
            head: [NONE; MAX_LEVELS],
            tail: [NONE; MAX_LEVELS],
            nonempty: 0,
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.nonempty == 0
    }

    /// Append `idx` at level `prio`. `links(i)` gives access to slot i's links.
    #[inline]
    pub(crate) fn push(&mut self, links: &mut [Links], idx: u32, prio: u8) {
        let p = prio as usize;
        let tail = self.tail[p];
        links[idx as usize] = Links {
            prev: tail,
            next: NONE,
        };
        if tail == NONE {
            self.head[p] = idx;
            self.nonempty |= 1 << p;
        } else {
            links[tail as usize].next = idx;
        }
        self.tail[p] = idx;
    }

    /// Pop the first slot of the most urgent non-empty level.
    #[inline]
    pub(crate) fn pop(&mut self, links: &mut [Links]) -> Option<u32> {
        if self.nonempty == 0 {
            return None;
        }
        let p = self.nonempty.trailing_zeros() as usize;
        let idx = self.head[p];
        let next = links[idx as usize].next;
        self.head[p] = next;
        if next == NONE {
            self.tail[p] = NONE;
            self.nonempty &= !(1 << p);
        } else {
            links[next as usize].prev = NONE;
        }
        links[idx as usize] = Links::UNLINKED;
        Some(idx)
    }

    /// Remove `idx` (queued at level `prio`) from its queue.
    pub(crate) fn unlink(&mut self, links: &mut [Links], idx: u32, prio: u8) {
        let p = prio as usize;
        let l = links[idx as usize];
        if l.prev == NONE {
            self.head[p] = l.next;
        } else {
            links[l.prev as usize].next = l.next;
        }
        if l.next == NONE {
            self.tail[p] = l.prev;
        } else {
            links[l.next as usize].prev = l.prev;
        }
        if self.head[p] == NONE {
            self.nonempty &= !(1 << p);
        }
        links[idx as usize] = Links::UNLINKED;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_urgent_first_fifo_within_level() {
        let mut links = vec![Links::UNLINKED; 8];
        let mut q = ReadyQueues::new();
        q.push(&mut links, 0, 2);
        q.push(&mut links, 1, 1);
        q.push(&mut links, 2, 2);
        q.push(&mut links, 3, 0);
        q.unlink(&mut links, 1, 1);
        let order: Vec<_> = std::iter::from_fn(|| q.pop(&mut links)).collect();
        assert_eq!(order, vec![3, 0, 2]);
        assert!(q.is_empty());
    }

    // ---- Model test: random operation sequences against a naive model ----
    //
    // The model is one `VecDeque` per level. After every step the intrusive structure
    // is walked level by level (head to tail through `next`, checking `prev`, `tail` and
    // the non-empty bit) and must equal the model; `pop` must take the front of the most
    // urgent non-empty level (strict priority across levels, FIFO within one); slots not
    // queued must hold `Links::UNLINKED`. Cases: 12_000 by default, or `PROPTEST_CASES`.
    // Skipped under Miri (far too slow there).

    use proptest::prelude::*;
    use std::collections::VecDeque;

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
        /// Push `idx` at `prio` (skipped if `idx` is queued: the caller never does that).
        Push {
            idx: u32,
            prio: u8,
        },
        /// Unlink `idx` (skipped if it is not queued).
        Unlink {
            idx: u32,
        },
        Pop,
    }

    fn op(nslots: u32) -> impl Strategy<Value = Op> {
        // Mostly a few adjacent levels (so queues interleave), sometimes any level
        // including the last (bit 31 of the mask).
        let prio = prop_oneof![
            6 => 0u8..4,
            1 => 0u8..MAX_LEVELS as u8,
            1 => Just(MAX_LEVELS as u8 - 1),
        ];
        prop_oneof![
            5 => (0..nslots, prio).prop_map(|(idx, prio)| Op::Push { idx, prio }),
            2 => (0..nslots).prop_map(|idx| Op::Unlink { idx }),
            3 => Just(Op::Pop),
        ]
    }

    fn scenario() -> impl Strategy<Value = (u32, Vec<Op>)> {
        (1u32..=24).prop_flat_map(|n| (Just(n), prop::collection::vec(op(n), 0..150)))
    }

    fn compare(
        q: &ReadyQueues,
        links: &[Links],
        model: &[VecDeque<u32>],
        level_of: &[Option<u8>],
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(q.is_empty(), model.iter().all(|l| l.is_empty()));
        for (p, want) in model.iter().enumerate() {
            let mut got = Vec::new();
            let mut prev = NONE;
            let mut cur = q.head[p];
            while cur != NONE {
                prop_assert!(got.len() <= links.len(), "cycle at level {}", p);
                prop_assert_eq!(links[cur as usize].prev, prev, "prev of {}", cur);
                got.push(cur);
                prev = cur;
                cur = links[cur as usize].next;
            }
            prop_assert_eq!(q.tail[p], prev, "tail of level {}", p);
            prop_assert_eq!(
                &got,
                &want.iter().copied().collect::<Vec<_>>(),
                "level {}",
                p
            );
            prop_assert_eq!(
                q.nonempty & (1 << p) != 0,
                !want.is_empty(),
                "mask bit {}",
                p
            );
        }
        for (i, l) in links.iter().enumerate() {
            if level_of[i].is_none() {
                prop_assert!(l.prev == NONE && l.next == NONE, "unqueued {} linked", i);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config(12_000))]

        #[test]
        #[cfg_attr(miri, ignore)]
        fn model_ready_queues((nslots, ops) in scenario()) {
            let mut links = vec![Links::UNLINKED; nslots as usize];
            let mut q = ReadyQueues::new();
            let mut model: Vec<VecDeque<u32>> = vec![VecDeque::new(); MAX_LEVELS];
            let mut level_of: Vec<Option<u8>> = vec![None; nslots as usize];
            for op in ops {
                match op {
                    Op::Push { idx, prio } => {
                        if level_of[idx as usize].is_none() {
                            q.push(&mut links, idx, prio);
                            model[prio as usize].push_back(idx);
                            level_of[idx as usize] = Some(prio);
                        }
                    }
                    Op::Unlink { idx } => {
                        if let Some(prio) = level_of[idx as usize].take() {
                            q.unlink(&mut links, idx, prio);
                            model[prio as usize].retain(|&i| i != idx);
                        }
                    }
                    Op::Pop => {
                        let want = model.iter_mut().find_map(|l| l.pop_front());
                        prop_assert_eq!(q.pop(&mut links), want);
                        if let Some(idx) = want {
                            level_of[idx as usize] = None;
                        }
                    }
                }
                compare(&q, &links, &model, &level_of)?;
            }
        }
    }
}

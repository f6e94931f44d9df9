//! The change list: what the kernel has been told about each fd versus what is wanted,
//! so that interest changes are applied once per loop iteration and a change that is
//! undone before the next wait (stop then start) costs nothing.
//!
//! Used by the kernel-state backends (epoll now; kqueue and event ports later). Indexed
//! by fd number; grows only when an fd larger than any seen before is registered, so it
//! allocates nothing in steady state.

use std::os::fd::RawFd;

use crate::Interest;

/// What one fd's registration looks like, in the kernel and in the caller's wishes.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct FdState {
    /// Registered with the backend (between `register` and `deregister`).
    pub registered: bool,
    /// Queued in the change list.
    pub queued: bool,
    /// Interest the kernel holds (`NONE`: not in the kernel's set).
    pub kernel: Interest,
    /// Token the kernel holds.
    pub kernel_token: u64,
    /// Interest wanted.
    pub want: Interest,
    /// Token wanted.
    pub want_token: u64,
}

/// Per-fd state plus the list of fds whose wish differs from the kernel's state.
pub(crate) struct ChangeList {
    fds: Vec<FdState>,
    changes: Vec<RawFd>,
    registered: usize,
}

impl ChangeList {
    pub(crate) fn new() -> Self {
        // Size for the soft fd limit so that steady state never reallocates.
        let hint = crate::open_file_limit();
        ChangeList {
            fds: vec![FdState::default(); hint],
            changes: Vec::with_capacity(hint.min(1 << 16)),
            registered: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.registered
    }

    pub(crate) fn get(&self, fd: RawFd) -> Option<&FdState> {
        self.fds.get(fd as usize).filter(|s| s.registered)
    }

    /// Record a registration that the caller has just applied to the kernel.
    pub(crate) fn insert(&mut self, fd: RawFd, token: u64, interest: Interest) {
        let i = fd as usize;
        if i >= self.fds.len() {
            let new_len = (i + 1).next_power_of_two();
            self.fds.resize(new_len, FdState::default());
        }
        let st = &mut self.fds[i];
        let was_queued = st.queued;
        *st = FdState {
            registered: true,
            queued: was_queued,
            kernel: interest,
            kernel_token: token,
            want: interest,
            want_token: token,
        };
        self.registered += 1;
    }

    /// Record a wish; queue the fd if the wish differs from the kernel's state.
    /// Returns false if `fd` is not registered.
    pub(crate) fn set_wanted(&mut self, fd: RawFd, token: u64, interest: Interest) -> bool {
        let Some(st) = self.fds.get_mut(fd as usize).filter(|s| s.registered) else {
            return false;
        };
        st.want = interest;
        st.want_token = token;
        if !st.queued && (st.want != st.kernel || st.want_token != st.kernel_token) {
            st.queued = true;
            self.changes.push(fd);
        }
        true
    }

    /// Forget `fd`; returns its state before, or `None` if it was not registered.
    pub(crate) fn remove(&mut self, fd: RawFd) -> Option<FdState> {
        let st = self.fds.get_mut(fd as usize).filter(|s| s.registered)?;
        let before = *st;
        // Keep `queued` so the stale entry in `changes` is skipped, not duplicated.
        *st = FdState {
            queued: before.queued,
            ..FdState::default()
        };
        self.registered -= 1;
        Some(before)
    }

    /// Hand every queued fd whose wish differs from the kernel to `apply`, which makes
    /// the kernel call and returns the interest the kernel now holds.
    pub(crate) fn drain<F>(&mut self, mut apply: F)
    where
        F: FnMut(RawFd, &FdState) -> Interest,
    {
        for k in 0..self.changes.len() {
            let fd = self.changes[k];
            let st = &mut self.fds[fd as usize];
            st.queued = false;
            if !st.registered || (st.want == st.kernel && st.want_token == st.kernel_token) {
                continue;
            }
            let now = apply(fd, st);
            st.kernel = now;
            st.kernel_token = st.want_token;
        }
        self.changes.clear();
    }

    /// The kernel no longer holds what it held for `fd` (a one-shot request completed, a
    /// request failed): record `NONE`, and with `queue` put the fd in the change list so
    /// the next drain hands its wish to the backend again. For the completion-based
    /// backend (io_uring), where "the kernel's state" is an armed request.
    #[cfg(target_os = "linux")]
    pub(crate) fn reset_kernel(&mut self, fd: RawFd, queue: bool) {
        let Some(st) = self.fds.get_mut(fd as usize).filter(|s| s.registered) else {
            return;
        };
        st.kernel = Interest::NONE;
        if queue && !st.queued && st.want != st.kernel {
            st.queued = true;
            self.changes.push(fd);
        }
    }

    /// [`reset_kernel`](Self::reset_kernel) with `queue` for every registered fd (after
    /// the kernel may have dropped completions: every registration is armed afresh).
    #[cfg(target_os = "linux")]
    pub(crate) fn reset_all(&mut self) {
        for (fd, st) in self.fds.iter_mut().enumerate() {
            if !st.registered {
                continue;
            }
            st.kernel = Interest::NONE;
            if !st.queued && !st.want.is_empty() {
                st.queued = true;
                self.changes.push(fd as RawFd);
            }
        }
    }

    /// Every registered fd with its wanted state (for re-registration after fork).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (RawFd, &mut FdState)> {
        self.fds
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| s.registered)
            .map(|(fd, s)| (fd as RawFd, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_start_is_no_change() {
        let mut cl = ChangeList::new();
        cl.insert(5, 1, Interest::READ);
        assert!(cl.set_wanted(5, 1, Interest::NONE));
        assert!(cl.set_wanted(5, 1, Interest::READ));
        let mut calls = 0;
        cl.drain(|_, st| {
            calls += 1;
            st.want
        });
        assert_eq!(calls, 0);
    }

    #[test]
    fn one_kernel_call_per_fd_per_iteration() {
        let mut cl = ChangeList::new();
        cl.insert(3, 1, Interest::READ);
        cl.set_wanted(3, 1, Interest::WRITE);
        cl.set_wanted(3, 1, Interest::READ | Interest::WRITE);
        cl.set_wanted(3, 2, Interest::READ | Interest::WRITE);
        let mut seen = vec![];
        cl.drain(|fd, st| {
            seen.push((fd, st.want, st.want_token));
            st.want
        });
        assert_eq!(seen, vec![(3, Interest::READ | Interest::WRITE, 2)]);
        assert_eq!(cl.get(3).unwrap().kernel, Interest::READ | Interest::WRITE);
    }

    #[test]
    fn removed_fd_is_skipped_and_reinsert_is_fresh() {
        let mut cl = ChangeList::new();
        cl.insert(4, 1, Interest::READ);
        cl.set_wanted(4, 1, Interest::NONE);
        assert!(cl.remove(4).is_some());
        assert!(cl.remove(4).is_none());
        assert!(!cl.set_wanted(4, 1, Interest::READ));
        cl.insert(4, 9, Interest::WRITE);
        let mut calls = 0;
        cl.drain(|_, st| {
            calls += 1;
            st.want
        });
        assert_eq!(
            calls, 0,
            "re-registration was applied eagerly; nothing left queued"
        );
        assert_eq!(cl.get(4).unwrap().kernel_token, 9);
        assert_eq!(cl.len(), 1);
    }

    #[test]
    fn grows_for_large_fds() {
        let mut cl = ChangeList::new();
        cl.insert(200_000, 1, Interest::READ);
        assert!(cl.get(200_000).is_some());
    }

    // ---- Model test: random operation sequences against a naive model ----
    //
    // The model keeps, per fd, whether it is registered, what the kernel holds, what is
    // wanted, and whether it was modified since the last flush. A flush must hand the
    // backend exactly the net effect: each registered fd that was modified since the
    // last flush and whose wanted (interest, token) now differs from the kernel's, once,
    // with the state the model has for it, and nothing else (not a deregistered fd, not
    // a change that was undone). The backend's answer is what the kernel then holds;
    // like epoll's, it is `NONE` for an empty wish or a refused change. After every step
    // `get` and `len` agree with the model; at the end `iter_mut` lists exactly the
    // registered fds. Cases: 10_000 by default, or `PROPTEST_CASES`. Skipped under Miri.

    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

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

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Want {
        interest: Interest,
        token: u64,
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// What a backend's `register` does: refused (skipped) if already registered,
        /// else applied to the kernel at once and recorded with `insert`.
        Register { fd: RawFd, want: Want },
        /// `set_wanted` (a backend's `modify`).
        Modify { fd: RawFd, want: Want },
        /// `remove` (a backend's `deregister`).
        Deregister { fd: RawFd },
        /// `drain`; the kernel refuses the changes of the fds in `refuse`.
        Flush { refuse: BTreeSet<RawFd> },
    }

    #[derive(Clone, Copy, Debug)]
    struct FdModel {
        kernel: Want,
        want: Want,
        modified: bool,
    }

    fn want() -> impl Strategy<Value = Want> {
        (0u8..16, 0u64..3).prop_map(|(bits, token)| Want {
            interest: Interest::from_bits(bits),
            token,
        })
    }

    /// Past any initial table (`open_file_limit` is at most 2^16): the table grows.
    const BIG_FD: RawFd = 70_000;

    /// A handful of small fds; in `big` cases, rarely one past the initial table.
    fn fd(big: bool) -> impl Strategy<Value = RawFd> {
        prop_oneof![20 => 0 as RawFd..6, u32::from(big) => Just(BIG_FD)]
    }

    fn op(big: bool) -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (fd(big), want()).prop_map(|(fd, want)| Op::Register { fd, want }),
            6 => (fd(big), want()).prop_map(|(fd, want)| Op::Modify { fd, want }),
            2 => fd(big).prop_map(|fd| Op::Deregister { fd }),
            2 => prop_oneof![
                4 => Just(BTreeSet::new()),
                1 => prop::collection::btree_set(0 as RawFd..6, 1..3),
            ]
            .prop_map(|refuse| Op::Flush { refuse }),
        ]
    }

    fn same(st: &FdState, m: &FdModel) -> bool {
        st.registered
            && st.kernel == m.kernel.interest
            && st.kernel_token == m.kernel.token
            && st.want == m.want.interest
            && st.want_token == m.want.token
    }

    proptest! {
        #![proptest_config(config(10_000))]

        #[test]
        #[cfg_attr(miri, ignore)]
        fn model_change_list(
            ops in prop::bool::weighted(0.05)
                .prop_flat_map(|big| prop::collection::vec(op(big), 0..100))
        ) {
            let mut cl = ChangeList::new();
            let mut m: BTreeMap<RawFd, FdModel> = BTreeMap::new();
            let domain: Vec<RawFd> = (0..6).chain([BIG_FD]).collect();
            for op in ops {
                match op {
                    Op::Register { fd, want } => {
                        prop_assert_eq!(cl.get(fd).is_some(), m.contains_key(&fd));
                        if let std::collections::btree_map::Entry::Vacant(e) = m.entry(fd) {
                            cl.insert(fd, want.token, want.interest);
                            e.insert(FdModel { kernel: want, want, modified: false });
                        }
                    }
                    Op::Modify { fd, want } => {
                        let known = match m.get_mut(&fd) {
                            Some(f) => {
                                f.want = want;
                                f.modified = true;
                                true
                            }
                            None => false,
                        };
                        prop_assert_eq!(cl.set_wanted(fd, want.token, want.interest), known);
                    }
                    Op::Deregister { fd } => {
                        let before = cl.remove(fd);
                        match m.remove(&fd) {
                            Some(f) => prop_assert!(
                                before.as_ref().is_some_and(|st| same(st, &f)),
                                "remove({}) gave {:?}, model {:?}", fd, before, f
                            ),
                            None => prop_assert!(before.is_none(), "remove({}) of an unregistered fd", fd),
                        }
                    }
                    Op::Flush { refuse } => {
                        let mut calls: Vec<(RawFd, FdState)> = Vec::new();
                        cl.drain(|fd, st| {
                            calls.push((fd, *st));
                            if st.want.is_empty() || refuse.contains(&fd) {
                                Interest::NONE
                            } else {
                                st.want
                            }
                        });
                        let expected: BTreeSet<RawFd> = m
                            .iter()
                            .filter(|(_, f)| f.modified && f.want != f.kernel)
                            .map(|(&fd, _)| fd)
                            .collect();
                        let got: BTreeSet<RawFd> = calls.iter().map(|&(fd, _)| fd).collect();
                        prop_assert_eq!(got.len(), calls.len(), "an fd was applied twice: {:?}", calls);
                        prop_assert_eq!(&got, &expected, "calls {:?}", calls);
                        for (fd, st) in &calls {
                            let f = &m[fd];
                            prop_assert!(same(st, f), "fd {} applied with {:?}, model {:?}", fd, st, f);
                        }
                        for (&fd, f) in m.iter_mut() {
                            if expected.contains(&fd) {
                                let ok = !f.want.interest.is_empty() && !refuse.contains(&fd);
                                f.kernel = Want {
                                    interest: if ok { f.want.interest } else { Interest::NONE },
                                    token: f.want.token,
                                };
                            }
                            f.modified = false;
                        }
                    }
                }
                prop_assert_eq!(cl.len(), m.len());
                for &fd in &domain {
                    match (cl.get(fd), m.get(&fd)) {
                        (None, None) => {}
                        (Some(st), Some(f)) => prop_assert!(same(st, f), "fd {}: {:?} vs model {:?}", fd, st, f),
                        (st, f) => prop_assert!(false, "fd {}: {:?} vs model {:?}", fd, st, f),
                    }
                }
            }
            let listed: Vec<RawFd> = cl.iter_mut().map(|(fd, _)| fd).collect();
            prop_assert_eq!(listed, m.keys().copied().collect::<Vec<_>>());
        }
    }
}

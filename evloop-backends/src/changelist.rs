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
}

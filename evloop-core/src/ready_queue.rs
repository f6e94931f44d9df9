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
}

//! The /dev/poll ABI, which the `libc` crate does not bind (rust-lang/libc#1611 was closed
//! unmerged), declared from illumos' headers:
//!
//! * `usr/src/uts/common/sys/devpoll.h`: `DPIOC` is `(0xD0 << 8)`, `DP_POLL` is
//!   `(DPIOC | 1)`, and `struct dvpoll { pollfd_t *dp_fds; nfds_t dp_nfds; int
//!   dp_timeout; sigset_t *dp_setp; }`.
//! * `usr/src/uts/common/sys/poll.h`: `POLLREMOVE` is `0x0800` (`0x1000` is
//!   `POLLONESHOT` and `0x2000` `POLLET`, which we never use).
//!
//! Solaris' headers have the same values. `dp_setp` exists only for `DP_PPOLL`: for
//! `DP_POLL` the kernel copies the struct only up to it (and Solaris' struct ends there),
//! so the three-field struct below serves both systems.

// Outside illumos/Solaris only the unit tests use this module.
#![cfg_attr(
    not(any(target_os = "illumos", target_os = "solaris")),
    allow(dead_code)
)]

use super::records::PollFd;

/// `DPIOC`: the /dev/poll ioctl group.
const DPIOC: libc::c_int = 0xD0 << 8;

/// `DP_POLL`: wait for events on the fds cached in a /dev/poll instance.
pub(crate) const DP_POLL: libc::c_int = DPIOC | 1;

/// `POLLREMOVE`: an entry with exactly this `events` value removes its fd from the cached
/// set. Any other value is OR-ed into the fd's cached events.
pub(crate) const POLLREMOVE: i16 = 0x0800;

/// `struct dvpoll`, the `DP_POLL` argument (without `DP_PPOLL`'s `dp_setp`, see above).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct DvPoll {
    /// Where the kernel writes the ready entries.
    pub dp_fds: *mut PollFd,
    /// Room in `dp_fds` (`nfds_t`, an `unsigned long`).
    pub dp_nfds: libc::c_ulong,
    /// Milliseconds; -1 waits forever, 0 polls.
    pub dp_timeout: libc::c_int,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_the_illumos_headers() {
        assert_eq!(DP_POLL, 0xD001);
        assert_eq!(POLLREMOVE, 0x0800);
    }

    #[test]
    fn dvpoll_has_the_c_layout() {
        use std::mem::{offset_of, size_of};
        if size_of::<usize>() == 8 {
            assert_eq!(offset_of!(DvPoll, dp_nfds), 8);
            assert_eq!(offset_of!(DvPoll, dp_timeout), 16);
            assert_eq!(size_of::<DvPoll>(), 24);
        }
        let dp = DvPoll {
            dp_fds: std::ptr::null_mut(),
            dp_nfds: 0,
            dp_timeout: -1,
        };
        assert!(dp.dp_fds.is_null() && dp.dp_nfds == 0 && dp.dp_timeout == -1);
    }
}

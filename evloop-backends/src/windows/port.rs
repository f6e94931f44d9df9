//! The I/O completion port: the one kernel object the loop blocks on. AFD poll requests
//! complete into it, and wakers post to it.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};
use std::time::Duration;

use super::records::timeout_ms;
use windows_sys::Win32::Foundation::{GetLastError, HANDLE, INVALID_HANDLE_VALUE, WAIT_TIMEOUT};
use windows_sys::Win32::System::IO::{
    CreateIoCompletionPort, GetQueuedCompletionStatusEx, PostQueuedCompletionStatus,
    OVERLAPPED_ENTRY,
};

/// The completion key of AFD poll requests (their "overlapped" value is the slot).
pub(crate) const AFD_KEY: usize = 0;
/// The completion key of a waker's wake (its "overlapped" value is the waker's id).
pub(crate) const WAKE_KEY: usize = 1;

/// An owned completion port.
#[derive(Debug)]
pub(crate) struct Port {
    handle: OwnedHandle,
}

impl Port {
    /// A new port that lets one thread run at a time (the loop's).
    pub(crate) fn new() -> io::Result<Port> {
        // SAFETY: creating a port from INVALID_HANDLE_VALUE touches no memory of ours; the
        // returned handle (checked for null) is new and owned by nobody else.
        let h = unsafe { CreateIoCompletionPort(INVALID_HANDLE_VALUE, std::ptr::null_mut(), 0, 1) };
        if h.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `h` is a fresh, valid handle we own (see above).
        let handle = unsafe { OwnedHandle::from_raw_handle(h as RawHandle) };
        Ok(Port { handle })
    }

    fn raw(&self) -> HANDLE {
        self.handle.as_raw_handle() as HANDLE
    }

    /// Make `file`'s completions arrive here, each with `key`.
    pub(crate) fn associate(&self, file: HANDLE, key: usize) -> io::Result<()> {
        // SAFETY: both handles are valid for the call (the caller owns `file`; `self` owns
        // the port); the call writes no memory of ours.
        let h = unsafe { CreateIoCompletionPort(file, self.raw(), key, 0) };
        if h.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Wait up to `timeout` for completions and move them into `entries`; returns how
    /// many (0 at the timeout). Never blocks when `timeout` is zero.
    pub(crate) fn wait(
        &self,
        entries: &mut [OVERLAPPED_ENTRY],
        timeout: Option<Duration>,
    ) -> io::Result<usize> {
        let mut n = 0u32;
        let len = u32::try_from(entries.len()).unwrap_or(u32::MAX);
        // SAFETY: `entries` is valid for `len` writes and `n` for one; the port handle is
        // ours; not alertable, so no APC runs inside the call.
        let ok = unsafe {
            GetQueuedCompletionStatusEx(
                self.raw(),
                entries.as_mut_ptr(),
                len,
                &mut n,
                timeout_ms(timeout),
                0,
            )
        };
        if ok == 0 {
            // SAFETY: reads the calling thread's last-error value.
            let code = unsafe { GetLastError() };
            if code == WAIT_TIMEOUT {
                return Ok(0);
            }
            return Err(io::Error::from_raw_os_error(code as i32));
        }
        Ok(n as usize)
    }

    /// Queue a completion carrying `key` and `value` (a waker's wake).
    pub(crate) fn post(&self, key: usize, value: usize) -> io::Result<()> {
        // SAFETY: the port handle is ours; the "overlapped" pointer is an opaque value
        // the system hands back in the completion without dereferencing it.
        let ok = unsafe { PostQueuedCompletionStatus(self.raw(), 0, key, value as *const _) };
        if ok == 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

//! An AFD device handle and its poll request.
//!
//! `\Device\Afd` is the kernel driver under Winsock. Opening it gives a handle on which
//! `IOCTL_AFD_POLL` asks "tell me when any of these events happens on this socket"; the
//! answer arrives as a completion on the port the handle is associated with. One poll
//! per socket is outstanding at a time; it is one-shot, so the backend submits it again
//! after each completion (which makes readiness level-triggered: a socket that is still
//! ready completes its new poll at once).
//!
//! A pending request's status block and poll info belong to the kernel until its
//! completion is dequeued, even after a cancellation, so they live in a [`Request`] on
//! the heap that the backend frees only then.

use std::io;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};

use windows_sys::Wdk::Foundation::OBJECT_ATTRIBUTES;
use windows_sys::Wdk::Storage::FileSystem::{NtCancelIoFileEx, NtCreateFile, FILE_OPEN};
use windows_sys::Wdk::System::IO::NtDeviceIoControlFile;
use windows_sys::Win32::Foundation::{
    RtlNtStatusToDosError, HANDLE, NTSTATUS, STATUS_CANCELLED, STATUS_NOT_FOUND, STATUS_PENDING,
    STATUS_SUCCESS, UNICODE_STRING,
};
use windows_sys::Win32::Storage::FileSystem::{
    SetFileCompletionNotificationModes, FILE_SHARE_READ, FILE_SHARE_WRITE, SYNCHRONIZE,
};
use windows_sys::Win32::System::WindowsProgramming::FILE_SKIP_SET_EVENT_ON_HANDLE;
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

use super::port::Port;

/// `IOCTL_AFD_POLL`: `FSCTL`-style code 9 of the AFD device type, buffered.
const IOCTL_AFD_POLL: u32 = 0x0001_2024;

/// The device path; the part after `\Device\Afd` is a name AFD ignores (it shows in
/// handle listings, so tools can tell whose handles these are).
const DEVICE: &str = "\\Device\\Afd\\Evloop";

/// One socket's entry in a poll request (`AFD_POLL_HANDLE_INFO`).
#[repr(C)]
#[derive(Clone, Copy)]
struct PollHandleInfo {
    handle: HANDLE,
    events: u32,
    status: NTSTATUS,
}

/// The poll request's input and output buffer (`AFD_POLL_INFO` with one handle).
#[repr(C)]
#[derive(Clone, Copy)]
struct PollInfo {
    timeout: i64,
    number_of_handles: u32,
    exclusive: u32,
    handles: [PollHandleInfo; 1],
}

/// A poll request's kernel-owned memory: allocated once per registration, written by the
/// kernel while the request is pending, read by the backend after its completion.
pub(crate) struct Request {
    iosb: IO_STATUS_BLOCK,
    info: PollInfo,
}

/// How a dequeued poll ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// These AFD events happened (possibly none: a poll can complete empty).
    Events(u32),
    /// The request was cancelled (by a `modify` that needed a new mask, a deregistration
    /// or the backend's drop).
    Cancelled,
    /// The request failed; the socket is no longer usable for polling.
    Failed(NTSTATUS),
}

impl Request {
    /// A fresh, idle request on the heap; the backend keeps the raw pointer.
    pub(crate) fn new_raw() -> *mut Request {
        Box::into_raw(Box::new(Request {
            iosb: IO_STATUS_BLOCK::default(),
            info: PollInfo {
                timeout: 0,
                number_of_handles: 0,
                exclusive: 0,
                handles: [PollHandleInfo {
                    handle: std::ptr::null_mut(),
                    events: 0,
                    status: 0,
                }],
            },
        }))
    }

    /// Read the result of a completed request.
    ///
    /// # Safety
    ///
    /// `req` came from [`Request::new_raw`], is not freed, and its completion has been
    /// dequeued (the kernel no longer writes it).
    pub(crate) unsafe fn outcome(req: *const Request) -> Outcome {
        // SAFETY: per the contract above, the memory is valid and quiescent.
        let (status, info) = unsafe { ((*req).iosb.Anonymous.Status, (*req).info) };
        if status == STATUS_CANCELLED {
            Outcome::Cancelled
        } else if status < 0 {
            Outcome::Failed(status)
        } else if info.number_of_handles == 0 {
            Outcome::Events(0)
        } else {
            Outcome::Events(info.handles[0].events)
        }
    }

    /// Free a request.
    ///
    /// # Safety
    ///
    /// As for [`Request::outcome`], and `req` is not used afterwards.
    pub(crate) unsafe fn free(req: *mut Request) {
        // SAFETY: `req` came from `Box::into_raw` and the kernel is done with it.
        drop(unsafe { Box::from_raw(req) });
    }
}

/// The Windows error for an NT status.
pub(crate) fn nt_error(status: NTSTATUS) -> io::Error {
    // SAFETY: a pure table lookup.
    io::Error::from_raw_os_error(unsafe { RtlNtStatusToDosError(status) } as i32)
}

/// An open `\Device\Afd` handle, associated with the backend's port.
#[derive(Debug)]
pub(crate) struct AfdHandle {
    handle: OwnedHandle,
}

impl AfdHandle {
    /// Open a handle on the AFD device and route its completions to `port` with `key`.
    pub(crate) fn open(port: &Port, key: usize) -> io::Result<AfdHandle> {
        let mut name: Vec<u16> = DEVICE.encode_utf16().collect();
        let bytes = (name.len() * 2) as u16;
        let name = UNICODE_STRING {
            Length: bytes,
            MaximumLength: bytes,
            Buffer: name.as_mut_ptr(),
        };
        let attrs = OBJECT_ATTRIBUTES {
            Length: std::mem::size_of::<OBJECT_ATTRIBUTES>() as u32,
            RootDirectory: std::ptr::null_mut(),
            ObjectName: &name,
            Attributes: 0,
            SecurityDescriptor: std::ptr::null(),
            SecurityQualityOfService: std::ptr::null(),
        };
        let mut handle: HANDLE = std::ptr::null_mut();
        let mut iosb = IO_STATUS_BLOCK::default();
        // SAFETY: every pointer is to a live local (the name's buffer outlives the call);
        // no extended attributes; the handle written is new and ours.
        let status = unsafe {
            NtCreateFile(
                &mut handle,
                SYNCHRONIZE,
                &attrs,
                &mut iosb,
                std::ptr::null(),
                0,
                FILE_SHARE_READ | FILE_SHARE_WRITE,
                FILE_OPEN,
                0,
                std::ptr::null(),
                0,
            )
        };
        if status != STATUS_SUCCESS {
            return Err(nt_error(status));
        }
        // SAFETY: NtCreateFile succeeded, so `handle` is a fresh handle we own.
        let handle = unsafe { OwnedHandle::from_raw_handle(handle as RawHandle) };
        let afd = AfdHandle { handle };
        port.associate(afd.raw(), key)?;
        // The port is the only way completions are waited for: spare the kernel the event
        // signalling on the file handle.
        // SAFETY: a valid handle we own; the call reads no memory of ours.
        if unsafe {
            SetFileCompletionNotificationModes(afd.raw(), FILE_SKIP_SET_EVENT_ON_HANDLE as u8)
        } == 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(afd)
    }

    fn raw(&self) -> HANDLE {
        self.handle.as_raw_handle() as HANDLE
    }

    /// Submit a poll of `base` for `events`; its completion carries `context` (non-zero)
    /// as its "overlapped" value.
    ///
    /// # Safety
    ///
    /// `req` came from [`Request::new_raw`], is not freed, and has no request pending; it
    /// must stay allocated until this request's completion is dequeued.
    pub(crate) unsafe fn poll(
        &self,
        req: *mut Request,
        base: HANDLE,
        events: u32,
        context: usize,
    ) -> io::Result<()> {
        debug_assert_ne!(context, 0, "a null APC context queues no completion");
        // SAFETY: no request is pending on `req` (the caller's contract), so this thread
        // is the only writer.
        unsafe {
            (*req).iosb.Anonymous.Status = STATUS_PENDING;
            (*req).info = PollInfo {
                timeout: i64::MAX,
                number_of_handles: 1,
                exclusive: 0,
                handles: [PollHandleInfo {
                    handle: base,
                    events,
                    status: 0,
                }],
            };
        }
        let size = std::mem::size_of::<PollInfo>() as u32;
        // SAFETY: `req` stays allocated until the completion is dequeued (the caller's
        // contract), so the kernel may write its status block and info until then; the
        // same buffer is input and output, as AFD expects.
        let status = unsafe {
            let info = std::ptr::addr_of_mut!((*req).info).cast::<std::ffi::c_void>();
            NtDeviceIoControlFile(
                self.raw(),
                std::ptr::null_mut(),
                None,
                context as *const std::ffi::c_void,
                std::ptr::addr_of_mut!((*req).iosb),
                IOCTL_AFD_POLL,
                info,
                size,
                info,
                size,
            )
        };
        // Completed at once or pending (or any other success status): either way the
        // completion is queued to the port, and `req` is the kernel's until it arrives.
        if status >= 0 {
            Ok(())
        } else {
            Err(nt_error(status))
        }
    }

    /// Ask the kernel to cancel `req`'s pending poll. Its completion (cancelled, or with
    /// the events it met first) still arrives at the port; only then may `req` be freed.
    ///
    /// # Safety
    ///
    /// `req` has a poll pending on this handle.
    pub(crate) unsafe fn cancel(&self, req: *mut Request) -> io::Result<()> {
        let mut cancel_iosb = IO_STATUS_BLOCK::default();
        // SAFETY: `req`'s status block identifies the request and stays allocated (the
        // caller's contract); `cancel_iosb` is a live local the call completes into
        // synchronously.
        let status = unsafe {
            NtCancelIoFileEx(
                self.raw(),
                std::ptr::addr_of!((*req).iosb),
                &mut cancel_iosb,
            )
        };
        // Not found: it completed meanwhile, and its completion is already queued.
        if status == STATUS_SUCCESS || status == STATUS_NOT_FOUND {
            Ok(())
        } else {
            Err(nt_error(status))
        }
    }
}

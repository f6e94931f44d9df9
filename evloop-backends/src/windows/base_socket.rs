//! The base provider socket: AFD polls the socket of the base (kernel) provider, not a
//! handle a layered service provider (LSP: some firewalls, VPN and proxy clients) put on
//! top of it. A poll on an LSP's handle fails or never completes.

use std::io;

use windows_sys::Win32::Foundation::HANDLE;
use windows_sys::Win32::Networking::WinSock::{
    getsockopt, WSAGetLastError, WSAIoctl, INVALID_SOCKET, SIO_BASE_HANDLE, SIO_BSP_HANDLE,
    SIO_BSP_HANDLE_POLL, SIO_BSP_HANDLE_SELECT, SOCKET, SOCKET_ERROR, SOL_SOCKET, SO_TYPE,
};

/// `socket`'s base provider handle, for AFD. `SIO_BASE_HANDLE` answers directly unless an
/// LSP intercepts it (some do, wrongly); then the handle the base provider gives for
/// `select`, for `WSAPoll`, or its handle at all, in that order, is the base socket.
///
/// A handle that is not an open socket is refused first, with `WSAENOTSOCK` (not every
/// provider checks that in the ioctl).
pub(crate) fn base_socket(socket: SOCKET) -> io::Result<HANDLE> {
    check_socket(socket)?;
    let mut first_error = None;
    for ioctl in [
        SIO_BASE_HANDLE,
        SIO_BSP_HANDLE_SELECT,
        SIO_BSP_HANDLE_POLL,
        SIO_BSP_HANDLE,
    ] {
        match query(socket, ioctl) {
            Ok(base) => return Ok(base as HANDLE),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.expect("at least one query ran"))
}

/// `Ok` if `socket` is an open socket (`getsockopt(SO_TYPE)` answers for sockets only).
fn check_socket(socket: SOCKET) -> io::Result<()> {
    let mut ty = 0i32;
    let mut len = std::mem::size_of::<i32>() as i32;
    // SAFETY: the output buffer is `ty`, writable and `len` bytes long.
    let r = unsafe {
        getsockopt(
            socket,
            SOL_SOCKET,
            SO_TYPE,
            (&mut ty as *mut i32).cast(),
            &mut len,
        )
    };
    if r == SOCKET_ERROR {
        // SAFETY: reads this thread's last Winsock error.
        return Err(io::Error::from_raw_os_error(unsafe { WSAGetLastError() }));
    }
    Ok(())
}

fn query(socket: SOCKET, ioctl: u32) -> io::Result<SOCKET> {
    let mut base: SOCKET = INVALID_SOCKET;
    let mut bytes = 0u32;
    // SAFETY: the output buffer is `base`, writable and exactly the size passed; no input
    // buffer; synchronous (no overlapped, no completion routine).
    let r = unsafe {
        WSAIoctl(
            socket,
            ioctl,
            std::ptr::null(),
            0,
            (&mut base as *mut SOCKET).cast(),
            std::mem::size_of::<SOCKET>() as u32,
            &mut bytes,
            std::ptr::null_mut(),
            None,
        )
    };
    if r == SOCKET_ERROR {
        // SAFETY: reads this thread's last Winsock error.
        return Err(io::Error::from_raw_os_error(unsafe { WSAGetLastError() }));
    }
    if base == INVALID_SOCKET {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the socket's provider gave no base socket",
        ));
    }
    Ok(base)
}

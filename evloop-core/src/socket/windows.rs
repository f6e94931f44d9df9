//! The Windows socket calls (see `mod.rs`): Winsock through `windows-sys`, each socket
//! made non-blocking (`FIONBIO`) and not inherited by child processes.

use std::io;
use std::net::SocketAddr;
use std::os::windows::io::{AsRawSocket, FromRawSocket, OwnedSocket, RawSocket};
use std::sync::Once;

use windows_sys::Win32::Networking::WinSock::{
    self as ws, AF_INET, AF_INET6, FIONBIO, IN6_ADDR, IN6_ADDR_0, INVALID_SOCKET, IN_ADDR,
    IN_ADDR_0, IPPROTO_IPV6, IPPROTO_TCP, IPV6_V6ONLY, SOCKADDR, SOCKADDR_IN, SOCKADDR_IN6,
    SOCKADDR_IN6_0, SOCKET, SOCKET_ERROR, SOCK_STREAM, SOL_SOCKET, SO_ERROR, WSADATA,
    WSAEWOULDBLOCK, WSA_FLAG_NO_HANDLE_INHERIT, WSA_FLAG_OVERLAPPED,
};

use super::TcpOptions;

/// The stream socket type, for [`socket_for`].
pub(crate) const STREAM: i32 = SOCK_STREAM;

/// What an `accept` error means (see [`AcceptFailure`](super::AcceptFailure)).
pub(crate) fn accept_failure(e: &io::Error) -> super::AcceptFailure {
    use super::AcceptFailure::*;
    match e.raw_os_error() {
        Some(ws::WSAEWOULDBLOCK) => WouldBlock,
        Some(ws::WSAEINTR | ws::WSAECONNRESET | ws::WSAECONNABORTED) => Transient,
        Some(code @ (ws::WSAEMFILE | ws::WSAENOBUFS)) => Exhausted(code),
        _ => Other,
    }
}

/// Windows keeps no descriptor in reserve (no per-process limit to get around).
pub(crate) fn open_reserve() -> io::Result<std::fs::File> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no descriptor reserve on Windows",
    ))
}

/// Winsock must be started before its first call; std starts it lazily on its own first
/// socket call, which may come after ours. Starting it twice is counted, not an error.
fn startup() {
    static START: Once = Once::new();
    START.call_once(|| {
        // SAFETY: WSADATA is integers, byte arrays and a nullable pointer: all-zero bytes
        // are a valid value.
        let mut data: WSADATA = unsafe { std::mem::zeroed() };
        // SAFETY: `data` is a valid, writable WSADATA; version 2.2. A failure shows up as
        // `WSANOTINITIALISED` from the first socket call, with its own error.
        unsafe { ws::WSAStartup(0x202, &mut data) };
    });
}

/// The last Winsock error of this thread.
fn last_error() -> io::Error {
    // SAFETY: reads this thread's last Winsock error.
    io::Error::from_raw_os_error(unsafe { ws::WSAGetLastError() })
}

/// Take ownership of a socket a creating call returned, or its error.
fn own(s: SOCKET) -> io::Result<OwnedSocket> {
    if s == INVALID_SOCKET {
        return Err(last_error());
    }
    // SAFETY: `s` was just returned by a call that creates a socket; nobody else owns it.
    Ok(unsafe { OwnedSocket::from_raw_socket(s as RawSocket) })
}

/// Switch a socket to non-blocking mode (`FIONBIO`).
pub(crate) fn set_nonblocking(s: RawSocket) -> io::Result<()> {
    let mut on = 1u32;
    // SAFETY: `on` is a valid u32 for FIONBIO; `s` is the caller's open socket.
    if unsafe { ws::ioctlsocket(s as SOCKET, FIONBIO, &mut on) } == SOCKET_ERROR {
        return Err(last_error());
    }
    Ok(())
}

/// A new non-blocking, non-inheritable socket of `family` and `ty`.
fn socket(family: u16, ty: i32) -> io::Result<OwnedSocket> {
    startup();
    // SAFETY: plain call; no protocol info; the result is checked and owned by `own`.
    let s = own(unsafe {
        ws::WSASocketW(
            i32::from(family),
            ty,
            if ty == SOCK_STREAM { IPPROTO_TCP } else { 0 },
            std::ptr::null(),
            0,
            WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT,
        )
    })?;
    set_nonblocking(s.as_raw_socket())?;
    Ok(s)
}

/// A socket for `addr`'s family, non-blocking and not inherited.
pub(crate) fn socket_for(addr: &SocketAddr, ty: i32) -> io::Result<OwnedSocket> {
    let family = match addr {
        SocketAddr::V4(_) => AF_INET,
        SocketAddr::V6(_) => AF_INET6,
    };
    socket(family, ty)
}

/// Accept one connection, non-blocking. (A socket `accept` returns inherits the
/// listener's non-blocking mode; it is set again so that no listener setup can undo it.)
pub(crate) fn accept(s: RawSocket) -> io::Result<OwnedSocket> {
    // SAFETY: plain call; null address pointers are allowed.
    let c = own(unsafe { ws::accept(s as SOCKET, std::ptr::null_mut(), std::ptr::null_mut()) })?;
    set_nonblocking(c.as_raw_socket())?;
    Ok(c)
}

/// A socket address in the C layout `bind` and `connect` take.
#[repr(C)]
union SockAddr {
    v4: SOCKADDR_IN,
    v6: SOCKADDR_IN6,
}

fn sockaddr_of(addr: &SocketAddr) -> (SockAddr, i32) {
    match addr {
        SocketAddr::V4(a) => (
            SockAddr {
                v4: SOCKADDR_IN {
                    sin_family: AF_INET,
                    sin_port: a.port().to_be(),
                    sin_addr: IN_ADDR {
                        S_un: IN_ADDR_0 {
                            S_addr: u32::from_ne_bytes(a.ip().octets()),
                        },
                    },
                    sin_zero: [0; 8],
                },
            },
            std::mem::size_of::<SOCKADDR_IN>() as i32,
        ),
        SocketAddr::V6(a) => (
            SockAddr {
                v6: SOCKADDR_IN6 {
                    sin6_family: AF_INET6,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: IN6_ADDR {
                        u: IN6_ADDR_0 {
                            Byte: a.ip().octets(),
                        },
                    },
                    Anonymous: SOCKADDR_IN6_0 {
                        sin6_scope_id: a.scope_id(),
                    },
                },
            },
            std::mem::size_of::<SOCKADDR_IN6>() as i32,
        ),
    }
}

/// Set a boolean (`BOOL`-sized) socket option.
pub(crate) fn set_bool(s: RawSocket, level: i32, name: i32, on: bool) -> io::Result<()> {
    let v = i32::from(on);
    // SAFETY: the option value points to a live i32 of the length given.
    let r = unsafe {
        ws::setsockopt(
            s as SOCKET,
            level,
            name,
            (&v as *const i32).cast(),
            std::mem::size_of::<i32>() as i32,
        )
    };
    if r == SOCKET_ERROR {
        return Err(last_error());
    }
    Ok(())
}

/// Windows cannot share a port between listening sockets ([`PortSharing::Unsupported`]:
/// its `SO_REUSEADDR` lets a second socket steal the port instead).
///
/// [`PortSharing::Unsupported`]: super::PortSharing::Unsupported
pub(crate) fn set_reuse_port(_s: RawSocket) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "Windows cannot bind several listening sockets to one port",
    ))
}

/// `listen`.
pub(crate) fn listen(s: RawSocket, backlog: i32) -> io::Result<()> {
    // SAFETY: plain call on an open socket.
    if unsafe { ws::listen(s as SOCKET, backlog) } == SOCKET_ERROR {
        return Err(last_error());
    }
    Ok(())
}

/// A non-blocking TCP socket bound to `addr` and listening. `reuse_addr` is not set on
/// Windows: there it would let another socket take over the port, and what it gives on
/// Unix (binding a port with connections in `TIME_WAIT`) is Windows's default. (Nor is
/// `SO_EXCLUSIVEADDRUSE`: like std's `TcpListener`, a listener does not stop another
/// process that sets `SO_REUSEADDR` from binding the port too.) An IPv6 listener is
/// IPv6-only unless `v6_only(false)` says otherwise: Windows's default, unlike Linux's.
pub(crate) fn tcp_listener(addr: &SocketAddr, opts: &TcpOptions) -> io::Result<OwnedSocket> {
    let s = socket_for(addr, SOCK_STREAM)?;
    let raw = s.as_raw_socket();
    let _ = opts.reuse_addr; // see above
    if opts.reuse_port {
        set_reuse_port(raw)?;
    }
    if let (Some(on), SocketAddr::V6(_)) = (opts.v6_only, addr) {
        set_bool(raw, IPPROTO_IPV6, IPV6_V6ONLY, on)?;
    }
    let (sa, len) = sockaddr_of(addr);
    // SAFETY: `sa` holds a valid socket address of `len` bytes for this socket's family.
    let r = unsafe {
        ws::bind(
            raw as SOCKET,
            (&sa as *const SockAddr).cast::<SOCKADDR>(),
            len,
        )
    };
    if r == SOCKET_ERROR {
        return Err(last_error());
    }
    listen(raw, opts.backlog)?;
    Ok(s)
}

/// Start a non-blocking connect of `s` to `addr`; `WSAEWOULDBLOCK` is success.
pub(crate) fn connect(s: RawSocket, addr: &SocketAddr) -> io::Result<()> {
    let (sa, len) = sockaddr_of(addr);
    // SAFETY: `sa` holds a valid socket address of `len` bytes for `addr`'s family.
    let r = unsafe {
        ws::connect(
            s as SOCKET,
            (&sa as *const SockAddr).cast::<SOCKADDR>(),
            len,
        )
    };
    if r == SOCKET_ERROR {
        let e = last_error();
        if e.raw_os_error() != Some(WSAEWOULDBLOCK) {
            return Err(e);
        }
    }
    Ok(())
}

/// The pending error of a socket (`SO_ERROR`), as an `Err`; `Ok` if there is none.
pub(crate) fn so_error(s: RawSocket) -> io::Result<()> {
    let mut err = 0i32;
    let mut len = std::mem::size_of::<i32>() as i32;
    // SAFETY: `err` and `len` are valid for writes of the sizes given.
    let r = unsafe {
        ws::getsockopt(
            s as SOCKET,
            SOL_SOCKET,
            SO_ERROR,
            (&mut err as *mut i32).cast(),
            &mut len,
        )
    };
    if r == SOCKET_ERROR {
        return Err(last_error());
    }
    if err != 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(())
}

/// Send the next chunk of a file: read it at the offset and send what the socket takes.
pub(crate) fn send_file_chunk(
    out: RawSocket,
    file: &std::fs::File,
    offset: &mut u64,
    remaining: &mut u64,
) -> io::Result<usize> {
    use std::os::windows::fs::FileExt;
    let mut chunk = [0u8; 8192];
    let want = (*remaining).min(chunk.len() as u64) as usize;
    let got = file.seek_read(&mut chunk[..want], *offset)?;
    if got == 0 {
        return Ok(0);
    }
    // SAFETY: `chunk[..got]` is initialised; `out` is the caller's open socket.
    let n = unsafe { ws::send(out as SOCKET, chunk.as_ptr(), got as i32, 0) };
    if n == SOCKET_ERROR {
        return Err(last_error());
    }
    *offset += n as u64;
    *remaining -= n as u64;
    Ok(n as usize)
}

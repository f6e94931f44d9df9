//! The Windows backend: readiness from `\Device\Afd` poll requests, completed through an
//! I/O completion port. This is the mechanism Winsock's own `select`/`WSAPoll` sit on,
//! used directly (as libuv, wepoll, mio and the `polling` crate do), so the loop gets
//! readiness for any number of sockets from one blocking `GetQueuedCompletionStatusEx`.
//!
//! One file per concern:
//!
//! | file | what |
//! |---|---|
//! | `records.rs` | AFD's event bits, and the mapping to and from [`Interest`](crate::Interest) / [`Ready`](crate::Ready) (pure; tested on every target) |
//! | `port.rs` | the completion port: create, associate, wait, post |
//! | `afd.rs` | an AFD device handle, the `IOCTL_AFD_POLL` request and its cancellation |
//! | `base_socket.rs` | the base provider socket under layered service providers (`SIO_BASE_HANDLE` and its fallbacks) |
//! | `backend.rs` | [`Afd`]: registrations, the per-socket poll state, `wait` |
//!
//! The cross-thread [`Waker`](crate::Waker) for this backend is in `src/waker/iocp.rs`: a
//! wake is a `PostQueuedCompletionStatus` to the port of the backend it is registered
//! with.

#[cfg(any(test, windows))]
pub(crate) mod records;

#[cfg(windows)]
mod afd;
#[cfg(windows)]
mod backend;
#[cfg(windows)]
mod base_socket;
#[cfg(windows)]
pub(crate) mod port;

#[cfg(windows)]
pub use backend::Afd;

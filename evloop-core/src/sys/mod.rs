//! What differs between Unix and Windows in the core: the trait a watchable value
//! implements, the raw handle behind it, and the few socket calls the core makes itself.
//! `unix.rs` and `windows.rs` give the same names; the rest of the core uses only these.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

use crate::ready_queue::NONE;
use evloop_backends::RawSource;

/// The first source slot of each watched raw handle (`NONE` when it has none): a table
/// indexed by fd on Unix (fds are small and dense), a hash map on Windows (sockets are
/// handle values, sparse and large).
#[derive(Debug)]
pub(crate) struct SourceIndex {
    #[cfg(unix)]
    heads: Vec<u32>,
    #[cfg(windows)]
    heads: std::collections::HashMap<RawSource, u32>,
}

impl SourceIndex {
    pub(crate) fn new() -> SourceIndex {
        SourceIndex {
            #[cfg(unix)]
            heads: vec![NONE; evloop_backends::open_file_limit()],
            #[cfg(windows)]
            heads: std::collections::HashMap::new(),
        }
    }

    /// The head slot of `raw`'s chain, or `NONE`.
    #[inline]
    pub(crate) fn get(&self, raw: RawSource) -> u32 {
        #[cfg(unix)]
        return self.heads.get(raw as usize).copied().unwrap_or(NONE);
        #[cfg(windows)]
        return self.heads.get(&raw).copied().unwrap_or(NONE);
    }

    /// Make `idx` (or `NONE`) the head of `raw`'s chain.
    #[inline]
    pub(crate) fn set(&mut self, raw: RawSource, idx: u32) {
        #[cfg(unix)]
        {
            let i = raw as usize;
            if i >= self.heads.len() {
                self.heads.resize((i + 1).next_power_of_two(), NONE);
            }
            self.heads[i] = idx;
        }
        #[cfg(windows)]
        {
            if idx == NONE {
                self.heads.remove(&raw);
            } else {
                self.heads.insert(raw, idx);
            }
        }
    }
}

/// Implement [`AsSource`] (`AsFd` on Unix, `AsSocket` on Windows) for a type by
/// forwarding to one of its fields, so a connection type of your own is watchable on
/// both without a `#[cfg]`:
///
/// ```
/// struct Conn {
///     stream: std::net::TcpStream,
///     served: u64,
/// }
/// evloop_core::impl_as_source!(Conn => stream);
///
/// fn watchable<S: evloop_core::AsSource>(_: &S) {}
/// # fn f(c: Conn) { watchable(&c) }
/// ```
///
/// A generic type names its parameters in brackets first, and the field may be a path
/// or a tuple index:
///
/// ```
/// struct Tagged<S>(u32, S);
/// evloop_core::impl_as_source!([S: evloop_core::AsSource] Tagged<S> => 1);
/// ```
#[macro_export]
macro_rules! impl_as_source {
    ([$($generics:tt)*] $ty:ty => $($field:tt)+) => {
        #[cfg(unix)]
        impl<$($generics)*> $crate::AsSource for $ty {
            fn as_fd(&self) -> $crate::BorrowedSource<'_> {
                $crate::AsSource::as_fd(&self.$($field)+)
            }
        }
        #[cfg(windows)]
        impl<$($generics)*> $crate::AsSource for $ty {
            fn as_socket(&self) -> $crate::BorrowedSource<'_> {
                $crate::AsSource::as_socket(&self.$($field)+)
            }
        }
    };
    ($ty:ty => $($field:tt)+) => {
        $crate::impl_as_source!([] $ty => $($field)+);
    };
}

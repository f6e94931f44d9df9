//! Completion I/O through the loop (see "Completion I/O" in the backend contract): an
//! I/O source registered with `Interest::COMPLETION` on a backend that has it (io_uring)
//! has its bytes received, its sends written and its connections accepted by the
//! backend; these calls reach them by [`SourceId`]. `BufSlab` and `Listener` use them
//! when [`Ctx::completion_io`] says so, so their handlers stay the same on every backend.

use evloop_backends::{OwnedSource, RawSource};
use std::io;

use evloop_backends::{Backend, Received};

use super::Ctx;
use crate::{Error, Machine, Result, SourceId};

impl<M: Machine> Ctx<M> {
    /// Whether the loop's backend does completion I/O (io_uring: `true`; readiness
    /// backends: `false`).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = Poll; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// assert!(!el.ctx().completion_io());
    /// ```
    #[inline]
    pub fn completion_io(&self) -> bool {
        self.backend.completion_io()
    }

    /// Hand the kernel what is queued for it now (sends, and the loop's pending interest
    /// changes) instead of with the next wait: one system call. `BufSlab::flush` does
    /// this under completion I/O, so a flush outside a dispatch still sends at once.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// el.ctx().submit().unwrap(); // nothing queued: nothing to do
    /// ```
    pub fn submit(&mut self) -> Result<()> {
        self.backend.flush().map_err(Error::Io)
    }

    fn io_fd(&self, id: SourceId) -> Result<RawSource> {
        let idx = self.lookup(id)?;
        match self.slots[idx as usize].io() {
            Some(io) => Ok(io.fd),
            None => Err(Error::WrongKind {
                operation: "completion I/O",
                applies_to: "I/O sources",
            }),
        }
    }

    /// Take up to `buf.len()` bytes that source `id` (registered with
    /// `Interest::READ | Interest::COMPLETION`) received: see
    /// [`Backend::recv_take`](evloop_backends::Backend::recv_take).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = Poll; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let id = el.ctx().add_io(&a, Token(1), Watch::read()).unwrap();
    /// assert!(el.ctx().recv_take(id, &mut [0; 8]).is_err()); // poll has no completion I/O
    /// ```
    pub fn recv_take(&mut self, id: SourceId, buf: &mut [u8]) -> Result<Received> {
        let fd = self.io_fd(id)?;
        self.backend.recv_take(fd, buf).map_err(Error::Io)
    }

    /// Hand `buf` to the backend to be written whole to source `id`'s fd; the end is
    /// dispatched as `WRITABLE` and collected with [`send_done`](Self::send_done). On
    /// refusal the buffer comes back with the error (see
    /// [`Backend::send`](evloop_backends::Backend::send)).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = Poll; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let id = el.ctx().add_io(&a, Token(1), Watch::read()).unwrap();
    /// let (buf, _e) = el.ctx().send(id, b"hi".to_vec()).unwrap_err();
    /// assert_eq!(buf, b"hi");
    /// ```
    pub fn send(
        &mut self,
        id: SourceId,
        buf: Vec<u8>,
    ) -> std::result::Result<(), (Vec<u8>, Error)> {
        let fd = match self.io_fd(id) {
            Ok(fd) => fd,
            Err(e) => return Err((buf, e)),
        };
        self.backend
            .send(fd, buf)
            .map_err(|(b, e)| (b, Error::Io(e)))
    }

    /// Source `id`'s finished send: its buffer (emptied, for reuse) and result; `None`
    /// while it is in flight, or if there is none.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = Poll; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let id = el.ctx().add_io(&a, Token(1), Watch::read()).unwrap();
    /// assert!(el.ctx().send_done(id).is_none());
    /// ```
    pub fn send_done(&mut self, id: SourceId) -> Option<(Vec<u8>, io::Result<()>)> {
        let fd = self.io_fd(id).ok()?;
        self.backend.send_done(fd)
    }

    /// The next connection the backend accepted on listening source `id` (registered
    /// with `Interest::READ | Interest::COMPLETION`), or the error it met; `None` when
    /// none is waiting.
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = Poll; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let id = el.ctx().add_io(&l, Token(1), Watch::read()).unwrap();
    /// assert!(el.ctx().accept_take(id).is_none());
    /// ```
    pub fn accept_take(&mut self, id: SourceId) -> Option<io::Result<OwnedSource>> {
        let fd = self.io_fd(id).ok()?;
        self.backend.accept_take(fd)
    }
}

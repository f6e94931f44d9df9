//! A [`BufConn`]'s I/O in completion mode (see "Completion I/O" in the backend
//! contract): on a backend that has it (io_uring), a [`BufSlab`](super::BufSlab) lets
//! the backend receive the connection's bytes into its own buffers and send its output,
//! instead of making `read` and `write` calls on readiness. The handlers see the same
//! events and buffers either way; these two functions stand in for
//! [`BufConn::on_ready`] and [`BufConn::flush`].

use std::io;

use evloop_backends::Ready;

use super::conn::{CONNECTING, EOF, FAILED, READ_BITS};
use super::{BufConn, BufEvents};
use crate::{Ctx, Error, Machine, SourceId};

/// The largest chunk of a queued file read into one send.
const FILE_CHUNK: usize = 64 * 1024;

fn io_error(e: Error) -> io::Error {
    match e {
        Error::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

impl<S> BufConn<S> {
    /// [`on_ready`](BufConn::on_ready) in completion mode: collect a finished send
    /// (`WRITABLE`) and send what is queued next, take received bytes into the input
    /// buffer (`READABLE`), classify a `TIMEOUT`. `id` is the connection's source.
    pub(super) fn on_completion<M: Machine>(
        &mut self,
        ctx: &mut Ctx<M>,
        id: SourceId,
        ready: Ready,
    ) -> BufEvents {
        if let Some(ev) = self.failed_events() {
            return ev;
        }
        let wanted = self.wanted();
        let mut ev = self.timeout_events(ready, wanted);
        let low = self.cfg.write_low as u64;
        if ready.intersects(Ready::WRITABLE | Ready::ERROR) {
            if let Some((buf, r)) = ctx.send_done(id) {
                let before = self.pending();
                self.in_flight = 0;
                self.tx_spare = buf;
                match r.and_then(|()| self.flush_completion(ctx, id)) {
                    Err(e) => self.fail(e),
                    Ok(()) if before > low && self.pending() <= low => ev |= BufEvents::DRAINED,
                    Ok(()) => {}
                }
            }
        }
        self.settle_drained(&mut ev);
        if self.flags & FAILED == 0 && ready.intersects(READ_BITS) && wanted.is_readable() {
            let room = self
                .cfg
                .read_high
                .saturating_sub(self.input.len())
                .min(self.input.free());
            if room > 0 {
                let spare = self.input.spare(room);
                let n = room.min(spare.len());
                match ctx.recv_take(id, &mut spare[..n]) {
                    Ok(r) => {
                        self.input.commit(r.len);
                        if r.eof {
                            self.flags |= EOF;
                            ev |= BufEvents::EOF;
                        }
                    }
                    Err(e) => self.fail(io_error(e)),
                }
            }
            self.data_event(&mut ev);
        }
        self.finish_events(ev)
    }

    /// [`flush`](BufConn::flush) in completion mode: unless a send is in flight, hand
    /// the backend the next bytes queued (the output buffer up to a queued file, or a
    /// chunk of the file read at its offset) as one send. One copy into the send
    /// buffer; no syscall (the next wait submits it).
    pub(super) fn flush_completion<M: Machine>(
        &mut self,
        ctx: &mut Ctx<M>,
        id: SourceId,
    ) -> io::Result<()> {
        if self.flags & (CONNECTING | FAILED) != 0 || self.in_flight > 0 {
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.tx_spare);
        buf.clear();
        loop {
            let limit = match &self.file {
                Some(f) => f.before,
                None => self.output.len(),
            };
            if limit > 0 {
                let n = limit.min(self.output.len());
                if buf.capacity() == 0 {
                    buf.reserve_exact(self.cfg.output.max(n));
                }
                buf.extend_from_slice(&self.output.as_slice()[..n]);
                self.output.consume(n);
                if let Some(f) = &mut self.file {
                    f.before -= n;
                }
                break;
            }
            let Some(f) = &mut self.file else {
                self.tx_spare = buf;
                return Ok(()); // nothing queued
            };
            if f.remaining == 0 {
                self.file = None;
                continue;
            }
            let chunk = (f.remaining.min(FILE_CHUNK as u64)) as usize;
            buf.resize(chunk, 0);
            let got = crate::sys::read_at(&f.file, &mut buf, f.offset)?;
            if got == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than the length queued",
                ));
            }
            buf.truncate(got);
            f.offset += got as u64;
            f.remaining -= got as u64;
            break;
        }
        let len = buf.len();
        match ctx.send(id, buf) {
            Ok(()) => {
                self.in_flight = len;
                Ok(())
            }
            Err((buf, e)) => {
                self.tx_spare = buf;
                Err(io_error(e))
            }
        }
    }
}

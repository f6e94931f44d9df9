//! The provided-buffer ring of completion mode (`IORING_REGISTER_PBUF_RING`, Linux
//! 5.19): buffers the kernel picks from for each multishot receive, and the queue
//! links that chain a connection's received buffers until they are taken.
//!
//! The memory (the ring of buffer descriptors and the buffers) is mapped with `mmap`,
//! never touched through a Rust reference while the kernel may write it: a buffer is read
//! only after a completion handed it back, and only until it is provided again (which
//! takes `&mut self`, so no slice of it can still be alive).

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// The buffer group id of the ring (one ring per backend).
pub(super) const BGID: u16 = 0;

/// Buffers in the ring. With [`BUF_SIZE`] this is 2 MiB of address space, touched only
/// as buffers are used.
pub(super) const BUF_COUNT: u16 = 256;

/// Bytes per buffer: one multishot receive completion carries at most this much.
pub(super) const BUF_SIZE: u32 = 8192;

/// Anonymous private memory of `len` bytes, page-aligned and zeroed.
fn map(len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing
    // aliases nothing.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

pub(super) struct BufRing {
    ring: NonNull<BufRingEntry>,
    ring_len: usize,
    bufs: NonNull<u8>,
    bufs_len: usize,
    /// Our copy of the ring's tail (the kernel reads the shared one).
    tail: u16,
    /// Per buffer: the bytes the kernel put in it (set when a completion hands it back).
    len: Box<[u32]>,
    /// Per buffer: the next buffer of the same connection's receive queue, plus one
    /// (0: the last).
    next: Box<[u32]>,
}

impl BufRing {
    /// Map the memory, register the ring with the kernel and provide every buffer.
    pub(super) fn new(sub: &Submitter<'_>) -> io::Result<BufRing> {
        let n = BUF_COUNT as usize;
        let ring_len = n * std::mem::size_of::<BufRingEntry>();
        let bufs_len = n * BUF_SIZE as usize;
        let ring = map(ring_len)?.cast::<BufRingEntry>();
        let bufs = match map(bufs_len) {
            Ok(b) => b,
            Err(e) => {
                // SAFETY: the mapping made just above, used by nothing yet.
                unsafe { libc::munmap(ring.as_ptr().cast(), ring_len) };
                return Err(e);
            }
        };
        let mut r = BufRing {
            ring,
            ring_len,
            bufs,
            bufs_len,
            tail: 0,
            len: vec![0; n].into_boxed_slice(),
            next: vec![0; n].into_boxed_slice(),
        };
        r.register(sub)?;
        Ok(r)
    }

    /// Register the ring (on a new io_uring after a fork, too) and provide every buffer
    /// for which `in_use` is false.
    pub(super) fn register(&mut self, sub: &Submitter<'_>) -> io::Result<()> {
        self.register_except(sub, |_| false)
    }

    /// [`register`](Self::register), keeping back the buffers `in_use` names (queued for
    /// a connection, not yet taken).
    pub(super) fn register_except(
        &mut self,
        sub: &Submitter<'_>,
        in_use: impl Fn(u16) -> bool,
    ) -> io::Result<()> {
        // The kernel starts reading the ring at head 0: start the tail there too.
        self.tail = 0;
        self.publish();
        // SAFETY: the ring memory is mapped for BUF_COUNT entries and stays mapped until
        // this value is dropped, which the backend does only once no request can use it
        // (see `Uring`'s `Drop`); page-aligned, as the kernel requires.
        unsafe {
            sub.register_buf_ring_with_flags(self.ring.as_ptr() as u64, BUF_COUNT, BGID, 0)
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "io_uring: registering the receive buffer ring failed ({e}); \
                             completion mode needs Linux 5.19 or later"
                        ),
                    )
                })?;
        }
        for bid in 0..BUF_COUNT {
            if !in_use(bid) {
                self.provide(bid);
            }
        }
        Ok(())
    }

    /// Give buffer `bid` back to the kernel (its bytes were taken, or it was dropped).
    pub(super) fn provide(&mut self, bid: u16) {
        let mask = BUF_COUNT - 1;
        let i = (self.tail & mask) as usize;
        // SAFETY: `i` is below BUF_COUNT, so the entry is inside the mapped ring; the
        // kernel reads entries only between its head and the published tail, and this
        // one is past the tail until `publish` below.
        let entry = unsafe { &mut *self.ring.as_ptr().add(i) };
        // SAFETY: buffer `bid` lies inside the buffer mapping.
        let addr = unsafe { self.bufs.as_ptr().add(bid as usize * BUF_SIZE as usize) };
        entry.set_addr(addr as u64);
        entry.set_len(BUF_SIZE);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.publish();
    }

    fn publish(&self) {
        // SAFETY: the tail field of the ring's first entry, inside the mapping; the kernel
        // reads it concurrently, so it is written atomically with release ordering (the
        // entries written before it become visible first).
        unsafe {
            let tail = BufRingEntry::tail(self.ring.as_ptr()) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// The `len` bytes the kernel put in buffer `bid`, from `off`.
    pub(super) fn bytes(&self, bid: u16, off: u32) -> &[u8] {
        let len = self.len[bid as usize];
        let off = off.min(len);
        // SAFETY: a completion handed `bid` back with `len` bytes (at most BUF_SIZE), and
        // the kernel does not write it again until `provide`, which needs `&mut self`
        // and so cannot run while this slice lives.
        unsafe {
            std::slice::from_raw_parts(
                self.bufs
                    .as_ptr()
                    .add(bid as usize * BUF_SIZE as usize + off as usize),
                (len - off) as usize,
            )
        }
    }

    pub(super) fn set_len(&mut self, bid: u16, len: u32) {
        self.len[bid as usize] = len.min(BUF_SIZE);
    }

    pub(super) fn len_of(&self, bid: u16) -> u32 {
        self.len[bid as usize]
    }

    /// The buffer after `bid` in its queue, plus one (0: none).
    pub(super) fn next(&self, bid: u16) -> u32 {
        self.next[bid as usize]
    }

    pub(super) fn set_next(&mut self, bid: u16, next: u32) {
        self.next[bid as usize] = next;
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: the two mappings made in `new`; the backend drops this only when no
        // request can still write into them (it leaks it otherwise).
        unsafe {
            libc::munmap(self.bufs.as_ptr().cast(), self.bufs_len);
            libc::munmap(self.ring.as_ptr().cast(), self.ring_len);
        }
    }
}

// SAFETY: the mappings are owned by this value alone (no other handle to them exists in
// the process), so moving it to another thread moves sole access with it.
unsafe impl Send for BufRing {}

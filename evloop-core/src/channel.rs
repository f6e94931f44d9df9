//! [`channel`]: a fixed-capacity, multi-producer single-consumer channel between threads
//! whose receiving end is a source a loop watches.
//!
//! The queue is a bounded array of `N` slots, each with a sequence number (Vyukov's
//! bounded queue, with one consumer): a sender claims a slot with one compare-and-swap on
//! the tail, writes the message and publishes it by bumping the slot's sequence; the
//! receiver reads it and frees the slot for the next lap. The storage is allocated once,
//! by [`channel`]; sending and receiving allocate nothing.
//!
//! The receiver owns a wake fd (an eventfd on Linux, a pipe elsewhere; a loopback socket
//! pair on Windows) and is [`AsSource`](crate::AsSource),
//! so a loop watches it like a socket: `ctx.add_io(&rx, token, Watch::read())`, or a
//! field `inbox: Receiver<Job, 256>` with `#[on_read(inbox)]`. Wakes coalesce: the first
//! message after the receiver found the queue empty writes the fd, and the messages
//! that follow it before the receiver runs do not, so a burst costs one wake-up and one
//! dispatch. The handler drains with [`Receiver::try_recv`] until it returns `None`;
//! stopping earlier is allowed (the fd stays readable and the handler runs again on the
//! next iteration).
//!
//! ```
//! use evloop_core::channel::channel;
//! let (tx, mut rx) = channel::<u32, 64>().unwrap();
//! std::thread::spawn(move || tx.try_send(42).unwrap()).join().unwrap();
//! assert_eq!(rx.try_recv(), Some(42));
//! ```
//!
//! # The wake protocol
//!
//! `notified` says "a wake is owed or already written". A sender publishes its message,
//! then `notified.swap(true)`; if it was `false`, it writes the fd. The receiver pops
//! without touching the fd while messages are there; when a pop finds nothing it clears
//! `notified`, drains the fd and looks again, this time at the tail itself:
//!
//! * some sender has claimed a slot (it may be between its claim and its publish): the
//!   receiver sets `notified` and writes the fd itself, so it is dispatched again;
//! * no claim, and `notified` still clear: truly empty, and the next sender will find
//!   `notified == false` and write the fd;
//! * no claim, but `notified` set again: a sender whose message the receiver already
//!   took notified late, after the clear, and its write may be the one just drained. The
//!   receiver clears and looks again (at most once per such late sender).
//!
//! A stress test (`no_lost_wakeup_under_contention`) checks this with producers spinning
//! on a small channel and a receiver that only reads when `poll` says the fd is readable.

use std::cell::UnsafeCell;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::sys::Notify;
use crate::Result;

/// Keeps the producers' and the consumer's hot counters on separate cache lines.
#[repr(align(64))]
struct Padded<T>(T);

struct Slot<T> {
    /// `2 * pos` when free for the send at `pos`, `2 * pos + 1` once that message is
    /// published (doubled so that a capacity of 1 cannot mistake the two).
    seq: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

struct Inner<T, const N: usize> {
    slots: Box<[Slot<T>]>,
    /// Next position a sender claims.
    tail: Padded<AtomicUsize>,
    /// Next position the receiver reads. Written only by the receiver.
    head: Padded<AtomicUsize>,
    /// A wake is owed or written (see the module docs).
    notified: AtomicBool,
    senders: AtomicUsize,
    receiver_alive: AtomicBool,
    waker: Notify,
}

// SAFETY: a slot's value is written only by the one sender whose compare-and-swap on
// `tail` claimed it, and read only by the one receiver (`Receiver` is not `Clone` and
// receives through `&mut self`), after the slot's `seq` is published with `Release` and
// seen with `Acquire`; a slot is reused only after the receiver frees it the same way. So
// a `T` is only ever moved between threads, which `T: Send` allows.
unsafe impl<T: Send, const N: usize> Sync for Inner<T, N> {}

impl<T, const N: usize> Inner<T, N> {
    fn new() -> Result<Arc<Self>> {
        const { assert!(N > 0, "a channel needs room for at least one message") };
        let slots = (0..N)
            .map(|i| Slot {
                seq: AtomicUsize::new(i.wrapping_mul(2)),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Ok(Arc::new(Inner {
            slots,
            tail: Padded(AtomicUsize::new(0)),
            head: Padded(AtomicUsize::new(0)),
            notified: AtomicBool::new(false),
            senders: AtomicUsize::new(0),
            receiver_alive: AtomicBool::new(true),
            waker: Notify::new()?,
        }))
    }

    fn push(&self, value: T) -> std::result::Result<(), T> {
        let mut pos = self.tail.0.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos % N];
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos.wrapping_mul(2)) as isize;
            if diff == 0 {
                match self.tail.0.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the compare-and-swap made this slot ours alone until we
                        // publish it below; the receiver freed it (seq == 2 pos), so it
                        // holds no value.
                        unsafe { (*slot.value.get()).write(value) };
                        slot.seq
                            .store(pos.wrapping_mul(2).wrapping_add(1), Ordering::Release);
                        return Ok(());
                    }
                    Err(now) => pos = now,
                }
            } else if diff < 0 {
                return Err(value); // the slot still holds last lap's message: full
            } else {
                pos = self.tail.0.load(Ordering::Relaxed);
            }
        }
    }

    /// Only the receiver calls this.
    fn pop(&self) -> Option<T> {
        let pos = self.head.0.load(Ordering::Relaxed);
        let slot = &self.slots[pos % N];
        if slot.seq.load(Ordering::Acquire) != pos.wrapping_mul(2).wrapping_add(1) {
            return None;
        }
        // SAFETY: seq == 2 pos + 1: the sender that claimed `pos` published its value (seen
        // through the Acquire load), and only the receiver (us) takes it out.
        let value = unsafe { (*slot.value.get()).assume_init_read() };
        slot.seq
            .store(pos.wrapping_add(N).wrapping_mul(2), Ordering::Release);
        self.head.0.store(pos.wrapping_add(1), Ordering::Relaxed);
        Some(value)
    }

    fn notify(&self) {
        if !self.notified.swap(true, Ordering::SeqCst) {
            let _ = self.waker.wake(); // cannot fail short of a closed fd
        }
    }
}

impl<T, const N: usize> Drop for Inner<T, N> {
    fn drop(&mut self) {
        let mut pos = *self.head.0.get_mut();
        let tail = *self.tail.0.get_mut();
        while pos != tail {
            let slot = &mut self.slots[pos % N];
            if *slot.seq.get_mut() == pos.wrapping_mul(2).wrapping_add(1) {
                // SAFETY: published and never received; we are the last owner.
                unsafe { slot.value.get_mut().assume_init_drop() };
            }
            pos = pos.wrapping_add(1);
        }
    }
}

/// Why [`Sender::try_send`] refused a message; the message comes back inside.
///
/// ```
/// use evloop_core::channel::{channel, SendError};
/// let (tx, _rx) = channel::<u32, 1>().unwrap();
/// tx.try_send(1).unwrap();
/// match tx.try_send(2) {
///     Err(SendError::Full(m)) => assert_eq!(m, 2),
///     _ => unreachable!(),
/// }
/// ```
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum SendError<T> {
    /// All `N` slots hold messages the receiver has not taken yet.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

impl<T> SendError<T> {
    /// The message that was not sent.
    ///
    /// ```
    /// use evloop_core::channel::SendError;
    /// assert_eq!(SendError::Full("job").into_inner(), "job");
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            SendError::Full(m) | SendError::Closed(m) => m,
        }
    }

    /// Whether the channel was full (rather than closed).
    ///
    /// ```
    /// use evloop_core::channel::SendError;
    /// assert!(SendError::Full(()).is_full());
    /// assert!(!SendError::Closed(()).is_full());
    /// ```
    pub fn is_full(&self) -> bool {
        matches!(self, SendError::Full(_))
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("Full(..)"),
            SendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => f.write_str("the channel is full"),
            SendError::Closed(_) => f.write_str("the channel's receiver is gone"),
        }
    }
}

impl<T> std::error::Error for SendError<T> {}

/// A channel of capacity `N`: senders for any thread, and a [`Receiver`] that a loop
/// watches. The only allocation is here (the `N` slots and the shared state); the wake fd
/// is created here too.
///
/// ```
/// use evloop_core::channel::channel;
/// let (tx, mut rx) = channel::<String, 8>().unwrap();
/// std::thread::spawn(move || tx.try_send("hello".to_string()).unwrap()).join().unwrap();
/// assert_eq!(rx.try_recv().as_deref(), Some("hello"));
/// assert_eq!(rx.try_recv(), None);
/// ```
pub fn channel<T, const N: usize>() -> Result<(Sender<T, N>, Receiver<T, N>)> {
    let rx = Receiver::new()?;
    Ok((rx.sender(), rx))
}

/// The sending end: clone it for each producer. [`try_send`](Self::try_send) never
/// blocks (one compare-and-swap, plus one `write` to the wake fd for the first message
/// of a burst), so a loop can send from its handlers.
///
/// ```
/// use evloop_core::channel::channel;
/// let (tx, mut rx) = channel::<u8, 4>().unwrap();
/// let tx2 = tx.clone();
/// tx.try_send(1).unwrap();
/// tx2.try_send(2).unwrap();
/// assert_eq!((rx.try_recv(), rx.try_recv()), (Some(1), Some(2)));
/// ```
pub struct Sender<T, const N: usize> {
    inner: Arc<Inner<T, N>>,
}

impl<T, const N: usize> Sender<T, N> {
    /// Queue `msg` and wake the receiver's loop, or give it back:
    /// `Err(SendError::Full(msg))` when `N` messages are waiting,
    /// `Err(SendError::Closed(msg))` when the receiver was dropped. Never blocks.
    ///
    /// ```
    /// use evloop_core::channel::{channel, SendError};
    /// let (tx, rx) = channel::<u32, 2>().unwrap();
    /// assert!(tx.try_send(1).is_ok());
    /// drop(rx);
    /// assert!(matches!(tx.try_send(2), Err(SendError::Closed(2))));
    /// ```
    pub fn try_send(&self, msg: T) -> std::result::Result<(), SendError<T>> {
        let inner = &*self.inner;
        if !inner.receiver_alive.load(Ordering::Acquire) {
            return Err(SendError::Closed(msg));
        }
        match inner.push(msg) {
            Ok(()) => {
                inner.notify();
                Ok(())
            }
            Err(msg) => Err(SendError::Full(msg)),
        }
    }

    /// Whether the receiver was dropped (then every send fails with `Closed`).
    ///
    /// ```
    /// let (tx, rx) = evloop_core::channel::channel::<(), 1>().unwrap();
    /// assert!(!tx.is_closed());
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        !self.inner.receiver_alive.load(Ordering::Acquire)
    }

    /// The capacity, `N`.
    ///
    /// ```
    /// let (tx, _rx) = evloop_core::channel::channel::<(), 16>().unwrap();
    /// assert_eq!(tx.capacity(), 16);
    /// ```
    pub const fn capacity(&self) -> usize {
        N
    }
}

impl<T, const N: usize> Clone for Sender<T, N> {
    fn clone(&self) -> Self {
        self.inner.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            inner: self.inner.clone(),
        }
    }
}

impl<T, const N: usize> Drop for Sender<T, N> {
    fn drop(&mut self) {
        if self.inner.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last sender: wake the receiver so it can see `is_disconnected`.
            self.inner.notified.store(true, Ordering::SeqCst);
            let _ = self.inner.waker.wake();
        }
    }
}

impl<T, const N: usize> fmt::Debug for Sender<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &N)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The receiving end, a source: it is [`AsFd`] (its wake fd, readable while messages
/// wait), so a loop watches it with `ctx.add_io(&rx, token, Watch::read())`, or, in a
/// `#[event_machine]` struct, as a field `inbox: Receiver<Job, 256>` with a handler
/// `#[on_read(inbox)] fn job(&mut self, ctx: &mut Ctx<Self>)` that drains it with
/// `while let Some(job) = self.inbox.try_recv() { ... }`.
///
/// ```
/// use evloop_core::channel::{channel, Receiver};
/// use evloop_core::*;
///
/// struct Sum { inbox: Receiver<u64, 64>, total: u64 }
/// const INBOX: Token = Token(1);
/// impl Machine for Sum {
///     type Backend = DefaultBackend;
///     fn setup(&mut self, ctx: &mut Ctx<Self>) -> Result<()> {
///         ctx.add_io(&self.inbox, INBOX, Watch::read())?;
///         Ok(())
///     }
///     fn dispatch(&mut self, ctx: &mut Ctx<Self>, _: Event) {
///         while let Some(n) = self.inbox.try_recv() {
///             self.total += n;
///         }
///         if self.inbox.is_disconnected() {
///             ctx.exit(); // every sender is gone
///         }
///     }
/// }
/// let (tx, inbox) = channel::<u64, 64>().unwrap();
/// let producer = std::thread::spawn(move || {
///     for n in 1..=1000 {
///         let mut m = n;
///         while let Err(e) = tx.try_send(m) { m = e.into_inner(); std::thread::yield_now(); }
///     }
/// });
/// let mut el = EventLoop::new(Sum { inbox, total: 0 }).unwrap();
/// el.run().unwrap();
/// producer.join().unwrap();
/// assert_eq!(el.machine().total, 500_500);
/// ```
pub struct Receiver<T, const N: usize> {
    inner: Arc<Inner<T, N>>,
}

impl<T, const N: usize> Receiver<T, N> {
    /// A receiver with no sender yet: make them with [`sender`](Self::sender). Handy for
    /// a machine's field, built before the threads that will send to it.
    ///
    /// ```
    /// let rx = evloop_core::channel::Receiver::<u8, 4>::new().unwrap();
    /// let tx = rx.sender();
    /// # drop(tx);
    /// ```
    pub fn new() -> Result<Self> {
        Ok(Receiver {
            inner: Inner::new()?,
        })
    }

    /// A new sender for this channel.
    ///
    /// ```
    /// let mut rx = evloop_core::channel::Receiver::<u8, 4>::new().unwrap();
    /// rx.sender().try_send(9).unwrap();
    /// assert_eq!(rx.try_recv(), Some(9));
    /// ```
    pub fn sender(&self) -> Sender<T, N> {
        self.inner.senders.fetch_add(1, Ordering::Relaxed);
        Sender {
            inner: self.inner.clone(),
        }
    }

    /// Take the oldest message, or `None` if there is none now. Never blocks. Messages
    /// from one sender arrive in the order it sent them. Call it until it returns `None`
    /// in the handler: that also re-arms the wake fd.
    ///
    /// ```
    /// let (tx, mut rx) = evloop_core::channel::channel::<&str, 4>().unwrap();
    /// tx.try_send("a").unwrap();
    /// tx.try_send("b").unwrap();
    /// assert_eq!(rx.try_recv(), Some("a"));
    /// assert_eq!(rx.try_recv(), Some("b"));
    /// assert_eq!(rx.try_recv(), None);
    /// ```
    #[inline]
    pub fn try_recv(&mut self) -> Option<T> {
        if let Some(v) = self.inner.pop() {
            return Some(v);
        }
        self.empty()
    }

    /// The queue looked empty: clear the wake, then look again (module docs).
    #[cold]
    fn empty(&mut self) -> Option<T> {
        let inner = &*self.inner;
        loop {
            inner.notified.store(false, Ordering::SeqCst);
            inner.waker.drain();
            if inner.tail.0.load(Ordering::SeqCst) != inner.head.0.load(Ordering::Relaxed) {
                break;
            }
            if !inner.notified.load(Ordering::SeqCst) {
                return None; // truly empty, and the next send will write the fd
            }
            // A sender whose message we already took notified late, after we cleared
            // the flag: its write may be the one we just drained, leaving the flag set
            // with no wake behind it. Clear and look again (once per late notify).
        }
        // A sender raced us (claimed a slot, maybe not yet published): keep the fd
        // readable so the loop comes back for it.
        inner.notified.store(true, Ordering::SeqCst);
        let _ = inner.waker.wake();
        inner.pop()
    }

    /// How many messages wait (claimed slots included, so a message being written counts).
    ///
    /// ```
    /// let (tx, rx) = evloop_core::channel::channel::<(), 4>().unwrap();
    /// tx.try_send(()).unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        let tail = self.inner.tail.0.load(Ordering::SeqCst);
        tail.wrapping_sub(self.inner.head.0.load(Ordering::Relaxed))
    }

    /// Whether no message waits.
    ///
    /// ```
    /// let (_tx, rx) = evloop_core::channel::channel::<(), 4>().unwrap();
    /// assert!(rx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity, `N`.
    ///
    /// ```
    /// let rx = evloop_core::channel::Receiver::<(), 32>::new().unwrap();
    /// assert_eq!(rx.capacity(), 32);
    /// ```
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Whether every sender has been dropped (the receiver's loop is woken when the last
    /// one goes). Messages sent before may still wait: drain them first.
    ///
    /// ```
    /// let (tx, rx) = evloop_core::channel::channel::<(), 4>().unwrap();
    /// assert!(!rx.is_disconnected());
    /// drop(tx);
    /// assert!(rx.is_disconnected());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        self.inner.senders.load(Ordering::Acquire) == 0
    }
}

impl<T, const N: usize> Drop for Receiver<T, N> {
    fn drop(&mut self) {
        self.inner.receiver_alive.store(false, Ordering::Release);
    }
}

// The wake fd (socket, on Windows): readable while messages wait, or after the last
// sender left.
crate::impl_as_source!([T, const N: usize] Receiver<T, N> => inner.waker);

impl<T, const N: usize> fmt::Debug for Receiver<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &N)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    fn readable(rx: &Receiver<impl Sized, 8>) -> bool {
        use std::os::fd::{AsFd, AsRawFd};
        let mut p = libc::pollfd {
            fd: rx.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn full_returns_the_message_and_frees_on_receive() {
        let (tx, mut rx) = channel::<u32, 8>().unwrap();
        for i in 0..8 {
            tx.try_send(i).unwrap();
        }
        assert_eq!(tx.try_send(8), Err(SendError::Full(8)));
        assert_eq!(rx.try_recv(), Some(0));
        tx.try_send(8).unwrap();
        let got: Vec<u32> = std::iter::from_fn(|| rx.try_recv()).collect();
        assert_eq!(got, (1..=8).collect::<Vec<_>>());
    }

    #[test]
    fn capacity_one_holds_one() {
        let (tx, mut rx) = channel::<u32, 1>().unwrap();
        for i in 0..5 {
            tx.try_send(i).unwrap();
            assert_eq!(tx.try_send(99), Err(SendError::Full(99)));
            assert_eq!(rx.try_recv(), Some(i));
            assert_eq!(rx.try_recv(), None);
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "calls poll(2), which Miri does not emulate")]
    fn fd_is_readable_exactly_while_messages_wait() {
        let (tx, mut rx) = channel::<u32, 8>().unwrap();
        assert!(!readable(&rx));
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert!(readable(&rx));
        assert_eq!(rx.try_recv(), Some(1));
        assert!(readable(&rx), "a partial drain leaves the fd readable");
        assert_eq!(rx.try_recv(), Some(2));
        assert_eq!(rx.try_recv(), None);
        assert!(!readable(&rx), "a full drain re-arms");
        tx.try_send(3).unwrap();
        assert!(readable(&rx));
    }

    #[test]
    fn dropping_drops_undelivered_messages() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct D;
        impl Drop for D {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::SeqCst);
            }
        }
        let (tx, mut rx) = channel::<D, 4>().unwrap();
        for _ in 0..3 {
            assert!(tx.try_send(D).is_ok());
        }
        drop(rx.try_recv());
        assert_eq!(DROPS.load(Ordering::SeqCst), 1);
        drop(rx);
        assert!(matches!(tx.try_send(D), Err(SendError::Closed(_))));
        assert_eq!(DROPS.load(Ordering::SeqCst), 2); // the refused one
        drop(tx);
        assert_eq!(DROPS.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn many_producers_wrap_many_laps_in_order_per_producer() {
        const P: usize = 4;
        const PER: u64 = if cfg!(miri) { 300 } else { 50_000 };
        let (tx, mut rx) = channel::<(usize, u64), 8>().unwrap();
        let threads: Vec<_> = (0..P)
            .map(|p| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..PER {
                        let mut m = (p, i);
                        while let Err(e) = tx.try_send(m) {
                            m = e.into_inner();
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let mut next = [0u64; P];
        let deadline = Instant::now() + Duration::from_secs(30);
        while next.iter().any(|&n| n < PER) {
            assert!(Instant::now() < deadline, "stalled at {next:?}");
            match rx.try_recv() {
                Some((p, i)) => {
                    assert_eq!(i, next[p]);
                    next[p] += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(rx.try_recv(), None);
        assert!(rx.is_disconnected());
    }
}

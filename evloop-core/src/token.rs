//! Tokens (the machine's names for its sources) and source ids (the loop's handles).

/// The machine's own name for a source, handed back with every event so `dispatch` can
/// `match` on it. Any `u64` works; [`Token::tagged`] packs a 16-bit tag (which field or
/// collection) and a 48-bit payload (a [`Key`](crate::Key)), which is what
/// [`Slab`](crate::Slab) and generated code use.
///
/// ```
/// use evloop_core::Token;
/// const LISTENER: Token = Token(0);
/// let t = Token::tagged(3, 42);
/// assert_eq!((t.tag(), t.payload()), (3, 42));
/// assert_ne!(t, LISTENER);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct Token(pub u64);

impl Token {
    /// A token made of a tag (top 16 bits) and a payload (low 48 bits; higher bits are
    /// dropped).
    ///
    /// ```
    /// assert_eq!(evloop_core::Token::tagged(1, 5).0, (1 << 48) | 5);
    /// ```
    pub const fn tagged(tag: u16, payload: u64) -> Token {
        Token(((tag as u64) << 48) | (payload & PAYLOAD_MASK))
    }
    /// The top 16 bits.
    ///
    /// ```
    /// assert_eq!(evloop_core::Token::tagged(9, 1).tag(), 9);
    /// ```
    pub const fn tag(self) -> u16 {
        (self.0 >> 48) as u16
    }
    /// The low 48 bits.
    ///
    /// ```
    /// assert_eq!(evloop_core::Token::tagged(9, 1).payload(), 1);
    /// ```
    pub const fn payload(self) -> u64 {
        self.0 & PAYLOAD_MASK
    }
}

const PAYLOAD_MASK: u64 = (1 << 48) - 1;

/// The loop's handle to a registered source: a slot index and the slot's generation, so
/// a handle kept after its source was removed is recognised as stale instead of naming
/// whatever source reuses the slot.
///
/// ```
/// use evloop_core::{Ctx, Error, Machine, Token, EventLoop, Event, DefaultBackend};
/// struct M;
/// impl Machine for M {
///     type Backend = DefaultBackend;
///     fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {}
/// }
/// let mut el = EventLoop::new(M).unwrap();
/// let id = el.ctx().add_user(Token(1)).unwrap();
/// el.ctx().remove(id).unwrap();
/// assert!(matches!(el.ctx().remove(id), Err(Error::StaleSource)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SourceId {
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

impl SourceId {
    /// The slot index (for display and debugging).
    ///
    /// ```
    /// # use evloop_core::*;
    /// # struct M; impl Machine for M { type Backend = DefaultBackend; fn dispatch(&mut self, _: &mut Ctx<Self>, _: Event) {} }
    /// let mut el = EventLoop::new(M).unwrap();
    /// let id = el.ctx().add_user(Token(1)).unwrap();
    /// println!("source #{}", id.index());
    /// ```
    pub const fn index(self) -> u32 {
        self.index
    }

    /// Pack into 64 bits (for a backend token).
    pub(crate) const fn to_u64(self) -> u64 {
        ((self.gen as u64) << 32) | self.index as u64
    }

    pub(crate) const fn from_u64(v: u64) -> SourceId {
        SourceId {
            index: v as u32,
            gen: (v >> 32) as u32,
        }
    }
}

//! What `#[event_machine]`'s generated code refers to, through the one path
//! `::evloop::__private`. Not a public API: names here may change at any time.
//!
//! | item | used for |
//! |---|---|
//! | `MachineStruct` | written by the struct's attribute: backend and capacities |
//! | `Handlers` | written by the impl's attribute: setup, dispatch and hooks, which the struct side's `impl Machine` forwards to |
//! | `HandlerInMachine` | what a handler attribute outside an annotated impl block checks |
//! | `shape` | which kind of source a field is (`Src<Kind>` of a `Source`, or not a source), found by method resolution |
//! | `check` | the traits whose `#[diagnostic::on_unimplemented]` messages report a field used wrongly |
//! | `nudge` | the warning on `#[on_read]` of a plain `TcpListener`/`UnixListener` (a `#[deprecated]` method picked by the field's type), and `raw_accept`'s check |
//! | `TIMER_TAG`, `SIGNAL_TAG`, `WAKE_TAG` | the token tags generated code reserves |
//! | `signals`, `signal_number` | `#[on_signal(NAME)]`'s number on the target, or a compile error on the name where the target has no such signal |
//! | `sigrtmin_plus`, `sigrtmax_minus` | `#[on_signal(SIGRTMIN + n)]`'s number, resolved on the target |
//!
//! The checks are trait-method calls (`<_ as check::WatchRead<_>>::check(&self.field, shape)`):
//! an unimplemented trait on such a call is reported on the user's token with the trait's
//! message and no note pointing in here.

pub use evloop_backends;
pub use evloop_core;
pub use libc;

use evloop_core::{Backend, Builder, Ctx, Event, Machine, Ready};

/// `#[on_signal(NAME)]`'s number on the target, through [`signal_number`]: on Unix the
/// libc constant, on Windows the console event's number. A name the target does not
/// have is a value of [`NotOnThisTarget`], which [`signal_number`] refuses at compile
/// time, on the signal's token, with the list of what the target has.
pub mod signals {
    #[cfg(unix)]
    pub use libc::{
        SIGABRT, SIGALRM, SIGCHLD, SIGCONT, SIGHUP, SIGINT, SIGIO, SIGPIPE, SIGPROF, SIGQUIT,
        SIGSYS, SIGTERM, SIGTRAP, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGUSR1, SIGUSR2, SIGVTALRM,
        SIGWINCH, SIGXCPU, SIGXFSZ,
    };
    /// Ctrl-Break: a Windows console event.
    #[cfg(unix)]
    pub const SIGBREAK: super::NotOnThisTarget = super::NotOnThisTarget;

    /// A Windows console event as a signal (see `evloop_core`'s `SIGNALS`).
    #[cfg(windows)]
    pub const SIGHUP: i32 = 1;
    /// A Windows console event as a signal (see `evloop_core`'s `SIGNALS`).
    #[cfg(windows)]
    pub const SIGINT: i32 = 2;
    /// A Windows console event as a signal (see `evloop_core`'s `SIGNALS`).
    #[cfg(windows)]
    pub const SIGTERM: i32 = 15;
    /// A Windows console event as a signal (see `evloop_core`'s `SIGNALS`).
    #[cfg(windows)]
    pub const SIGBREAK: i32 = 21;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGQUIT: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGTRAP: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGABRT: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGUSR1: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGUSR2: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGPIPE: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGALRM: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGCHLD: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGCONT: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGTSTP: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGTTIN: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGTTOU: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGURG: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGXCPU: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGXFSZ: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGVTALRM: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGPROF: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGWINCH: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGIO: super::NotOnThisTarget = super::NotOnThisTarget;
    /// Not a signal on Windows.
    #[cfg(windows)]
    pub const SIGSYS: super::NotOnThisTarget = super::NotOnThisTarget;
}

/// A signal name the target does not have (see [`signals`]).
#[derive(Clone, Copy, Debug)]
pub struct NotOnThisTarget;

/// What [`signal_number`] accepts: a signal number the target has.
#[cfg_attr(
    windows,
    diagnostic::on_unimplemented(
        message = "this signal does not exist on Windows",
        label = "not a Windows signal",
        note = "on Windows a loop can watch the console's events: `SIGINT` (Ctrl-C), `SIGBREAK` (Ctrl-Break), `SIGHUP` (the console closing) and `SIGTERM` (logoff, shutdown); put other handlers under `#[cfg(unix)]`"
    )
)]
#[cfg_attr(
    unix,
    diagnostic::on_unimplemented(
        message = "`SIGBREAK` exists only on Windows (Ctrl-Break)",
        label = "not a signal on this system",
        note = "on Unix, `SIGQUIT` is what a terminal's Ctrl-\\ sends; put the handler under `#[cfg(windows)]`"
    )
)]
pub trait SignalOnTarget {
    /// The number.
    fn number(self) -> i32;
}

#[diagnostic::do_not_recommend]
impl SignalOnTarget for i32 {
    #[inline]
    fn number(self) -> i32 {
        self
    }
}

/// The number of a signal named in `#[on_signal]` (a compile error if the target has no
/// such signal).
///
/// ```
/// # #[cfg(unix)]
/// assert_eq!(evloop::__private::signal_number(evloop::__private::signals::SIGINT), libc::SIGINT);
/// ```
#[inline]
pub fn signal_number<S: SignalOnTarget>(s: S) -> i32 {
    s.number()
}

/// Token tag of the machine's timers; the payload is the timer's index.
pub const TIMER_TAG: u16 = 0xFFF0;
/// Token tag of the machine's signals; the payload is the signal's index.
pub const SIGNAL_TAG: u16 = 0xFFF1;
/// Token tag of the machine's wake source.
pub const WAKE_TAG: u16 = 0xFFF2;

/// `SIGRTMIN + offset` as the target numbers it, for `#[on_signal(SIGRTMIN + n)]`. The
/// macro runs on the build host, so it emits a call to this instead of deciding; on a
/// system without real-time signals (macOS, the BSDs) the machine's setup fails with
/// `ErrorKind::Unsupported`, naming the signal. Out of range (`SIGRTMIN + n` beyond
/// `SIGRTMAX`), `add_signal` refuses the number as usual.
///
/// ```
/// let s = evloop::__private::sigrtmin_plus(1);
/// match evloop::__private::evloop_core::realtime_signals() {
///     Some((min, _)) => assert_eq!(s.unwrap(), min + 1),
///     None => assert!(s.is_err()),
/// }
/// ```
pub fn sigrtmin_plus(offset: i32) -> evloop_core::Result<i32> {
    match evloop_core::realtime_signals() {
        Some((min, _)) => Ok(min + offset),
        None => Err(no_realtime_signals("SIGRTMIN", '+', offset)),
    }
}

/// `SIGRTMAX - offset` as the target numbers it, for `#[on_signal(SIGRTMAX - n)]` (see
/// [`sigrtmin_plus`]).
///
/// ```
/// let s = evloop::__private::sigrtmax_minus(0);
/// match evloop::__private::evloop_core::realtime_signals() {
///     Some((_, max)) => assert_eq!(s.unwrap(), max),
///     None => assert!(s.is_err()),
/// }
/// ```
pub fn sigrtmax_minus(offset: i32) -> evloop_core::Result<i32> {
    match evloop_core::realtime_signals() {
        Some((_, max)) => Ok(max - offset),
        None => Err(no_realtime_signals("SIGRTMAX", '-', offset)),
    }
}

#[cold]
fn no_realtime_signals(base: &str, op: char, offset: i32) -> evloop_core::Error {
    let name = if offset == 0 {
        base.to_string()
    } else {
        format!("{base} {op} {offset}")
    };
    evloop_core::Error::Io(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        format!("#[on_signal({name})]: this system has no real-time signals"),
    ))
}

/// What an `#[on_read]` handler is called for: readable, closed by the peer, hung up, in
/// error, priority data.
pub const READ_READY: Ready = Ready::from_bits(
    Ready::READABLE.bits()
        | Ready::READ_CLOSED.bits()
        | Ready::HUP.bits()
        | Ready::ERROR.bits()
        | Ready::PRIORITY.bits(),
);
/// What an `#[on_write]` handler is called for when its field has an `#[on_read]` too.
pub const WRITE_READY: Ready = Ready::WRITABLE;
/// What an `#[on_write]` handler is called for when it is its field's only I/O handler:
/// hang-ups and errors too, so they are not lost.
pub const WRITE_READY_ALONE: Ready =
    Ready::from_bits(Ready::WRITABLE.bits() | Ready::HUP.bits() | Ready::ERROR.bits());

/// `backend = T` on the struct: `T` must be a [`Backend`]. Checked through this trait so
/// that a wrong type is one error, with this message, on the user's token.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an evloop backend",
    label = "expected `DefaultBackend`, `Epoll`, `Poll`, `Select`, or another type implementing `Backend`",
    note = "`backend = ...` on `#[event_machine(...)]` names the OS mechanism the loop waits with; leave it out for the platform's default"
)]
pub trait BackendOption {
    /// The backend itself.
    type Backend: Backend;
}
impl<B: Backend> BackendOption for B {
    type Backend = B;
}

/// The struct half of a machine: what `#[event_machine(...)]` on the struct declares.
/// The impl half names the backend and the capacities through it, so a machine whose
/// struct is not annotated gets this trait's message, once.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not annotated with `#[event_machine]`: add it to `struct {Self}`",
    label = "this type's struct declaration has no `#[event_machine]`",
    note = "a machine is annotated twice: `#[event_machine]` on the struct (its options: backend, capacities) and on the impl block that holds its handlers"
)]
pub trait MachineStruct: Machine {
    /// The backend (`backend = ...`; default [`DefaultBackend`](crate::DefaultBackend)).
    /// Not bounded here: a wrong type is reported once, by [`BackendOption`].
    type Backend;
    /// Most sources registered at once (`sources = N`); `None`: sized from the fields
    /// when the loop is built (see [`builder`](Self::builder)).
    const SOURCES: Option<usize> = None;
    /// Most timers armed at once, idle timeouts included (`timers = N`); `None`: as many
    /// as sources.
    const TIMERS: Option<usize> = None;
    /// Kernel events fetched per wait (`events = N`).
    const EVENTS: usize = Builder::DEFAULT_EVENTS;
    /// Priority levels (`priorities = N`).
    const PRIORITIES: u8 = Builder::DEFAULT_PRIORITIES;
    /// Room for activations from other threads (`activations = N`).
    const ACTIVATIONS: usize = Builder::DEFAULT_ACTIVATIONS;

    /// The sum of [`Source::capacity`](crate::Source::capacity) over the struct's
    /// fields that are sources, as they are now (a `Slab` made with
    /// `with_capacity(config.max_conns)` counts `max_conns`). Written by the struct's
    /// attribute.
    #[inline]
    fn source_capacity(&self) -> usize {
        0
    }

    /// A [`Builder`] with the struct's capacities; without `sources = N`, room for
    /// [`Builder::DEFAULT_SOURCES`] plus every field's capacity.
    #[inline]
    fn builder(&self) -> Builder {
        let sources = match Self::SOURCES {
            Some(n) => n,
            None => Builder::DEFAULT_SOURCES.saturating_add(self.source_capacity()),
        };
        Builder::new()
            .sources(sources)
            .timers(Self::TIMERS.unwrap_or(sources))
            .events(Self::EVENTS)
            .priorities(Self::PRIORITIES)
            .activations(Self::ACTIVATIONS)
    }
}

/// The impl half of a machine: implemented by `#[event_machine]` on the impl block, with
/// the registrations, the `match` on tokens and the hooks. The struct's attribute writes
/// `impl Machine`, whose methods forward here (`#[inline(always)]`: the forwarding leaves
/// no code). So a machine whose impl block is not annotated is still a `Machine` (its
/// handlers' `Ctx<Self>` type-checks) and is reported once, by this trait's message, at
/// the struct.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has `#[event_machine]` on its struct but no `#[event_machine]` impl block",
    label = "no `#[event_machine] impl` for this machine",
    note = "add `#[event_machine]` to the `impl` block that holds the handlers (a machine without handlers still needs one, empty)"
)]
pub trait Handlers: Machine {
    /// [`Machine::setup`]: the registrations, then `#[on_start]`.
    fn __evloop_setup(&mut self, ctx: &mut Ctx<Self>) -> evloop_core::Result<()>;
    /// [`Machine::dispatch`]: the `match` on the token's tag.
    fn __evloop_dispatch(&mut self, ctx: &mut Ctx<Self>, ev: Event);
    /// [`Machine::before_wait`]: the `#[before_wait]` handlers.
    #[inline(always)]
    fn __evloop_before_wait(&mut self, ctx: &mut Ctx<Self>) {
        let _ = ctx;
    }
    /// [`Machine::after_wait`]: the `#[after_wait]` handlers.
    #[inline(always)]
    fn __evloop_after_wait(&mut self, ctx: &mut Ctx<Self>) {
        let _ = ctx;
    }
    /// [`Machine::idle`]: the `#[on_idle]` handlers.
    #[inline(always)]
    fn __evloop_idle(&mut self, ctx: &mut Ctx<Self>) {
        let _ = ctx;
    }
}

/// A handler attribute (`#[on_read]`, ...) on a method outside an `#[event_machine]` impl
/// block: fine while the struct is annotated (the missing impl attribute is reported
/// once, by [`Handlers`]), an error otherwise.
#[diagnostic::on_unimplemented(
    message = "handler attributes (`#[on_read]`, `#[on_timer]`, ...) only work inside an `#[event_machine]` impl block",
    label = "this method's `impl` block has no `#[event_machine]`",
    note = "add `#[event_machine]` to the `impl` that holds this method, and to `struct {Self}`"
)]
pub trait HandlerInMachine {
    /// Compiles only if the check passes; does nothing.
    #[inline(always)]
    fn __evloop_handler_in_machine() {}
}
impl<T: MachineStruct> HandlerInMachine for T {}

/// What kind of source a field is, decided by method resolution on the field's concrete
/// type (autoref specialisation): `(&&Probe(&self.field)).__evloop_shape()` gives
/// [`Src<K>`](shape::Src) for a [`Source`](crate::Source) whose
/// [`Kind`](crate::Source::Kind) is `K`, and [`NotSource`](shape::NotSource) for anything
/// else. Nothing here looks at a type's name: a user's own `Source` gets the same shape
/// and checks as `Slab`. `NotSource` does nothing, so a field that is not a source is
/// reported once, by `check`, and never again by the code that registers or dispatches it.
pub mod shape {
    use std::marker::PhantomData;

    use evloop_core::{Ctx, Key, Machine, Ready, Result, Source, Token, Watch};

    /// Wraps a reference to a field for probing.
    pub struct Probe<'a, T: ?Sized>(pub &'a T);

    /// A [`Source`] of kind `K` ([`kind::Single`](evloop_core::kind::Single) or
    /// [`kind::Collection`](evloop_core::kind::Collection)).
    pub struct Src<K>(PhantomData<K>);
    impl<K> Clone for Src<K> {
        #[inline(always)]
        fn clone(&self) -> Self {
            *self
        }
    }
    impl<K> Copy for Src<K> {}

    /// Not a source: reported by the checks, ignored by registration and dispatch.
    #[derive(Clone, Copy, Debug)]
    pub struct NotSource;

    /// Probe level 1: a [`Source`].
    pub trait ProbeSource {
        /// The field's shape.
        type Shape;
        /// The field's shape.
        fn __evloop_shape(&self) -> Self::Shape;
    }
    impl<T: Source + ?Sized> ProbeSource for &Probe<'_, T> {
        type Shape = Src<T::Kind>;
        #[inline(always)]
        fn __evloop_shape(&self) -> Src<T::Kind> {
            Src(PhantomData)
        }
    }

    /// Probe level 2: anything.
    pub trait ProbeOther {
        /// The field's shape.
        #[inline(always)]
        fn __evloop_shape(&self) -> NotSource {
            NotSource
        }
    }
    impl<T: ?Sized> ProbeOther for Probe<'_, T> {}

    impl<K> Src<K> {
        /// [`Source::attach`].
        #[inline(always)]
        pub fn attach<F: Source + ?Sized, M: Machine>(
            self,
            field: &mut F,
            ctx: &mut Ctx<M>,
            tag: u16,
            watch: Watch,
        ) -> Result<()> {
            field.attach(ctx, tag, watch)
        }
        /// [`Source::entry`].
        #[inline(always)]
        pub fn entry<F: Source + ?Sized>(self, field: &F, token: Token) -> Option<Key> {
            field.entry(token)
        }
        /// [`Source::capacity`].
        #[inline(always)]
        pub fn capacity<F: Source + ?Sized>(self, field: &F) -> usize {
            field.capacity()
        }
        /// [`Source::before_dispatch`]: a source that does its own I/O (a
        /// [`BufSlab`](evloop_core::buffered::BufSlab), a
        /// [`Listener`](evloop_core::Listener)) does it here; for the others it is the
        /// trait's inlined default, which returns `ready` and costs nothing.
        #[inline(always)]
        pub fn before_dispatch<F: Source + ?Sized, M: Machine>(
            self,
            field: &mut F,
            ctx: &mut Ctx<M>,
            key: Key,
            ready: Ready,
        ) -> Ready {
            field.before_dispatch(ctx, key, ready)
        }
        /// [`Source::after_dispatch`].
        #[inline(always)]
        pub fn after_dispatch<F: Source + ?Sized, M: Machine>(
            self,
            field: &mut F,
            ctx: &mut Ctx<M>,
            key: Key,
        ) {
            field.after_dispatch(ctx, key)
        }
    }

    impl NotSource {
        /// Nothing to attach (the field was reported by the checks).
        #[inline(always)]
        pub fn attach<F: ?Sized, M: Machine>(
            self,
            _field: &mut F,
            _ctx: &mut Ctx<M>,
            _tag: u16,
            _watch: Watch,
        ) -> Result<()> {
            Ok(())
        }
        /// Never an entry.
        #[inline(always)]
        pub fn entry<F: ?Sized>(self, _field: &F, _token: Token) -> Option<Key> {
            None
        }
        /// Registers nothing.
        #[inline(always)]
        pub fn capacity<F: ?Sized>(self, _field: &F) -> usize {
            0
        }
        /// Never called with an entry (see [`entry`](Self::entry)).
        #[inline(always)]
        pub fn before_dispatch<F: ?Sized, M: Machine>(
            self,
            _field: &mut F,
            _ctx: &mut Ctx<M>,
            _key: Key,
            ready: Ready,
        ) -> Ready {
            ready
        }
        /// Never called with an entry.
        #[inline(always)]
        pub fn after_dispatch<F: ?Sized, M: Machine>(
            self,
            _field: &mut F,
            _ctx: &mut Ctx<M>,
            _key: Key,
        ) {
        }
    }
}

/// The field checks. Each trait is implemented for the shapes that pass it, so exactly
/// one check fails for a field used wrongly, and its message names the field's type.
/// Whether a field is a collection comes from its [`Source::Kind`](crate::Source::Kind),
/// never from its type's name. `Unresolved` impls keep a field that does not exist
/// (already reported by rustc as E0609, with the list of fields) from failing a check too.
pub mod check {
    use super::shape::{NotSource, Src};
    use evloop_core::kind::{Collection, Single};

    /// Implemented by nothing: lets the checks accept a type that is still unknown
    /// because the field does not exist.
    pub trait Unresolved {}

    macro_rules! watchable {
        ($($name:ident, $attr:literal, $message:tt;)*) => {$(
            #[doc = concat!("The field can be watched by `#[", $attr, "]`.")]
            #[diagnostic::on_unimplemented(
                message = $message,
                label = "not a source",
                note = "a watched field is a single source (a type that implements `AsFd`: `TcpListener`, `TcpStream`, `UdpSocket`, `UnixListener`, `UnixStream`, `File`, `OwnedFd`, ...; or `Listener`), a collection of them (`Slab<T>`, `BufSlab<S>`), or another type that implements `evloop::Source`"
            )]
            pub trait $name<F: ?Sized> {
                /// Compiles only if the check passes; does nothing.
                #[inline(always)]
                fn check(_field: &F, _shape: Self)
                where
                    Self: Sized,
                {
                }
            }
            #[diagnostic::do_not_recommend]
            impl<F: ?Sized, K> $name<F> for Src<K> {}
        )*};
    }
    watchable! {
        WatchRead, "on_read", "`{F}` cannot be watched by `#[on_read]`";
        WatchWrite, "on_write", "`{F}` cannot be watched by `#[on_write]`";
        WatchTimeout, "on_timeout", "`{F}` cannot be watched by `#[on_timeout]`";
    }

    /// A handler without a key parameter: the field must not be a collection.
    #[diagnostic::on_unimplemented(
        message = "`{F}` is a collection: its handler takes the entry's key: `fn h(&mut self, key: Key, ctx: &mut Ctx<Self>)`",
        label = "this handler takes no `key: Key` parameter",
        note = "a collection's events name the entry that fired (its `Source::Kind` is `kind::Collection`); add `key: Key` before `ctx`"
    )]
    pub trait NoKey<F: ?Sized> {
        /// Compiles only if the check passes; does nothing.
        #[inline(always)]
        fn check(_field: &F, _shape: Self)
        where
            Self: Sized,
        {
        }
    }
    #[diagnostic::do_not_recommend]
    impl<F: ?Sized> NoKey<F> for Src<Single> {}
    #[diagnostic::do_not_recommend]
    impl<F: ?Sized> NoKey<F> for NotSource {}
    #[diagnostic::do_not_recommend]
    impl<F: ?Sized + Unresolved> NoKey<F> for Src<Collection> {}

    /// A handler with a key parameter: the field must not be a single source.
    #[diagnostic::on_unimplemented(
        message = "`{F}` is a single source: its handler takes no key: `fn h(&mut self, ctx: &mut Ctx<Self>)`",
        label = "remove this handler's `key: Key` parameter",
        note = "keys name the entries of a collection (`Slab<T>`, `BufSlab<S>`: a `Source` whose `Kind` is `kind::Collection`); a single source has none"
    )]
    pub trait WithKey<F: ?Sized> {
        /// Compiles only if the check passes; does nothing.
        #[inline(always)]
        fn check(_field: &F, _shape: Self)
        where
            Self: Sized,
        {
        }
    }
    #[diagnostic::do_not_recommend]
    impl<F: ?Sized> WithKey<F> for Src<Collection> {}
    #[diagnostic::do_not_recommend]
    impl<F: ?Sized> WithKey<F> for NotSource {}
    #[diagnostic::do_not_recommend]
    impl<F: ?Sized + Unresolved> WithKey<F> for Src<Single> {}

    /// `#[on_write]` is the field's only I/O handler: fine for a single fd (a pipe's
    /// write end), a mistake for a collection of connections, which then never reads
    /// its peers' data or EOF. `#[on_write(field, write_only)]` says it is intended and
    /// skips this check.
    #[diagnostic::on_unimplemented(
        message = "`{F}` is a collection watched only by `#[on_write]`: nothing reads its connections, so their data and EOF go unnoticed",
        label = "this field has no `#[on_read]` handler",
        note = "add an `#[on_read(field)]` handler, or say that writing only is intended: `#[on_write(field, write_only)]`"
    )]
    pub trait WriteAlone<F: ?Sized> {
        /// Compiles only if the check passes; does nothing.
        #[inline(always)]
        fn check(_field: &F, _shape: Self)
        where
            Self: Sized,
        {
        }
    }
    #[diagnostic::do_not_recommend]
    impl<F: ?Sized> WriteAlone<F> for Src<Single> {}
    #[diagnostic::do_not_recommend]
    impl<F: ?Sized> WriteAlone<F> for NotSource {}
    #[diagnostic::do_not_recommend]
    impl<F: ?Sized + Unresolved> WriteAlone<F> for Src<Collection> {}
}

/// The nudge towards [`Listener`](evloop_core::Listener): `#[on_read]` on a plain
/// `std::net::TcpListener` or `std::os::unix::net::UnixListener` compiles, with a
/// warning on the field's name. Such a handler, written the usual way (`while let Ok(..)
/// = self.listener.accept()`), returns on `EMFILE`; the socket is still readable, the
/// loop level-triggered, so it is called again at once, forever: 100% CPU while the
/// process is out of descriptors.
///
/// Stable Rust has no custom warnings, so the generated `setup` calls a `#[deprecated]`
/// method, spanned on the field's name in the attribute, picked by method resolution on
/// the field's type as in [`shape`]: `(&&Probe(&self.field)).__evloop_accept_nudge()`
/// gives [`PlainTcpListener`] or [`PlainUnixListener`] for those two types, whose
/// `on_read` is deprecated, and [`NotPlain`] for any other type (a `Listener`, a
/// `Slab<TcpListener>`, a stream, a generic parameter), whose `on_read` is not.
/// `#[on_read(field, raw_accept)]` says the handler deals with `EMFILE` itself: the call
/// is not emitted, and [`RawAccept`] checks that the field is such a listener.
pub mod nudge {
    use super::shape::Probe;
    use std::net::TcpListener;
    #[cfg(unix)]
    use std::os::unix::net::UnixListener;

    /// A field of type `std::net::TcpListener`.
    #[derive(Clone, Copy, Debug)]
    pub struct PlainTcpListener;
    /// A field of type `std::os::unix::net::UnixListener`.
    #[derive(Clone, Copy, Debug)]
    pub struct PlainUnixListener;
    /// Any other field.
    #[derive(Clone, Copy, Debug)]
    pub struct NotPlain;

    /// Probe level 1: a plain listener.
    pub trait ProbePlain {
        /// [`PlainTcpListener`] or [`PlainUnixListener`].
        type Plain;
        /// What the field is.
        fn __evloop_accept_nudge(&self) -> Self::Plain;
    }
    impl ProbePlain for &Probe<'_, TcpListener> {
        type Plain = PlainTcpListener;
        #[inline(always)]
        fn __evloop_accept_nudge(&self) -> PlainTcpListener {
            PlainTcpListener
        }
    }
    /// Where there is no `UnixListener` (Windows), a type nothing has stands in for it,
    /// so `ProbePlain` keeps two impls: with a single impl, the compiler would take it
    /// as the answer for every field (inference from the only candidate) and nudge them
    /// all.
    #[cfg(not(unix))]
    pub struct UnixListener(());

    impl ProbePlain for &Probe<'_, UnixListener> {
        type Plain = PlainUnixListener;
        #[inline(always)]
        fn __evloop_accept_nudge(&self) -> PlainUnixListener {
            PlainUnixListener
        }
    }

    /// Probe level 2: anything else.
    pub trait ProbeNotPlain {
        /// What the field is.
        #[inline(always)]
        fn __evloop_accept_nudge(&self) -> NotPlain {
            NotPlain
        }
    }
    impl<T: ?Sized> ProbeNotPlain for Probe<'_, T> {}

    impl PlainTcpListener {
        /// The warning.
        #[deprecated(
            note = "a plain `TcpListener` watched by `#[on_read]` spins at 100% CPU when the process runs out of file descriptors (`accept` fails with EMFILE, the socket stays readable); use `evloop::Listener` (it accepts in batches and does not spin when descriptors run out), or handle EMFILE yourself and say so: `#[on_read(field, raw_accept)]`"
        )]
        #[inline(always)]
        pub fn on_read(self) {}
    }
    impl PlainUnixListener {
        /// The warning.
        #[deprecated(
            note = "a plain `UnixListener` watched by `#[on_read]` spins at 100% CPU when the process runs out of file descriptors (`accept` fails with EMFILE, the socket stays readable); use `evloop::Listener` (it accepts in batches and does not spin when descriptors run out), or handle EMFILE yourself and say so: `#[on_read(field, raw_accept)]`"
        )]
        #[inline(always)]
        pub fn on_read(self) {}
    }
    impl NotPlain {
        /// No warning.
        #[inline(always)]
        pub fn on_read(self) {}
    }

    /// `#[on_read(field, raw_accept)]`: the field must be a plain listener.
    #[diagnostic::on_unimplemented(
        message = "`raw_accept` is for a plain `TcpListener` or `UnixListener` field, and `{F}` is neither",
        label = "remove `raw_accept` from this `#[on_read]`",
        note = "`raw_accept` says that the handler of a plain listener deals with EMFILE itself, which silences the warning that suggests `evloop::Listener`; other fields get no such warning"
    )]
    pub trait RawAccept<F: ?Sized> {
        /// Compiles only if the check passes; does nothing.
        #[inline(always)]
        fn check(_field: &F, _plain: Self)
        where
            Self: Sized,
        {
        }
    }
    #[diagnostic::do_not_recommend]
    impl<F: ?Sized> RawAccept<F> for PlainTcpListener {}
    #[diagnostic::do_not_recommend]
    impl<F: ?Sized> RawAccept<F> for PlainUnixListener {}
}

//! Procedural macros for [evloop](https://docs.rs/evloop): `#[event_machine]` writes a
//! machine's `impl Machine` (registration, a `match` on tokens, direct calls to the
//! handlers) from an annotated struct and impl block. Use them through `evloop`
//! (`use evloop::prelude::*;`); the generated code refers to `::evloop::__private` only.
//!
//! The pipeline, one stage per file: `syntax/parse.rs` (attribute arguments, options,
//! handler attributes, also inside `cfg_attr`), `syntax/check.rs` (signatures),
//! `analyze.rs` (tags, each field's watch, duplicates and conflicts), then `codegen/`
//! (one file per concern: `machine.rs`, `setup.rs`, `fields.rs`, `timers.rs`,
//! `signals.rs`, `hooks.rs`, `assertions.rs`, `run.rs`, and `fallback.rs` for input with
//! errors). Every stage collects its errors; on any error the user's items are emitted
//! anyway, with a fallback `impl Machine`, so that one mistake gives one error.
//!
//! The macro never decides anything about the target: signal numbers are emitted as
//! `::evloop::__private::libc::SIGHUP`, the default backend is the alias
//! `::evloop::DefaultBackend` chosen by `#[cfg]` in the backends crate.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, ToTokens};

mod analyze;
mod codegen;
mod signals;
mod syntax;

/// Errors collected by every stage, reported together.
#[derive(Default)]
pub(crate) struct Errors(Vec<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        self.0.push(e);
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// One `compile_error!` per error.
    pub(crate) fn to_compile_errors(&self) -> TokenStream2 {
        let mut all: Option<syn::Error> = None;
        for e in &self.0 {
            match &mut all {
                Some(a) => a.combine(e.clone()),
                None => all = Some(e.clone()),
            }
        }
        all.map(|e| e.to_compile_error()).unwrap_or_default()
    }
}

#[doc = include_str!("../doc/event_machine.md")]
#[proc_macro_attribute]
pub fn event_machine(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = TokenStream2::from(args);
    let item = TokenStream2::from(item);
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Struct(s)) => codegen::expand_struct(args, s).into(),
        Ok(syn::Item::Impl(i)) => codegen::expand_impl(args, i).into(),
        Ok(other) => {
            let e = syn::Error::new(
                Span::call_site(),
                "`#[event_machine]` goes on a struct (the machine's state and options) and on its `impl` block (the handlers)",
            )
            .to_compile_error();
            let other = other.into_token_stream();
            quote!(#e #other).into()
        }
        Err(e) => {
            let e = e.to_compile_error();
            quote!(#e #item).into()
        }
    }
}

/// A handler attribute that expanded on its own: it is not inside an `#[event_machine]`
/// impl block (which would have read and removed it). On a method, the method is kept
/// with a check in its body: fine while its type's struct is annotated (the missing
/// impl attribute is then reported once, at the struct, by `Handlers`), an error with
/// `HandlerInMachine`'s message otherwise. Anywhere else (no `self`), an error here.
fn standalone(name: &str, item: TokenStream) -> TokenStream {
    let item = TokenStream2::from(item);
    if let Ok(mut f) = syn::parse2::<syn::ItemFn>(item.clone()) {
        if f.sig.receiver().is_some() {
            let span = Span::call_site();
            let check: syn::Stmt = syn::parse_quote_spanned! {span=>
                <Self as ::evloop::__private::HandlerInMachine>::__evloop_handler_in_machine();
            };
            f.block.stmts.insert(0, check);
            // The impl block that would call it is the missing piece, reported elsewhere.
            f.attrs.push(syn::parse_quote!(#[allow(dead_code)]));
            return f.into_token_stream().into();
        }
    }
    let msg = format!(
        "`#[{name}]` only works inside an `#[event_machine]` impl block: add `#[event_machine]` to the `impl` that holds this method (and to the machine's struct)"
    );
    let e = syn::Error::new(Span::call_site(), msg).to_compile_error();
    quote!(#e #item).into()
}

macro_rules! handler_attributes {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        ///
        /// Only meaningful on a method of an [`#[event_machine]`](macro@event_machine) impl
        /// block, which reads it; anywhere else it is an error.
        #[proc_macro_attribute]
        pub fn $name(_args: TokenStream, item: TokenStream) -> TokenStream {
            standalone(stringify!($name), item)
        }
    )*};
}

handler_attributes! {
    /// `#[on_read(field, [priority = N], [edge], [oneshot], [peer_closed], [raw_accept])]`:
    /// called when the field (an fd, or an entry of a `Slab` of fds) is readable, closed by
    /// the peer, hung up or in error.
    ///
    /// On a plain `std::net::TcpListener` or `UnixListener` it warns: an accept handler
    /// that returns on `EMFILE` is called again at once, forever, while the process is out
    /// of descriptors. Use `evloop::Listener`, which does not spin, or handle `EMFILE`
    /// yourself (stop watching the listener for a while) and say so with `raw_accept`.
    ///
    /// `fn name(&mut self, ctx: &mut Ctx<Self>)` for a single source,
    /// `fn name(&mut self, key: Key, ctx: &mut Ctx<Self>)` for a collection; either may end
    /// with `ev: Event`.
    on_read;
    /// `#[on_write(field, [priority = N], [edge], [oneshot], [write_only])]`: called when
    /// the field is writable (and on hang-up or error if the field has no `#[on_read]`; a
    /// collection without `#[on_read]` must say `write_only`). Level-triggered
    /// `WRITE` fires whenever the socket is writable: use `edge`, or turn the interest on
    /// and off with `ctx.set_interest`.
    on_write;
    /// `#[on_timeout(field, ms = N)]`: the field's idle timeout. Called when no I/O was
    /// dispatched on the source for `N` ms; every I/O dispatch restarts it.
    on_timeout;
    /// `#[on_timer(N)]` every `N` ms; `#[on_timer(N, once)]` once, `N` ms after start
    /// (re-arm it with `ctx.reset_timer(ev.source)`); `priority = P` allowed. `N` is an
    /// integer literal from 1 to 31_536_000_000 (one year).
    on_timer;
    /// `#[on_signal(SIGHUP)]`, `#[on_signal(SIGRTMIN + 1)]`, `#[on_signal(SIGRTMAX - 2)]`:
    /// called in loop context after the signal arrived (`ev.count` says how many times).
    /// `SIGKILL`/`SIGSTOP` cannot be caught; `SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE` are
    /// refused. `priority = P` allowed.
    on_signal;
    /// `#[on_start]`: called once at the end of setup, after every registration.
    on_start;
    /// `#[on_idle]`: libev's `ev_idle`. Idling is turned on at start; while it is on, the
    /// handler runs whenever an iteration dispatched nothing, and the loop does not block.
    /// Turn it off with `ctx.set_idle(false)` when the background work is done.
    on_idle;
    /// `#[before_wait]`: called at the start of every iteration, before the loop waits
    /// (libev's prepare watcher).
    before_wait;
    /// `#[after_wait]`: called right after the wait returns, before anything is
    /// dispatched (libev's check watcher).
    after_wait;
    /// `#[on_wake]`: called after `WakeHandle::wake()` (from any thread); take a handle
    /// with `ctx.wake_handle()`. May end with `ev: Event`.
    on_wake;
}

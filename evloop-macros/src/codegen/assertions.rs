//! Checks that rustc performs for the macro, on the user's tokens:
//!
//! - per field handler, in `setup`: the field's type can be watched by this attribute
//!   (`check::WatchRead` ...), and it is a collection exactly when the handler takes a
//!   key (`check::NoKey` / `check::WithKey`, from the field's `Source::Kind`), and a
//!   collection is not watched by `#[on_write]` alone unless it says `write_only`
//!   (`check::WriteAlone`). The shape was probed by method resolution (`fields.rs`);
//!   each check is a trait-method call whose `#[diagnostic::on_unimplemented]` message
//!   names the field's type, spanned on the field's name in the attribute or on the
//!   handler. Exactly one of them fails for a given mistake.
//! - per `#[on_read]`: a warning if the field is a plain `TcpListener`/`UnixListener`
//!   (a call of a `#[deprecated]` method picked by the field's type, `nudge`), unless
//!   the handler says `raw_accept`, which then must name such a listener
//!   (`nudge::RawAccept`).
//! - per `priority = N`, for a non-generic machine: `N` is below the struct's
//!   `priorities` (a `const` assertion).
//! - per pair of duplicate handlers under different cfgs: a `compile_error!` gated on
//!   both cfgs.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};

use super::Gen;
use crate::analyze::{any_of, cfg_attr, Field};
use crate::syntax::ast::{HandlerKind, Priority};

/// The checks of handler `i`, which watches field `f`.
pub fn field_checks(g: &Gen, i: usize, f: &Field) -> TokenStream {
    let h = &g.handlers[i];
    let Some(field) = h.kind.field() else {
        return TokenStream::new();
    };
    let cfg = cfg_attr(h);
    let watchable = match h.kind {
        HandlerKind::Read { .. } => quote!(WatchRead),
        HandlerKind::Write { .. } => quote!(WatchWrite),
        _ => quote!(WatchTimeout),
    };
    let watch_check = quote_spanned! {field.span()=>
        <_ as ::evloop::__private::check::#watchable<_>>::check(&self.#field, shape);
    };
    let key_check = match h.sig.key {
        Some(key_span) => quote_spanned! {key_span=>
            <_ as ::evloop::__private::check::WithKey<_>>::check(&self.#field, shape);
        },
        None => quote_spanned! {h.method.span()=>
            <_ as ::evloop::__private::check::NoKey<_>>::check(&self.#field, shape);
        },
    };
    // `#[on_write]` as the field's only I/O handler (under the cfgs where no read handler
    // is compiled in), without `write_only`: fine for a single fd, an error for a
    // collection. Spanned on the field's name in the attribute.
    let write_alone = match &h.kind {
        HandlerKind::Write { io, .. } if io.write_only.is_none() => {
            let check = quote_spanned! {field.span()=>
                <_ as ::evloop::__private::check::WriteAlone<_>>::check(&self.#field, shape);
            };
            match (f.read.is_empty(), any_of(g.handlers, &f.read)) {
                (true, _) => check,
                (false, None) => TokenStream::new(),
                (false, Some(pred)) => quote! {
                    #[cfg(not(#pred))]
                    { #check }
                },
            }
        }
        _ => TokenStream::new(),
    };
    let accept_nudge = match &h.kind {
        HandlerKind::Read { io, .. } => accept_nudge(field, io.raw_accept),
        _ => TokenStream::new(),
    };
    quote! {
        #cfg
        {
            #watch_check
            #key_check
            #write_alone
            #accept_nudge
        }
    }
}

/// `#[on_read]` of a plain `TcpListener`/`UnixListener` (probed by method resolution on
/// the field's type, see `nudge` in `evloop::__private`): a call of a `#[deprecated]`
/// method spanned on the field's name, so rustc warns there that the handler will spin
/// when descriptors run out and suggests `Listener`. With `raw_accept` (the handler
/// deals with EMFILE itself), no warning, but a check that the field is such a listener,
/// spanned on `raw_accept`.
fn accept_nudge(field: &syn::Ident, raw_accept: Option<Span>) -> TokenStream {
    let plain = quote_spanned! {field.span()=>
        (&&::evloop::__private::shape::Probe(&self.#field)).__evloop_accept_nudge()
    };
    match raw_accept {
        None => quote_spanned! {field.span()=>
            #plain.on_read();
        },
        Some(span) => quote_spanned! {span=>
            <_ as ::evloop::__private::nudge::RawAccept<_>>::check(&self.#field, #plain);
        },
    }
}

/// Impl-side items: priority ranges and cfg-gated duplicates.
pub fn impl_side(g: &Gen) -> TokenStream {
    let mut out = Vec::new();
    let generic = !g.item.generics.params.is_empty();
    let self_ty = &g.item.self_ty;
    for h in g.handlers {
        let p: Option<Priority> = match &h.kind {
            HandlerKind::Read { io, .. } | HandlerKind::Write { io, .. } => io.priority,
            HandlerKind::Timer { priority, .. } | HandlerKind::Signal { priority, .. } => *priority,
            _ => None,
        };
        let Some(p) = p else { continue };
        // A generic machine's levels are not known here; the loop checks at setup.
        if generic {
            continue;
        }
        let cfg = cfg_attr(h);
        let v = p.value;
        let levels = super::machine::struct_side(self_ty, quote!(PRIORITIES));
        let msg = format!(
            "`priority = {v}` is out of range: priorities go from 0 (the most urgent) to the machine's `priorities` - 1; raise `priorities` on the struct: `#[event_machine(priorities = {})]` (at most `evloop::Builder::MAX_PRIORITIES`)",
            u16::from(v) + 1
        );
        out.push(quote_spanned! {p.span=>
            #cfg
            const _: () = ::core::assert!(
                #v < #levels,
                #msg
            );
        });
    }
    for c in &g.analysis.cfg_conflicts {
        let a = &g.handlers[c.first].cfgs;
        let b = &g.handlers[c.second].cfgs;
        let msg = &c.message;
        out.push(quote_spanned! {c.span=>
            #[cfg(all(#(#a,)* #(#b),*))]
            ::core::compile_error!(#msg);
        });
    }
    quote!(#(#out)*)
}

//! Signals: `ctx.add_signal(number, Token::tagged(SIGNAL_TAG, index))`. The number is the
//! target's, named through `::evloop::__private::signals` (a constant, passed through
//! `SignalOnTarget::number`, which refuses a name the target lacks on the name's token), or for real-time
//! signals computed by `::evloop::__private::sigrtmin_plus(n)?` / `sigrtmax_minus(n)?`
//! (which fail setup on a system without them): the macro runs on the build host and
//! never decides it. Names were checked by `crate::signals` while parsing.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use super::Gen;
use crate::analyze::cfg_attr;
use crate::syntax::ast::{HandlerKind, Signal, SignalName};

/// The signal's number on the target.
fn number(s: &Signal) -> TokenStream {
    let span = s.span;
    match &s.which {
        SignalName::Named(n) => {
            let id = syn::Ident::new(n, span);
            quote_spanned!(span=> <_ as ::evloop::__private::SignalOnTarget>::number(::evloop::__private::signals::#id))
        }
        SignalName::RtMin(n) => {
            let n = *n as i32;
            quote_spanned!(span=> ::evloop::__private::sigrtmin_plus(#n)?)
        }
        SignalName::RtMax(n) => {
            let n = *n as i32;
            quote_spanned!(span=> ::evloop::__private::sigrtmax_minus(#n)?)
        }
    }
}

pub fn setup(g: &Gen) -> TokenStream {
    let signals = g.analysis.signals.iter().enumerate().map(|(index, &i)| {
        let h = &g.handlers[i];
        let HandlerKind::Signal { signal, priority } = &h.kind else {
            unreachable!("signals holds signal handlers")
        };
        let cfg = cfg_attr(h);
        let index = index as u64;
        let number = number(signal);
        let register = quote! {
            ctx.add_signal(
                #number,
                ::evloop::Token::tagged(::evloop::__private::SIGNAL_TAG, #index),
            )?
        };
        super::register_with_priority(cfg, register, priority.as_ref())
    });
    quote!(#(#signals)*)
}

pub fn arm(g: &Gen) -> TokenStream {
    super::payload_arm(
        g,
        quote!(::evloop::__private::SIGNAL_TAG),
        &g.analysis.signals,
    )
}

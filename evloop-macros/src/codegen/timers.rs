//! Timers: `#[on_timer(N)]` is `ctx.add_periodic`, `#[on_timer(N, once)]` is
//! `ctx.add_timer`, under the token `Token::tagged(TIMER_TAG, index)`. Indices follow
//! declaration order, whatever the cfgs, so a cfg'd-out timer leaves a gap, not a shift.

use proc_macro2::TokenStream;
use quote::quote;

use super::Gen;
use crate::analyze::cfg_attr;
use crate::syntax::ast::HandlerKind;

pub fn setup(g: &Gen) -> TokenStream {
    let timers = g.analysis.timers.iter().enumerate().map(|(index, &i)| {
        let h = &g.handlers[i];
        let HandlerKind::Timer { ms, once, priority } = &h.kind else {
            unreachable!("timers holds timer handlers")
        };
        let cfg = cfg_attr(h);
        let index = index as u64;
        let ms = ms.value;
        let add = if once.is_some() {
            quote!(add_timer)
        } else {
            quote!(add_periodic)
        };
        let register = quote! {
            ctx.#add(
                ::evloop::Token::tagged(::evloop::__private::TIMER_TAG, #index),
                ::core::time::Duration::from_millis(#ms),
            )?
        };
        super::register_with_priority(cfg, register, priority.as_ref())
    });
    quote!(#(#timers)*)
}

pub fn arm(g: &Gen) -> TokenStream {
    super::payload_arm(
        g,
        quote!(::evloop::__private::TIMER_TAG),
        &g.analysis.timers,
    )
}

//! Lifecycle: `on_start` (last thing in `setup`), `on_idle` (idling turned on in
//! `setup`, `Machine::idle` forwards), `before_wait` / `after_wait` (the `Machine`
//! methods of the same names forward), `on_wake` (`ctx.add_wake` and its arm). A hook
//! the machine does not declare is not overridden: the trait's empty default costs
//! nothing.

use proc_macro2::TokenStream;
use quote::quote;

use super::Gen;
use crate::analyze::{any_of, cfg_attr, cfg_of};

/// The calls of the handlers in `list`, each under its cfg.
fn calls(g: &Gen, list: &[usize]) -> TokenStream {
    let calls = list.iter().map(|&i| {
        let cfg = cfg_attr(&g.handlers[i]);
        let call = g.call(i, None);
        quote!(#cfg #call;)
    });
    quote!(#(#calls)*)
}

pub fn start_call(g: &Gen) -> TokenStream {
    calls(g, &g.analysis.start)
}

pub fn idle_setup(g: &Gen) -> TokenStream {
    let on = g.analysis.idle.iter().map(|&i| {
        let cfg = cfg_attr(&g.handlers[i]);
        quote!(#cfg ctx.set_idle(true);)
    });
    quote!(#(#on)*)
}

pub fn wake_setup(g: &Gen) -> TokenStream {
    let cfg = match g.analysis.wake.as_slice() {
        [] => return TokenStream::new(),
        list => cfg_of(any_of(g.handlers, list)),
    };
    quote! {
        #cfg
        ctx.add_wake(::evloop::Token::tagged(::evloop::__private::WAKE_TAG, 0))?;
    }
}

pub fn wake_arm(g: &Gen) -> TokenStream {
    let list = &g.analysis.wake;
    if list.is_empty() {
        return TokenStream::new();
    }
    let cfg = cfg_of(any_of(g.handlers, list));
    let calls = calls(g, list);
    quote! {
        #cfg
        ::evloop::__private::WAKE_TAG => { #calls }
    }
}

/// The `Handlers` hook methods for the declared hooks (`Machine`'s forward to them).
pub fn methods(g: &Gen) -> TokenStream {
    let a = g.analysis;
    let mut out = Vec::new();
    for (list, name) in [
        (&a.before_wait, quote!(__evloop_before_wait)),
        (&a.after_wait, quote!(__evloop_after_wait)),
        (&a.idle, quote!(__evloop_idle)),
    ] {
        if list.is_empty() {
            continue;
        }
        let cfg = cfg_of(any_of(g.handlers, list));
        let calls = calls(g, list);
        out.push(quote! {
            #cfg
            #[inline]
            fn #name(&mut self, ctx: &mut ::evloop::Ctx<Self>) {
                #calls
            }
        });
    }
    quote!(#(#out)*)
}

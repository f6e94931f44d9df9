//! Watched fields. In `setup`, each field is probed for its shape (a `Source` of kind
//! single or collection, or not a source), checked against each handler that names it, and attached with the union of
//! its handlers' interests and options. In `dispatch`, its arm looks the entry up (a
//! `Slab` gives the live key; a stale token finds nothing), lets a source that does its
//! own I/O run its `before_dispatch` hook (which rewrites the readiness), calls read,
//! write and timeout handlers by readiness, re-checking that the entry is still there
//! between two calls (a handler may have removed it), then the `after_dispatch` hook.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use super::{assertions, Gen};
use crate::analyze::{any_of, cfg_attr, cfg_of, Field};
use crate::syntax::ast::HandlerKind;

/// `#[cfg(...)]` for the field: present if any of its handlers is.
fn field_cfg(g: &Gen, f: &Field) -> TokenStream {
    let all: Vec<usize> = f.all().collect();
    cfg_of(any_of(g.handlers, &all))
}

/// The `shape` of the field, probed by method resolution on its type.
fn probe(f: &Field) -> TokenStream {
    let name = &f.name;
    quote_spanned!(name.span()=> (&&::evloop::__private::shape::Probe(&self.#name)).__evloop_shape())
}

pub fn setup(g: &Gen, f: &Field) -> TokenStream {
    let name = &f.name;
    let tag = f.tag;
    let cfg = field_cfg(g, f);
    let probe = probe(f);
    let checks = f.all().map(|i| assertions::field_checks(g, i, f));
    let mut interests = Vec::new();
    let mut options = Vec::new();
    for i in f.all() {
        let h = &g.handlers[i];
        let hcfg = cfg_attr(h);
        let mut steps = Vec::new();
        match &h.kind {
            HandlerKind::Read { io, .. } | HandlerKind::Write { io, .. } => {
                let interest = if matches!(h.kind, HandlerKind::Read { .. }) {
                    quote!(::evloop::Interest::READ)
                } else {
                    quote!(::evloop::Interest::WRITE)
                };
                interests.push(quote!(#hcfg { interest |= #interest; }));
                if io.edge.is_some() {
                    steps.push(quote!(.edge()));
                }
                if io.oneshot.is_some() {
                    steps.push(quote!(.oneshot()));
                }
                if io.peer_closed.is_some() {
                    steps.push(quote!(.peer_closed()));
                }
                if let Some(p) = io.priority {
                    let v = p.value;
                    steps.push(quote!(.priority(#v)));
                }
            }
            HandlerKind::Timeout { ms, .. } => {
                let v = ms.value;
                steps.push(quote!(.timeout(::core::time::Duration::from_millis(#v))));
            }
            _ => {}
        }
        if !steps.is_empty() {
            options.push(quote!(#hcfg { watch = watch #(#steps)*; }));
        }
    }
    let mutability = if options.is_empty() {
        TokenStream::new()
    } else {
        quote!(mut)
    };
    quote! {
        #cfg
        {
            let shape = #probe;
            #(#checks)*
            // The union of what the field's handlers watch, then their options. A field
            // that is both read and written starts with read interest only: level-
            // triggered write interest on an idle socket would fire every iteration; the
            // program turns it on while it has output to flush.
            let mut interest = ::evloop::Interest::NONE;
            #(#interests)*
            if interest.is_readable() {
                interest = interest.remove(::evloop::Interest::WRITE);
            }
            let #mutability watch = ::evloop::Watch::new(interest);
            #(#options)*
            shape.attach(&mut self.#name, ctx, #tag, watch)?;
        }
    }
}

pub fn arm(g: &Gen, f: &Field) -> TokenStream {
    let name = &f.name;
    let tag = f.tag;
    let cfg = field_cfg(g, f);
    let probe = probe(f);
    let key = quote!(key);
    let mut calls = Vec::new();
    let mut first = true;
    // A write handler also hears hang-ups and errors when the field has no read handler.
    let write_ready = match (f.read.is_empty(), any_of(g.handlers, &f.read)) {
        (true, _) => quote!(::evloop::__private::WRITE_READY_ALONE),
        (false, None) => quote!(::evloop::__private::WRITE_READY),
        (false, Some(pred)) => quote! {
            if ::core::cfg!(#pred) {
                ::evloop::__private::WRITE_READY
            } else {
                ::evloop::__private::WRITE_READY_ALONE
            }
        },
    };
    for i in f.all() {
        let h = &g.handlers[i];
        let hcfg = cfg_attr(h);
        let cond = match h.kind {
            HandlerKind::Read { .. } => {
                quote!(ev.ready.intersects(::evloop::__private::READ_READY))
            }
            HandlerKind::Write { .. } => quote!(ev.ready.intersects(#write_ready)),
            _ => quote!(ev.ready.is_timeout()),
        };
        let alive = if first {
            TokenStream::new()
        } else {
            quote!(&& shape.entry(&self.#name, ev.token).is_some())
        };
        first = false;
        let call = g.call(i, Some(&key));
        calls.push(quote! {
            #hcfg
            if #cond #alive {
                #call;
            }
        });
    }
    quote! {
        #cfg
        #tag => {
            let shape = #probe;
            if let ::core::option::Option::Some(key) = shape.entry(&self.#name, ev.token) {
                // A source that does its own I/O (buffered connections, a listener) does
                // it here and says what its handlers see; for plain fds and `Slab`s both
                // hooks are the trait's inlined defaults, so this costs nothing.
                let ev = ::evloop::Event {
                    ready: shape.before_dispatch(&mut self.#name, ctx, key, ev.ready),
                    ..ev
                };
                #(#calls)*
                shape.after_dispatch(&mut self.#name, ctx, key);
            }
        }
    }
}

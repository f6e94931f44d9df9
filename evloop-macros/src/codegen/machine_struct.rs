//! The struct side: `impl MachineStruct` (backend and capacities) and `impl Machine`,
//! whose methods forward to the impl side's `Handlers` (so a missing impl attribute is
//! one error, here, and the handlers' `Ctx<Self>` still type-checks). How many sources the fields
//! hold is asked of the runtime (`Source::capacity`, through the same shape probe as the
//! impl side), when the loop is built: nothing here depends on a type's name.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::Member;

use crate::syntax::ast::StructInput;

pub fn expand(input: &StructInput) -> TokenStream {
    let item = &input.item;
    let opts = &input.options;
    let name = &item.ident;
    let (ig, tg, wc) = item.generics.split_for_impl();
    let backend = match &opts.backend {
        Some(ty) => {
            quote_spanned!(ty.span()=> <#ty as ::evloop::__private::BackendOption>::Backend)
        }
        None => quote!(::evloop::DefaultBackend),
    };
    let lit = |(v, span): (u64, proc_macro2::Span)| {
        let mut l = proc_macro2::Literal::u64_unsuffixed(v);
        l.set_span(span);
        l
    };
    let mut consts = Vec::new();
    if let Some(n) = opts.sources.map(lit) {
        consts.push(quote!(const SOURCES: ::core::option::Option<usize> = ::core::option::Option::Some(#n);));
    }
    if let Some(n) = opts.timers.map(lit) {
        consts.push(
            quote!(const TIMERS: ::core::option::Option<usize> = ::core::option::Option::Some(#n);),
        );
    }
    if let Some(n) = opts.events.map(lit) {
        consts.push(quote!(const EVENTS: usize = #n;));
    }
    let mut limits = Vec::new();
    if let Some((v, span)) = opts.priorities {
        let n = lit((v, span));
        consts.push(quote!(const PRIORITIES: u8 = #n;));
        // The limit is the runtime's: asked of `Builder`, never copied here.
        limits.push(quote_spanned! {span=>
            const _: () = ::core::assert!(
                #n <= ::evloop::Builder::MAX_PRIORITIES,
                "`priorities` is above the most a loop has, `evloop::Builder::MAX_PRIORITIES`: lower it"
            );
        });
    }
    if let Some(n) = opts.activations.map(lit) {
        consts.push(quote!(const ACTIVATIONS: usize = #n;));
    }
    let backend_ty = quote!(type Backend = #backend;);
    let capacity = source_capacity(item);
    // Every mention of `Handlers` is spanned at the struct's name: if the impl block is
    // not annotated they all fail the same way at the same place, which rustc reports
    // once (the trait's message says what to add).
    let handlers = quote_spanned!(name.span()=> <Self as ::evloop::__private::Handlers>);
    quote! {
        impl #ig ::evloop::__private::MachineStruct for #name #tg #wc {
            #backend_ty
            #(#consts)*
            #capacity
        }

        #(#limits)*

        impl #ig ::evloop::Machine for #name #tg #wc {
            #backend_ty

            #[inline(always)]
            fn setup(&mut self, ctx: &mut ::evloop::Ctx<Self>) -> ::evloop::Result<()> {
                #handlers::__evloop_setup(self, ctx)
            }
            #[inline(always)]
            fn dispatch(&mut self, ctx: &mut ::evloop::Ctx<Self>, ev: ::evloop::Event) {
                #handlers::__evloop_dispatch(self, ctx, ev)
            }
            #[inline(always)]
            fn before_wait(&mut self, ctx: &mut ::evloop::Ctx<Self>) {
                #handlers::__evloop_before_wait(self, ctx)
            }
            #[inline(always)]
            fn after_wait(&mut self, ctx: &mut ::evloop::Ctx<Self>) {
                #handlers::__evloop_after_wait(self, ctx)
            }
            #[inline(always)]
            fn idle(&mut self, ctx: &mut ::evloop::Ctx<Self>) {
                #handlers::__evloop_idle(self, ctx)
            }
        }
    }
}

/// `fn source_capacity(&self)`: the sum of `Source::capacity` over the fields that are
/// sources (the probe gives 0 for the others), each term under its field's `#[cfg]`s.
fn source_capacity(item: &syn::ItemStruct) -> TokenStream {
    let terms: Vec<TokenStream> = item
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let member = match &f.ident {
                Some(id) => Member::Named(id.clone()),
                None => Member::Unnamed(i.into()),
            };
            let cfgs = f.attrs.iter().filter(|a| a.path().is_ident("cfg"));
            quote! {
                #(#cfgs)*
                {
                    n = n.saturating_add(
                        (&&::evloop::__private::shape::Probe(&self.#member))
                            .__evloop_shape()
                            .capacity(&self.#member),
                    );
                }
            }
        })
        .collect();
    if terms.is_empty() {
        return TokenStream::new();
    }
    quote! {
        #[inline]
        fn source_capacity(&self) -> usize {
            #[allow(unused_imports)]
            use ::evloop::__private::shape::{ProbeOther as _, ProbeSource as _};
            let mut n: usize = 0;
            #(#terms)*
            n
        }
    }
}

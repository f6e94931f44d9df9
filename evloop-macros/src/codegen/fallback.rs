//! What is emitted when the impl block has errors: the block itself (handler attributes
//! removed, methods kept), the errors, and stand-ins for everything the macro would have
//! generated (`impl Handlers` with an empty setup and dispatch, `event_loop()`, `run()`),
//! so that the rest of the program type-checks and only the real mistake is reported.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemImpl;

use super::run;
use crate::Errors;

pub fn expand(item: &ItemImpl, errors: &Errors) -> TokenStream {
    let errors = errors.to_compile_errors();
    let (ig, _, wc) = item.generics.split_for_impl();
    let self_ty = &item.self_ty;
    // Unless the user's own methods take the generated names (an error already).
    let clash = item.items.iter().any(|it| {
        matches!(it, syn::ImplItem::Fn(f) if f.sig.ident == "run" || f.sig.ident == "event_loop")
    });
    let run = if clash {
        TokenStream::new()
    } else {
        run::inherent(item)
    };
    let handlers = quote! {
        impl #ig ::evloop::__private::Handlers for #self_ty #wc {
            fn __evloop_setup(&mut self, _: &mut ::evloop::Ctx<Self>) -> ::evloop::Result<()> {
                ::core::result::Result::Ok(())
            }
            fn __evloop_dispatch(&mut self, _: &mut ::evloop::Ctx<Self>, _: ::evloop::Event) {}
        }
    };
    // A trait impl (refused) may be the user's own `impl Machine`: only the handshake.
    let inherent = if item.trait_.is_none() {
        quote! {
            #handlers
            #run
        }
    } else {
        handlers
    };
    // `#[event_machine] impl Machine for S`: the struct's attribute already wrote
    // `impl Machine`, so the user's would only add a "conflicting implementations" error
    // to the one that says what to do; it is left out.
    let own_machine_impl = item
        .trait_
        .as_ref()
        .and_then(|(_, path, _)| path.segments.last())
        .is_some_and(|s| s.ident == "Machine");
    let item = if own_machine_impl {
        TokenStream::new()
    } else {
        quote!(#item)
    };
    quote! {
        #errors
        #item
        #inherent
    }
}

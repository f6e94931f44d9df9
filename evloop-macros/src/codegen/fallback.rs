//! What is emitted when the impl block has errors: the block itself (handler attributes
//! removed, methods kept), the errors, and stand-ins for everything the macro would have
//! generated (`impl Machine` with an empty dispatch, `impl Handlers`, `event_loop()`,
//! `run()`), so that the rest of the program type-checks and only the real mistake is
//! reported.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemImpl;

use super::{machine, run};
use crate::Errors;

pub fn expand(item: &ItemImpl, errors: &Errors) -> TokenStream {
    let errors = errors.to_compile_errors();
    let (ig, _, wc) = item.generics.split_for_impl();
    let self_ty = &item.self_ty;
    let handlers = machine::impl_handlers(item);
    // Unless the user's own methods take the generated names (an error already).
    let clash = item.items.iter().any(|it| {
        matches!(it, syn::ImplItem::Fn(f) if f.sig.ident == "run" || f.sig.ident == "event_loop")
    });
    let run = if clash {
        TokenStream::new()
    } else {
        run::inherent(item)
    };
    let backend = machine::backend_item(self_ty);
    // A trait impl (refused) may be the user's own `impl Machine`: only the handshake.
    let inherent = if item.trait_.is_none() {
        quote! {
            impl #ig ::evloop::Machine for #self_ty #wc {
                #backend
                fn dispatch(&mut self, _: &mut ::evloop::Ctx<Self>, _: ::evloop::Event) {}
            }
            #handlers
            #run
        }
    } else {
        handlers
    };
    quote! {
        #errors
        #item
        #inherent
    }
}

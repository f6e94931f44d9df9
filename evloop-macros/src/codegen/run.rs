//! The inherent `event_loop()` (an `EventLoop` built with the struct's capacities) and
//! `run()` (run it until it exits or has nothing left to watch; give the machine back).

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemImpl;

pub fn inherent(item: &ItemImpl) -> TokenStream {
    let self_ty_user = &item.self_ty;
    let (ig, _, wc) = item.generics.split_for_impl();
    // All at the call site, like the struct side's uses (see `machine::struct_side`).
    let self_ty = super::machine::respan(quote!(#self_ty_user), proc_macro2::Span::call_site());
    let builder = super::machine::struct_side(self_ty_user, quote!(builder));
    quote! {
        impl #ig #self_ty #wc {
            /// Build this machine's event loop with the capacities given on its struct
            /// (without `sources = N`: room for every source field's capacity, as the
            /// fields are now), and run its setup (registrations, then the `#[on_start]` handler). Drive
            /// it with `run`, `run_once`, `run_nowait` or `poll`.
            #[allow(dead_code)]
            pub fn event_loop(self) -> ::evloop::Result<::evloop::EventLoop<Self>> {
                #builder(&self).build(self)
            }

            /// Run the machine until a handler calls `ctx.exit()` or `ctx.break_loop()`,
            /// or until nothing is left to watch; returns the machine.
            #[allow(dead_code)]
            pub fn run(self) -> ::evloop::Result<Self> {
                match Self::event_loop(self) {
                    ::core::result::Result::Ok(mut event_loop) => match event_loop.run() {
                        ::core::result::Result::Ok(_) => {
                            ::core::result::Result::Ok(event_loop.into_machine())
                        }
                        ::core::result::Result::Err(e) => ::core::result::Result::Err(e),
                    },
                    ::core::result::Result::Err(e) => ::core::result::Result::Err(e),
                }
            }
        }
    }
}

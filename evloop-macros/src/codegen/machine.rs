//! `impl Handlers for S`: `setup`, and `dispatch`, a `match` on the token's tag that
//! calls the handlers directly; plus the hooks the machine declares. The struct side's
//! `impl Machine` forwards to them (see `machine_struct.rs`).

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::quote;

use super::{fields, hooks, setup, signals, timers, Gen};

pub fn impl_handlers(g: &Gen) -> TokenStream {
    let (ig, _, wc) = g.item.generics.split_for_impl();
    let self_ty = &g.item.self_ty;
    let setup = setup::body(g);
    let field_arms = g.analysis.fields.iter().map(|f| fields::arm(g, f));
    let timer_arm = timers::arm(g);
    let signal_arm = signals::arm(g);
    let wake_arm = hooks::wake_arm(g);
    let hooks = hooks::methods(g);
    quote! {
        impl #ig ::evloop::__private::Handlers for #self_ty #wc {
            #[allow(unused_variables)]
            fn __evloop_setup(&mut self, ctx: &mut ::evloop::Ctx<Self>) -> ::evloop::Result<()> {
                #setup
            }

            #[inline]
            #[allow(unused_variables)]
            fn __evloop_dispatch(&mut self, ctx: &mut ::evloop::Ctx<Self>, ev: ::evloop::Event) {
                #[allow(unused_imports)]
                use ::evloop::__private::shape::{ProbeOther as _, ProbeSource as _};
                match ev.token.tag() {
                    #(#field_arms)*
                    #timer_arm
                    #signal_arm
                    #wake_arm
                    _ => {}
                }
            }

            #hooks
        }
    }
}

/// `<S as MachineStruct>::item`, every token at the attribute (the call site). If the
/// struct is not annotated, every use of the struct side (here, and rustc's own checks
/// of the generated impl) reports the same error at the same place, which rustc shows
/// once; its help points at the struct.
pub fn struct_side(self_ty: &syn::Type, item: TokenStream) -> TokenStream {
    let ty = respan(quote!(#self_ty), Span::call_site());
    quote!(<#ty as ::evloop::__private::MachineStruct>::#item)
}

/// The same tokens, all at `span`.
pub fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(g) = &tt {
                let mut ng = Group::new(g.delimiter(), respan(g.stream(), span));
                ng.set_span(span);
                tt = TokenTree::Group(ng);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

//! The struct side: `impl MachineStruct` (backend and capacities) and the assertion that
//! the machine's impl block carries `#[event_machine]` too.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{GenericArgument, PathArguments, Type};

use super::assertions;
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
    match opts.sources.map(lit) {
        Some(n) => consts.push(quote!(const SOURCES: usize = #n;)),
        None => {
            // Room for every entry of every `Slab` field, on top of the default.
            let slabs = slab_capacities(item);
            if !slabs.is_empty() {
                consts.push(quote!(const SOURCES: usize = 1024 #(+ (#slabs))*;));
            }
        }
    }
    if let Some(n) = opts.timers.map(lit) {
        consts.push(quote!(const TIMERS: usize = #n;));
    }
    if let Some(n) = opts.events.map(lit) {
        consts.push(quote!(const EVENTS: usize = #n;));
    }
    if let Some(n) = opts.priorities.map(lit) {
        consts.push(quote!(const PRIORITIES: u8 = #n;));
    }
    if let Some(n) = opts.activations.map(lit) {
        consts.push(quote!(const ACTIVATIONS: usize = #n;));
    }
    let backend_ty = quote!(type Backend = #backend;);
    let assertion = assertions::struct_side(item);
    quote! {
        impl #ig ::evloop::__private::MachineStruct for #name #tg #wc {
            #backend_ty
            #(#consts)*
        }
        #assertion
    }
}

/// The `N` of every field typed `Slab<T, N>` (by its last path segment).
fn slab_capacities(item: &syn::ItemStruct) -> Vec<TokenStream> {
    let mut out = Vec::new();
    for f in &item.fields {
        let Type::Path(p) = &f.ty else { continue };
        let Some(last) = p.path.segments.last() else {
            continue;
        };
        if last.ident != "Slab" {
            continue;
        }
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            continue;
        };
        match args.args.iter().nth(1) {
            Some(GenericArgument::Const(e)) => out.push(quote!(#e)),
            Some(GenericArgument::Type(Type::Path(tp))) if tp.path.get_ident().is_some() => {
                out.push(quote!(#tp))
            }
            _ => {}
        }
    }
    out
}

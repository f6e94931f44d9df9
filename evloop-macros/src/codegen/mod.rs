//! Code generation, one file per concern:
//!
//! | file | emits |
//! |---|---|
//! | `machine_struct.rs` | the struct side: `impl MachineStruct` (backend, capacities from the fields) and `impl Machine`, which forwards to the impl side's `Handlers` |
//! | `machine.rs` | `impl Handlers`: `setup`, `dispatch` (a `match` on the token's tag), the hooks |
//! | `setup.rs` | the body of `setup`, in order: fields, timers, signals, wake, idle, `on_start` |
//! | `fields.rs` | per watched field: its union `Watch` and `attach`; its dispatch arm |
//! | `timers.rs` | `add_periodic` / `add_timer` per timer; the timers' arm |
//! | `signals.rs` | `add_signal` per signal (the target's numbers, through `libc`); the signals' arm |
//! | `hooks.rs` | `on_start`, `on_idle`, `before_wait`, `after_wait`, `on_wake` |
//! | `assertions.rs` | the field checks (trait calls with `on_unimplemented` messages), priority ranges, cfg-gated conflicts |
//! | `run.rs` | the inherent `event_loop()` and `run()` |
//! | `fallback.rs` | what is emitted when the input has errors |
//!
//! Every piece that belongs to a handler carries the handler's `#[cfg]`s.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{ItemImpl, ItemStruct};

use crate::analyze::{self, Analysis};
use crate::syntax::ast::{Handler, Priority};
use crate::syntax::{check, parse};
use crate::Errors;

mod assertions;
mod fallback;
mod fields;
mod hooks;
mod machine;
mod machine_struct;
mod run;
mod setup;
mod signals;
mod timers;

/// What every generator reads.
pub struct Gen<'a> {
    pub item: &'a ItemImpl,
    pub handlers: &'a [Handler],
    pub analysis: &'a Analysis,
}

impl Gen<'_> {
    /// The call of handler `i`, with its declared parameters: `self.name(key, ctx, ev)`.
    pub fn call(&self, i: usize, key: Option<&TokenStream>) -> TokenStream {
        let h = &self.handlers[i];
        let method = &h.method;
        let key = match (h.sig.key, key) {
            (Some(_), Some(k)) => quote!(#k,),
            _ => TokenStream::new(),
        };
        let ev = if h.sig.event.is_some() {
            quote!(, ev)
        } else {
            TokenStream::new()
        };
        quote_spanned!(method.span()=> self.#method(#key ctx #ev))
    }
}

/// `#[event_machine(...)] struct S { ... }`: the struct unchanged, its `MachineStruct`
/// impl, and its `impl Machine` (which needs the impl block's `Handlers`).
/// A registration statement (`ctx.add_...(..)?`, which yields the new source's id) under
/// the handler's cfg, followed by `ctx.set_priority` when the handler names a priority.
fn register_with_priority(
    cfg: TokenStream,
    register: TokenStream,
    priority: Option<&Priority>,
) -> TokenStream {
    match priority {
        Some(p) => {
            let p = p.value;
            quote! {
                #cfg
                {
                    let id = #register;
                    ctx.set_priority(id, #p)?;
                }
            }
        }
        None => quote! {
            #cfg
            #register;
        },
    }
}

/// The `dispatch` arm of a reserved tag whose sources are numbered by the token's
/// payload in the order of `handlers` (timers, signals).
fn payload_arm(g: &Gen, tag: TokenStream, handlers: &[usize]) -> TokenStream {
    if handlers.is_empty() {
        return TokenStream::new();
    }
    let arms = handlers.iter().enumerate().map(|(index, &i)| {
        let cfg = analyze::cfg_attr(&g.handlers[i]);
        let index = index as u64;
        let call = g.call(i, None);
        quote! {
            #cfg
            #index => #call,
        }
    });
    quote! {
        #tag => match ev.token.payload() {
            #(#arms)*
            _ => {}
        },
    }
}

/// Add `where S: MachineStruct` to the impl block (the user's own, re-emitted; the
/// generated impls copy its generics and where clause). With the struct annotated it
/// always holds. Without, it is the one error (the trait's message: "add it to `struct
/// S`"), and the code in the block is checked as if it held, so the handlers'
/// `Ctx<Self>` and the generated code report nothing more. Spanned at the attribute, so
/// every copy of it is the same error at the same place, which rustc shows once.
fn require_struct_side(item: &mut ItemImpl) {
    if item.trait_.is_some() {
        return;
    }
    let ty = &item.self_ty;
    let ty = machine::respan(quote!(#ty), proc_macro2::Span::call_site());
    let pred: syn::WherePredicate = syn::parse_quote_spanned! {proc_macro2::Span::call_site()=>
        #ty: ::evloop::__private::MachineStruct
    };
    item.generics.make_where_clause().predicates.push(pred);
}

pub fn expand_struct(args: TokenStream, item: ItemStruct) -> TokenStream {
    let mut errors = Errors::default();
    check::struct_item(&item, &mut errors);
    let input = parse::struct_input(args, item, &mut errors);
    // Options that failed to parse are left out: the rest is still emitted, so the impl
    // side compiles and nothing else is reported.
    let generated = machine_struct::expand(&input);
    let errors = errors.to_compile_errors();
    let item = &input.item;
    quote! {
        #errors
        #item
        #generated
    }
}

/// `#[event_machine] impl S { ... }`: the block without its handler attributes, plus
/// `impl Handlers` (what the struct side's `impl Machine` forwards to), `event_loop()`
/// and `run()`.
pub fn expand_impl(args: TokenStream, item: ItemImpl) -> TokenStream {
    let mut errors = Errors::default();
    if !args.is_empty() {
        errors.push(syn::Error::new_spanned(
            &args,
            "options go on the struct: `#[event_machine(backend = ...)] struct S`; the impl block's `#[event_machine]` takes none",
        ));
    }
    check::impl_block(&item, &mut errors);
    let mut item = item;
    require_struct_side(&mut item);
    let mut input = parse::impl_input(item, &mut errors);
    check::generated_names(&input.item, &mut errors);
    check::handlers(&input.item, &mut input.handlers, &mut errors);
    let analysis = analyze::analyze(&input.handlers, &mut errors);
    if !errors.is_empty() {
        return fallback::expand(&input.item, &errors);
    }
    let g = Gen {
        item: &input.item,
        handlers: &input.handlers,
        analysis: &analysis,
    };
    let item = g.item;
    let handlers = machine::impl_handlers(&g);
    let run = run::inherent(g.item);
    let asserts = assertions::impl_side(&g);
    quote! {
        #item
        #handlers
        #run
        #asserts
    }
}

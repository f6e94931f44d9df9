//! Parsing: attribute arguments, options, the impl block's handler attributes (also
//! inside `cfg_attr`). Errors are collected per attribute, so one bad attribute does not
//! hide another; the values' ranges are checked here too, on the literal's own span.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, BinOp, Expr, ExprLit, Ident, ImplItem, ItemImpl, ItemStruct, Lit, Meta, Token, UnOp,
};

use super::ast::*;
use crate::signals;
use crate::Errors;

/// Names of the handler attributes.
pub const HANDLER_ATTRS: &[&str] = &[
    "on_read",
    "on_write",
    "on_timeout",
    "on_timer",
    "on_signal",
    "on_start",
    "on_idle",
    "before_wait",
    "after_wait",
    "on_wake",
];

/// The longest timer period or idle timeout: one year, in milliseconds.
pub const MAX_MS: u64 = 31_536_000_000;

const STRUCT_OPTIONS: &str =
    "`backend = Type`, `sources = N`, `timers = N`, `events = N`, `priorities = N`, `activations = N`";

// ---------------------------------------------------------------------------------------
// The struct
// ---------------------------------------------------------------------------------------

/// `#[event_machine(options)] struct S { ... }`.
pub fn struct_input(args: TokenStream, item: ItemStruct, errors: &mut Errors) -> StructInput {
    let options = struct_options(args, errors);
    StructInput { item, options }
}

fn struct_options(args: TokenStream, errors: &mut Errors) -> StructOptions {
    let mut opts = StructOptions::default();
    let list = match Punctuated::<Expr, Token![,]>::parse_terminated.parse2(args) {
        Ok(list) => list,
        Err(e) => {
            errors.push(e);
            return opts;
        }
    };
    let mut seen: Vec<(String, Span)> = Vec::new();
    for arg in list {
        let Expr::Assign(assign) = &arg else {
            errors.push(syn::Error::new_spanned(
                &arg,
                format!("expected `option = value`; the options are: {STRUCT_OPTIONS}"),
            ));
            continue;
        };
        let Some(name) = expr_ident(&assign.left) else {
            errors.push(syn::Error::new_spanned(
                &assign.left,
                format!("expected an option name; the options are: {STRUCT_OPTIONS}"),
            ));
            continue;
        };
        let key = name.to_string();
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            errors.push(syn::Error::new(
                name.span(),
                format!("option `{key}` is given twice: keep one"),
            ));
            errors.push(syn::Error::new(
                *first,
                format!("option `{key}` first given here"),
            ));
            continue;
        }
        seen.push((key.clone(), name.span()));
        let value = &*assign.right;
        match key.as_str() {
            "backend" => match syn::parse2::<syn::Type>(value.to_token_stream()) {
                Ok(ty) => opts.backend = Some(ty),
                Err(_) => errors.push(syn::Error::new_spanned(
                    value,
                    "expected a backend type: `backend = evloop::Poll` (or `Epoll`, `Select`, a generic parameter `B: Backend`)",
                )),
            },
            "sources" | "timers" | "events" | "activations" => {
                match capacity(value, &key, 1, u32::MAX as u64) {
                    Ok(lit) => {
                        let slot = match key.as_str() {
                            "sources" => &mut opts.sources,
                            "timers" => &mut opts.timers,
                            "events" => &mut opts.events,
                            _ => &mut opts.activations,
                        };
                        *slot = Some(lit);
                    }
                    Err(e) => errors.push(e),
                }
            }
            // The upper limit is the runtime's (`Builder::MAX_PRIORITIES`), checked by a
            // `const` assertion the struct side emits; here only what fits a `u8`.
            "priorities" => match capacity(value, &key, 1, u8::MAX as u64) {
                Ok(lit) => opts.priorities = Some(lit),
                Err(e) => errors.push(e),
            },
            _ => {
                let hint = crate::signals::closest(&key, STRUCT_OPTION_NAMES)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                errors.push(syn::Error::new(
                    name.span(),
                    format!(
                        "unknown option `{key}` for `#[event_machine]`; {hint}the options are: {STRUCT_OPTIONS}"
                    ),
                ));
            }
        }
    }
    opts
}

const STRUCT_OPTION_NAMES: &[&str] = &[
    "backend",
    "sources",
    "timers",
    "events",
    "priorities",
    "activations",
];

/// A capacity: an integer literal in `min..=max`.
fn capacity(value: &Expr, name: &str, min: u64, max: u64) -> syn::Result<(u64, Span)> {
    let lit = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => lit,
        _ => {
            return Err(syn::Error::new_spanned(
                value,
                format!("`{name}` takes an integer literal: `{name} = {min}`"),
            ))
        }
    };
    match lit.base10_parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok((v, lit.span())),
        _ => Err(syn::Error::new(
            lit.span(),
            format!("`{name}` must be between {min} and {max}"),
        )),
    }
}

// ---------------------------------------------------------------------------------------
// The impl block
// ---------------------------------------------------------------------------------------

/// Take every handler attribute out of the impl block and parse it.
pub fn impl_input(mut item: ItemImpl, errors: &mut Errors) -> ImplInput {
    let mut handlers = Vec::new();
    for (index, it) in item.items.iter_mut().enumerate() {
        match it {
            ImplItem::Fn(f) => {
                let (found, cfgs) = take_handler_attrs(&mut f.attrs, errors);
                for (attr, extra_cfgs) in found {
                    let mut all_cfgs = cfgs.clone();
                    all_cfgs.extend(extra_cfgs);
                    match handler_kind(&attr, errors) {
                        Ok((name, kind)) => handlers.push(Handler {
                            method: f.sig.ident.clone(),
                            cfgs: all_cfgs,
                            kind,
                            attr: name,
                            item: index,
                            sig: SigShape::default(),
                        }),
                        Err(e) => errors.push(e),
                    }
                }
            }
            ImplItem::Const(c) => refuse_on_non_method(&mut c.attrs, errors),
            ImplItem::Type(t) => refuse_on_non_method(&mut t.attrs, errors),
            ImplItem::Macro(m) => refuse_on_non_method(&mut m.attrs, errors),
            _ => {}
        }
    }
    ImplInput { item, handlers }
}

fn refuse_on_non_method(attrs: &mut Vec<Attribute>, errors: &mut Errors) {
    let (found, _) = take_handler_attrs(attrs, errors);
    for (attr, _) in found {
        errors.push(syn::Error::new_spanned(
            attr.path(),
            format!(
                "`#[{}]` goes on a method: `fn name(&mut self, ctx: &mut Ctx<Self>)`",
                attr_name(&attr)
            ),
        ));
    }
}

/// Whether `path` names one of the handler attributes (by its last segment, so
/// `evloop::on_read` works too).
pub fn is_handler_path(path: &syn::Path) -> bool {
    path.segments
        .last()
        .is_some_and(|s| HANDLER_ATTRS.iter().any(|h| s.ident == h))
}

fn attr_name(attr: &Attribute) -> String {
    attr.path()
        .segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default()
}

/// Remove the handler attributes from `attrs` (also out of `cfg_attr`s), returning each
/// with the `cfg_attr` predicates it was under, and the method's own `#[cfg]`
/// predicates.
fn take_handler_attrs(
    attrs: &mut Vec<Attribute>,
    errors: &mut Errors,
) -> (Vec<(Attribute, Vec<TokenStream>)>, Vec<TokenStream>) {
    let mut found = Vec::new();
    let mut cfgs = Vec::new();
    let mut kept = Vec::with_capacity(attrs.len());
    for attr in attrs.drain(..) {
        if is_handler_path(attr.path()) {
            found.push((attr, Vec::new()));
        } else if attr.path().is_ident("cfg") {
            match attr.parse_args::<TokenStream>() {
                Ok(pred) => cfgs.push(pred),
                Err(e) => errors.push(e),
            }
            kept.push(attr);
        } else if attr.path().is_ident("cfg_attr") {
            match cfg_attr(&attr, &[], &mut found, &mut cfgs) {
                Ok(Some(rebuilt)) => kept.push(rebuilt),
                Ok(None) => {}
                Err(e) => {
                    errors.push(e);
                    kept.push(attr);
                }
            }
        } else {
            kept.push(attr);
        }
    }
    *attrs = kept;
    (found, cfgs)
}

/// One `#[cfg_attr(pred, a, b, ...)]` under the predicates `outer`: handler attributes
/// in it are moved to `found` (conditional on `outer` and `pred`); a `cfg(x)` in it makes
/// the method conditional (`any(not(all(outer, pred)), x)`); the rest stays. Returns the
/// attribute to keep, if anything is left in it.
fn cfg_attr(
    attr: &Attribute,
    outer: &[TokenStream],
    found: &mut Vec<(Attribute, Vec<TokenStream>)>,
    cfgs: &mut Vec<TokenStream>,
) -> syn::Result<Option<Attribute>> {
    let (pred, metas) = attr.parse_args_with(|input: syn::parse::ParseStream| {
        let pred: Meta = input.parse()?;
        let _: Token![,] = input.parse()?;
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated(input)?;
        Ok((pred, metas))
    })?;
    let mut conds = outer.to_vec();
    conds.push(pred.to_token_stream());
    let mut kept: Vec<Meta> = Vec::new();
    for meta in metas {
        if is_handler_path(meta.path()) {
            let a: Attribute = syn::parse_quote_spanned!(meta.span()=> #[#meta]);
            found.push((a, conds.clone()));
        } else if meta.path().is_ident("cfg") {
            let inner = match &meta {
                Meta::List(l) => l.tokens.clone(),
                _ => return Err(syn::Error::new_spanned(&meta, "expected `cfg(predicate)`")),
            };
            cfgs.push(quote!(any(not(all(#(#conds),*)), #inner)));
            kept.push(meta);
        } else if meta.path().is_ident("cfg_attr") {
            let nested: Attribute = syn::parse_quote!(#[#meta]);
            if let Some(rebuilt) = cfg_attr(&nested, &conds, found, cfgs)? {
                kept.push(rebuilt.meta);
            }
        } else {
            kept.push(meta);
        }
    }
    if kept.is_empty() {
        return Ok(None);
    }
    let path = attr.path();
    let rebuilt: Attribute = syn::parse_quote_spanned!(attr.span()=> #[#path(#pred, #(#kept),*)]);
    Ok(Some(rebuilt))
}

// ---------------------------------------------------------------------------------------
// Handler attributes
// ---------------------------------------------------------------------------------------

/// Parse one handler attribute. A bad I/O option is reported (in `errors`) without
/// losing the handler: the field is still known to be watched, so its other handlers
/// (an `#[on_timeout]`) are not reported as well.
fn handler_kind(attr: &Attribute, errors: &mut Errors) -> syn::Result<(Ident, HandlerKind)> {
    let name = attr
        .path()
        .segments
        .last()
        .map(|s| s.ident.clone())
        .ok_or_else(|| syn::Error::new_spanned(attr, "expected a handler attribute"))?;
    let args: Vec<Expr> = match &attr.meta {
        Meta::Path(_) => Vec::new(),
        Meta::List(list) => Punctuated::<Expr, Token![,]>::parse_terminated
            .parse2(list.tokens.clone())?
            .into_iter()
            .collect(),
        Meta::NameValue(nv) => {
            return Err(syn::Error::new_spanned(
                nv,
                format!("write the arguments in parentheses: `#[{name}(...)]`"),
            ))
        }
    };
    let kind = match name.to_string().as_str() {
        "on_read" => {
            let (field, rest) = field_arg(&name, &args)?;
            let io = io_options(&name, rest, true).unwrap_or_else(|e| {
                errors.push(e);
                IoOptions::default()
            });
            HandlerKind::Read { field, io }
        }
        "on_write" => {
            let (field, rest) = field_arg(&name, &args)?;
            let io = io_options(&name, rest, false).unwrap_or_else(|e| {
                errors.push(e);
                IoOptions::default()
            });
            HandlerKind::Write { field, io }
        }
        "on_timeout" => {
            let (field, rest) = field_arg(&name, &args)?;
            let mut ms = None;
            for arg in rest {
                match option(arg) {
                    Some(("ms", _, Some(value))) => {
                        if ms.is_some() {
                            return Err(syn::Error::new_spanned(arg, "option `ms` is given twice"));
                        }
                        ms = Some(millis(value, "idle timeout")?);
                    }
                    Some(("ms", id, None)) => {
                        return Err(syn::Error::new(
                            id.span(),
                            "`ms` takes the idle time: `ms = 30_000`",
                        ))
                    }
                    _ => return Err(unknown_option(&name, arg, &["ms = N"])),
                }
            }
            let ms = ms.ok_or_else(|| {
                syn::Error::new_spanned(
                    attr,
                    format!(
                        "`#[on_timeout]` needs the idle time: `#[on_timeout({field}, ms = 30_000)]`"
                    ),
                )
            })?;
            HandlerKind::Timeout { field, ms }
        }
        "on_timer" => {
            let Some(first) = args.first() else {
                return Err(syn::Error::new_spanned(
                    attr,
                    "`#[on_timer]` needs its period in milliseconds: `#[on_timer(1000)]` (every second) or `#[on_timer(1000, once)]`",
                ));
            };
            let ms = match option(first) {
                Some(("ms", _, Some(v))) => millis(v, "timer period")?,
                _ => millis(first, "timer period")?,
            };
            let mut once = None;
            let mut priority = None;
            for arg in &args[1..] {
                match option(arg) {
                    Some(("once", id, None)) => set_flag(&mut once, id)?,
                    Some(("priority", _, Some(v))) => set_priority(&mut priority, arg, v)?,
                    _ => return Err(unknown_option(&name, arg, &["once", "priority = N"])),
                }
            }
            HandlerKind::Timer { ms, once, priority }
        }
        "on_signal" => {
            let Some(first) = args.first() else {
                return Err(syn::Error::new_spanned(
                    attr,
                    "`#[on_signal]` needs the signal: `#[on_signal(SIGHUP)]`",
                ));
            };
            let signal = signal(first)?;
            let mut priority = None;
            for arg in &args[1..] {
                match option(arg) {
                    Some(("priority", _, Some(v))) => set_priority(&mut priority, arg, v)?,
                    _ => return Err(unknown_option(&name, arg, &["priority = N"])),
                }
            }
            HandlerKind::Signal { signal, priority }
        }
        other => {
            if let Meta::List(list) = &attr.meta {
                return Err(syn::Error::new(
                    list.delimiter.span().join(),
                    format!("`#[{other}]` takes no arguments: write `#[{other}]`"),
                ));
            }
            match other {
                "on_start" => HandlerKind::Start,
                "on_idle" => HandlerKind::Idle,
                "before_wait" => HandlerKind::BeforeWait,
                "after_wait" => HandlerKind::AfterWait,
                _ => HandlerKind::Wake,
            }
        }
    };
    Ok((name, kind))
}

/// The first argument of a field handler: the field's name.
fn field_arg<'a>(name: &Ident, args: &'a [Expr]) -> syn::Result<(Ident, &'a [Expr])> {
    let Some(first) = args.first() else {
        return Err(syn::Error::new(
            name.span(),
            format!("`#[{name}]` needs the field it watches: `#[{name}(field)]`"),
        ));
    };
    match expr_ident(first) {
        Some(id) if !HANDLER_OPTION_WORDS.contains(&id.to_string().as_str()) => {
            Ok((id.clone(), &args[1..]))
        }
        _ => Err(syn::Error::new_spanned(
            first,
            format!("expected the name of the field to watch first: `#[{name}(field, ...)]`"),
        )),
    }
}

const HANDLER_OPTION_WORDS: &[&str] = &[
    "priority",
    "edge",
    "oneshot",
    "peer_closed",
    "write_only",
    "raw_accept",
    "ms",
];

fn io_options(name: &Ident, args: &[Expr], read: bool) -> syn::Result<IoOptions> {
    let mut io = IoOptions::default();
    let valid: &[&str] = if read {
        &[
            "priority = N",
            "edge",
            "oneshot",
            "peer_closed",
            "raw_accept",
        ]
    } else {
        &["priority = N", "edge", "oneshot", "write_only"]
    };
    for arg in args {
        match option(arg) {
            Some(("priority", _, Some(v))) => set_priority(&mut io.priority, arg, v)?,
            Some(("edge", id, None)) => set_flag(&mut io.edge, id)?,
            Some(("oneshot", id, None)) => set_flag(&mut io.oneshot, id)?,
            Some(("peer_closed", id, None)) if read => set_flag(&mut io.peer_closed, id)?,
            Some(("raw_accept", id, None)) if read => set_flag(&mut io.raw_accept, id)?,
            Some(("write_only", id, None)) if !read => set_flag(&mut io.write_only, id)?,
            Some(("write_only", id, None)) => {
                return Err(syn::Error::new(
                    id.span(),
                    "`write_only` is an `#[on_write]` option (it says the field is never read): remove it from `#[on_read]`",
                ))
            }
            Some(("peer_closed", id, None)) => {
                return Err(syn::Error::new(
                    id.span(),
                    "`peer_closed` is an `#[on_read]` option (the peer's hang-up is read-side news): move it to the field's `#[on_read]`",
                ))
            }
            Some(("raw_accept", id, None)) => {
                return Err(syn::Error::new(
                    id.span(),
                    "`raw_accept` is an `#[on_read]` option (it says the accept handler deals with EMFILE itself): move it to the listener's `#[on_read]`",
                ))
            }
            _ => return Err(unknown_option(name, arg, valid)),
        }
    }
    Ok(io)
}

fn set_flag(slot: &mut Option<Span>, id: &Ident) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            id.span(),
            format!("option `{id}` is given twice: keep one"),
        ));
    }
    *slot = Some(id.span());
    Ok(())
}

fn set_priority(slot: &mut Option<Priority>, arg: &Expr, value: &Expr) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            arg,
            "option `priority` is given twice: keep one",
        ));
    }
    let lit = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => lit,
        _ => {
            return Err(syn::Error::new_spanned(
                value,
                "`priority` takes an integer literal: `priority = 0` (0 is the most urgent)",
            ))
        }
    };
    match lit.base10_parse::<u8>() {
        Ok(v) => {
            *slot = Some(Priority {
                value: v,
                span: lit.span(),
            });
            Ok(())
        }
        Err(_) => Err(syn::Error::new(
            lit.span(),
            "`priority` must be between 0 (the most urgent) and the machine's `priorities` - 1",
        )),
    }
}

/// `name` or `name = value`, as written.
fn option(arg: &Expr) -> Option<(&'static str, &Ident, Option<&Expr>)> {
    let (id, value) = match arg {
        Expr::Assign(a) => (expr_ident(&a.left)?, Some(&*a.right)),
        other => (expr_ident(other)?, None),
    };
    let known = [
        "priority",
        "edge",
        "oneshot",
        "peer_closed",
        "write_only",
        "raw_accept",
        "once",
        "ms",
    ];
    let name = known.iter().find(|k| id == *k)?;
    Some((name, id, value))
}

fn unknown_option(attr: &Ident, arg: &Expr, valid: &[&str]) -> syn::Error {
    let list = valid
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let (span_of, name) = match arg {
        Expr::Assign(a) => (
            a.left.to_token_stream(),
            expr_ident(&a.left).map(|i| i.to_string()),
        ),
        other => (
            other.to_token_stream(),
            expr_ident(other).map(|i| i.to_string()),
        ),
    };
    let what = match &name {
        Some(n) => format!("unknown option `{n}` for `#[{attr}]`"),
        None => format!("unexpected argument to `#[{attr}]`"),
    };
    let names: Vec<&str> = valid
        .iter()
        .map(|v| v.split(' ').next().unwrap_or(v))
        .collect();
    let hint = name
        .as_deref()
        .and_then(|n| signals::closest(n, &names))
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    syn::Error::new_spanned(span_of, format!("{what}; {hint}expected one of: {list}"))
}

fn expr_ident(e: &Expr) -> Option<&Ident> {
    match e {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => p.path.get_ident(),
        _ => None,
    }
}

/// A number of milliseconds: an integer literal in `1..=MAX_MS`.
fn millis(e: &Expr, what: &str) -> syn::Result<Millis> {
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => {
            let suffix = lit.suffix();
            if !suffix.is_empty() && !INT_SUFFIXES.contains(&suffix) {
                return Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "unexpected suffix `{suffix}`: the {what} is a plain number of milliseconds, e.g. `{}`",
                        lit.base10_digits()
                    ),
                ));
            }
            match lit.base10_parse::<u64>() {
                Ok(0) => Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "a {what} of 0 ms is not allowed: use at least 1 (for work whenever the loop is idle, use `#[on_idle]`)"
                    ),
                )),
                Ok(v) if v <= MAX_MS => Ok(Millis { value: v }),
                _ => Err(syn::Error::new(
                    lit.span(),
                    format!("{what} out of range: at most 31_536_000_000 ms (one year)"),
                )),
            }
        }
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => Err(syn::Error::new_spanned(
            e,
            format!("a {what} cannot be negative: give a number of milliseconds from 1 to 31_536_000_000"),
        )),
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => Err(syn::Error::new(
            f.span(),
            format!("the {what} must be a whole number of milliseconds, e.g. `1000`, not `{f}`"),
        )),
        _ => Err(syn::Error::new_spanned(
            e,
            format!(
                "the {what} must be an integer literal (milliseconds), e.g. `1000`; constants and expressions are not evaluated here"
            ),
        )),
    }
}

const INT_SUFFIXES: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
];

/// `SIGHUP`, `SIGRTMIN`, `SIGRTMIN + n`, `SIGRTMAX - n`.
fn signal(e: &Expr) -> syn::Result<Signal> {
    let span = e.span();
    match e {
        Expr::Path(_) => {
            let Some(id) = expr_ident(e) else {
                return Err(syn::Error::new_spanned(
                    e,
                    "expected a signal name: `#[on_signal(SIGHUP)]`",
                ));
            };
            let name = id.to_string();
            match name.as_str() {
                "SIGRTMIN" => Ok(Signal {
                    which: SignalName::RtMin(0),
                    span,
                }),
                "SIGRTMAX" => Ok(Signal {
                    which: SignalName::RtMax(0),
                    span,
                }),
                _ => signals::lookup(&name, id.span()).map(|n| Signal {
                    which: SignalName::Named(n),
                    span,
                }),
            }
        }
        Expr::Binary(b) => {
            let Some(base) = expr_ident(&b.left) else {
                return Err(syn::Error::new_spanned(
                    e,
                    "expected `SIGRTMIN + n` or `SIGRTMAX - n`",
                ));
            };
            let offset = match &*b.right {
                Expr::Lit(ExprLit {
                    lit: Lit::Int(lit), ..
                }) => lit.base10_parse::<u32>().map_err(|_| {
                    syn::Error::new(lit.span(), "the offset must be a small integer literal")
                })?,
                other => {
                    return Err(syn::Error::new_spanned(
                        other,
                        "the offset must be an integer literal: `SIGRTMIN + 1`",
                    ))
                }
            };
            let base_name = base.to_string();
            match (base_name.as_str(), &b.op) {
                ("SIGRTMIN", BinOp::Add(_)) => Ok(Signal {
                    which: SignalName::RtMin(offset),
                    span,
                }),
                ("SIGRTMAX", BinOp::Sub(_)) => Ok(Signal {
                    which: SignalName::RtMax(offset),
                    span,
                }),
                ("SIGRTMIN", _) => Err(syn::Error::new_spanned(
                    e,
                    "real-time signals count up from `SIGRTMIN`: write `SIGRTMIN + n`",
                )),
                ("SIGRTMAX", _) => Err(syn::Error::new_spanned(
                    e,
                    "real-time signals count down from `SIGRTMAX`: write `SIGRTMAX - n`",
                )),
                _ => Err(syn::Error::new_spanned(
                    e,
                    format!(
                        "only `SIGRTMIN + n` and `SIGRTMAX - n` take an offset; `{base_name}` is a signal of its own"
                    ),
                )),
            }
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Err(syn::Error::new(
            s.span(),
            format!(
                "write the signal's name without quotes: `#[on_signal({})]`",
                s.value()
            ),
        )),
        Expr::Lit(ExprLit {
            lit: Lit::Int(_), ..
        }) => Err(syn::Error::new(
            span,
            "name the signal (`SIGHUP`), not its number: numbers differ between systems",
        )),
        _ => Err(syn::Error::new(
            span,
            "expected a signal name: `#[on_signal(SIGHUP)]`, `#[on_signal(SIGRTMIN + 1)]`",
        )),
    }
}

//! Analysis of the handlers as a whole: the tag of each watched field (1, 2, ... in order
//! of first appearance), which handlers share a field (its watch is their union), and
//! what is refused: two handlers for one field and interest, one signal or one hook;
//! handlers of one field that disagree on how it is registered. Each such error names
//! both places.
//!
//! Two handlers under *different* `#[cfg]`s may be alternatives: the macro cannot
//! evaluate cfgs, so it emits a `compile_error!` gated on both cfgs holding.

use proc_macro2::{Span, TokenStream};
use syn::Ident;

use crate::syntax::ast::*;
use crate::Errors;

/// A watched field.
pub struct Field {
    pub name: Ident,
    pub tag: u16,
    /// Indices into the handlers.
    pub read: Vec<usize>,
    pub write: Vec<usize>,
    pub timeout: Vec<usize>,
}

impl Field {
    /// Every handler of the field, in dispatch order (read, write, timeout).
    pub fn all(&self) -> impl Iterator<Item = usize> + '_ {
        self.read
            .iter()
            .chain(&self.write)
            .chain(&self.timeout)
            .copied()
    }
}

/// Two handlers that may not both be compiled in.
pub struct CfgConflict {
    /// The handlers (indices).
    pub first: usize,
    pub second: usize,
    pub span: Span,
    pub message: String,
}

/// What codegen needs, by handler index.
#[derive(Default)]
pub struct Analysis {
    pub fields: Vec<Field>,
    /// Timer `i` is `timers[i]`; its token's payload is `i`.
    pub timers: Vec<usize>,
    /// Signal `i` is `signals[i]`; its token's payload is `i`.
    pub signals: Vec<usize>,
    pub start: Vec<usize>,
    pub idle: Vec<usize>,
    pub before_wait: Vec<usize>,
    pub after_wait: Vec<usize>,
    pub wake: Vec<usize>,
    pub cfg_conflicts: Vec<CfgConflict>,
}

pub fn analyze(handlers: &[Handler], errors: &mut Errors) -> Analysis {
    let mut a = Analysis::default();
    for (i, h) in handlers.iter().enumerate() {
        match &h.kind {
            HandlerKind::Read { field, .. }
            | HandlerKind::Write { field, .. }
            | HandlerKind::Timeout { field, .. } => {
                let f = match a.fields.iter_mut().position(|f| f.name == *field) {
                    Some(p) => &mut a.fields[p],
                    None => {
                        let tag = a.fields.len() as u16 + 1;
                        a.fields.push(Field {
                            name: field.clone(),
                            tag,
                            read: Vec::new(),
                            write: Vec::new(),
                            timeout: Vec::new(),
                        });
                        a.fields.last_mut().expect("just pushed")
                    }
                };
                match h.kind {
                    HandlerKind::Read { .. } => f.read.push(i),
                    HandlerKind::Write { .. } => f.write.push(i),
                    _ => f.timeout.push(i),
                }
            }
            HandlerKind::Timer { .. } => a.timers.push(i),
            HandlerKind::Signal { .. } => a.signals.push(i),
            HandlerKind::Start => a.start.push(i),
            HandlerKind::Idle => a.idle.push(i),
            HandlerKind::BeforeWait => a.before_wait.push(i),
            HandlerKind::AfterWait => a.after_wait.push(i),
            HandlerKind::Wake => a.wake.push(i),
        }
    }

    let mut conflicts = Vec::new();
    for f in &a.fields {
        for (list, what) in [
            (&f.read, "on_read"),
            (&f.write, "on_write"),
            (&f.timeout, "on_timeout"),
        ] {
            duplicates(handlers, list, errors, &mut conflicts, |h| {
                (
                    h.kind.field().map_or(f.name.span(), |id| id.span()),
                    format!(
                        "`{}` already has an `#[{what}]` handler; one handler per field and interest: merge the two methods",
                        f.name
                    ),
                    format!("first `#[{what}({})]` handler defined here", f.name),
                )
            });
        }
        agree(handlers, f, errors);
        if f.read.is_empty() && f.write.is_empty() {
            errors.push(syn::Error::new(
                f.name.span(),
                format!(
                    "`#[on_timeout({})]` needs an `#[on_read({0})]` or `#[on_write({0})]` handler too: the idle timeout is restarted by the field's I/O, so the field must be watched for some",
                    f.name
                ),
            ));
        }
    }
    // Signals: one handler per signal.
    let mut groups: Vec<(SignalName, Vec<usize>)> = Vec::new();
    for &i in &a.signals {
        if let HandlerKind::Signal { signal, .. } = &handlers[i].kind {
            match groups.iter_mut().find(|(n, _)| *n == signal.which) {
                Some((_, g)) => g.push(i),
                None => groups.push((signal.which.clone(), vec![i])),
            }
        }
    }
    for (_, g) in &groups {
        duplicates(handlers, g, errors, &mut conflicts, |h| {
            let HandlerKind::Signal { signal, .. } = &h.kind else {
                unreachable!("a signal group holds signal handlers")
            };
            (
                signal.span,
                format!(
                    "`{}` already has a handler; one handler per signal: merge the two methods",
                    signal.display()
                ),
                format!(
                    "first `#[on_signal({})]` handler defined here",
                    signal.display()
                ),
            )
        });
    }
    for (list, what) in [
        (&a.start, "on_start"),
        (&a.idle, "on_idle"),
        (&a.before_wait, "before_wait"),
        (&a.after_wait, "after_wait"),
        (&a.wake, "on_wake"),
    ] {
        duplicates(handlers, list, errors, &mut conflicts, |h| {
            (
                h.attr.span(),
                format!("a machine has one `#[{what}]` handler: merge the two methods"),
                format!("first `#[{what}]` handler defined here"),
            )
        });
    }
    a.cfg_conflicts = conflicts;
    a
}

/// Report pairs in `list` (handlers of one role). `describe(h)` gives the span to point
/// at in `h`, the message for the second and the note for the first.
fn duplicates(
    handlers: &[Handler],
    list: &[usize],
    errors: &mut Errors,
    conflicts: &mut Vec<CfgConflict>,
    describe: impl Fn(&Handler) -> (Span, String, String),
) {
    for (n, &second) in list.iter().enumerate().skip(1) {
        for &first in &list[..n] {
            let (a, b) = (&handlers[first], &handlers[second]);
            let (span, msg, _) = describe(b);
            let (first_span, _, note) = describe(a);
            if cfg_key(&a.cfgs) == cfg_key(&b.cfgs) {
                errors.push(syn::Error::new(span, msg));
                errors.push(syn::Error::new(first_span, note));
                break;
            }
            conflicts.push(CfgConflict {
                first,
                second,
                span,
                message: format!(
                    "{msg} (`{}` and `{}` are both compiled in with this configuration)",
                    a.method, b.method
                ),
            });
        }
    }
}

fn cfg_key(cfgs: &[TokenStream]) -> Vec<String> {
    let mut v: Vec<String> = cfgs.iter().map(|c| c.to_string()).collect();
    v.sort();
    v
}

/// Handlers of one field register it once: they must agree on priority, edge and
/// one-shot.
fn agree(handlers: &[Handler], f: &Field, errors: &mut Errors) {
    let io: Vec<(usize, &IoOptions)> = f
        .read
        .iter()
        .chain(&f.write)
        .filter_map(|&i| match &handlers[i].kind {
            HandlerKind::Read { io, .. } | HandlerKind::Write { io, .. } => Some((i, io)),
            _ => None,
        })
        .collect();
    let Some(&(first, first_io)) = io.first() else {
        return;
    };
    let label = |i: usize| {
        let h = &handlers[i];
        format!("`#[{}({})]`", h.attr, f.name)
    };
    for &(i, o) in &io[1..] {
        for (name, a, b) in [
            ("edge", first_io.edge, o.edge),
            ("oneshot", first_io.oneshot, o.oneshot),
        ] {
            if a.is_some() != b.is_some() {
                let (with, without, span) = if a.is_some() {
                    (first, i, a)
                } else {
                    (i, first, b)
                };
                let span = span.expect("one side has it");
                let without_h = &handlers[without];
                errors.push(syn::Error::new(
                    without_h.attr.span(),
                    format!(
                        "conflicting options for `{}`: {} has `{name}` but {} does not; the field is registered once, so its handlers must agree: add `{name}` here or remove it there",
                        f.name,
                        label(with),
                        label(without),
                    ),
                ));
                errors.push(syn::Error::new(span, format!("`{name}` given here")));
            }
        }
        let (pa, pb) = (first_io.priority, o.priority);
        let differ = match (pa, pb) {
            (Some(x), Some(y)) => x.value != y.value,
            (None, None) => false,
            _ => true,
        };
        if differ {
            let show = |p: Option<Priority>| match p {
                Some(p) => format!("`priority = {}`", p.value),
                None => "the default priority".to_string(),
            };
            let span_b = pb
                .map(|p| p.span)
                .unwrap_or_else(|| handlers[i].attr.span());
            let span_a = pa
                .map(|p| p.span)
                .unwrap_or_else(|| handlers[first].attr.span());
            errors.push(syn::Error::new(
                span_b,
                format!(
                    "conflicting options for `{}`: {} has {} but {} has {}; the field is registered once, at one priority: give both the same",
                    f.name,
                    label(i),
                    show(pb),
                    label(first),
                    show(pa),
                ),
            ));
            errors.push(syn::Error::new(span_a, format!("{} given here", show(pa))));
        }
    }
}

/// `any(all(cfgs of a), all(cfgs of b), ...)`, or nothing if one of them has no cfg.
pub fn any_of<'a>(
    handlers: &'a [Handler],
    list: impl IntoIterator<Item = &'a usize>,
) -> Option<TokenStream> {
    let mut alts = Vec::new();
    for &i in list {
        let c = &handlers[i].cfgs;
        if c.is_empty() {
            return None;
        }
        alts.push(quote::quote!(all(#(#c),*)));
    }
    if alts.is_empty() {
        return None;
    }
    Some(quote::quote!(any(#(#alts),*)))
}

/// `#[cfg(all(...))]` for a handler, or nothing.
pub fn cfg_attr(h: &Handler) -> TokenStream {
    if h.cfgs.is_empty() {
        return TokenStream::new();
    }
    let c = &h.cfgs;
    quote::quote!(#[cfg(all(#(#c),*))])
}

/// `#[cfg(pred)]` from `any_of`, or nothing.
pub fn cfg_of(pred: Option<TokenStream>) -> TokenStream {
    match pred {
        Some(p) => quote::quote!(#[cfg(#p)]),
        None => TokenStream::new(),
    }
}

//! What the parser produces: the struct with its options, the impl block with its
//! handlers. Everything keeps the user's spans so that later stages can point at the
//! token a message is about.

use proc_macro2::{Span, TokenStream};
use syn::{Ident, ItemImpl, ItemStruct, Type};

/// `#[event_machine(...)] struct S { ... }`.
pub struct StructInput {
    pub item: ItemStruct,
    pub options: StructOptions,
}

/// The struct attribute's options, each with the span of its value.
#[derive(Default)]
pub struct StructOptions {
    pub backend: Option<Type>,
    pub sources: Option<(u64, Span)>,
    pub timers: Option<(u64, Span)>,
    pub events: Option<(u64, Span)>,
    pub priorities: Option<(u64, Span)>,
    pub activations: Option<(u64, Span)>,
}

/// `#[event_machine] impl S { ... }`: the block with every handler attribute taken out
/// (the methods stay), plus the handlers found.
pub struct ImplInput {
    pub item: ItemImpl,
    pub handlers: Vec<Handler>,
}

/// One handler attribute on one method (a method may carry several).
pub struct Handler {
    /// The method's name.
    pub method: Ident,
    /// `#[cfg(...)]` predicates on the method, plus the predicates of the `cfg_attr`s the
    /// handler attribute was found in: the handler exists when all of them hold.
    pub cfgs: Vec<TokenStream>,
    pub kind: HandlerKind,
    /// The attribute's name (`on_read`), for messages and spans.
    pub attr: Ident,
    /// The method's index in the impl block's items (for its signature).
    pub item: usize,
    /// What the signature declares, filled in by `check.rs`.
    pub sig: SigShape,
}

/// The parameters a handler's signature declares after `&mut self`.
#[derive(Clone, Copy, Default)]
pub struct SigShape {
    /// `key: Key` before `ctx`.
    pub key: Option<Span>,
    /// `ev: Event` after `ctx`.
    pub event: Option<Span>,
}

/// Which attribute, with its arguments.
pub enum HandlerKind {
    Read {
        field: Ident,
        io: IoOptions,
    },
    Write {
        field: Ident,
        io: IoOptions,
    },
    Timeout {
        field: Ident,
        ms: Millis,
    },
    Timer {
        ms: Millis,
        once: Option<Span>,
        priority: Option<Priority>,
    },
    Signal {
        signal: Signal,
        priority: Option<Priority>,
    },
    Start,
    Idle,
    BeforeWait,
    AfterWait,
    Wake,
}

/// Options of `on_read` / `on_write`.
#[derive(Default, Clone)]
pub struct IoOptions {
    pub priority: Option<Priority>,
    pub edge: Option<Span>,
    pub oneshot: Option<Span>,
    /// `on_read` only.
    pub peer_closed: Option<Span>,
    /// `on_write` only: the field is written and never read, on purpose.
    pub write_only: Option<Span>,
    /// `on_read` only: the field is a plain `TcpListener`/`UnixListener` whose handler
    /// deals with `EMFILE` itself (no nudge towards `Listener`).
    pub raw_accept: Option<Span>,
}

/// `priority = N`.
#[derive(Clone, Copy)]
pub struct Priority {
    pub value: u8,
    pub span: Span,
}

/// A duration in milliseconds, checked to be in range.
#[derive(Clone, Copy)]
pub struct Millis {
    pub value: u64,
}

/// `SIGHUP`, `SIGRTMIN + n`, `SIGRTMAX - n`.
#[derive(Clone)]
pub struct Signal {
    pub which: SignalName,
    pub span: Span,
}

#[derive(Clone, PartialEq, Eq)]
pub enum SignalName {
    /// A name from the table in `signals.rs` (`"SIGHUP"`).
    Named(&'static str),
    RtMin(u32),
    RtMax(u32),
}

impl Signal {
    /// How the user wrote it (for messages).
    pub fn display(&self) -> String {
        match &self.which {
            SignalName::Named(n) => (*n).to_string(),
            SignalName::RtMin(0) => "SIGRTMIN".into(),
            SignalName::RtMax(0) => "SIGRTMAX".into(),
            SignalName::RtMin(n) => format!("SIGRTMIN + {n}"),
            SignalName::RtMax(n) => format!("SIGRTMAX - {n}"),
        }
    }
}

impl HandlerKind {
    /// The watched field, for field handlers.
    pub fn field(&self) -> Option<&Ident> {
        match self {
            HandlerKind::Read { field, .. }
            | HandlerKind::Write { field, .. }
            | HandlerKind::Timeout { field, .. } => Some(field),
            _ => None,
        }
    }
}

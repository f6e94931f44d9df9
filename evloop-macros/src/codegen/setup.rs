//! The body of the generated `setup`, in order: watched fields (by tag), timers,
//! signals, the wake source, idling, and last the `on_start` handler, which sees every
//! registration done.

use proc_macro2::TokenStream;
use quote::quote;

use super::{fields, hooks, signals, timers, Gen};

pub fn body(g: &Gen) -> TokenStream {
    let fields = g.analysis.fields.iter().map(|f| fields::setup(g, f));
    let timers = timers::setup(g);
    let signals = signals::setup(g);
    let wake = hooks::wake_setup(g);
    let idle = hooks::idle_setup(g);
    let start = hooks::start_call(g);
    quote! {
        #[allow(unused_imports)]
        use ::evloop::__private::shape::{ProbeOther as _, ProbeSource as _};
        #[allow(unused_imports)]
        use ::evloop::__private::nudge::{ProbeNotPlain as _, ProbePlain as _};
        #(#fields)*
        #timers
        #signals
        #wake
        #idle
        #start
        ::core::result::Result::Ok(())
    }
}

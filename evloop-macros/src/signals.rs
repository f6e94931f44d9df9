//! Signal names: the table `#[on_signal]` accepts (the names evloop-core's
//! `signal_number` knows), the ones refused and why, and suggestions by edit distance.
//! The test at the end checks these tables against the runtime's (`evloop_core::SIGNALS`,
//! `can_watch_signal`), so the two cannot drift apart.
//!
//! Only names are decided here. The numbers are the target's, emitted as
//! `::evloop::__private::signals::SIGHUP`: a proc macro runs on the build host, so a name
//! the target lacks (`SIGUSR1` on Windows, `SIGBREAK` on Unix) is refused there, by the
//! compiler, on the name's token.

use proc_macro2::Span;

/// Every catchable signal `#[on_signal]` accepts by name (the real-time ones are
/// written `SIGRTMIN + n` / `SIGRTMAX - n`).
pub const CATCHABLE: &[&str] = &[
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGTRAP",
    "SIGABRT",
    "SIGUSR1",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGCHLD",
    "SIGCONT",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGSYS",
    // Windows only (Ctrl-Break).
    "SIGBREAK",
];

/// Names in [`CATCHABLE`] that only Windows has.
#[cfg(test)]
const WINDOWS_ONLY: &[&str] = &["SIGBREAK"];

/// Signals the kernel never lets a process catch.
const UNCATCHABLE: &[&str] = &["SIGKILL", "SIGSTOP"];

/// Synchronous faults: refused, because the faulting code cannot continue until a
/// handler in the loop runs, later.
const FAULTS: &[&str] = &["SIGSEGV", "SIGBUS", "SIGILL", "SIGFPE"];

/// The canonical name for `name`, or the error to report on `span`.
pub fn lookup(name: &str, span: Span) -> syn::Result<&'static str> {
    if let Some(n) = CATCHABLE.iter().find(|n| **n == name) {
        return Ok(n);
    }
    if UNCATCHABLE.contains(&name) {
        return Err(syn::Error::new(
            span,
            format!(
                "`{name}` cannot be caught: the kernel acts on it without asking the process; handle `SIGTERM` for a graceful shutdown"
            ),
        ));
    }
    if FAULTS.contains(&name) {
        return Err(syn::Error::new(
            span,
            format!(
                "`{name}` is refused: it reports a synchronous fault, which must be handled where it happens, not later in the event loop"
            ),
        ));
    }
    // `HUP` for `SIGHUP`, or a typo.
    let with_prefix = format!("SIG{name}");
    let suggestion = if CATCHABLE.contains(&with_prefix.as_str()) {
        Some(with_prefix.clone())
    } else {
        let upper = name.to_ascii_uppercase();
        closest(&upper, CATCHABLE)
            .or_else(|| closest(&format!("SIG{upper}"), CATCHABLE))
            .map(str::to_string)
    };
    let msg = match suggestion {
        Some(s) => format!("unknown signal `{name}`; did you mean `{s}`?"),
        None => format!(
            "unknown signal `{name}`; expected one of: {}, `SIGRTMIN + n`, `SIGRTMAX - n`",
            CATCHABLE
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Err(syn::Error::new(span, msg))
}

/// The candidate closest to `word`, if it is close enough to be a likely typo: at most
/// a third of the word's length in edits (at least 1).
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(closest("SIGHUB", CATCHABLE), Some("SIGHUP"));
        assert_eq!(closest("SIGCHILD", CATCHABLE), Some("SIGCHLD"));
        assert_eq!(closest("NOTHINGLIKEIT", CATCHABLE), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn lookups() {
        let s = Span::call_site();
        assert_eq!(lookup("SIGHUP", s).ok(), Some("SIGHUP"));
        assert!(lookup("HUP", s)
            .unwrap_err()
            .to_string()
            .contains("did you mean `SIGHUP`"));
        assert!(lookup("SIGKILL", s)
            .unwrap_err()
            .to_string()
            .contains("cannot be caught"));
        assert!(lookup("SIGSEGV", s)
            .unwrap_err()
            .to_string()
            .contains("refused"));
    }
}

#[cfg(test)]
mod runtime_agrees {
    use super::{CATCHABLE, FAULTS, UNCATCHABLE, WINDOWS_ONLY};

    fn number(name: &str) -> i32 {
        evloop_core::signal_number(name).unwrap_or_else(|| panic!("the runtime has no {name}"))
    }

    #[test]
    fn every_name_the_macro_accepts_the_runtime_watches() {
        for name in CATCHABLE.iter().filter(|n| !WINDOWS_ONLY.contains(n)) {
            assert!(evloop_core::can_watch_signal(number(name)), "{name}");
        }
    }

    #[test]
    fn every_name_the_macro_refuses_the_runtime_refuses() {
        for name in UNCATCHABLE.iter().chain(FAULTS) {
            assert!(!evloop_core::can_watch_signal(number(name)), "{name}");
        }
    }

    #[test]
    fn the_macro_knows_every_name_the_runtime_knows() {
        let mut ours: Vec<&str> = CATCHABLE
            .iter()
            .chain(UNCATCHABLE)
            .chain(FAULTS)
            .copied()
            .filter(|n| !WINDOWS_ONLY.contains(n))
            .collect();
        let mut theirs: Vec<&str> = evloop_core::SIGNALS.iter().map(|(n, _)| *n).collect();
        ours.sort_unstable();
        theirs.sort_unstable();
        assert_eq!(ours, theirs);
    }
}

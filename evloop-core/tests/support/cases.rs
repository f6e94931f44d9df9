//! The `main` of a `harness = false` test that is a list of named cases, each returning
//! its summary line or why it failed: `--list` lists them (as libtest does, for
//! `cargo test -- --list`), positional arguments select cases by substring, flags are
//! ignored; it prints one line per case and `N passed, N failed`, and exits non-zero if
//! any failed.
//!
//! Included with `#[path = …] mod cases;` by the allocation tests of evloop-core
//! (`alloc_free.rs`, `alloc_free_buffered.rs`) and evloop (`alloc_free_macro.rs`).

/// A named case.
pub type Case = (&'static str, fn() -> Result<String, String>);

/// Run `cases` as the command line asks (see the module docs).
pub fn main(cases: Vec<Case>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for &(name, _) in &cases {
            println!("{name}: test");
        }
        return;
    }
    // Positional arguments select cases by substring; flags (as libtest's) are ignored.
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        match case() {
            Ok(line) => {
                println!("{line}");
                passed += 1;
            }
            Err(e) => {
                println!("FAILED {name}: {e}");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

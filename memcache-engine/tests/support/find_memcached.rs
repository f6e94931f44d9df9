//! Where the real memcached is, for the differential tests: used at build time by the
//! build scripts of this crate and of `evloop-examples` (`build.rs`, which turn the
//! answer into a cfg) and at run time by `real_memcached.rs` (which starts it).
//!
//! Build-time and run-time lookups are the same function, so a test that the build
//! script let run finds the same binary.

use std::path::PathBuf;

/// The directories searched after the `PATH`: where Debian and a source install put it.
const USUAL_DIRS: [&str; 3] = ["/usr/bin", "/usr/local/bin", "/usr/sbin"];

/// `$MEMCACHED` if set (and `None` if it is set but names no file), else `memcached` in a
/// directory of the `PATH` or in `/usr/bin`, `/usr/local/bin` or `/usr/sbin`.
pub fn find_memcached() -> Option<PathBuf> {
    if let Some(explicit) = std::env::var_os("MEMCACHED") {
        let p = PathBuf::from(explicit);
        return p.is_file().then_some(p);
    }
    search_dirs()
        .into_iter()
        .map(|d| d.join("memcached"))
        .find(|p| p.is_file())
}

/// The directories [`find_memcached`] looks in when `$MEMCACHED` is not set, in order.
pub fn search_dirs() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(USUAL_DIRS.map(PathBuf::from))
        .collect()
}

/// Whether the environment says this is a CI run (`CI` set to anything but an empty
/// string, `0` or `false`, as GitHub Actions, GitLab CI and most others set `CI=true`):
/// there the differential tests must run, and fail if memcached is missing.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| {
        let v = v.trim();
        !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
    })
}

/// The whole build script of a crate with differential tests. It prints
///
/// - `cargo::rustc-cfg=memcached_missing` when memcached is not found and this is not a
///   CI run: the differential tests carry
///   `#[cfg_attr(memcached_missing, ignore = "...")]`, so `cargo test` reports them as
///   ignored instead of running them;
/// - nothing else when it is found, or in CI: the tests run (and, in CI without
///   memcached, fail with a message saying so), plus a `cargo::warning` in that case;
/// - the `rerun-if` lines that make Cargo run it again when the answer may change: the
///   variables `MEMCACHED`, `PATH` and `CI`; the binary found (its removal or upgrade);
///   or, when none was found, the directories searched (an install adds a file there),
///   or the directory `$MEMCACHED` names a file in.
#[allow(dead_code)] // the tests include this file for `find_memcached` only
pub fn build_script_main() {
    println!("cargo::rustc-check-cfg=cfg(memcached_missing)");
    for var in ["MEMCACHED", "PATH", "CI"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    match find_memcached() {
        Some(bin) => println!("cargo::rerun-if-changed={}", bin.display()),
        None => {
            let dirs = match std::env::var_os("MEMCACHED") {
                Some(p) => PathBuf::from(p)
                    .parent()
                    .map(PathBuf::from)
                    .into_iter()
                    .collect(),
                None => search_dirs(),
            };
            for dir in dirs.iter().filter(|d| watchable(d)) {
                println!("cargo::rerun-if-changed={}", dir.display());
            }
            if in_ci() {
                println!(
                    "cargo::warning=memcached not found, and CI is set: the differential \
                     tests will run and fail (install Debian's `memcached`, or set MEMCACHED)"
                );
            } else {
                println!("cargo::rustc-cfg=memcached_missing");
            }
        }
    }
}

/// Whether Cargo may watch `dir` for a new `memcached`: it must exist (a missing path
/// would make Cargo run the build script, and rebuild the crate, every time) and hold no
/// subdirectory (Cargo scans a watched directory recursively: `/` would mean the whole
/// file system). `/usr/bin` and the like qualify.
#[allow(dead_code)] // used by `build_script_main` only
fn watchable(dir: &std::path::Path) -> bool {
    dir.is_absolute()
        && std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .flatten()
                .all(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        })
}

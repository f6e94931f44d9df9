//! The book's "Compile errors" chapter (`book/src/compile-errors.md`) quotes what the
//! compiler prints; this test keeps the quotes true. In that chapter:
//!
//! - every ` ```text ` block must be a run of whole, consecutive lines of one blessed
//!   `fail/*.stderr` file (trailing spaces aside), so a message cannot be quoted from
//!   memory or drift from what the macro emits;
//! - every ` ```rust,compile_fail ` block must be followed, before the next Rust block,
//!   by a quote that names its case (`--> fail/NAME.rs:...`), and must be that case's
//!   code: `fail/NAME.rs` without its leading `//` comment lines, with rustdoc's hidden
//!   lines (`# ...`) shown and blank lines ignored.
//!
//! After re-blessing (`TRYBUILD=overwrite`), a quote that no longer matches fails here:
//! copy the new lines into the chapter.

use std::fs;
use std::path::{Path, PathBuf};

struct Block {
    /// The info string after the opening fence (`text`, `rust,compile_fail,E0277`).
    info: String,
    lines: Vec<String>,
    /// 1-based line of the opening fence in the chapter.
    at: usize,
}

fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in md.lines().enumerate() {
        match open.as_mut() {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    open = Some(Block {
                        info: info.trim().to_owned(),
                        lines: Vec::new(),
                        at: i + 1,
                    });
                }
            }
            Some(b) => {
                if line.trim_end() == "```" {
                    out.push(open.take().unwrap());
                } else {
                    b.lines.push(line.trim_end().to_owned());
                }
            }
        }
    }
    assert!(open.is_none(), "unclosed code block in the chapter");
    out
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// Every `fail/*.stderr`: (case name, lines without trailing spaces).
fn stderr_files() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root().join("fail")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "stderr") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = fs::read_to_string(&path).unwrap();
            out.push((
                name,
                text.lines().map(|l| l.trim_end().to_owned()).collect(),
            ));
        }
    }
    assert!(!out.is_empty(), "no fail/*.stderr found");
    out
}

fn contains_run(hay: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The case a quote names with its `--> fail/NAME.rs:` line, if any.
fn case_named(quote: &[String]) -> Option<String> {
    quote.iter().find_map(|l| {
        let rest = l.trim_start().strip_prefix("--> fail/")?;
        Some(rest.split(".rs:").next()?.to_owned())
    })
}

/// Code lines compared: rustdoc's hidden-line marker removed, blank lines and the
/// leading comment lines dropped.
fn comparable<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    lines
        .map(|l| {
            let l = l.trim_end();
            if l == "#" {
                ""
            } else {
                l.strip_prefix("# ").unwrap_or(l)
            }
        })
        .skip_while(|l| l.starts_with("//") || l.is_empty())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn compile_errors_chapter_quotes_the_blessed_stderr() {
    let chapter = root().join("../book/src/compile-errors.md");
    let md = fs::read_to_string(&chapter).unwrap();
    let stderr = stderr_files();
    let all = blocks(&md);
    let mut problems = Vec::new();
    let mut quotes = 0;
    let mut examples = 0;

    for (i, b) in all.iter().enumerate() {
        if b.info == "text" {
            quotes += 1;
            if !stderr.iter().any(|(_, s)| contains_run(s, &b.lines)) {
                problems.push(format!(
                    "line {}: this quote is not a run of lines of any ui-tests/fail/*.stderr:\n{}",
                    b.at,
                    b.lines.join("\n")
                ));
            }
        } else if b.info.starts_with("rust") && b.info.contains("compile_fail") {
            examples += 1;
            let case = all[i + 1..]
                .iter()
                .take_while(|n| !n.info.starts_with("rust"))
                .filter(|n| n.info == "text")
                .find_map(|n| case_named(&n.lines));
            let Some(case) = case else {
                problems.push(format!(
                    "line {}: a compile_fail example without a quote naming its case \
                     (`--> fail/NAME.rs:`) before the next Rust block",
                    b.at
                ));
                continue;
            };
            let path = root().join("fail").join(format!("{case}.rs"));
            let Ok(source) = fs::read_to_string(&path) else {
                problems.push(format!("line {}: no case {}", b.at, path.display()));
                continue;
            };
            let want = comparable(source.lines());
            let got = comparable(b.lines.iter().map(String::as_str));
            if got != want {
                problems.push(format!(
                    "line {}: this example is not the code of fail/{case}.rs, whose output \
                     it quotes:\n--- chapter\n{}\n--- fail/{case}.rs\n{}",
                    b.at,
                    got.join("\n"),
                    want.join("\n")
                ));
            }
        }
    }
    assert!(
        quotes > 0 && examples > 0,
        "found no quotes or no examples in {}: did the chapter's format change?",
        chapter.display()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

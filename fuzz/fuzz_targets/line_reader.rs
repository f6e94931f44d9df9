//! `Buffer::read_line` on arbitrary bytes, arriving in arbitrary chunks, with every end
//! of line style: it never panics, never loses or invents a byte, never returns a line
//! that holds its end of line, and reports `LineTooLong` only when the buffer holds its
//! limit with no end of line in it.
#![no_main]

use evloop::buffered::{Buffer, Eol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let eol = match control & 3 {
        0 => Eol::Lf,
        1 => Eol::Crlf,
        2 => Eol::CrlfStrict,
        _ => Eol::Any,
    };
    let capacity = 1 + usize::from(control >> 2) * 4; // 1..=253
    let chunk = 1 + usize::from(control >> 4); // 1..=16
    let mut b = Buffer::with_capacity(capacity);
    let mut fed = 0;
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut consumed = 0;
    while fed < rest.len() || !b.is_empty() {
        let n = chunk.min(rest.len() - fed).min(b.free());
        b.extend(&rest[fed..fed + n])
            .expect("extend within free space");
        fed += n;
        loop {
            let before = b.len();
            match b.read_line(eol) {
                Ok(Some(line)) => {
                    assert!(!line.contains(&b'\n') || matches!(eol, Eol::CrlfStrict));
                    if matches!(eol, Eol::Any) {
                        assert!(!line.contains(&b'\r'));
                    }
                    lines.push(line.to_vec());
                    let used = before - b.len();
                    assert!(
                        used > lines.last().unwrap().len(),
                        "an end of line was consumed"
                    );
                    consumed += used;
                }
                Ok(None) => break,
                Err(e) => {
                    // Only when full to the limit with no end of line: drop it and go on.
                    assert_eq!(e.len, b.len());
                    assert!(b.len() >= capacity);
                    consumed += b.len();
                    b.clear();
                    break;
                }
            }
        }
        if n == 0 && fed == rest.len() {
            // The rest is an unterminated line: nothing more will come.
            consumed += b.len();
            b.clear();
        }
    }
    assert_eq!(consumed, rest.len(), "every byte accounted for");
    // Every line returned is a run of the input, in order.
    let mut at = 0;
    for line in &lines {
        if line.is_empty() {
            continue;
        }
        let found = rest[at..]
            .windows(line.len())
            .position(|w| w == line.as_slice())
            .expect("a line that is not in the input");
        at += found + line.len();
    }
});

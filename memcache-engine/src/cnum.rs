//! memcached's number parsing, reproduced exactly.
//!
//! memcached parses every number of the ASCII protocol with `safe_strtoul`,
//! `safe_strtol` and `safe_strtoull` (its `util.c`), which wrap glibc's `strtoul`,
//! `strtol` and `strtoull` on a 64-bit `long`. Their quirks are part of the protocol as
//! clients see it, so they are reproduced here rather than replaced by Rust's parsers:
//!
//! - leading C white space (`' '`, `\t`, `\n`, `\v`, `\f`, `\r`) is skipped and one `+`
//!   or `-` sign is accepted;
//! - the number may be followed by the end of the token, a NUL, or any C white space
//!   (so `"5\t"` and `"5\r"` parse as 5), but by nothing else;
//! - a value out of the 64-bit range is rejected (`ERANGE`);
//! - the unsigned parsers accept a minus sign unless the negated result, read as a
//!   signed number, is negative (so `"-0"` is 0 and `"-18446744073709551615"` is 1);
//! - the 32-bit results are the 64-bit results truncated, as C's assignment does
//!   (`"4294967297"` as a length is 1, as flags `"4294967296"` is 0).

/// C's `isspace` in the "C" locale.
pub(crate) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// What `strto*` saw: the sign, the magnitude (`None` on overflow of 64 bits) and the
/// end index. `None` when no digits were converted (`endptr == str`).
struct Scan {
    negative: bool,
    magnitude: Option<u64>,
    end: usize,
}

fn scan(s: &[u8]) -> Option<Scan> {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        negative = s[i] == b'-';
        i += 1;
    }
    let digits = i;
    let mut magnitude = Some(0u64);
    while i < s.len() && s[i].is_ascii_digit() {
        let d = u64::from(s[i] - b'0');
        magnitude = magnitude
            .and_then(|m| m.checked_mul(10))
            .and_then(|m| m.checked_add(d));
        i += 1;
    }
    if i == digits {
        return None;
    }
    Some(Scan {
        negative,
        magnitude,
        end: i,
    })
}

/// The `endptr` test shared by the three `safe_*` functions: the number must end the
/// token (NUL) or be followed by white space.
fn ends_well(s: &[u8], end: usize) -> bool {
    end == s.len() || s[end] == 0 || is_c_space(s[end])
}

/// `safe_strtoull`: a 64-bit unsigned number.
pub(crate) fn safe_strtoull(s: &[u8]) -> Option<u64> {
    let sc = scan(s)?;
    // strtoull: ERANGE when the magnitude does not fit, whatever the sign.
    let magnitude = sc.magnitude?;
    let value = if sc.negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    };
    if !ends_well(s, sc.end) {
        return None;
    }
    // "only check for negative signs in the uncommon case when the unsigned number is
    // so big that it's negative as a signed number."
    if (value as i64) < 0 && s[..sc.end].contains(&b'-') {
        return None;
    }
    Some(value)
}

/// `safe_strtoul` into a `uint32_t`: `strtoul` on a 64-bit `long`, then truncated.
pub(crate) fn safe_strtoul(s: &[u8]) -> Option<u32> {
    // On LP64 `unsigned long` is `unsigned long long`: the same checks apply.
    safe_strtoull(s).map(|v| v as u32)
}

/// `safe_strtol` into an `int32_t`: `strtol` on a 64-bit `long`, then truncated.
pub(crate) fn safe_strtol(s: &[u8]) -> Option<i32> {
    let sc = scan(s)?;
    let magnitude = sc.magnitude?;
    let value: i64 = if sc.negative {
        if magnitude > 1u64 << 63 {
            return None; // ERANGE
        }
        (magnitude as i64).wrapping_neg()
    } else {
        i64::try_from(magnitude).ok()?
    };
    if !ends_well(s, sc.end) {
        return None;
    }
    Some(value as i32)
}

/// `atoi`, as memcached uses it for its command-line flags: white space, a sign and
/// digits; anything unparsable is 0. Overflow wraps like glibc's `(int) strtol`.
pub(crate) fn atoi(s: &str) -> i64 {
    match scan(s.as_bytes()) {
        None => 0,
        Some(sc) => {
            // strtol saturates at LONG_MIN / LONG_MAX; the cast to int truncates.
            let v: i64 = match (sc.negative, sc.magnitude) {
                (false, Some(m)) => i64::try_from(m).unwrap_or(i64::MAX),
                (false, None) => i64::MAX,
                (true, Some(m)) if m <= 1u64 << 63 => (m as i64).wrapping_neg(),
                (true, _) => i64::MIN,
            };
            i64::from(v as i32)
        }
    }
}

/// `v` in decimal in a stack buffer: the digits are `buf[start..]`.
pub(crate) fn u64_digits(mut v: u64) -> ([u8; 20], usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    (buf, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtoull_like_memcached() {
        assert_eq!(safe_strtoull(b"0"), Some(0));
        assert_eq!(safe_strtoull(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(safe_strtoull(b"18446744073709551616"), None);
        assert_eq!(safe_strtoull(b"-1"), None);
        assert_eq!(safe_strtoull(b"-0"), Some(0));
        assert_eq!(safe_strtoull(b"-18446744073709551615"), Some(1));
        assert_eq!(safe_strtoull(b"+3"), Some(3));
        assert_eq!(safe_strtoull(b" 12"), Some(12));
        assert_eq!(safe_strtoull(b"12 abc"), Some(12));
        assert_eq!(safe_strtoull(b"12\tx"), Some(12));
        assert_eq!(safe_strtoull(b"12\0x"), Some(12));
        assert_eq!(safe_strtoull(b"12a"), None);
        assert_eq!(safe_strtoull(b"1.5"), None);
        assert_eq!(safe_strtoull(b""), None);
        assert_eq!(safe_strtoull(b"-"), None);
        assert_eq!(safe_strtoull(b"   "), None);
        assert_eq!(safe_strtoull(b"0x10"), None);
    }

    #[test]
    fn strtoul_truncates_to_32_bits() {
        assert_eq!(safe_strtoul(b"4294967295"), Some(u32::MAX));
        assert_eq!(safe_strtoul(b"4294967296"), Some(0));
        assert_eq!(safe_strtoul(b"-1"), None);
        assert_eq!(safe_strtoul(b"-5"), None);
    }

    #[test]
    fn strtol_truncates_to_32_bits() {
        assert_eq!(safe_strtol(b"-1"), Some(-1));
        assert_eq!(safe_strtol(b"2147483648"), Some(i32::MIN));
        assert_eq!(safe_strtol(b"4294967297"), Some(1));
        assert_eq!(safe_strtol(b"9223372036854775807"), Some(-1));
        assert_eq!(safe_strtol(b"9223372036854775808"), None);
        assert_eq!(safe_strtol(b"-9223372036854775808"), Some(0));
        assert_eq!(safe_strtol(b"-9223372036854775809"), None);
        assert_eq!(safe_strtol(b"abc"), None);
        assert_eq!(safe_strtol(b"1\r"), Some(1));
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi("64"), 64);
        assert_eq!(atoi("64m"), 64);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi("-3"), -3);
        assert_eq!(atoi(" 7"), 7);
    }

    #[test]
    fn digits() {
        let mut v = Vec::new();
        let (b, i) = u64_digits(0);
        v.extend_from_slice(&b[i..]);
        v.push(b' ');
        let (b, i) = u64_digits(u64::MAX);
        v.extend_from_slice(&b[i..]);
        assert_eq!(v, b"0 18446744073709551615");
        let (b, i) = u64_digits(1234);
        assert_eq!(&b[i..], b"1234");
    }
}

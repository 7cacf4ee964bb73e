//! Python `float()` number syntax, so carbonwatch accepts exactly the values
//! carbon accepts: `1`, `+.5`, `5.`, `1e3`, `nan`/`inf`/`Infinity` in any
//! case, PEP 515 underscores (`1_000`) and any Unicode decimal digits
//! (`１２`). `0x10` and `1,5` are refused, as in Python.

/// First code point of every run of ten Unicode `Nd` digits (Unicode 14, as in
/// the Python 3.11 that Debian's carbon runs on). Each run maps to `0`..`9`.
const DIGIT_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// The ASCII digit a Unicode decimal digit stands for.
fn unicode_digit(c: char) -> Option<u8> {
    let cp = c as u32;
    let i = DIGIT_ZEROS.partition_point(|&z| z <= cp);
    let zero = *DIGIT_ZEROS.get(i.checked_sub(1)?)?;
    (cp - zero < 10).then(|| b'0' + (cp - zero) as u8)
}

/// Parses `s` as Python's `float(s)` would, after the caller has split off
/// surrounding whitespace. Returns `None` where Python raises `ValueError`.
pub fn parse(s: &str) -> Option<f64> {
    // Rust's grammar equals Python's for plain ASCII numbers and the
    // nan/inf spellings; only underscores and non-ASCII digits need help.
    if let Ok(v) = s.parse::<f64>() {
        return Some(v);
    }
    if s.is_ascii() && !s.contains('_') {
        return None;
    }
    let mut ascii = String::with_capacity(s.len());
    let mut prev_digit = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '_' {
            // PEP 515: an underscore only ever stands between two digits.
            let next_digit = chars
                .peek()
                .is_some_and(|&n| n.is_ascii_digit() || unicode_digit(n).is_some());
            if !prev_digit || !next_digit {
                return None;
            }
            prev_digit = false;
            continue;
        }
        if c.is_ascii() {
            prev_digit = c.is_ascii_digit();
            ascii.push(c);
        } else if let Some(d) = unicode_digit(c) {
            prev_digit = true;
            ascii.push(d as char);
        } else {
            return None;
        }
    }
    ascii.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::parse;

    /// Each row was checked against `float()` in Debian's Python 3.11.
    #[test]
    fn matches_python_float() {
        let ok: &[(&str, f64)] = &[
            ("1", 1.0),
            ("-2.5", -2.5),
            ("1e3", 1000.0),
            ("+.5", 0.5),
            ("5.", 5.0),
            ("-Infinity", f64::NEG_INFINITY),
            ("iNf", f64::INFINITY),
            ("infinity", f64::INFINITY),
            ("1_000", 1000.0),
            ("１２", 12.0),
            ("١٢٣", 123.0),
            ("1e1_0", 1e10),
            ("1.5e+3", 1500.0),
            ("00012", 12.0),
            ("1e400", f64::INFINITY),
        ];
        for (s, want) in ok {
            assert_eq!(parse(s), Some(*want), "{s:?}");
        }
        for s in ["nan", "NaN", "-nan"] {
            assert!(parse(s).unwrap().is_nan(), "{s:?}");
        }
        let bad = [
            "0x10", "1,5", "1__0", "_1", "1_", "1_.5", "1._5", ".e1", "infin", "1e", ".", "+",
            "in", "", "1 2", "abc",
        ];
        for s in bad {
            assert_eq!(parse(s), None, "{s:?}");
        }
    }
}

//! The carbon plaintext protocol, one line at a time, with carbon's own
//! acceptance rules (`carbon/protocols.py`, `MetricLineReceiver`):
//!
//! ```text
//! <name> <value> <timestamp>\n
//! ```
//!
//! * any run of whitespace separates fields (Python `str.split()`), and there
//!   must be exactly three;
//! * value and timestamp use Python `float()` syntax; a NaN value is dropped;
//! * a timestamp whose integer part is `-1` means "now"; others are truncated;
//! * a trailing `\r` is ignored; invalid UTF-8 rejects that line only;
//! * a name with `;` must carry valid Graphite tags.
//!
//! Framing (finding `\n`, enforcing `max_line_bytes`) belongs to the listener;
//! this module sees one line without its `\n`.

use std::borrow::Cow;
use std::io::Write as _;

use bytes::{BufMut, BytesMut};
use nom::bytes::complete::{take_till1, take_while};
use nom::IResult;

use crate::codec::{pyfloat, tags, Reject};

/// Per-listener parsing choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Rewrite tagged names into carbon's normalised form before routing.
    /// Off by default: a default carbon-relay hashes the name as received,
    /// and carbon-cache normalises on arrival either way.
    pub normalize_tags: bool,
    /// Seconds since the epoch, substituted for a `-1` timestamp. Passed in
    /// rather than read here so that parsing is a pure function.
    pub now: i64,
}

/// One parsed data point. Borrows from the input where it can.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric<'a> {
    /// The metric path, tags included.
    pub name: Cow<'a, str>,
    /// The value; never NaN.
    pub value: f64,
    /// Seconds since the epoch.
    pub timestamp: i64,
    /// The input line itself when it is already in canonical
    /// `name value timestamp` form, so forwarding is a plain copy.
    verbatim: Option<&'a [u8]>,
}

impl<'a> Metric<'a> {
    /// Builds a metric from decoded parts (the pickle path), applying the
    /// same rules as a plaintext line.
    pub fn from_parts(
        name: Cow<'a, str>,
        value: f64,
        timestamp: f64,
        opts: &ParseOptions,
    ) -> Result<Self, Reject> {
        if name.is_empty() || name.contains(is_py_space) {
            return Err(Reject::BadPickleItem);
        }
        let value = check_value(value)?;
        let timestamp = check_timestamp(timestamp, opts.now)?;
        let name = tagged_name(name, opts)?;
        Ok(Metric {
            name,
            value,
            timestamp,
            verbatim: None,
        })
    }

    /// Appends `name value timestamp\n` to `out`.
    // The dispatcher calls this once per line per destination, and a
    // canonical line is only copied: keep that copy inline in its loop.
    #[inline]
    pub fn write_line(&self, out: &mut BytesMut) {
        match self.verbatim {
            Some(line) => {
                out.reserve(line.len() + 1);
                out.put_slice(line);
                out.put_u8(b'\n');
            }
            None => self.write_formatted(out),
        }
    }

    /// [`Metric::write_line`] for a metric that is not a canonical line.
    fn write_formatted(&self, out: &mut BytesMut) {
        out.reserve(self.name.len() + 32);
        out.put_slice(self.name.as_bytes());
        out.put_u8(b' ');
        write_value(self.value, out);
        let mut w = out.writer();
        let _ = write!(w, " {}", self.timestamp);
        out.put_u8(b'\n');
    }

    /// `value timestamp` as received when the line was canonical, else as
    /// it is written out: what carbon-c-relay's `validate` is applied to.
    pub fn write_data(&self, out: &mut String) {
        out.clear();
        if let Some(line) = self.verbatim {
            if let Some(i) = memchr::memchr(b' ', line) {
                out.push_str(&String::from_utf8_lossy(&line[i + 1..]));
                return;
            }
        }
        let mut buf = BytesMut::new();
        write_value(self.value, &mut buf);
        out.push_str(&String::from_utf8_lossy(&buf));
        use std::fmt::Write as _;
        let _ = write!(out, " {}", self.timestamp);
    }

    /// The canonical line length in bytes, newline excluded, when known
    /// without formatting.
    pub fn verbatim_len(&self) -> Option<usize> {
        self.verbatim.map(<[u8]>::len)
    }

    /// The same point under another name (after a rewrite rule).
    pub fn renamed<'b>(&self, name: &'b str) -> Metric<'b> {
        Metric {
            name: Cow::Borrowed(name),
            value: self.value,
            timestamp: self.timestamp,
            verbatim: None,
        }
    }

    /// Detaches the metric from its input buffer.
    pub fn into_owned(self) -> Metric<'static> {
        Metric {
            name: Cow::Owned(self.name.into_owned()),
            value: self.value,
            timestamp: self.timestamp,
            verbatim: None,
        }
    }
}

/// Formats a value the short way: integers without a fraction, others in
/// Rust's shortest round-trip form (which carbon's `float()` reads back).
pub fn write_value(v: f64, out: &mut BytesMut) {
    let mut w = out.writer();
    let _ = if v.fract() == 0.0 && v.abs() < 1e15 {
        write!(w, "{}", v as i64)
    } else if v.is_infinite() {
        write!(w, "{}", if v > 0.0 { "inf" } else { "-inf" })
    } else {
        write!(w, "{v:?}")
    };
}

/// Python's `str.isspace()` for one character.
fn is_py_space(c: char) -> bool {
    matches!(c, '\t'..='\r' | '\x1c'..='\x1f' | ' ') || (!c.is_ascii() && c.is_whitespace())
}

/// [`is_py_space`] for the ASCII bytes.
fn is_ascii_py_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | 0x1c..=0x1f | b' ')
}

/// One field and the whitespace after it.
fn field(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let (rest, f) = take_till1(is_ascii_py_space)(input)?;
    let (rest, _) = take_while(is_ascii_py_space)(rest)?;
    Ok((rest, f))
}

/// Splits an ASCII line into exactly three fields.
fn ascii_fields(line: &[u8]) -> Result<[&[u8]; 3], Reject> {
    let (rest, _) = take_while::<_, _, ()>(is_ascii_py_space)(line).map_err(|_| Reject::Empty)?;
    if rest.is_empty() {
        return Err(Reject::Empty);
    }
    let (rest, name) = field(rest).map_err(|_| Reject::FieldCount)?;
    let (rest, value) = field(rest).map_err(|_| Reject::FieldCount)?;
    let (rest, ts) = field(rest).map_err(|_| Reject::FieldCount)?;
    if !rest.is_empty() {
        return Err(Reject::FieldCount);
    }
    Ok([name, value, ts])
}

/// Splits a non-ASCII line on Unicode whitespace into exactly three fields.
fn unicode_fields(line: &str) -> Result<[&str; 3], Reject> {
    let mut it = line.split(is_py_space).filter(|f| !f.is_empty());
    let fields = [it.next(), it.next(), it.next()];
    match (fields, it.next()) {
        ([None, ..], _) => Err(Reject::Empty),
        ([Some(n), Some(v), Some(t)], None) => Ok([n, v, t]),
        _ => Err(Reject::FieldCount),
    }
}

fn check_value(v: f64) -> Result<f64, Reject> {
    if v.is_nan() {
        Err(Reject::NanValue)
    } else {
        Ok(v)
    }
}

/// Carbon does `int(float(ts))`, with -1 meaning now.
fn check_timestamp(ts: f64, now: i64) -> Result<i64, Reject> {
    // i64 range with margin; anything beyond is no time a whisper file holds.
    if !ts.is_finite() || ts.abs() >= 9.0e18 {
        return Err(Reject::BadTimestamp);
    }
    let t = ts.trunc() as i64;
    Ok(if t == -1 { now } else { t })
}

fn tagged_name<'a>(name: Cow<'a, str>, opts: &ParseOptions) -> Result<Cow<'a, str>, Reject> {
    if !name.contains(';') {
        return Ok(name);
    }
    let normal = tags::normalize(&name)?;
    if opts.normalize_tags && normal != name {
        Ok(Cow::Owned(normal))
    } else {
        Ok(name)
    }
}

/// Parses one line (without its `\n`; a trailing `\r` is allowed).
pub fn parse_line<'a>(line: &'a [u8], opts: &ParseOptions) -> Result<Metric<'a>, Reject> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_ascii() {
        let [name, value, ts] = ascii_fields(line)?;
        // The fields are ASCII, so these conversions cannot fail.
        let as_str = |b: &'a [u8]| std::str::from_utf8(b).map_err(|_| Reject::NotUtf8);
        let (name_s, value_s, ts_s) = (as_str(name)?, as_str(value)?, as_str(ts)?);
        // Rust's own grammar accepting the value is what makes it safe to
        // copy verbatim; only odd spellings need Python's rules.
        let (v, plain_value) = match value_s.parse::<f64>() {
            Ok(v) => (v, true),
            Err(_) => (pyfloat::parse(value_s).ok_or(Reject::BadValue)?, false),
        };
        let v = check_value(v)?;
        let digits_ts = !ts.is_empty() && ts.len() <= 18 && ts.iter().all(u8::is_ascii_digit);
        let timestamp = if digits_ts {
            ts.iter()
                .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0'))
        } else {
            check_timestamp(pyfloat::parse(ts_s).ok_or(Reject::BadTimestamp)?, opts.now)?
        };
        let name_out = tagged_name(Cow::Borrowed(name_s), opts)?;
        // Canonical: single spaces, nothing around, a plain value, an
        // integer timestamp, and the name unchanged.
        let canonical = plain_value
            && digits_ts
            && name.len() + value.len() + ts.len() + 2 == line.len()
            && line[name.len()] == b' '
            && line[name.len() + 1 + value.len()] == b' '
            && matches!(name_out, Cow::Borrowed(_));
        Ok(Metric {
            name: name_out,
            value: v,
            timestamp,
            verbatim: canonical.then_some(line),
        })
    } else {
        let text = std::str::from_utf8(line).map_err(|_| Reject::NotUtf8)?;
        let [name, value, ts] = unicode_fields(text)?;
        let v = check_value(pyfloat::parse(value).ok_or(Reject::BadValue)?)?;
        let tsf = pyfloat::parse(ts).ok_or(Reject::BadTimestamp)?;
        let timestamp = check_timestamp(tsf, opts.now)?;
        let name = tagged_name(Cow::Borrowed(name), opts)?;
        Ok(Metric {
            name,
            value: v,
            timestamp,
            verbatim: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: ParseOptions = ParseOptions {
        normalize_tags: false,
        now: 1_800_000_000,
    };

    fn forwarded(line: &[u8]) -> Result<String, Reject> {
        let m = parse_line(line, &OPTS)?;
        let mut out = BytesMut::new();
        m.write_line(&mut out);
        Ok(String::from_utf8(out.to_vec()).unwrap())
    }

    /// The edge cases the reference verified against Debian's carbon-relay,
    /// except where carbonwatch deliberately keeps the connection (NaN
    /// timestamp, invalid UTF-8) and rejects only the line.
    #[test]
    fn carbon_edge_cases() {
        assert_eq!(
            forwarded(b"ok.tab\t2\t1700000000\r").unwrap(),
            "ok.tab 2 1700000000\n"
        );
        assert_eq!(forwarded(b"ok.nan nan 1700000000"), Err(Reject::NanValue));
        assert_eq!(
            forwarded(b"ok.inf inf 1700000000").unwrap(),
            "ok.inf inf 1700000000\n"
        );
        assert_eq!(forwarded(b"ok.now 3 -1").unwrap(), "ok.now 3 1800000000\n");
        assert_eq!(
            forwarded(b"ok.now 3 -1.5").unwrap(),
            "ok.now 3 1800000000\n"
        );
        assert_eq!(
            forwarded(b"ok.under 1_000 1700000000.5").unwrap(),
            "ok.under 1000 1700000000\n"
        );
        assert_eq!(forwarded(b"bad.two 1"), Err(Reject::FieldCount));
        assert_eq!(forwarded(b"bad three fields here"), Err(Reject::FieldCount));
        assert_eq!(forwarded(b"ts.nan 1 nan"), Err(Reject::BadTimestamp));
        assert_eq!(forwarded(b"ts.inf 1 inf"), Err(Reject::BadTimestamp));
        assert_eq!(forwarded(b"bad\xff.utf8 1 2"), Err(Reject::NotUtf8));
        assert_eq!(
            forwarded(b"t.tag;b=2;a=1 5 1700000000").unwrap(),
            "t.tag;b=2;a=1 5 1700000000\n"
        );
        assert_eq!(forwarded(b"t.tag;b 5 1700000000"), Err(Reject::BadTags));
        assert_eq!(forwarded(b"   "), Err(Reject::Empty));
        assert_eq!(forwarded(b""), Err(Reject::Empty));
        assert_eq!(forwarded(b"x 0x10 1"), Err(Reject::BadValue));
    }

    #[test]
    fn unicode_whitespace_and_digits() {
        // U+3000 ideographic space separates fields; full-width digits parse.
        let line = "caf\u{e9}.x\u{3000}\u{ff11}\u{ff12} 1700000000".as_bytes();
        assert_eq!(forwarded(line).unwrap(), "caf\u{e9}.x 12 1700000000\n");
        // \x1c is whitespace to Python but not to Rust's is_whitespace.
        assert_eq!(forwarded(b"a\x1c1\x1c2").unwrap(), "a 1 2\n");
    }

    #[test]
    fn canonical_lines_are_copied_verbatim() {
        let m = parse_line(b"a.b.c 1.50 1700000000", &OPTS).unwrap();
        assert_eq!(m.verbatim_len(), Some(21));
        assert_eq!(
            forwarded(b"a.b.c 1.50 1700000000").unwrap(),
            "a.b.c 1.50 1700000000\n"
        );
        // Two spaces: not canonical, re-formatted.
        assert!(parse_line(b"a  1 2", &OPTS)
            .unwrap()
            .verbatim_len()
            .is_none());
    }

    #[test]
    fn normalises_tags_when_asked() {
        let opts = ParseOptions {
            normalize_tags: true,
            ..OPTS
        };
        let m = parse_line(b"m;b=2;a=1 1 2", &opts).unwrap();
        assert_eq!(m.name, "m;a=1;b=2");
        assert!(m.verbatim_len().is_none());
    }

    #[test]
    fn value_formatting() {
        let fmt = |v: f64| {
            let mut b = BytesMut::new();
            write_value(v, &mut b);
            String::from_utf8(b.to_vec()).unwrap()
        };
        assert_eq!(fmt(1000.0), "1000");
        assert_eq!(fmt(-0.25), "-0.25");
        assert_eq!(fmt(1e300), "1e300");
        assert_eq!(fmt(f64::NEG_INFINITY), "-inf");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn name() -> impl Strategy<Value = String> {
            let plain = "[A-Za-z0-9_:#-]{1,12}(\\.[A-Za-z0-9_:#\u{e9}-]{1,12}){0,5}";
            (
                plain,
                proptest::option::of("(;[a-z]{1,5}=[a-z0-9]{1,5}){1,3}"),
            )
                .prop_map(|(n, tags)| n + &tags.unwrap_or_default())
        }

        fn sep() -> impl Strategy<Value = String> {
            "[ \t]{1,3}"
        }

        proptest! {
            /// Any valid point, written with any whitespace, parses back to
            /// itself; its canonical output parses back to it again.
            #[test]
            fn round_trip(
                name in name(),
                value in prop_oneof![any::<i32>().prop_map(f64::from), -1e12f64..1e12, Just(f64::INFINITY)],
                ts in 0i64..4_000_000_000,
                s1 in sep(), s2 in sep(), lead in "[ \t]{0,2}", cr in any::<bool>(),
            ) {
                let text = format!("{lead}{name}{s1}{value:?}{s2}{ts}{}", if cr { "\r" } else { "" });
                let m = parse_line(text.as_bytes(), &OPTS).unwrap();
                prop_assert_eq!(&*m.name, name.as_str());
                prop_assert_eq!(m.value, value);
                prop_assert_eq!(m.timestamp, ts);
                let mut out = BytesMut::new();
                m.write_line(&mut out);
                let again = parse_line(&out[..out.len() - 1], &OPTS).unwrap();
                prop_assert_eq!(again.into_owned(), m.into_owned());
            }

            /// Arbitrary bytes never panic, and a rejection is one reason.
            #[test]
            fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
                let _ = parse_line(&bytes, &OPTS);
            }

            /// The pickle decoder survives arbitrary bytes and mutations of a
            /// valid frame.
            #[test]
            fn pickle_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), flip in 0usize..64, to in any::<u8>()) {
                let _ = crate::codec::pickle::decode(&bytes, |_| {});
                let mut frame = b"\x80\x02](X\x03\x00\x00\x00a.bJ\x00\xf1SeG?\xf8\x00\x00\x00\x00\x00\x00\x86\x86e.".to_vec();
                let i = flip % frame.len();
                frame[i] = to;
                let _ = crate::codec::pickle::decode(&frame, |_| {});
            }
        }
    }
}

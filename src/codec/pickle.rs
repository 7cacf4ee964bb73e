//! The carbon pickle protocol: frames of a 4-byte big-endian length and a
//! pickle of `[(name, (timestamp, value)), ...]`.
//!
//! [`decode`] is a small stack machine for pickle protocols 0-5 that knows
//! only data opcodes: any opcode that names a global or builds an object
//! (`GLOBAL`, `STACK_GLOBAL`, `REDUCE`, `BUILD`, `INST`, `OBJ`, `NEWOBJ`, ...)
//! rejects the frame. That is carbon's `SafeUnpickler` under Python 3, where
//! every global lookup fails. Work is bounded by the frame length, so a
//! hostile frame costs at most linear time and memory.
//!
//! [`Encoder`] writes protocol 2, as carbon's relay does towards
//! carbon-cache.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::{BufMut, BytesMut};

use crate::codec::{pyfloat, Reject};

/// One decoded item: `(name, timestamp, value)` before carbon's checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The metric name.
    pub name: String,
    /// Timestamp, as a float the way carbon reads it.
    pub timestamp: f64,
    /// Value.
    pub value: f64,
}

/// A pickled value. Lists are shared and mutable, as in Python, so that a
/// memoised list sees later `APPEND`s.
#[derive(Debug, Clone)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64, kept as its float value.
    BigInt(f64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    List(Rc<RefCell<Vec<Value>>>),
    Tuple(Rc<[Value]>),
    Mark,
}

/// Decodes one pickle payload (the bytes after the length prefix) into
/// items. A whole-frame failure is `Err(BadPickle)`; a malformed item is
/// reported through `on_bad_item` and skipped, as carbon does.
pub fn decode(data: &[u8], mut on_bad_item: impl FnMut()) -> Result<Vec<Item>, Reject> {
    let mut m = Machine::new(data);
    let result = m.run();
    let items = result.and_then(|top| extract(&top, &mut on_bad_item));
    m.break_cycles();
    items
}

fn extract(top: &Value, on_bad_item: &mut impl FnMut()) -> Result<Vec<Item>, Reject> {
    let items = seq(top).ok_or(Reject::BadPickle)?;
    let mut out = Vec::with_capacity(items.len());
    for item in items.iter() {
        match extract_item(item) {
            Some(i) => out.push(i),
            None => on_bad_item(),
        }
    }
    Ok(out)
}

/// The elements of a list or tuple.
fn seq(v: &Value) -> Option<Rc<[Value]>> {
    match v {
        Value::List(l) => Some(l.borrow().clone().into()),
        Value::Tuple(t) => Some(t.clone()),
        _ => None,
    }
}

fn extract_item(item: &Value) -> Option<Item> {
    let pair = seq(item)?;
    let [name, point] = &pair[..] else {
        return None;
    };
    let name = match name {
        Value::Str(s) => s.to_string(),
        Value::Bytes(b) => String::from_utf8(b.to_vec()).ok()?,
        _ => return None,
    };
    let point = seq(point)?;
    let [ts, value] = &point[..] else { return None };
    Some(Item {
        name,
        timestamp: number(ts)?,
        value: number(value)?,
    })
}

/// Python's `float(x)` for the values a pickle can hold.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Int(i) => Some(*i as f64),
        Value::BigInt(f) | Value::Float(f) => Some(*f),
        Value::Str(s) => pyfloat::parse(s.trim()),
        Value::Bytes(b) => pyfloat::parse(std::str::from_utf8(b).ok()?.trim()),
        _ => None,
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: Vec<Option<Value>>,
    lists: Vec<Rc<RefCell<Vec<Value>>>>,
}

type Step<T> = Result<T, Reject>;

impl<'a> Machine<'a> {
    fn new(data: &'a [u8]) -> Self {
        Machine {
            data,
            pos: 0,
            stack: Vec::new(),
            memo: Vec::new(),
            lists: Vec::new(),
        }
    }

    /// Lists may reference themselves through the memo; clearing them all
    /// frees such cycles, which `Rc` alone would leak.
    fn break_cycles(&mut self) {
        self.lists.iter().for_each(|l| l.borrow_mut().clear());
    }

    fn take(&mut self, n: usize) -> Step<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or(Reject::BadPickle)?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Step<u8> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self, n: usize) -> Step<usize> {
        let b = self.take(n)?;
        let v = b
            .iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
        usize::try_from(v).map_err(|_| Reject::BadPickle)
    }

    /// A text argument of the protocol-0 opcodes, up to `\n`.
    fn line(&mut self) -> Step<&'a [u8]> {
        let rest = &self.data[self.pos..];
        let n = memchr::memchr(b'\n', rest).ok_or(Reject::BadPickle)?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn line_str(&mut self) -> Step<&'a str> {
        std::str::from_utf8(self.line()?).map_err(|_| Reject::BadPickle)
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Step<Value> {
        match self.stack.pop() {
            Some(Value::Mark) | None => Err(Reject::BadPickle),
            Some(v) => Ok(v),
        }
    }

    fn top(&self) -> Step<&Value> {
        self.stack.last().ok_or(Reject::BadPickle)
    }

    /// Pops everything down to the last MARK.
    fn pop_mark(&mut self) -> Step<Vec<Value>> {
        let at = self.stack.iter().rposition(|v| matches!(v, Value::Mark));
        let at = at.ok_or(Reject::BadPickle)?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn new_list(&mut self, items: Vec<Value>) -> Value {
        let l = Rc::new(RefCell::new(items));
        self.lists.push(l.clone());
        Value::List(l)
    }

    fn memo_put(&mut self, idx: usize) -> Step<()> {
        // The memo is indexed densely; an index far beyond the frame's
        // size can only be an attack on memory.
        if idx > self.data.len() {
            return Err(Reject::BadPickle);
        }
        let v = self.top()?.clone();
        if idx >= self.memo.len() {
            self.memo.resize(idx + 1, None);
        }
        self.memo[idx] = Some(v);
        Ok(())
    }

    fn memo_get(&mut self, idx: usize) -> Step<()> {
        let v = self
            .memo
            .get(idx)
            .cloned()
            .flatten()
            .ok_or(Reject::BadPickle)?;
        self.push(v);
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Step<()> {
        match self.top()? {
            Value::List(l) => {
                l.borrow_mut().extend(items);
                Ok(())
            }
            _ => Err(Reject::BadPickle),
        }
    }

    fn run(&mut self) -> Step<Value> {
        loop {
            let op = self.byte()?;
            match op {
                0x80 => {
                    let proto = self.byte()?;
                    if proto > 5 {
                        return Err(Reject::BadPickle);
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.push(Value::Mark),
                b'0' => {
                    self.stack.pop().ok_or(Reject::BadPickle)?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b']' => {
                    let l = self.new_list(Vec::new());
                    self.push(l);
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let l = self.new_list(items);
                    self.push(l);
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b')' => self.push(Value::Tuple(Rc::from(Vec::new()))),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items.into()));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err(Reject::BadPickle);
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    if items.iter().any(|v| matches!(v, Value::Mark)) {
                        return Err(Reject::BadPickle);
                    }
                    self.push(Value::Tuple(items.into()));
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'I' => {
                    let v = match self.line_str()? {
                        "01" => Value::Bool(true),
                        "00" => Value::Bool(false),
                        s => int_value(s.trim())?,
                    };
                    self.push(v);
                }
                b'L' => {
                    let s = self.line_str()?;
                    let v = int_value(s.trim().trim_end_matches('L'))?;
                    self.push(v);
                }
                b'J' => {
                    let b = self.take(4)?;
                    self.push(Value::Int(i64::from(i32::from_le_bytes([
                        b[0], b[1], b[2], b[3],
                    ]))));
                }
                b'K' => {
                    let b = self.byte()?;
                    self.push(Value::Int(i64::from(b)));
                }
                b'M' => {
                    let n = self.uint(2)?;
                    self.push(Value::Int(n as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        usize::from(self.byte()?)
                    } else {
                        self.uint(4)?
                    };
                    let b = self.take(n)?;
                    self.push(long_value(b));
                }
                b'F' => {
                    let s = self.line_str()?;
                    let v = pyfloat::parse(s.trim()).ok_or(Reject::BadPickle)?;
                    self.push(Value::Float(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    self.push(Value::Float(f64::from_be_bytes(
                        b.try_into().expect("8 bytes"),
                    )));
                }
                b'S' => {
                    let raw = self.line()?;
                    let b = py2_string_literal(raw)?;
                    self.push(Value::Bytes(b.into()));
                }
                b'T' | b'U' | b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'U' | b'C' => usize::from(self.byte()?),
                        0x8e | 0x96 => self.uint(8)?,
                        _ => self.uint(4)?,
                    };
                    let b = self.take(n)?;
                    self.push(Value::Bytes(b.into()));
                }
                b'V' => {
                    let raw = self.line()?;
                    let s = raw_unicode_escape(raw)?;
                    self.push(Value::Str(s.into()));
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        0x8c => usize::from(self.byte()?),
                        0x8d => self.uint(8)?,
                        _ => self.uint(4)?,
                    };
                    let b = self.take(n)?;
                    let s = std::str::from_utf8(b).map_err(|_| Reject::BadPickle)?;
                    self.push(Value::Str(s.into()));
                }
                b'p' => {
                    let idx = self
                        .line_str()?
                        .trim()
                        .parse()
                        .map_err(|_| Reject::BadPickle)?;
                    self.memo_put(idx)?;
                }
                b'q' => {
                    let idx = usize::from(self.byte()?);
                    self.memo_put(idx)?;
                }
                b'r' => {
                    let idx = self.uint(4)?;
                    self.memo_put(idx)?;
                }
                0x94 => {
                    let idx = self.memo.len();
                    self.memo_put(idx)?;
                }
                b'g' => {
                    let idx = self
                        .line_str()?
                        .trim()
                        .parse()
                        .map_err(|_| Reject::BadPickle)?;
                    self.memo_get(idx)?;
                }
                b'h' => {
                    let idx = usize::from(self.byte()?);
                    self.memo_get(idx)?;
                }
                b'j' => {
                    let idx = self.uint(4)?;
                    self.memo_get(idx)?;
                }
                // Everything else names a global, builds an object, or is a
                // container carbon never sends (dicts, sets): refuse.
                _ => return Err(Reject::BadPickle),
            }
        }
    }
}

fn int_value(s: &str) -> Step<Value> {
    if let Ok(i) = s.parse::<i64>() {
        return Ok(Value::Int(i));
    }
    let valid = !s.is_empty()
        && s.trim_start_matches(['-', '+'])
            .bytes()
            .all(|b| b.is_ascii_digit());
    let f = s.parse::<f64>().ok().filter(|_| valid);
    f.map(Value::BigInt).ok_or(Reject::BadPickle)
}

/// A little-endian two's-complement integer of any length (LONG1/LONG4).
fn long_value(b: &[u8]) -> Value {
    if b.is_empty() {
        return Value::Int(0);
    }
    if b.len() <= 8 {
        let neg = b[b.len() - 1] & 0x80 != 0;
        let mut buf = if neg { [0xff; 8] } else { [0; 8] };
        buf[..b.len()].copy_from_slice(b);
        return Value::Int(i64::from_le_bytes(buf));
    }
    let neg = b[b.len() - 1] & 0x80 != 0;
    let mag = b.iter().rev().fold(0f64, |acc, &x| {
        acc * 256.0 + f64::from(if neg { !x } else { x })
    });
    Value::BigInt(if neg { -(mag + 1.0) } else { mag })
}

/// The quoted Python 2 string literal of the `STRING` opcode.
fn py2_string_literal(raw: &[u8]) -> Step<Vec<u8>> {
    let inner = match raw {
        [q @ (b'\'' | b'"'), inner @ .., last] if last == q => inner,
        _ => return Err(Reject::BadPickle),
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let c = inner[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *inner.get(i).ok_or(Reject::BadPickle)?;
        i += 1;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\\' | b'\'' | b'"' => out.push(e),
            b'\n' => {}
            b'x' => {
                let h = inner.get(i..i + 2).ok_or(Reject::BadPickle)?;
                let h = std::str::from_utf8(h).map_err(|_| Reject::BadPickle)?;
                out.push(u8::from_str_radix(h, 16).map_err(|_| Reject::BadPickle)?);
                i += 2;
            }
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match inner.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            _ => {
                out.push(b'\\');
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// Python's `raw-unicode-escape` codec, used by the `UNICODE` opcode:
/// `\uXXXX` and `\UXXXXXXXX` escapes, every other byte is Latin-1.
fn raw_unicode_escape(raw: &[u8]) -> Step<String> {
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let digits = match (raw[i], raw.get(i + 1)) {
            (b'\\', Some(b'u')) => 4,
            (b'\\', Some(b'U')) => 8,
            (b, _) => {
                out.push(char::from(b));
                i += 1;
                continue;
            }
        };
        let hex = raw.get(i + 2..i + 2 + digits).ok_or(Reject::BadPickle)?;
        let hex = std::str::from_utf8(hex).map_err(|_| Reject::BadPickle)?;
        let cp = u32::from_str_radix(hex, 16).map_err(|_| Reject::BadPickle)?;
        out.push(char::from_u32(cp).ok_or(Reject::BadPickle)?);
        i += 2 + digits;
    }
    Ok(out)
}

/// Writes protocol-2 pickle frames of at most `max_points` points, each
/// with its 4-byte big-endian length prefix.
#[derive(Debug)]
pub struct Encoder {
    max_points: usize,
    frame: BytesMut,
    points: usize,
}

impl Encoder {
    /// `max_points` is carbon's `MAX_DATAPOINTS_PER_MESSAGE` (500).
    pub fn new(max_points: usize) -> Self {
        Encoder {
            max_points: max_points.max(1),
            frame: BytesMut::new(),
            points: 0,
        }
    }

    /// Adds one point; completes a frame into `out` when it is full.
    pub fn push(&mut self, name: &str, timestamp: i64, value: f64, out: &mut BytesMut) {
        if self.points == 0 {
            self.frame.clear();
            self.frame.put_slice(b"\x80\x02](");
        }
        self.frame.put_u8(b'X');
        self.frame.put_u32_le(name.len() as u32);
        self.frame.put_slice(name.as_bytes());
        match i32::try_from(timestamp) {
            Ok(t) => {
                self.frame.put_u8(b'J');
                self.frame.put_i32_le(t);
            }
            Err(_) => {
                self.frame.put_slice(&[0x8a, 8]);
                self.frame.put_i64_le(timestamp);
            }
        }
        self.frame.put_u8(b'G');
        self.frame.put_f64(value);
        self.frame.put_slice(&[0x86, 0x86]); // TUPLE2 (ts, v), TUPLE2 (name, _)
        self.points += 1;
        if self.points >= self.max_points {
            self.finish(out);
        }
    }

    /// Completes the frame in progress, if any, into `out`.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if self.points == 0 {
            return;
        }
        self.frame.put_slice(b"e.");
        out.put_u32(self.frame.len() as u32);
        out.put_slice(&self.frame);
        self.points = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(data: &[u8]) -> Result<Vec<Item>, Reject> {
        decode(data, || {})
    }

    fn item(name: &str, ts: f64, v: f64) -> Item {
        Item {
            name: name.into(),
            timestamp: ts,
            value: v,
        }
    }

    #[test]
    fn python3_protocol2_payload() {
        // pickle.dumps([('a.b', (1700000000, 1.5)), ('c', (1700000001, 2))], protocol=2)
        let data = b"\x80\x02]q\x00(X\x03\x00\x00\x00a.bq\x01J\x00\xf1SeG?\xf8\x00\x00\x00\x00\x00\x00\x86q\x02\x86q\x03X\x01\x00\x00\x00cq\x04J\x01\xf1SeK\x02\x86q\x05\x86q\x06e.";
        assert_eq!(
            items(data).unwrap(),
            vec![item("a.b", 1700000000.0, 1.5), item("c", 1700000001.0, 2.0)]
        );
    }

    #[test]
    fn protocol0_payload() {
        // pickle.dumps([('a', (1, '2.5'))], protocol=0)
        let data = b"(lp0\n(Va\np1\n(I1\nV2.5\np2\ntp3\ntp4\na.";
        assert_eq!(items(data).unwrap(), vec![item("a", 1.0, 2.5)]);
    }

    #[test]
    fn refuses_globals_and_objects() {
        // pickle.dumps([os.system], protocol=2) starts with a GLOBAL.
        assert_eq!(
            items(b"\x80\x02]q\x00cposix\nsystem\nq\x01a."),
            Err(Reject::BadPickle)
        );
        assert_eq!(
            items(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93."),
            Err(Reject::BadPickle)
        );
        assert_eq!(items(b"(tR."), Err(Reject::BadPickle));
    }

    #[test]
    fn bad_items_are_skipped_and_counted() {
        // [('ok', (1, 2)), ('bad',), (None, (1, 2))]
        let data = b"\x80\x02](X\x02\x00\x00\x00okK\x01K\x02\x86\x86X\x03\x00\x00\x00bad\x85N\x85K\x01K\x02\x86\x86e.";
        let mut bad = 0;
        let got = decode(data, || bad += 1).unwrap();
        assert_eq!(got, vec![item("ok", 1.0, 2.0)]);
        assert_eq!(bad, 2);
    }

    #[test]
    fn truncated_and_cyclic_frames_fail_cleanly() {
        let data = b"\x80\x02]q\x00(X\x03\x00\x00\x00a.b";
        assert_eq!(items(data), Err(Reject::BadPickle));
        // A list appended to itself: ]q\x00 h\x00 a .
        assert!(items(b"]q\x00h\x00a.").unwrap().is_empty());
        assert_eq!(items(b""), Err(Reject::BadPickle));
    }

    #[test]
    fn encoder_round_trips_through_decoder() {
        let mut enc = Encoder::new(2);
        let mut out = BytesMut::new();
        enc.push("a.b", 1700000000, 1.5, &mut out);
        enc.push("c;t=v", 5_000_000_000, -2.0, &mut out);
        enc.push("d", 7, 0.1, &mut out);
        enc.finish(&mut out);
        let mut frames = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            frames.push(items(&rest[4..4 + n]).unwrap());
            rest = &rest[4 + n..];
        }
        assert_eq!(
            frames,
            vec![
                vec![item("a.b", 1700000000.0, 1.5), item("c;t=v", 5e9, -2.0)],
                vec![item("d", 7.0, 0.1)],
            ]
        );
    }
}

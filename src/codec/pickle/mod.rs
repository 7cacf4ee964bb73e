//! The carbon pickle protocol: frames of a 4-byte big-endian length and a
//! pickle of `[(name, (timestamp, value)), ...]`.
//!
//! [`decode`] is a small stack machine for pickle protocols 0-5 that knows
//! only data opcodes: any opcode that names a global or builds an object
//! (`GLOBAL`, `STACK_GLOBAL`, `REDUCE`, `BUILD`, `INST`, `OBJ`, `NEWOBJ`, ...)
//! rejects the frame. That is carbon's `SafeUnpickler` under Python 3, where
//! every global lookup fails.
//!
//! A frame is hostile until proven otherwise, so the decoder is linear in
//! the frame's size in both time and memory:
//! - every opcode pushes at most one value, and containers and memo entries
//!   are shared (`Rc`), never copied, so the machine holds O(frame) values;
//! - extraction borrows; a name is copied out only after its length has
//!   been checked against [`Limits::max_name_bytes`] and charged to the
//!   frame's output budget ([`Limits::max_expansion`] times its size), so a
//!   name memoised once and referenced a million times costs what it
//!   references and is refused before it is materialised;
//! - nested values are torn down with a work list, not by recursive drops,
//!   so a million nested tuples cannot overflow the stack.
//!
//! [`Encoder`] writes protocol 2, as carbon's relay does towards
//! carbon-cache.

use std::cell::RefCell;
use std::rc::Rc;

use crate::codec::{pyfloat, Reject};

/// One decoded item: `(name, timestamp, value)` before carbon's checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The metric name as sent, not yet checked against carbon's rules.
    pub name: String,
    /// Timestamp, as a float the way carbon reads it.
    pub timestamp: f64,
    /// The value, which may still be NaN or infinite (the caller rejects those).
    pub value: f64,
}

/// What one frame may decode to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest name an item may carry (the listener passes
    /// `max_line_bytes`, so a name is bounded whichever port it comes in
    /// on). A longer one is a [`Reject::TooLong`] item, never copied.
    pub max_name_bytes: usize,
    /// The decoded items of a frame, names plus a fixed cost per item, may
    /// take at most this many times the frame's own size. Without memo
    /// references an honest frame decodes to less than its size; this is
    /// the bound that refuses a memo bomb as [`Reject::PickleBomb`].
    pub max_expansion: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_name_bytes: 16384,
            max_expansion: 8,
        }
    }
}

/// The fixed cost an item charges to the output budget besides its name:
/// about what an [`Item`] and its share of a line take.
const ITEM_COST_BYTES: usize = 32;

/// The smallest output budget, so that tiny frames with a few repeated
/// names are never refused.
const MIN_BUDGET_BYTES: usize = 64 << 10;

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
}

/// Decodes one pickle payload (the bytes after the length prefix) with the
/// default [`Limits`]; see [`decode_with`].
pub fn decode(data: &[u8], on_bad_item: impl FnMut(Reject)) -> Result<Vec<Item>, Reject> {
    decode_with(data, &Limits::default(), on_bad_item)
}

/// Decodes one pickle payload into items. A whole-frame failure is `Err`
/// (`BadPickle`, or `PickleBomb` when the output would exceed its budget);
/// a malformed item is reported through `on_bad_item` with its reason and
/// skipped, as carbon does.
pub fn decode_with(
    data: &[u8],
    limits: &Limits,
    mut on_bad_item: impl FnMut(Reject),
) -> Result<Vec<Item>, Reject> {
    let mut m = Machine::new(data);
    let top = m.run()?;
    let budget = data
        .len()
        .saturating_mul(limits.max_expansion)
        .max(MIN_BUDGET_BYTES);
    let items = extract(&top, limits, budget, &mut on_bad_item);
    m.stack.push(top); // torn down with the rest
    items
}

fn extract(
    top: &Value,
    limits: &Limits,
    mut budget: usize,
    on_bad_item: &mut impl FnMut(Reject),
) -> Result<Vec<Item>, Reject> {
    with_seq(top, |items| {
        let mut out = Vec::new();
        for item in items {
            match extract_item(item, limits, &mut budget) {
                Ok(i) => out.push(i),
                Err(Reject::PickleBomb) => return Err(Reject::PickleBomb),
                Err(r) => on_bad_item(r),
            }
        }
        Ok(out)
    })
    .ok_or(Reject::BadPickle)?
}

/// Runs `f` on the elements of a list or tuple, borrowed, never copied.
fn with_seq<R>(v: &Value, f: impl FnOnce(&[Value]) -> R) -> Option<R> {
    match v {
        Value::List(l) => Some(f(&l.borrow())),
        Value::Tuple(t) => Some(f(t)),
        _ => None,
    }
}

/// A two-element list or tuple.
fn pair<R>(v: &Value, f: impl FnOnce(&Value, &Value) -> R) -> Option<R> {
    with_seq(v, |s| match s {
        [a, b] => Some(f(a, b)),
        _ => None,
    })
    .flatten()
}

fn extract_item(item: &Value, limits: &Limits, budget: &mut usize) -> Result<Item, Reject> {
    let bad = Reject::BadPickleItem;
    let extracted = pair(item, |name, point| {
        let raw: &[u8] = match name {
            Value::Str(s) => s.as_bytes(),
            Value::Bytes(b) => b,
            _ => return Err(bad),
        };
        if raw.len() > limits.max_name_bytes {
            return Err(Reject::TooLong);
        }
        // Charged before anything is copied or validated: the budget is
        // what bounds the work a memo bomb can ask for.
        let cost = raw.len() + ITEM_COST_BYTES;
        #[cfg(test)]
        cost::add(cost);
        *budget = budget.checked_sub(cost).ok_or(Reject::PickleBomb)?;
        let (timestamp, value) = pair(point, |ts, v| Some((number(ts)?, number(v)?)))
            .flatten()
            .ok_or(bad)?;
        let name = std::str::from_utf8(raw).map_err(|_| bad)?.to_owned();
        Ok(Item {
            name,
            timestamp,
            value,
        })
    });
    extracted.unwrap_or(Err(bad))
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
    /// Stack heights at each open MARK, innermost last (Python's
    /// metastack): finding the last mark costs O(1), not a scan.
    marks: Vec<usize>,
    memo: Vec<Option<Value>>,
    lists: Vec<Rc<RefCell<Vec<Value>>>>,
}

type Step<T> = Result<T, Reject>;

impl Drop for Machine<'_> {
    /// Takes every value apart with a work list. Lists may reference
    /// themselves through the memo (a cycle `Rc` alone would leak), and
    /// values may nest a million deep (a recursive drop would overflow).
    fn drop(&mut self) {
        let mut work: Vec<Value> = std::mem::take(&mut self.stack);
        work.extend(self.memo.drain(..).flatten());
        for l in self.lists.drain(..) {
            work.append(&mut l.borrow_mut());
        }
        while let Some(v) = work.pop() {
            #[cfg(test)]
            cost::add(1);
            match v {
                Value::Tuple(mut t) => {
                    if let Some(items) = Rc::get_mut(&mut t) {
                        for x in items.iter_mut() {
                            work.push(std::mem::replace(x, Value::None));
                        }
                    }
                }
                Value::List(l) => work.append(&mut l.borrow_mut()),
                _ => {}
            }
        }
    }
}

impl<'a> Machine<'a> {
    fn new(data: &'a [u8]) -> Self {
        Machine {
            data,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: Vec::new(),
            lists: Vec::new(),
        }
    }

    fn take(&mut self, n: usize) -> Step<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or(Reject::BadPickle)?;
        #[cfg(test)]
        cost::add(n);
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

    /// The stack height below which the innermost MARK protects values.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn pop(&mut self) -> Step<Value> {
        if self.stack.len() <= self.floor() {
            return Err(Reject::BadPickle);
        }
        self.stack.pop().ok_or(Reject::BadPickle)
    }

    fn top(&self) -> Step<&Value> {
        if self.stack.len() <= self.floor() {
            return Err(Reject::BadPickle);
        }
        self.stack.last().ok_or(Reject::BadPickle)
    }

    /// Pops everything down to the last MARK, and the mark.
    fn pop_mark(&mut self) -> Step<Vec<Value>> {
        let at = self.marks.pop().ok_or(Reject::BadPickle)?;
        #[cfg(test)]
        cost::add(self.stack.len() - at);
        Ok(self.stack.split_off(at))
    }

    fn new_list(&mut self, items: Vec<Value>) -> Value {
        let l = Rc::new(RefCell::new(items));
        self.lists.push(l.clone());
        Value::List(l)
    }

    fn memo_put(&mut self, idx: usize) -> Step<()> {
        // The memo is indexed densely; an index beyond the frame's size
        // can only be an attack on memory.
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
            #[cfg(test)]
            cost::add(1);
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
                b'.' => {
                    if !self.marks.is_empty() {
                        return Err(Reject::BadPickle);
                    }
                    return self.pop();
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    // POP takes the innermost MARK when nothing is above it.
                    if self.stack.len() == self.floor() && !self.marks.is_empty() {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
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
                    if self.stack.len() < self.floor() + n {
                        return Err(Reject::BadPickle);
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
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

mod encode;
pub use encode::Encoder;

#[cfg(test)]
mod cost;
#[cfg(test)]
mod tests;

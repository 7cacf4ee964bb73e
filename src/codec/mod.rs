//! Stage 2, **codec**: bytes from a listener become [`Metric`]s, and metrics
//! become bytes for a destination.
//!
//! * [`line`]: the carbon plaintext protocol, with carbon's acceptance rules.
//! * [`pickle`]: a restricted unpickler (protocols 0-5, no globals) and the
//!   protocol-2 encoder used towards pickle destinations.
//! * [`tags`]: Graphite 1.1 tag validation and normalisation.
//! * [`pyfloat`]: Python `float()` number syntax.
//!
//! Every decoder reports a bad input as a [`Reject`], a small `Copy` enum that
//! the listener counts by reason; a reject never affects neighbouring lines.

pub mod line;
pub mod pickle;
pub mod pyfloat;
pub mod tags;

pub use line::{parse_line, Metric, ParseOptions};

/// Why one input line (or pickle item or frame) was not forwarded.
///
/// Kept `Copy` and allocation-free because it is produced on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Reject {
    /// The line held nothing but whitespace.
    #[error("empty line")]
    Empty,
    /// The line did not split into exactly three fields.
    #[error("expected exactly 3 fields: name value timestamp")]
    FieldCount,
    /// The value is not a number in Python `float()` syntax.
    #[error("value is not a number")]
    BadValue,
    /// The value is NaN; carbon drops such points without storing them.
    #[error("value is NaN")]
    NanValue,
    /// The timestamp is not a finite number in range.
    #[error("timestamp is not a finite number")]
    BadTimestamp,
    /// The line is not valid UTF-8.
    #[error("line is not valid UTF-8")]
    NotUtf8,
    /// The line exceeded `max_line_bytes`.
    #[error("line longer than max_line_bytes")]
    TooLong,
    /// The name carries Graphite tags that carbon would refuse.
    #[error("invalid Graphite tags")]
    BadTags,
    /// A whole pickle frame could not be decoded, or exceeded its size limit.
    #[error("invalid pickle frame")]
    BadPickle,
    /// A pickle item was not shaped `(name, (timestamp, value))`.
    #[error("invalid pickle item")]
    BadPickleItem,
    /// The stream ended inside a line or frame; carbon discards it too.
    #[error("stream ended mid-line or mid-frame")]
    Unterminated,
    /// A pickle frame would decode to more than its budget (memo
    /// references multiplying one name): refused whole before any of it
    /// was copied.
    #[error("pickle frame decodes to more than max_pickle_expansion times its size")]
    PickleBomb,
}

impl Reject {
    /// Every reason, for registering counters up front.
    pub const ALL: [Reject; 12] = [
        Reject::Empty,
        Reject::FieldCount,
        Reject::BadValue,
        Reject::NanValue,
        Reject::BadTimestamp,
        Reject::NotUtf8,
        Reject::TooLong,
        Reject::BadTags,
        Reject::BadPickle,
        Reject::BadPickleItem,
        Reject::Unterminated,
        Reject::PickleBomb,
    ];

    /// Stable snake_case label used in counters and self-metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reject::Empty => "empty",
            Reject::FieldCount => "field_count",
            Reject::BadValue => "bad_value",
            Reject::NanValue => "nan_value",
            Reject::BadTimestamp => "bad_timestamp",
            Reject::NotUtf8 => "not_utf8",
            Reject::TooLong => "too_long",
            Reject::BadTags => "bad_tags",
            Reject::BadPickle => "bad_pickle",
            Reject::BadPickleItem => "bad_pickle_item",
            Reject::Unterminated => "unterminated",
            Reject::PickleBomb => "pickle_bomb",
        }
    }

    /// Dense index into per-reason counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

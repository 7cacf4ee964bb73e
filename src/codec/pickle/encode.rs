//! The protocol-2 encoder used towards pickle destinations, as carbon's
//! relay writes to carbon-cache.

use bytes::{BufMut, BytesMut};

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

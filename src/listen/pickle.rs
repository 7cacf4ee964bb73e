//! Pickle over TCP: frames of a 4-byte big-endian length and a pickle of
//! `[(name, (timestamp, value)), ...]`, at most `max_pickle_frame_bytes`.

use std::borrow::Cow;

use bytes::{Buf, BytesMut};

use crate::codec::{pickle, Metric, ParseOptions, Reject};
use crate::listen::tcp::{Decoder, TcpListener};
use crate::listen::ListenConfig;
use crate::listen::RejectSampler;
use crate::relay::Dispatcher;

/// The pickle TCP listener (carbon's port 2004).
pub type PickleTcpListener = TcpListener<PickleDecoder>;

/// Decodes frames with the restricted unpickler.
#[derive(Debug)]
pub struct PickleDecoder {
    max_frame_bytes: usize,
    limits: pickle::Limits,
    normalize_tags: bool,
    /// Bytes of an oversized frame still to discard. Skipping keeps the
    /// stream in sync where carbon would close the connection.
    skip: usize,
}

impl Decoder for PickleDecoder {
    fn new(limits: &ListenConfig) -> Self {
        PickleDecoder {
            max_frame_bytes: limits.max_pickle_frame_bytes,
            limits: pickle::Limits {
                max_name_bytes: limits.max_line_bytes,
                max_expansion: limits.max_pickle_expansion,
            },
            normalize_tags: limits.normalize_tags,
            skip: 0,
        }
    }

    fn decode(
        &mut self,
        buf: &mut BytesMut,
        out: &mut Dispatcher,
        now: i64,
        peer: &str,
        sampler: &RejectSampler,
    ) -> bool {
        let opts = ParseOptions {
            normalize_tags: self.normalize_tags,
            now,
        };
        loop {
            if self.skip > 0 {
                let n = self.skip.min(buf.len());
                buf.advance(n);
                self.skip -= n;
                if self.skip > 0 {
                    return false;
                }
            }
            if buf.len() < 4 {
                return false;
            }
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len > self.max_frame_bytes {
                out.counts.rejected[Reject::BadPickle.index()] += 1;
                sampler.sample(
                    peer,
                    Reject::BadPickle,
                    b"frame longer than max_pickle_frame_bytes",
                );
                buf.advance(4);
                self.skip = len;
                continue;
            }
            if buf.len() < 4 + len {
                buf.reserve(4 + len - buf.len());
                return false;
            }
            let frame = buf.split_to(4 + len);
            let rejected = &mut out.counts.rejected;
            match pickle::decode_with(&frame[4..], &self.limits, |r| rejected[r.index()] += 1) {
                Ok(items) => {
                    for item in items {
                        match Metric::from_parts(
                            Cow::Owned(item.name),
                            item.value,
                            item.timestamp,
                            &opts,
                        ) {
                            Ok(m) => {
                                out.counts.received += 1;
                                out.dispatch(&m);
                            }
                            Err(r) => out.counts.rejected[r.index()] += 1,
                        }
                    }
                }
                Err(r) => {
                    out.counts.rejected[r.index()] += 1;
                    sampler.sample(peer, r, &frame[4..]);
                }
            }
            // One frame is at most 1 MiB of points: flush after each.
            return true;
        }
    }

    fn finish(&mut self, buf: &mut BytesMut, out: &mut Dispatcher) {
        if !buf.is_empty() && self.skip == 0 {
            out.counts.rejected[Reject::Unterminated.index()] += 1;
        }
        buf.clear();
    }
}

//! Plaintext over TCP: `\n`-terminated lines, at most `max_line_bytes`.

use bytes::{Buf, BytesMut};

use crate::codec::{ParseOptions, Reject};
use crate::listen::tcp::{Decoder, TcpListener};
use crate::listen::ListenConfig;
use crate::listen::{parse_counted, RejectSampler};
use crate::relay::Dispatcher;

/// The plaintext TCP listener (carbon's port 2003).
pub type PlaintextTcpListener = TcpListener<PlaintextDecoder>;

/// Splits lines and parses them with carbon's rules.
#[derive(Debug)]
pub struct PlaintextDecoder {
    max_line_bytes: usize,
    normalize_tags: bool,
    /// Inside an over-long line: discard up to the next `\n`.
    skipping: bool,
}

impl Decoder for PlaintextDecoder {
    fn new(limits: &ListenConfig) -> Self {
        PlaintextDecoder {
            max_line_bytes: limits.max_line_bytes,
            normalize_tags: limits.normalize_tags,
            skipping: false,
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
        let mut start = 0;
        let mut stopped_early = false;
        if self.skipping {
            // The rest of an over-long line, up to its `\n`.
            if let Some(nl) = memchr::memchr(b'\n', buf) {
                start = nl + 1;
                self.skipping = false;
            }
        }
        // The dispatcher may ask for a few lines to be parsed before any
        // is dispatched (see `Dispatcher::lookahead`).
        let ahead = out.lookahead();
        // Still skipping means the buffer holds no `\n`: the loop ends at
        // once. Nothing is allocated unless lines are parsed ahead.
        let mut parsed = Vec::new();
        while let Some(nl) = memchr::memchr(b'\n', &buf[start..]) {
            let line = &buf[start..start + nl];
            start += nl + 1;
            let Some(m) = parse_counted(line, self.max_line_bytes, &opts, out, peer, sampler)
            else {
                continue;
            };
            if ahead == 1 {
                stopped_early = out.dispatch(&m);
            } else {
                let key = out.prepare(&m.name);
                parsed.push((m, key));
                if parsed.len() == ahead {
                    // A flush request is honoured once the lines parsed are
                    // dispatched: a batch a few lines over is harmless.
                    for (m, key) in parsed.drain(..) {
                        stopped_early |= out.dispatch_prepared(&m, key);
                    }
                }
            }
            if stopped_early {
                break;
            }
        }
        for (m, key) in parsed.drain(..) {
            stopped_early |= out.dispatch_prepared(&m, key);
        }
        buf.advance(start);
        if !stopped_early && !self.skipping && buf.len() > self.max_line_bytes {
            // An unterminated line already past the limit: count it once and
            // discard the rest of it as it arrives.
            out.counts.rejected[Reject::TooLong.index()] += 1;
            sampler.sample(peer, Reject::TooLong, buf);
            buf.clear();
            self.skipping = true;
        } else if self.skipping {
            buf.clear();
        }
        stopped_early
    }

    fn finish(&mut self, buf: &mut BytesMut, out: &mut Dispatcher) {
        if !buf.is_empty() && !self.skipping {
            out.counts.rejected[Reject::Unterminated.index()] += 1;
        }
        buf.clear();
    }
}

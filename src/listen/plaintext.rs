//! Plaintext over TCP: `\n`-terminated lines, at most `max_line_bytes`.

use bytes::{Buf, BytesMut};

use crate::codec::{ParseOptions, Reject};
use crate::config::ListenConfig;
use crate::listen::tcp::{Decoder, TcpListener};
use crate::listen::{take_line, RejectSampler};
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
        let alerting = out.alerting_live();
        while let Some(nl) = memchr::memchr(b'\n', &buf[start..]) {
            let line = &buf[start..start + nl];
            start += nl + 1;
            // The next line's name, up to its first space, for alerting's
            // cache to load while this line is parsed.
            if alerting {
                let next = &buf[start..buf.len().min(start + 256)];
                if let Some(sp) = memchr::memchr(b' ', next) {
                    out.prefetch(&next[..sp]);
                }
            }
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if take_line(line, self.max_line_bytes, &opts, out, peer, sampler) {
                stopped_early = true;
                break;
            }
        }
        out.forget_prefetched();
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

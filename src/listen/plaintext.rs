//! Plaintext over TCP: `\n`-terminated lines, at most `max_line_bytes`.

use bytes::{Buf, BytesMut};

use crate::codec::{ParseOptions, Reject};
use crate::config::ListenConfig;
use crate::listen::tcp::{Decoder, TcpListener};
use crate::listen::{parse_counted, RejectSampler};
use crate::relay::Dispatcher;

/// Lines parsed ahead of dispatch while alerting asks for it.
const PARSE_AHEAD: usize = 8;

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
        // While alerting asks for it, a few lines are parsed before any is
        // dispatched, so the cache lines alerting needs for their names
        // load meanwhile (one line ahead hid too little of a miss).
        let ahead = if out.alerting_reads_ahead() {
            PARSE_AHEAD
        } else {
            1
        };
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
                let key = out.prefetch(&m.name);
                parsed.push((m, key));
                if parsed.len() == ahead {
                    // A flush request is honoured once the lines parsed are
                    // dispatched: a batch a few lines over is harmless.
                    for (m, key) in parsed.drain(..) {
                        stopped_early |= out.dispatch_prefetched(&m, key);
                    }
                }
            }
            if stopped_early {
                break;
            }
        }
        for (m, key) in parsed.drain(..) {
            stopped_early |= out.dispatch_prefetched(&m, key);
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::alert::index::PatternIndex;
    use crate::alert::tap::AlertTap;
    use crate::config::Config;
    use crate::relay::Relay;
    use crate::stats::Stats;

    /// Parsing ahead for alerting must not change what is counted,
    /// forwarded or offered, nor their order, around rejects, an over-long
    /// line and the flush requests of a large buffer.
    #[tokio::test]
    async fn parsing_ahead_keeps_every_line_and_its_order() {
        let config = Config::parse(
            "[[cluster]]\nname = \"c\"\ntype = \"forward\"\ndestinations = [\"127.0.0.1:9\"]\n\
             [[route]]\nmatch = \"*\"\nto = [\"c\"]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let tap = Arc::new(AlertTap::new(tx, 1000, std::time::Duration::from_millis(4)));
        tap.publish(Arc::new(PatternIndex::build([(0, "a.*")], 1).0));
        let relay = Relay::start(&config, Arc::new(Stats::default()), Some(tap));
        let mut out = relay.dispatcher();
        out.flush_alerts(); // picks up the index
        assert!(out.alerting_live());
        assert!(out.alerting_reads_ahead(), "new names are not predictable");

        let mut input = Vec::new();
        let mut want = Vec::new();
        for i in 0..20_000 {
            match i % 500 {
                7 => input.extend_from_slice(b"not a metric\n"),
                13 => input.extend_from_slice(&[b'x'; 100][..]),
                14 => input.extend_from_slice(b" 1 1\n"), // ends the long line
                _ => {
                    let name = if i % 3 == 0 { "a" } else { "b" };
                    input.extend_from_slice(format!("{name}.{i} {i} 1700000000\n").as_bytes());
                    if name == "a" {
                        want.push((format!("a.{i}"), i as f64));
                    }
                }
            }
        }
        let mut decoder = PlaintextDecoder::new(&ListenConfig {
            max_line_bytes: 64,
            ..Default::default()
        });
        let sampler = RejectSampler::default();
        let mut buf = BytesMut::new();
        let mut flushes = 0;
        // In reads of 4 KiB, the way a socket hands them over.
        for chunk in input.chunks(4096) {
            buf.extend_from_slice(chunk);
            while decoder.decode(&mut buf, &mut out, 1_700_000_000, "t", &sampler) {
                flushes += 1;
            }
        }
        assert!(buf.is_empty());
        assert!(flushes > 0, "a large input asks for flushes");
        let good = 20_000 - 3 * 40;
        assert_eq!(out.counts.received, good);
        assert_eq!(out.counts.rejected[Reject::TooLong.index()], 40);
        assert_eq!(out.counts.rejected.iter().sum::<u64>(), 80);
        out.flush_alerts();
        let mut got = Vec::new();
        while let Ok(points) = rx.try_recv() {
            got.extend(points.iter().map(|(n, v)| (n.to_string(), v)));
        }
        assert_eq!(got, want);
    }
}

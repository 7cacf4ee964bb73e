//! The alerting tap on the data path: nanoseconds per point offered, with
//! the names in the same order every round (as statsd, collectd and
//! Telegraf send them) and in a new order every round. 1% of the names
//! match a check.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;

use carbonwatch::relay::tap::{AlertFlush, AlertTap};
use carbonwatch::route::index::PatternIndex;

/// 10,000 names, one in a hundred under `host000`.
fn names() -> Vec<String> {
    (0..10_000)
        .map(|i| format!("bench.c0.host{:03}.metric{i:05}", i % 100))
        .collect()
}

/// The same 10,000 names in `rounds` different orders.
fn shuffled(names: &[String], rounds: usize) -> Vec<Vec<String>> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..rounds)
        .map(|_| {
            let mut v = names.to_vec();
            for i in (1..v.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                v.swap(i, (state % (i as u64 + 1)) as usize);
            }
            v
        })
        .collect()
}

fn offer(c: &mut Criterion) {
    let names = names();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1 << 16);
    let tap = Arc::new(AlertTap::new(
        tx,
        500_000,
        std::time::Duration::from_millis(4),
    ));
    tap.publish(Arc::new(
        PatternIndex::build([(0, "bench.*.host000.*"), (1, "other.*.x")], 1).0,
    ));
    let mut g = c.benchmark_group("tap");
    g.throughput(Throughput::Elements(names.len() as u64));
    let orders = [
        ("same order every round", vec![names.clone()]),
        ("new order every round", shuffled(&names, 8)),
    ];
    for (label, rounds) in orders {
        let mut cache = tap.cache();
        cache.flush(AlertFlush::All);
        let mut r = 0;
        let mut keys = Vec::with_capacity(8);
        g.bench_function(label, |b| {
            b.iter(|| {
                // As the plaintext reader does: a few names ahead while the
                // tap asks for it.
                let round = &rounds[r % rounds.len()];
                if cache.reads_ahead() {
                    for chunk in round.chunks(8) {
                        keys.clear();
                        keys.extend(chunk.iter().map(|n| cache.prefetch(n)));
                        for (n, &key) in chunk.iter().zip(&keys) {
                            cache.offer(black_box(n), key, 1.0, 1_800_000_000);
                        }
                    }
                } else {
                    for n in round {
                        cache.offer(black_box(n), None, 1.0, 1_800_000_000);
                    }
                }
                r += 1;
                cache.flush(AlertFlush::All);
                while rx.try_recv().is_ok() {}
            })
        });
    }
    g.finish();
}

criterion_group!(benches, offer);
criterion_main!(benches);

//! The alerting tap on the data path: nanoseconds per point offered, with
//! the names in the same order every round (as statsd, collectd and
//! Telegraf send them) and in a new order every round. 1% of the names
//! match a check.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;

use carbonwatch::relay::tap::{AlertFlush, AlertTap};
use carbonwatch::route::index::PatternIndex;

/// `n` names, one in a hundred under `host000`.
fn names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("bench.c0.host{:03}.metric{i:05}", i % 100))
        .collect()
}

/// The same names in `rounds` different orders.
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
    for n in [10_000, 100_000] {
        let names = names(n);
        g.throughput(Throughput::Elements(names.len() as u64));
        let orders = [
            ("same order every round", vec![names.clone()], true),
            ("new order every round", shuffled(&names, 8), true),
            (
                "new order every round, no read-ahead",
                shuffled(&names, 8),
                false,
            ),
        ];
        for (label, rounds, read_ahead) in orders {
            let mut cache = tap.cache();
            cache.flush(AlertFlush::All);
            let mut r = 0;
            let mut keys = Vec::with_capacity(8);
            g.bench_function(format!("{n} names, {label}"), |b| {
                b.iter(|| {
                    // As the plaintext reader does: a few names ahead while
                    // the tap asks for it.
                    let round = &rounds[r % rounds.len()];
                    if read_ahead && cache.reads_ahead() {
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
    }
    g.finish();
}

criterion_group!(benches, offer);
criterion_main!(benches);

//! Disk spool throughput, in lines per second: appending batches (with the
//! default 1 s fsync interval) and replaying them (read, check, commit,
//! delete segments). Batches are 64 KiB of canonical lines, as the
//! dispatcher hands them to a destination's queue.

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use carbonwatch::relay::queue::Batch;
use carbonwatch::relay::spool::{Spool, SpoolLimits};

fn batch() -> Batch {
    let mut data = String::new();
    let mut lines = 0;
    while data.len() < 64 << 10 {
        data.push_str(&format!(
            "servers.web{:03}.cpu.user {lines}.25 1700000000\n",
            lines % 500
        ));
        lines += 1;
    }
    Batch {
        data: Bytes::from(data),
        lines,
    }
}

fn spool(c: &mut Criterion) {
    let b = batch();
    let per_round = 256; // 16 MiB
    let mut g = c.benchmark_group("spool");
    g.throughput(Throughput::Elements(u64::from(b.lines) * per_round));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    let limits = SpoolLimits::default();
    g.bench_function("append 16 MiB", |bench| {
        bench.iter_with_setup(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let mut s = Spool::open(dir.path(), limits.clone()).unwrap();
                for _ in 0..per_round {
                    s.append(&b, 1).unwrap();
                }
                s.sync().unwrap();
                dir
            },
        )
    });
    g.bench_function("replay 16 MiB", |bench| {
        bench.iter_with_setup(
            || {
                let dir = tempfile::tempdir().unwrap();
                let mut s = Spool::open(dir.path(), limits.clone()).unwrap();
                for _ in 0..per_round {
                    s.append(&b, 1).unwrap();
                }
                s.sync().unwrap();
                dir
            },
            |dir| {
                let mut s = Spool::open(dir.path(), limits.clone()).unwrap();
                let mut n = 0u64;
                while let Some((got, _)) = s.next_batch().unwrap() {
                    n += u64::from(got.lines);
                    s.commit().unwrap();
                }
                assert_eq!(n, u64::from(b.lines) * per_round);
                dir
            },
        )
    });
    g.finish();
}

criterion_group!(benches, spool);
criterion_main!(benches);

//! One aggregation rule's cost per point: the regex groups, the output
//! names, the series lookup and the bucket, on one thread (no contention)
//! for 100 and for 20,000 output series.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;

use carbonwatch::config::Config;
use carbonwatch::relay::aggregate::{Aggregator, Limits};

fn aggregator(regex: &str, computes: &str) -> (Aggregator, regex::Regex) {
    let text = format!(
        "[alerting]\nstore = ''\n[[aggregate]]\nregex = '{regex}'\nevery_secs = 10\nexpire_secs = 600\n\
         compute = [{computes}]\n"
    );
    let config = Config::parse(&text, std::path::Path::new("bench.toml")).unwrap();
    let spec = config.router.aggregates[0].clone();
    let limits = Limits {
        max_series: 1 << 20,
        max_values: 100_000,
        series: Arc::default(),
    };
    (
        Aggregator::new(spec, limits),
        regex::Regex::new(regex).unwrap(),
    )
}

fn puts(c: &mut Criterion) {
    let names: Vec<String> = (0..20_000)
        .map(|i| format!("servers.web{:03}.cpu.core{:02}.user", i % 100, i % 200))
        .collect();
    let now = carbonwatch::unix_now();
    let mut g = c.benchmark_group("aggregate");
    g.throughput(Throughput::Elements(names.len() as u64));
    for (label, regex, computes) in [
        (
            "sum+count, 100 series",
            r"^servers\.(web[0-9]+)\.cpu\..*$",
            r"{ function = 'sum', write_to = 'agg.\1.sum' }, { function = 'count', write_to = 'agg.\1.count' }",
        ),
        (
            "sum+count, 20000 series",
            r"^servers\.(web[0-9]+)\.cpu\.(core[0-9]+)\..*$",
            r"{ function = 'sum', write_to = 'agg.\1.\2.sum' }, { function = 'count', write_to = 'agg.\1.\2.count' }",
        ),
        (
            "median, 100 series",
            r"^servers\.(web[0-9]+)\.cpu\..*$",
            r"{ function = 'median', write_to = 'agg.\1.median' }",
        ),
    ] {
        let (a, re) = aggregator(regex, computes);
        g.bench_function(label, |b| {
            b.iter(|| {
                for n in &names {
                    a.put(Some(&re), black_box(n), 1.5, now, &|| now);
                }
                // Keep the median's values from growing without end.
                a.expire(i64::MAX, true, &mut |_| {});
            })
        });
    }
    g.finish();
}

criterion_group!(benches, puts);
criterion_main!(benches);

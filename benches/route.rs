//! Routing throughput per cluster type, in metrics per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

use carbonwatch::config::Config;
use carbonwatch::route::memo::RouteMemo;
use carbonwatch::route::Routes;

fn router(cluster: &str, rules: &str) -> Config {
    let text = format!("{cluster}\n{rules}");
    Config::parse(&text, std::path::Path::new("bench.toml")).unwrap()
}

fn cluster(kind: &str, n: usize, replication: usize) -> String {
    let dests: Vec<String> = (0..n)
        .map(|i| format!("\"10.0.0.{}:2003:i{i}\"", i + 1))
        .collect();
    format!("[[cluster]]\nname = \"c\"\ntype = \"{kind}\"\nreplication = {replication}\ndestinations = [{}]\n", dests.join(","))
}

const MATCH_ALL: &str = "[[route]]\nmatch = \"*\"\nto = [\"c\"]\nstop = true\n";

fn names() -> Vec<String> {
    (0..10_000)
        .map(|i| format!("servers.web{:03}.cpu.core{}.user", i % 500, i % 16))
        .collect()
}

fn clusters(c: &mut Criterion) {
    let names = names();
    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(names.len() as u64));
    for (label, kind, n, r) in [
        ("forward x1", "forward", 1, 1),
        ("carbon_ch x3", "carbon_ch", 3, 1),
        ("carbon_ch x3 r2", "carbon_ch", 3, 2),
        ("carbon_ch_crelay x3", "carbon_ch_crelay", 3, 1),
        ("fnv1a_ch x3", "fnv1a_ch", 3, 1),
        ("jump_fnv1a_ch x3", "jump_fnv1a_ch", 3, 1),
        ("any_of x3", "any_of", 3, 1),
    ] {
        let config = router(&cluster(kind, n, r), MATCH_ALL);
        let mut routes = Routes::default();
        g.bench_function(label, |b| {
            b.iter(|| {
                for name in &names {
                    config.router.route(black_box(name), &|_| true, &mut routes);
                    black_box(&routes.targets);
                }
            })
        });
    }
    // 100 glob rules before the catch-all: the cost of a long rule list.
    let mut rules = String::new();
    for i in 0..100 {
        rules.push_str(&format!(
            "[[route]]\nmatch = \"app{i}.*.{{a,b}}.count\"\nto = [\"c\"]\nstop = true\n"
        ));
    }
    rules.push_str(MATCH_ALL);
    let config = router(&cluster("forward", 1, 1), &rules);
    let mut routes = Routes::default();
    g.bench_function("100 glob rules then *", |b| {
        b.iter(|| {
            for name in &names {
                config.router.route(black_box(name), &|_| true, &mut routes);
            }
        })
    });
    g.finish();
}

/// Routes remembered per name, as a connection's dispatcher does: 10,000
/// and 100,000 names, each pass in a new order, against routing each.
fn remembered(c: &mut Criterion) {
    let mut g = c.benchmark_group("route remembered");
    for count in [10_000usize, 100_000] {
        let mut names: Vec<String> = (0..count)
            .map(|i| format!("servers.web{:05}.cpu.core{}.user", i / 16, i % 16))
            .collect();
        // A fixed shuffle (xorshift), so runs compare.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in (1..names.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            names.swap(i, (x % (i as u64 + 1)) as usize);
        }
        g.throughput(Throughput::Elements(names.len() as u64));
        for kind in ["carbon_ch", "jump_fnv1a_ch"] {
            let config = router(&cluster(kind, 3, 1), MATCH_ALL);
            let mut routes = Routes::default();
            let mut memo = RouteMemo::new(262_144, 1);
            g.bench_function(format!("{kind} x3, {count} names"), |b| {
                b.iter(|| {
                    for name in &names {
                        memo.route(&config.router, black_box(name), &|_| true, &mut routes);
                        black_box(&routes.targets);
                    }
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, clusters, remembered);
criterion_main!(benches);

//! Parser throughput: plaintext lines and pickle frames, in lines per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

use carbonwatch::codec::pickle::{self, Encoder};
use carbonwatch::codec::{parse_line, ParseOptions};

fn lines(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                "servers.web{:03}.cpu.core{}.user {}.25 1700000000",
                i % 500,
                i % 16,
                i
            )
            .into_bytes()
        })
        .collect()
}

fn plaintext(c: &mut Criterion) {
    let opts = ParseOptions {
        normalize_tags: false,
        now: 1_700_000_000,
    };
    let input = lines(10_000);
    let mut g = c.benchmark_group("plaintext");
    g.throughput(Throughput::Elements(input.len() as u64));
    g.bench_function("parse_line canonical", |b| {
        b.iter(|| {
            for l in &input {
                black_box(parse_line(black_box(l), &opts).unwrap());
            }
        })
    });
    let messy: Vec<Vec<u8>> = input
        .iter()
        .map(|l| {
            l.iter()
                .map(|&b| if b == b' ' { b'\t' } else { b })
                .collect()
        })
        .collect();
    g.bench_function("parse_line tab-separated", |b| {
        b.iter(|| {
            for l in &messy {
                black_box(parse_line(black_box(l), &opts).unwrap());
            }
        })
    });
    let tagged: Vec<Vec<u8>> = (0..10_000)
        .map(|i| format!("cpu.user;host=web{i};dc=eu 1.5 1700000000").into_bytes())
        .collect();
    g.bench_function("parse_line tagged", |b| {
        b.iter(|| {
            for l in &tagged {
                black_box(parse_line(black_box(l), &opts).unwrap());
            }
        })
    });
    g.finish();
}

fn pickle_frames(c: &mut Criterion) {
    let mut frame = bytes::BytesMut::new();
    let mut enc = Encoder::new(500);
    for i in 0..500 {
        enc.push(
            &format!("servers.web{:03}.cpu.user", i),
            1_700_000_000 + i,
            i as f64 * 0.5,
            &mut frame,
        );
    }
    enc.finish(&mut frame);
    let payload = frame[4..].to_vec();
    let mut g = c.benchmark_group("pickle");
    g.throughput(Throughput::Elements(500));
    g.bench_function("decode 500-point frame", |b| {
        b.iter(|| black_box(pickle::decode(black_box(&payload), |_| {}).unwrap()))
    });
    g.finish();
}

/// Hostile input's cost, beside an honest line's: a name with 2,500 tags
/// (carbon's pairwise check made it about 1,000 times a plain line) and
/// the 1 MiB memo bomb of issue #11, refused by its budget.
fn hostile(c: &mut Criterion) {
    let mut g = c.benchmark_group("hostile");
    let mut tagged = String::from("disk.used");
    for i in 0..2500 {
        tagged.push_str(&format!(";tag{i}=value{i}"));
    }
    g.bench_function("normalize 2,500 tags", |b| {
        b.iter(|| black_box(carbonwatch::codec::tags::normalize(black_box(&tagged)).unwrap()))
    });
    let mut bomb = b"\x80\x02]q\x00(X".to_vec();
    bomb.extend_from_slice(&200_000u32.to_le_bytes());
    bomb.extend(std::iter::repeat_n(b'a', 200_000));
    bomb.extend_from_slice(b"q\x01J\x00\xf1SeK\x01\x86q\x02\x86");
    while bomb.len() < (1 << 20) - 16 {
        bomb.extend_from_slice(b"h\x01h\x02\x86");
    }
    bomb.extend_from_slice(b"e.");
    let limits = pickle::Limits {
        max_name_bytes: 1 << 20,
        ..pickle::Limits::default()
    };
    g.bench_function("refuse 1 MiB memo bomb", |b| {
        b.iter(|| black_box(pickle::decode_with(black_box(&bomb), &limits, |_| {})).unwrap_err())
    });
    g.finish();
}

criterion_group!(benches, plaintext, pickle_frames, hostile);
criterion_main!(benches);

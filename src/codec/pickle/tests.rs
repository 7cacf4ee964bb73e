use super::*;
use bytes::BytesMut;

fn items(data: &[u8]) -> Result<Vec<Item>, Reject> {
    decode(data, |_| {})
}

fn item(name: &str, ts: f64, v: f64) -> Item {
    Item {
        name: name.into(),
        timestamp: ts,
        value: v,
    }
}

/// Hostile frames of about `n` bytes, one per shape the decoder must
/// survive in linear time and memory.
mod hostile {
    /// One long name memoised once and referenced by every item.
    pub fn memo_bomb(name_len: usize, n: usize) -> Vec<u8> {
        let mut f = b"\x80\x02]q\x00(X".to_vec();
        f.extend_from_slice(&(name_len as u32).to_le_bytes());
        f.extend(std::iter::repeat_n(b'a', name_len));
        f.extend_from_slice(b"q\x01J\x00\xf1SeK\x01\x86q\x02\x86");
        while f.len() < n {
            f.extend_from_slice(b"h\x01h\x02\x86");
        }
        f.extend_from_slice(b"e.");
        f
    }

    /// A list of many elements referenced by every item (each was a
    /// copy of the whole list).
    pub fn list_refs(n: usize) -> Vec<u8> {
        let mut f = b"\x80\x02]q\x00]q\x01(".to_vec();
        let half = f.len() + n / 2;
        while f.len() < half {
            f.push(b'N');
        }
        f.extend_from_slice(b"e(");
        while f.len() < n {
            f.extend_from_slice(b"h\x01");
        }
        f.extend_from_slice(b"e0h\x00(h\x01e.");
        f
    }

    /// Tuples nested one inside the next.
    pub fn nested_tuples(n: usize) -> Vec<u8> {
        let mut f = b")".to_vec();
        f.extend(std::iter::repeat_n(0x85u8, n));
        f.push(b'.');
        f
    }

    /// Lists nested one inside the next through MARKs.
    pub fn nested_lists(n: usize) -> Vec<u8> {
        let mut f = vec![b'('; n / 2];
        f.extend(std::iter::repeat_n(b'l', n / 2));
        f.push(b'.');
        f
    }

    /// Many values under one MARK, popped a few at a time by TUPLE3.
    pub fn wide_mark(n: usize) -> Vec<u8> {
        let mut f = b"](".to_vec();
        while f.len() < n / 2 {
            f.push(b'N');
        }
        while f.len() < n {
            f.push(0x87);
        }
        f.extend_from_slice(b"e.");
        f
    }

    /// Valid items whose names are longer than the limit.
    pub fn long_names(name_len: usize, n: usize) -> Vec<u8> {
        let mut f = b"\x80\x02](".to_vec();
        while f.len() < n {
            f.push(b'X');
            f.extend_from_slice(&(name_len as u32).to_le_bytes());
            f.extend(std::iter::repeat_n(b'n', name_len));
            f.extend_from_slice(b"K\x01K\x02\x86\x86");
        }
        f.extend_from_slice(b"e.");
        f
    }
}

#[test]
fn a_memo_bomb_is_refused_before_it_is_materialised() {
    // The frame: a 200 KB name referenced by 2-byte BINGETs
    // throughout 1 MiB would decode to about 40 GB.
    let frame = hostile::memo_bomb(200_000, 1 << 20);
    let limits = Limits {
        max_name_bytes: 1 << 20,
        ..Limits::default()
    };
    let (r, _, peak) = cost::measure(|| decode_with(&frame, &limits, |_| {}));
    assert_eq!(r, Err(Reject::PickleBomb));
    assert!(peak < 40 * frame.len(), "peak {peak} bytes");
    // With the default name limit each item is refused on its own,
    // without copying its name.
    let mut too_long = 0;
    let (r, _, peak) = cost::measure(|| {
        decode_with(&frame, &Limits::default(), |r| {
            assert_eq!(r, Reject::TooLong);
            too_long += 1
        })
    });
    assert_eq!(r, Ok(vec![]));
    assert!(too_long > 150_000);
    assert!(peak < 40 * frame.len(), "peak {peak} bytes");
}

#[test]
fn honest_frames_with_repeated_names_are_within_budget() {
    // Python's pickler memoises a repeated name: 50 points of one
    // 100-byte name in one frame is an honest frame.
    let frame = hostile::memo_bomb(100, 400);
    let got = items(&frame).unwrap();
    assert!(got.len() > 50);
    assert!(got.iter().all(|i| i.name.len() == 100 && i.value == 1.0));
}

#[test]
fn list_references_cost_what_they_reference_once() {
    let frame = hostile::list_refs(120_000);
    let (r, work, _) = cost::measure(|| items(&frame));
    // Every reference is a list of many elements, so not an item.
    assert_eq!(r, Ok(vec![]));
    assert!(work < 16 * frame.len(), "work {work}");
}

#[test]
fn deep_nesting_neither_recurses_nor_overflows() {
    for frame in [
        hostile::nested_tuples(2_000_000),
        hostile::nested_lists(2_000_000),
    ] {
        // A one-element sequence whose element is no item.
        let mut bad = 0;
        assert_eq!(decode(&frame, |_| bad += 1), Ok(vec![]));
        assert_eq!(bad, 1);
    }
    // Inside a valid top-level list too.
    let mut f = b"](".to_vec();
    f.extend_from_slice(&hostile::nested_tuples(1_000_000)[..1_000_001]);
    f.extend_from_slice(b"e.");
    let mut bad = 0;
    assert_eq!(decode(&f, |_| bad += 1), Ok(vec![]));
    assert_eq!(bad, 1);
}

#[test]
fn names_longer_than_the_limit_are_items_rejected_as_too_long() {
    let frame = hostile::long_names(40, 400);
    let limits = Limits {
        max_name_bytes: 39,
        ..Limits::default()
    };
    let mut reasons = Vec::new();
    assert_eq!(
        decode_with(&frame, &limits, |r| reasons.push(r)),
        Ok(vec![])
    );
    assert!(!reasons.is_empty() && reasons.iter().all(|&r| r == Reject::TooLong));
    let limits = Limits {
        max_name_bytes: 40,
        ..limits
    };
    assert_eq!(
        decode_with(&frame, &limits, |_| {}).unwrap().len(),
        reasons.len()
    );
}

mod linear {
    use super::super::*;
    use super::hostile;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Work and peak memory per frame byte stay under one bound
        /// whatever the shape and the size: linear, with constants
        /// small enough that 1 MiB frames cost a few tens of MiB.
        #[test]
        fn work_and_memory_grow_linearly(shape in 0usize..6, kib in 1usize..512, name_len in 1usize..4096) {
            let n = kib << 10;
            let frame = match shape {
                0 => hostile::memo_bomb(name_len, n),
                1 => hostile::list_refs(n),
                2 => hostile::nested_tuples(n),
                3 => hostile::nested_lists(n),
                4 => hostile::wide_mark(n),
                _ => hostile::long_names(name_len, n),
            };
            let limits = Limits { max_name_bytes: 1 << 20, ..Limits::default() };
            let (_, work, peak) = crate::codec::pickle::cost::measure(|| decode_with(&frame, &limits, |_| {}));
            let len = frame.len();
            prop_assert!(work <= 24 * len + 4096, "shape {} len {} work {}", shape, len, work);
            prop_assert!(peak <= 96 * len + (1 << 20), "shape {} len {} peak {}", shape, len, peak);
        }
    }
}

#[test]
fn python3_protocol2_payload() {
    // pickle.dumps([('a.b', (1700000000, 1.5)), ('c', (1700000001, 2))], protocol=2)
    let data = b"\x80\x02]q\x00(X\x03\x00\x00\x00a.bq\x01J\x00\xf1SeG?\xf8\x00\x00\x00\x00\x00\x00\x86q\x02\x86q\x03X\x01\x00\x00\x00cq\x04J\x01\xf1SeK\x02\x86q\x05\x86q\x06e.";
    assert_eq!(
        items(data).unwrap(),
        vec![item("a.b", 1700000000.0, 1.5), item("c", 1700000001.0, 2.0)]
    );
}

#[test]
fn protocol0_payload() {
    // pickle.dumps([('a', (1, '2.5'))], protocol=0)
    let data = b"(lp0\n(Va\np1\n(I1\nV2.5\np2\ntp3\ntp4\na.";
    assert_eq!(items(data).unwrap(), vec![item("a", 1.0, 2.5)]);
}

#[test]
fn refuses_globals_and_objects() {
    // pickle.dumps([os.system], protocol=2) starts with a GLOBAL.
    assert_eq!(
        items(b"\x80\x02]q\x00cposix\nsystem\nq\x01a."),
        Err(Reject::BadPickle)
    );
    assert_eq!(
        items(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93."),
        Err(Reject::BadPickle)
    );
    assert_eq!(items(b"(tR."), Err(Reject::BadPickle));
}

#[test]
fn bad_items_are_skipped_and_counted() {
    // [('ok', (1, 2)), ('bad',), (None, (1, 2))]
    let data = b"\x80\x02](X\x02\x00\x00\x00okK\x01K\x02\x86\x86X\x03\x00\x00\x00bad\x85N\x85K\x01K\x02\x86\x86e.";
    let mut bad = 0;
    let got = decode(data, |_| bad += 1).unwrap();
    assert_eq!(got, vec![item("ok", 1.0, 2.0)]);
    assert_eq!(bad, 2);
}

#[test]
fn truncated_and_cyclic_frames_fail_cleanly() {
    let data = b"\x80\x02]q\x00(X\x03\x00\x00\x00a.b";
    assert_eq!(items(data), Err(Reject::BadPickle));
    // A list appended to itself: ]q\x00 h\x00 a .
    assert!(items(b"]q\x00h\x00a.").unwrap().is_empty());
    assert_eq!(items(b""), Err(Reject::BadPickle));
}

#[test]
fn encoder_round_trips_through_decoder() {
    let mut enc = Encoder::new(2);
    let mut out = BytesMut::new();
    enc.push("a.b", 1700000000, 1.5, &mut out);
    enc.push("c;t=v", 5_000_000_000, -2.0, &mut out);
    enc.push("d", 7, 0.1, &mut out);
    enc.finish(&mut out);
    let mut frames = Vec::new();
    let mut rest = &out[..];
    while !rest.is_empty() {
        let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        frames.push(items(&rest[4..4 + n]).unwrap());
        rest = &rest[4 + n..];
    }
    assert_eq!(
        frames,
        vec![
            vec![item("a.b", 1700000000.0, 1.5), item("c;t=v", 5e9, -2.0)],
            vec![item("d", 7.0, 0.1)],
        ]
    );
}

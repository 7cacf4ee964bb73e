//! `seriesByTag` against graphite-web itself: Debian's carbon-cache with
//! tags enabled registers every series it creates in Debian's graphite-web
//! (its local TagDB), and for each expression of a table the series
//! graphite-web's `/tags/findSeries` returns must be exactly those the
//! live-check index matches.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{free_port, CarbonCache, GraphiteWeb};
use carbonwatch::codec::tags::normalize;
use carbonwatch::route::index::PatternIndex;
use tokio::io::AsyncWriteExt;

/// As sent: unsorted tags, repeated tags, a `name` tag, untagged names.
const SERIES: &[&str] = &[
    "disk.used;host=web1;dc=ams",
    "disk.used;dc=ams;host=web2;env=dev",
    "disk.used;host=db1;dc=ams;role=db",
    "disk.used;host=web3;dc=fra",
    "disk.free;host=web1;dc=ams",
    "cpu.load;host=web1;dc=ams;env=prod",
    "cpu.load;host=webdb;dc=fra;role=dbweb",
    "cpu.load;host=db2;dc=ams;dc=fra",
    "net.rx;name=ignored;host=web1",
    "auth.failed;host=bastion;env=prod",
    "disk.used",
    "cpu.load",
];

/// Each as one `findSeries` query (its expressions, in order).
const EXPRESSIONS: &[&[&str]] = &[
    &["name=disk.used"],
    &["name=disk.used", "dc=ams"],
    &["name=disk.used", "host=~web.*"],
    &["host=~web"],
    &["host=~eb"],
    &["host=~^web[0-9]$"],
    &["host=~(db|web)1"],
    &["dc=ams", "env!=dev"],
    &["dc=ams", "role!=~db.*"],
    &["dc=fra", "host!=~web"],
    &["dc=ams", "role="],
    &["dc=ams", "env="],
    &["role!="],
    &["name=~disk"],
    &["name=~.*load"],
    &["name=~cpu", "dc=fra"],
    &["env=prod"],
    &["name=net.rx"],
    &["name=ignored"],
    &["dc=ams", "host!=web1", "role!=db"],
    &["host=~.*b.*", "name!=cpu.load"],
];

/// Expressions graphite-web refuses: none requires a non-empty value.
const REFUSED: &[&[&str]] = &[&["dc!=ams"], &["role="], &["host=~.*"]];

/// A series' name as carbon stores it (tags sorted, repeats dropped).
fn canonical(series: &str) -> String {
    if series.contains(';') {
        normalize(series).unwrap()
    } else {
        series.to_string()
    }
}

fn query(exprs: &[&str]) -> String {
    let args: Vec<String> = exprs.iter().map(|e| format!("'{e}'")).collect();
    format!("seriesByTag({})", args.join(", "))
}

async fn find_series(graphite: &GraphiteWeb, exprs: &[&str]) -> (u16, String) {
    let q: Vec<(&str, &str)> = exprs.iter().map(|e| ("expr", *e)).collect();
    let resp = reqwest::Client::new()
        .get(format!("{}/tags/findSeries", graphite.url()))
        .query(&q)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
#[ignore = "needs Debian's graphite-carbon and graphite-web (scripts/test.sh)"]
async fn series_by_tag_matches_what_graphite_web_finds() {
    let port = free_port();
    let cache = CarbonCache::start_tagging(&format!("http://127.0.0.1:{port}")).await;
    let graphite = GraphiteWeb::start_at(&cache, port).await;

    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", cache.line_port))
        .await
        .unwrap();
    let now = carbonwatch::unix_now();
    for s in SERIES {
        c.write_all(format!("{s} 1 {now}\n").as_bytes())
            .await
            .unwrap();
    }
    c.shutdown().await.unwrap();
    let stored: BTreeSet<String> = SERIES.iter().map(|s| canonical(s)).collect();
    // Carbon writes, then tags, in the background: wait until every
    // series is in graphite-web's TagDB.
    let everything = &["name=~.+"];
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = find_series(&graphite, everything).await;
        let got = serde_json::from_str::<BTreeSet<String>>(&body).unwrap_or_default();
        if status == 200 && got == stored {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "graphite-web's TagDB never held every series: {status} {body}"
        );
        // Polling another program, which tags in the background.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut compared = 0;
    for exprs in EXPRESSIONS {
        let (status, body) = find_series(&graphite, exprs).await;
        assert_eq!(status, 200, "{exprs:?}: {body}");
        let want: BTreeSet<String> = serde_json::from_str(&body).unwrap();
        let target = query(exprs);
        let (index, errors) = PatternIndex::build([(0, target.as_str())], 1);
        assert!(errors.is_empty(), "{target}: {errors:?}");
        let got: BTreeSet<String> = SERIES
            .iter()
            .filter(|s| index.is_match(s))
            .map(|s| canonical(s))
            .collect();
        assert_eq!(got, want, "{target}");
        compared += usize::from(!want.is_empty());
    }
    assert!(
        compared > EXPRESSIONS.len() / 2,
        "most expressions find something"
    );
    for exprs in REFUSED {
        let (status, body) = find_series(&graphite, exprs).await;
        assert!(status >= 400, "graphite-web takes {exprs:?}: {body}");
        assert!(
            PatternIndex::check(&query(exprs)).is_err(),
            "{exprs:?} is taken"
        );
    }
}

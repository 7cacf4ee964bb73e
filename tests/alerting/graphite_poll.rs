//! The poller against real Graphite: Debian's carbon-cache and graphite-web
//! (under Django's runserver), started by the test. Points sent through
//! carbonwatch land in carbon-cache, a polled `sumSeries(...)` check reads
//! them through graphite-web and notifies; a stopped Graphite is EXCEPTION,
//! not "no data"; a live check is seeded from the render API after a
//! restart; `/api/metrics/{target}/total` counts real series.

use std::time::Duration;

use crate::common::{send, wait_until, CarbonCache, GraphiteWeb, Hook};
use carbonwatch::app::App;
use carbonwatch::config::Config;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

fn config(store: &std::path::Path, cache: &CarbonCache, graphite: &str, checks: &str) -> Config {
    let text = format!(
        "[listen]\nplaintext_tcp = \"127.0.0.1:0\"\nplaintext_udp = \"\"\npickle_tcp = \"\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[stats]\nenabled = false\n\
         [alerting]\nstore = \"{}\"\ntick_ms = 50\n\
         [notify]\npoll_interval_ms = 50\nretry_min_secs = 1\n\
         [graphite]\nurl = \"{graphite}\"\ntimeout_secs = 5\n\
         [[cluster]]\nname = \"carbon\"\ntype = \"forward\"\ndestinations = [\"127.0.0.1:{}\"]\n\
         [[route]]\nmatch = \"*\"\nto = [\"carbon\"]\n{checks}",
        store.display(),
        cache.line_port
    );
    Config::parse(&text, std::path::Path::new("graphite_poll.toml")).unwrap()
}

fn subscription(hook: &Hook) -> String {
    format!(
        "[[check.subscription]]\ntype = \"HTTP\"\ntarget = \"http://{}/hook\"\n",
        hook.addr
    )
}

async fn api_get(app: &App, path: &str) -> Value {
    let url = format!("http://{}/api{path}", app.admin.unwrap());
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test]
#[ignore = "needs Debian's graphite-carbon and graphite-web (scripts/test.sh)"]
async fn a_polled_sum_series_check_reads_graphite_and_notifies() {
    let cache = CarbonCache::start().await;
    let mut graphite = GraphiteWeb::start(&cache).await;
    let (dir, hook) = (tempfile::tempdir().unwrap(), Hook::start().await);
    let checks = format!(
        "[[check]]\nname = \"failed logins, all hosts\"\ntarget = \"sumSeries(sec.*.failed)\"\n\
         live = false\nfrom = \"-5min\"\nuntil = \"now\"\ninterval = \"1s\"\nwarn = 10\nerror = 20\n{}",
        subscription(&hook)
    );
    let app = App::start(config(
        &dir.path().join("cw.db"),
        &cache,
        &graphite.url(),
        &checks,
    ))
    .await
    .unwrap();
    let now = carbonwatch::unix_now();
    send(
        &app,
        &format!("sec.a.failed 8 {now}\nsec.b.failed 15 {now}\n"),
    )
    .await;

    // 8 + 15 = 23 >= error: the check reads the sum through graphite-web.
    let bodies = hook.wait(1).await;
    let a = &bodies[0]["alerts"][0];
    assert_eq!(a["target"], "sumSeries(sec.*.failed)", "{}", bodies[0]);
    assert_eq!(a["value"], 23.0);
    assert_eq!(
        (a["fromType"].as_str(), a["toType"].as_str()),
        (Some("OK"), Some("ERROR"))
    );
    assert_eq!(bodies[0]["check"]["state"], "ERROR");

    // Two series in Graphite.
    let total = api_get(&app, "/metrics/sec.*.failed/total").await;
    assert_eq!(total["sec.*.failed"], 2, "{total}");

    // Graphite goes away: EXCEPTION, visible and notified, not UNKNOWN.
    graphite.stop();
    let bodies = hook.wait(2).await;
    let a = &bodies[1]["alerts"][0];
    assert_eq!(
        (a["fromType"].as_str(), a["toType"].as_str()),
        (Some("ERROR"), Some("EXCEPTION")),
        "{}",
        bodies[1]
    );
    let checks = api_get(&app, "/checks?state=EXCEPTION").await;
    assert_eq!(checks["total"], 1, "{checks}");
    let (_, alerts_total) = app
        .alerts
        .as_ref()
        .unwrap()
        .store
        .alerts(None, 0, 0)
        .unwrap();
    assert_eq!(alerts_total, 2);
    app.shutdown().await;
}

#[tokio::test]
#[ignore = "needs Debian's graphite-carbon and graphite-web (scripts/test.sh)"]
async fn a_live_check_is_seeded_from_graphite_at_start_up() {
    let cache = CarbonCache::start().await;
    let graphite = GraphiteWeb::start(&cache).await;
    let dir = tempfile::tempdir().unwrap();
    // Data written before carbonwatch knows any check.
    let now = carbonwatch::unix_now();
    {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", cache.line_port))
            .await
            .unwrap();
        s.write_all(
            format!(
                "fw.edge.denied 500 {}\nfw.core.denied 3 {}\n",
                now - 90,
                now - 90
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    }
    wait_until(Duration::from_secs(30), || cache.points().len() >= 2).await;
    let checks =
        "[[check]]\nname = \"denied packets\"\ntarget = \"fw.*.denied\"\nwarn = 100\nerror = 400\n";
    let app = App::start(config(
        &dir.path().join("cw.db"),
        &cache,
        &graphite.url(),
        checks,
    ))
    .await
    .unwrap();
    let handle = app.alerts.clone().unwrap();
    let id = handle.engine.checks().await.unwrap()[0].id.clone();
    // No point has arrived on the stream, yet the state is right.
    let mut series = Vec::new();
    for _ in 0..600 {
        series = handle.engine.series(&id).await.unwrap();
        if series.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let states: Vec<(String, String)> = series
        .iter()
        .map(|(n, s)| (n.clone(), s.state.to_string()))
        .collect();
    assert_eq!(
        states,
        vec![
            ("fw.core.denied".into(), "OK".into()),
            ("fw.edge.denied".into(), "ERROR".into())
        ]
    );
    wait_until(
        Duration::from_secs(10),
        || matches!(handle.store.get_check(&id), Ok(Some(c)) if c.state.to_string() == "ERROR"),
    )
    .await;
    app.shutdown().await;
}

//! `carbonwatch import seyren`, run as a user runs it, from one carbonwatch
//! serving Seyren's API into another, and from a stand-in Seyren whose
//! listing carries a subscription type carbonwatch does not know.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{rig, Rig};

/// Runs the command on a thread of its own: the servers it talks to run
/// on this test's runtime.
async fn import(from: &str, to: &str, dry_run: bool) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_carbonwatch"));
    cmd.args(["import", "seyren", "--from", from, "--to", to]);
    if dry_run {
        cmd.arg("--dry-run");
    }
    cmd.env_remove("CARBONWATCH_API_TOKEN");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn checks(r: &Rig) -> Vec<Value> {
    let (status, doc) = r.get("/checks").await;
    assert_eq!(status, StatusCode::OK);
    doc["values"].as_array().unwrap().clone()
}

#[tokio::test]
async fn checks_move_with_their_ids_and_a_second_run_changes_nothing() {
    let seyren = rig("", "/seyren/api").await;
    let here = rig("", "/api").await;
    let a = seyren.create(json!({"name": "ssh", "target": "auth.*.failed", "warn": 5, "error": 10, "enabled": true, "live": true,
        "state": "WARN", "subscriptions": [
            {"type": "EMAIL", "target": "ops@example.org", "enabled": true, "mo": true, "fromTime": "0800", "toTime": "1800"},
            {"type": "PUSHOVER", "target": "u", "enabled": true},
            {"type": "VICTOROPS", "target": "route", "enabled": false}]})).await;
    let b = seyren.create(json!({"name": "disk", "target": "sumSeries(servers.*.disk)", "warn": 80, "error": 90, "enabled": true})).await;
    let c = seyren.create(json!({"name": "draft"})).await;
    // A check here already holds one of the names, under another id.
    here.create(json!({"name": "disk", "target": "x", "warn": 1, "error": 2}))
        .await;
    let (from, to) = (seyren.base.clone(), here.base.clone());

    let out = import(&from, &to, true).await;
    assert!(
        out.contains("2 would create, 0 unchanged, 1 not carried over"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "not carried over: check {b} (\"disk\"): a check named \"disk\" exists here already"
        )),
        "{out}"
    );
    assert_eq!(checks(&here).await.len(), 1, "a dry run changes nothing");

    let out = import(&from, &to, false).await;
    assert!(out.contains(&format!("created {a} \"ssh\"")), "{out}");
    assert!(out.contains(&format!("created {c} \"draft\"")), "{out}");
    assert!(
        out.contains(&format!(
            "not carried over: check {b} (\"disk\"): a check named"
        )),
        "{out}"
    );
    assert!(out.contains("note: check") && out.contains("live"), "{out}");
    let (_, moved) = here.get(&format!("/checks/{a}")).await;
    let (_, original) = seyren.get(&format!("/checks/{a}")).await;
    for key in [
        "name", "target", "warn", "error", "enabled", "live", "state",
    ] {
        assert_eq!(moved[key], original[key], "{key}");
    }
    assert_eq!(
        moved["subscriptions"], original["subscriptions"],
        "ids, types, days and hours kept"
    );
    let (_, draft) = here.get(&format!("/checks/{c}")).await;
    assert_eq!(
        (&draft["name"], &draft["target"]),
        (&json!("draft"), &Value::Null)
    );

    let out = import(&from, &to, false).await;
    assert!(
        out.contains("0 created, 2 unchanged, 1 not carried over"),
        "{out}"
    );
    assert_eq!(checks(&here).await.len(), 3);
    seyren.app.shutdown().await;
    here.app.shutdown().await;
}

#[tokio::test]
async fn a_type_carbonwatch_lacks_is_left_behind_and_said_so() {
    let seyren = crate::common::Receiver::start().await;
    seyren.set_answer(
        &json!({"values": [{"id": "5205121fccf2a07eacba64da", "name": "load longterm usage",
            "target": "servers.*.load.longterm", "warn": "2.0", "error": "4.0", "enabled": true,
            "live": false, "allowNoData": false, "state": "WARN", "lastCheck": 1414425107940i64,
            "subscriptions": [
                {"id": "s1", "type": "CARRIER_PIGEON", "target": "coop"},
                {"id": "s2", "type": "SLACK", "target": "#ops", "enabled": true}]}],
            "items": 0, "start": 0, "total": 1})
        .to_string(),
    );
    let here = rig("", "/api").await;
    let out = import(&format!("{}/seyren/api", seyren.url()), &here.base, false).await;
    assert!(out.contains("created 5205121fccf2a07eacba64da"), "{out}");
    assert!(
        out.contains("subscription \"s1\" of type CARRIER_PIGEON is not carried over"),
        "{out}"
    );
    let (_, c) = here.get("/checks/5205121fccf2a07eacba64da").await;
    let subs: Vec<&str> = c["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(subs, ["s2"]);
    assert_eq!(c["state"], "WARN");
    assert_eq!(seyren.requests()[0].target, "/seyren/api/checks");
    here.app.shutdown().await;
}

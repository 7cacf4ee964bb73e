use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("t.toml"))
}

fn issues(text: &str) -> Vec<String> {
    match parse(text) {
        Err(ConfigError::Invalid(v)) => v.iter().map(ToString::to_string).collect(),
        other => panic!("expected errors, got {other:?}"),
    }
}

const GOOD: &str = r#"
[listen]
plaintext_tcp = "127.0.0.1:2003"

[[cluster]]
name = "graphite"
type = "carbon_ch"
destinations = ["127.0.0.1:2103:a", "127.0.0.1:2203:b"]

[[route]]
match = "*"
to = ["graphite"]
stop = true
"#;

#[test]
fn a_good_config_builds_a_router() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.router.destinations.len(), 2);
    assert_eq!(c.plaintext_tcp, Some("127.0.0.1:2003".parse().unwrap()));
    assert_eq!(c.relay.queue_max_lines, 1_000_000);
}

#[test]
fn type_errors_name_file_line_and_key() {
    let bad = GOOD.replace("type = \"carbon_ch\"", "type = \"carbon_chh\"");
    let got = issues(&bad);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("t.toml:7: cluster.type: unknown variant `carbon_chh`"),
        "{}",
        got[0]
    );
}

#[test]
fn unknown_keys_are_refused() {
    let got = issues("[relay]\nqueue_max_line = 5\n");
    assert!(
        got[0].starts_with("t.toml:2: relay.queue_max_line: unknown field"),
        "{}",
        got[0]
    );
}

#[test]
fn every_semantic_error_is_reported() {
    let bad = GOOD
        .replace("\"127.0.0.1:2203:b\"", "\"127.0.0.1:nope\"")
        .replace("to = [\"graphite\"]", "to = [\"graphit\"]")
        .replace(
            "plaintext_tcp = \"127.0.0.1:2003\"",
            "plaintext_tcp = \"2003\"",
        );
    let got = issues(&bad);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got[0].starts_with("t.toml:3: listen.plaintext_tcp:"),
        "{}",
        got[0]
    );
    assert!(
        got[1].starts_with("t.toml:8: cluster[0].destinations:"),
        "{}",
        got[1]
    );
    assert!(
        got[2].starts_with("t.toml:12: route[0].to: no cluster named \"graphit\""),
        "{}",
        got[2]
    );
}

#[test]
fn checks_take_defaults_and_report_errors_by_table() {
    let text = format!(
        "{GOOD}\n[[check]]\nname = \"ssh brute force\"\ntarget = \"auth.*.sshd.failed\"\nwarn = 5\nerror = 20\n\
         [[check.subscription]]\ntype = \"HTTP\"\ntarget = \"http://hook\"\n\
         [[check]]\nname = \"no thresholds\"\ntarget = \"a.b\"\n"
    );
    let got = issues(&text);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("t.toml:23: check[1]: an enabled check needs both warn and error"),
        "{}",
        got[0]
    );
    let typeless = text.replace("type = \"HTTP\"\n", "");
    let got = issues(&typeless);
    assert!(
        got.iter()
            .any(|g| g.contains("check[0]: subscription[0] needs a type")),
        "{got:?}"
    );
    let ok = text.replace(
        "[[check]]\nname = \"no thresholds\"\ntarget = \"a.b\"\n",
        "",
    );
    let c = parse(&ok).unwrap();
    let check = &c.checks[0];
    assert!(check.enabled && check.live);
    assert!(check.subscriptions[0].enabled && check.subscriptions[0].su);
}

#[test]
fn seyren_environment_overrides_the_file() {
    let mut c = parse(GOOD).unwrap();
    let env = |k: &str| match k {
        "SMTP_HOST" => Some("mail.example".to_string()),
        "SMTP_PORT" => Some("587".to_string()),
        "SEYREN_FROM_EMAIL" => Some("seyren@example".to_string()),
        "SEYREN_URL" => Some("https://alerts.example/".to_string()),
        "GRAPHITE_URL" => Some("http://graphite.example/g".to_string()),
        "GRAPHITE_USERNAME" => Some("seyren".to_string()),
        "GRAPHITE_PASSWORD" => Some("pw".to_string()),
        "GRAPHITE_REFRESH" => Some("30000".to_string()),
        "SEYREN_THREADS" => Some("4".to_string()),
        "SMTP_USERNAME" => Some("u".to_string()),
        "SMTP_PASSWORD" => Some("p".to_string()),
        "SMTP_PROTOCOL" => Some("smtps".to_string()),
        "HTTP_NOTIFICATION_URL" => Some("http://hooks.example/all".to_string()),
        "SLACK_USERNAME" => Some("Seyren".to_string()),
        "SLACK_EMOJIS" => {
            Some(":grey_question:,:white_check_mark:,:warning:,:x:,:boom:".to_string())
        }
        "GRAPHS_ENABLE" => Some("false".to_string()),
        "GRAPHITE_CARBON_PICKLE_ENABLE" => Some("true".to_string()),
        "GRAPHITE_CARBON_PICKLE_PORT" => Some("12004".to_string()),
        // Aliases and the variables of every channel.
        "HIPCHAT_BASE_URL" => Some("https://hipchat.example".to_string()),
        "HIPCHAT_AUTH_TOKEN" => Some("hc".to_string()),
        "SEYREN_HUBOT_URL" => Some("http://hubot.example".to_string()),
        "IRCCAT_HOST" => Some("irc.example".to_string()),
        "IRCCAT_PORT" => Some("12346".to_string()),
        "SNMP_PORT" => Some("1162".to_string()),
        "SNMP_OID" => Some("1.3.6.1.4.1.99.1".to_string()),
        "TWILIO_URL" => Some("https://twilio.example/Accounts".to_string()),
        "VICTOROPS_REST_ENDPOINT" => Some("https://vo.example/alert/KEY/".to_string()),
        "BIGPANDA_NOTIFICATION_URL" => Some("https://bp.example/alerts".to_string()),
        "PAGERDUTY_API_URL" => Some("https://pd-proxy.example".to_string()),
        "PUSHOVER_API_URL" => Some("https://po.example".to_string()),
        "FLOWDOCK_API_URL" => Some("https://fd.example".to_string()),
        "OPSGENIE_API_URL" => Some("https://og.example".to_string()),
        "TELEGRAM_API_URL" => Some("https://tg.example".to_string()),
        "TELEGRAM_BOT_TOKEN" => Some("1:abc".to_string()),
        _ => None,
    };
    c.apply_env(env);
    let n = &c.notify;
    assert_eq!(
        (
            n.hipchat_baseurl.as_str(),
            n.hipchat_authtoken.as_str(),
            n.hubot_url.as_str()
        ),
        ("https://hipchat.example", "hc", "http://hubot.example")
    );
    assert_eq!(
        (
            n.irccat_host.as_str(),
            n.irccat_port,
            n.snmp_port,
            n.snmp_oid.as_str()
        ),
        ("irc.example", 12346, 1162, "1.3.6.1.4.1.99.1")
    );
    for (got, want) in [
        (&n.twilio_url, "https://twilio.example/Accounts"),
        (&n.victorops_rest_endpoint, "https://vo.example/alert/KEY/"),
        (&n.bigpanda_notification_url, "https://bp.example/alerts"),
        (&n.pagerduty_url, "https://pd-proxy.example"),
        (&n.pushover_api_url, "https://po.example"),
        (&n.flowdock_api_url, "https://fd.example"),
        (&n.opsgenie_api_url, "https://og.example"),
        (&n.telegram_api_url, "https://tg.example"),
        (&n.telegram_bot_token, "1:abc"),
    ] {
        assert_eq!(got, want);
    }
    assert_eq!(
        (c.smtp.host.as_str(), c.smtp.port, c.smtp.from.as_str()),
        ("mail.example", 587, "seyren@example")
    );
    assert_eq!(
        (
            c.smtp.username.as_str(),
            c.smtp.password.as_str(),
            c.smtp.protocol.as_str()
        ),
        ("u", "p", "smtps")
    );
    assert_eq!(c.notify.seyren_url, "https://alerts.example");
    let g = &c.graphite;
    assert_eq!(
        (
            g.url.as_str(),
            g.username.as_str(),
            g.password.as_str(),
            g.refresh_secs,
            g.max_concurrent_requests
        ),
        ("http://graphite.example/g", "seyren", "pw", 30, 4)
    );
    assert_eq!(
        c.notify.graphite_url, g.url,
        "previews link to the same Graphite"
    );
    assert_eq!(c.notify.http_notification_url, "http://hooks.example/all");
    assert_eq!(c.notify.slack_username, "Seyren");
    assert!(!c.admin_http.graphs_enabled);
    assert_eq!(c.pickle_tcp, Some("0.0.0.0:12004".parse().unwrap()));
}

/// What `check-config` passed and `run` then mishandled (issue #11):
/// every one is reported, with its line and key, in one run.
#[test]
fn limits_out_of_range_and_unknown_keys_are_all_reported() {
    let text = "[listen]\nmax_line_bytes = 0\nmax_datagram_bytes = 18446744073709551615\nbogus = 1\n\
                [admin]\napi_base_path = \"/\"\n[relay]\nqueue_max_line = 5\nmax_write_bytes = 1000000000000\n\
                [notify]\nconcurrency = 4\ntimezone = \"Mars/Olympus\"\nsnmp_port = 0\nsnmp_oid = \"1.x\"\n";
    let got = issues(text);
    let want = [
        "t.toml:2: listen.max_line_bytes: 0 is out of range",
        "t.toml:3: listen.max_datagram_bytes: 18446744073709551615 is out of range",
        "t.toml:4: listen.bogus: unknown field `bogus`",
        "t.toml:6: admin.api_base_path:",
        "t.toml:8: relay.queue_max_line: unknown field",
        "t.toml:9: relay.max_write_bytes: 1000000000000 is out of range",
        "t.toml:12: notify.timezone: unknown time zone",
        "t.toml:13: notify.snmp_port: 0 is out of range",
        "t.toml:14: notify.snmp_oid: \"1.x\" is not a dotted OID",
    ];
    for w in want {
        assert!(
            got.iter().any(|g| g.starts_with(w)),
            "{w:?} not in {got:#?}"
        );
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
    let big = issues("[listen]\nmax_datagram_bytes = 1000000000000\n");
    assert!(big[0].contains("out of range"), "{big:?}");
}

/// A 200,000-deep route glob aborted `check-config` with a stack
/// overflow (#11); it is an issue with its line now.
#[test]
fn a_hostile_route_pattern_is_an_issue_not_an_abort() {
    let deep = format!("{}a{}", "{".repeat(200_000), "}".repeat(200_000));
    let text = GOOD.replace("match = \"*\"", &format!("match = \"{deep}\""));
    let got = issues(&text);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("t.toml:11: route[0].match: invalid glob"),
        "{}",
        &got[0][..80]
    );
    assert!(
        got[0].len() < 400,
        "the message quotes the start of the pattern only"
    );
    let nested = GOOD.replace("match = \"*\"", "regex = \"((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))\"");
    assert!(issues(&nested)[0].contains("route[0].regex"));
}

#[test]
fn a_type_error_in_one_section_does_not_hide_another() {
    let got = issues("[relay]\nqueue_max_lines = \"many\"\n[stats]\ninterval_secs = -1\n[listen]\nmax_connections = 0\n");
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(
        got[0].starts_with("t.toml:2: relay.queue_max_lines:"),
        "{}",
        got[0]
    );
    assert!(
        got[1].starts_with("t.toml:4: stats.interval_secs:"),
        "{}",
        got[1]
    );
    assert!(
        got[2].starts_with("t.toml:6: listen.max_connections: 0 is out of range"),
        "{}",
        got[2]
    );
}

/// Checks read one table at a time give what the whole document gives:
/// the same checks, and the same errors on the same lines. A multi-line
/// string makes the reader parse the whole document, so it is the
/// reference.
#[test]
fn checks_read_piece_by_piece_match_the_whole_document() {
    let checks = "[[check]]\nname = \"a\"\ntarget = \"a.*\"\nwarn = 1\nerror = 2\n\
                  [[check.subscription]]\ntype = \"HTTP\"\ntarget = \"http://hook\"\n\
                  [[check]]\nname = \"b\"\ntarget = \"b.*\"\nwarn = 1\nerror = 2\n\
                  [[check]]\nname = \"a\"\ntarget = \"a.b\"\nwarn = 1\nerror = 2\n\
                  [[check]]\nname = \"c\"\ntarget = \"c\"\nwarn = \"x\"\nerror = 2\n\
                  [[check]]\nname = \"d\"\ntarget = \"d\"\n";
    let text = format!("{GOOD}\n{checks}\n[graphite]\nurl = \"http://g\"\n");
    let whole = format!("{text}\n[notify]\nslack_username = \"\"\"x\"\"\"\n");
    let (split, reference) = (issues(&text), issues(&whole));
    assert_eq!(split.len(), 3, "{split:?}");
    assert_eq!(split, reference);
    assert!(
        split[0].contains("check[2]: check \"a\" is defined twice"),
        "{split:?}"
    );

    let ok = text.replace("warn = \"x\"", "warn = 3").replace(
        "name = \"d\"\ntarget = \"d\"\n",
        "name = \"d\"\ntarget = \"d\"\nwarn = 1\nerror = 2\n",
    );
    let ok = ok.replacen(
        "name = \"a\"\ntarget = \"a.b\"",
        "name = \"e\"\ntarget = \"a.b\"",
        1,
    );
    let whole = format!("{ok}\n[notify]\nslack_username = \"\"\"x\"\"\"\n");
    let (a, b) = (parse(&ok).unwrap(), parse(&whole).unwrap());
    assert_eq!(a.checks, b.checks);
    assert_eq!(a.checks.len(), 5);
    assert_eq!(a.graphite.url, "http://g");
    assert_eq!(a.checks[0].subscriptions[0].target, "http://hook");
    assert!(!a.checks[0].subscriptions[0].id.is_empty());
}

#[test]
fn relative_paths_resolve_beside_the_file_or_under_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cw.toml");
    std::fs::write(
        &path,
        "[alerting]\nstore = \"state/cw.db\"\n[relay]\nspool_dir = \"spool\"\n\
         [admin]\ntls_cert_file = \"tls/cert.pem\"\ntls_key_file = \"/etc/key.pem\"\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let base = dir.path().canonicalize().unwrap();
    let mut c = Config::parse(&text, &path).unwrap();
    c.resolve_paths(None);
    assert_eq!(
        c.alerting.store,
        base.join("state/cw.db").display().to_string()
    );
    assert_eq!(c.relay.spool_dir, base.join("spool").display().to_string());
    assert_eq!(
        c.admin_http.tls_cert_file,
        base.join("tls/cert.pem").display().to_string()
    );
    assert_eq!(c.admin_http.tls_key_file, "/etc/key.pem", "absolute stays");
    let mut c = Config::parse(&text, &path).unwrap();
    c.resolve_paths(Some(std::path::Path::new("/var/lib/carbonwatch")));
    assert_eq!(c.alerting.store, "/var/lib/carbonwatch/state/cw.db");
    assert_eq!(c.relay.spool_dir, "/var/lib/carbonwatch/spool");
    assert_eq!(
        c.admin_http.tls_cert_file,
        base.join("tls/cert.pem").display().to_string(),
        "what is read stays beside the file"
    );
}

const AGGREGATING: &str = r#"
[[cluster]]
name = "out"
type = "forward"
destinations = ["127.0.0.1:2103"]

[[route]]
prefix = "first."
to = ["out"]

[[aggregate]]
regex = '^sys\.([^.]+)\.cpu'
every_secs = 10
expire_secs = 30
timestamp = "start"
compute = [
  { function = "sum", write_to = 'agg.\1.sum' },
  { function = "percentile95", write_to = 'agg.\1.p95' },
]
send_to = ["out"]
stop = true

[[route]]
match = "*"
to = ["out"]
"#;

/// `[[aggregate]]` tables run among the `[[route]]` tables in the order
/// of the file, as c-relay's rules do.
#[test]
fn aggregates_take_their_place_among_the_routes() {
    let c = parse(AGGREGATING).unwrap();
    let kinds: Vec<bool> = c
        .router
        .rules
        .iter()
        .map(|r| r.aggregate.is_some())
        .collect();
    assert_eq!(kinds, vec![false, true, false]);
    let a = &c.router.aggregates[0];
    assert_eq!((a.every_secs, a.expire_secs), (10, 30));
    assert_eq!(a.send_to, vec![0]);
    assert_eq!(a.computes.len(), 2);
    let mut routes = crate::route::Routes::default();
    c.router.route("sys.web1.cpu", &|_| true, &mut routes);
    assert_eq!(routes.aggregated, vec![(1, None)]);
    assert!(routes.targets.is_empty(), "stop: the input goes no further");
    c.router.route("first.x", &|_| true, &mut routes);
    assert!(routes.aggregated.is_empty());
    assert_eq!(routes.targets, vec![(0, None)]);
}

#[test]
fn aggregate_errors_name_their_key() {
    let cases = [
        (
            "expire_secs = 30",
            "expire_secs = 10",
            "aggregate[0].expire_secs: expire_secs must be greater than every_secs",
        ),
        (
            "every_secs = 10",
            "every_secs = 0",
            "aggregate[0].every_secs: every_secs must be from 1 to 86400",
        ),
        (
            "expire_secs = 30",
            "expire_secs = 100000",
            "aggregate[0].expire_secs: expire_secs / every_secs must be at most 998",
        ),
        (
            "percentile95",
            "percentile100",
            "aggregate[0].compute[1].function: unknown function \"percentile100\"",
        ),
        (
            "send_to = [\"out\"]",
            "send_to = [\"nope\"]",
            "aggregate[0].send_to: no cluster named \"nope\"",
        ),
        (
            "agg.\\1.sum",
            "agg.${host}.sum",
            "aggregate[0].compute[0].write_to: the regex has no group named \"host\"",
        ),
    ];
    for (from, to, want) in cases {
        let text = AGGREGATING.replace(from, to);
        let got = issues(&text);
        assert!(
            got.iter().any(|g| g.contains(want)),
            "{to}: want {want:?}, got {got:#?}"
        );
    }
    let got = issues(&AGGREGATING.replace("timestamp = \"start\"", "timestamp = \"begin\""));
    assert!(got[0].contains("unknown variant `begin`"), "{got:#?}");
}

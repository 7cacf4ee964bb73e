//! Seyren's environment variables, applied over the file.

use std::net::SocketAddr;

use crate::config::Config;

impl Config {
    /// Seyren's environment variables override the file, so a Seyren user
    /// switches by exporting the same environment: `SEYREN_URL`,
    /// `GRAPHITE_URL`, `HTTP_NOTIFICATION_URL`, `SMTP_HOST`, `SMTP_PORT`,
    /// `SMTP_FROM` (or `SEYREN_FROM_EMAIL`), `SMTP_USERNAME`,
    /// `SMTP_PASSWORD`, `SMTP_PROTOCOL`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        let set = |target: &mut String, keys: &[&str]| {
            if let Some(v) = keys.iter().find_map(|k| get(k)) {
                *target = v;
            }
        };
        set(&mut self.notify.seyren_url, &["SEYREN_URL"]);
        set(&mut self.graphite.url, &["GRAPHITE_URL"]);
        set(&mut self.graphite.username, &["GRAPHITE_USERNAME"]);
        set(&mut self.graphite.password, &["GRAPHITE_PASSWORD"]);
        // Seyren gives the refresh in milliseconds.
        if let Some(ms) = get("GRAPHITE_REFRESH").and_then(|v| v.parse::<u64>().ok()) {
            self.graphite.refresh_secs = (ms / 1000).max(1);
        }
        if let Some(n) = get("SEYREN_THREADS").and_then(|v| v.parse::<usize>().ok()) {
            self.graphite.max_concurrent_requests = n.max(1);
        }
        if let Some(ms) = get("GRAPHITE_SOCKET_TIMEOUT").and_then(|v| v.parse::<u64>().ok()) {
            // 0 is Seyren's "wait forever"; a bounded default stays.
            if ms > 0 {
                self.graphite.timeout_secs = ms.div_ceil(1000);
            }
        }
        let n = &mut self.notify;
        for (target, keys) in [
            (&mut n.slack_token, &["SLACK_TOKEN"][..]),
            (&mut n.slack_api_url, &["SLACK_API_URL"]),
            (&mut n.pagerduty_url, &["PAGERDUTY_API_URL"]),
            (&mut n.pagerduty_events_api, &["PAGERDUTY_EVENTS_API"]),
            (
                &mut n.hipchat_baseurl,
                &["HIPCHAT_BASEURL", "HIPCHAT_BASE_URL"],
            ),
            (
                &mut n.hipchat_authtoken,
                &["HIPCHAT_AUTHTOKEN", "HIPCHAT_AUTH_TOKEN"],
            ),
            (&mut n.hubot_url, &["HUBOT_URL", "SEYREN_HUBOT_URL"]),
            (&mut n.flowdock_api_url, &["FLOWDOCK_API_URL"]),
            (
                &mut n.flowdock_external_username,
                &["FLOWDOCK_EXTERNAL_USERNAME"],
            ),
            (&mut n.flowdock_tags, &["FLOWDOCK_TAGS"]),
            (&mut n.flowdock_emojis, &["FLOWDOCK_EMOJIS"]),
            (&mut n.irccat_host, &["IRCCAT_HOST"]),
            (&mut n.pushover_api_url, &["PUSHOVER_API_URL"]),
            (&mut n.pushover_app_api_token, &["PUSHOVER_APP_API_TOKEN"]),
            (&mut n.snmp_host, &["SNMP_HOST"]),
            (&mut n.snmp_community, &["SNMP_COMMUNITY"]),
            (&mut n.snmp_oid, &["SNMP_OID"]),
            (&mut n.twilio_url, &["TWILIO_URL"]),
            (&mut n.twilio_account_sid, &["TWILIO_ACCOUNT_SID"]),
            (&mut n.twilio_auth_token, &["TWILIO_AUTH_TOKEN"]),
            (&mut n.twilio_phone_number, &["TWILIO_PHONE_NUMBER"]),
            (&mut n.opsgenie_api_url, &["OPSGENIE_API_URL"]),
            (&mut n.opsgenie_teams, &["OPSGENIE_TEAMS"]),
            (&mut n.victorops_rest_endpoint, &["VICTOROPS_REST_ENDPOINT"]),
            (
                &mut n.bigpanda_notification_url,
                &["BIGPANDA_NOTIFICATION_URL"],
            ),
            (&mut n.bigpanda_auth_bearer, &["BIGPANDA_AUTH_BEARER"]),
            (&mut n.telegram_api_url, &["TELEGRAM_API_URL"]),
            (&mut n.telegram_bot_token, &["TELEGRAM_BOT_TOKEN"]),
        ] {
            set(target, keys);
        }
        for (target, key) in [
            (&mut n.irccat_port, "IRCCAT_PORT"),
            (&mut n.snmp_port, "SNMP_PORT"),
        ] {
            if let Some(p) = get(key).and_then(|p| p.parse().ok()) {
                *target = p;
            }
        }
        set(&mut self.notify.slack_webhook_url, &["SLACK_WEBHOOK_URL"]);
        set(&mut self.notify.slack_username, &["SLACK_USERNAME"]);
        set(&mut self.notify.slack_icon_url, &["SLACK_ICON_URL"]);
        set(&mut self.notify.slack_emojis, &["SLACK_EMOJIS"]);
        self.notify.graphite_url = self.graphite.url.clone();
        set(
            &mut self.notify.http_notification_url,
            &["HTTP_NOTIFICATION_URL"],
        );
        set(&mut self.smtp.host, &["SMTP_HOST"]);
        set(&mut self.smtp.from, &["SMTP_FROM", "SEYREN_FROM_EMAIL"]);
        set(&mut self.smtp.username, &["SMTP_USERNAME"]);
        set(&mut self.smtp.password, &["SMTP_PASSWORD"]);
        set(&mut self.smtp.protocol, &["SMTP_PROTOCOL"]);
        if let Some(port) = get("SMTP_PORT").and_then(|p| p.parse().ok()) {
            self.smtp.port = port;
        }
        self.notify.seyren_url = self.notify.seyren_url.trim_end_matches('/').to_string();
        set(&mut self.admin_http.auth_token, &["CARBONWATCH_API_TOKEN"]);
        if let Some(v) = get("GRAPHS_ENABLE") {
            self.admin_http.graphs_enabled = v != "false";
        }
        if get("GRAPHITE_CARBON_PICKLE_ENABLE").as_deref() == Some("true") {
            let port = get("GRAPHITE_CARBON_PICKLE_PORT")
                .and_then(|p| p.parse().ok())
                .unwrap_or(2004);
            self.pickle_tcp = Some(SocketAddr::from(([0, 0, 0, 0], port)));
        }
    }
}

//! The notifiers that do not speak HTTP: IRCCAT writes lines to a TCP
//! receiver, SNMP sends traps to Debian's snmptrapd, which decodes them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use carbonwatch::check::{AlertType, SubscriptionType};
use carbonwatch::notify::{Notifiers, NotifyConfig, SmtpConfig};
use tokio::io::AsyncReadExt;

use crate::{notification, CHECK_URL};

#[tokio::test]
async fn irccat_writes_one_line_per_channel_on_its_own_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = NotifyConfig {
        seyren_url: "http://cw".into(),
        irccat_host: "127.0.0.1".into(),
        irccat_port: listener.local_addr().unwrap().port(),
        ..NotifyConfig::default()
    };
    let notifiers = Notifiers::new(&cfg, &SmtpConfig::default());
    for (state, message) in [
        (
            AlertType::Error,
            format!("%RED[CRIT]%NORMAL ssh | Please check {CHECK_URL}."),
        ),
        (
            AlertType::Warn,
            format!("%YELLOW[WARN]%NORMAL ssh | Please check {CHECK_URL}."),
        ),
        (
            AlertType::Ok,
            format!("%GREEN[OK]%NORMAL ssh | {CHECK_URL}"),
        ),
    ] {
        let n = notification(SubscriptionType::Irccat, "#ops,#sec", state);
        let send = notifiers.send(&n);
        let read = async {
            let mut lines = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut text = String::new();
                s.read_to_string(&mut text).await.unwrap();
                lines.push(text);
            }
            lines
        };
        let (sent, lines) = tokio::join!(send, read);
        sent.unwrap();
        assert_eq!(
            lines,
            [format!("#ops {message}\n"), format!("#sec {message}\n")]
        );
    }
    drop(listener);
    let n = notification(SubscriptionType::Irccat, "#ops", AlertType::Error);
    assert!(
        notifiers.send(&n).await.is_err(),
        "a refused connection is a failure, retried later"
    );
}

fn snmptrapd() -> &'static str {
    ["/usr/sbin/snmptrapd", "/usr/bin/snmptrapd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("snmptrapd is installed by scripts/test.sh")
}

#[tokio::test]
async fn snmp_traps_are_decoded_by_a_real_snmptrapd() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("snmptrapd.conf");
    std::fs::write(&conf, "disableAuthorization yes\n").unwrap();
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    // -m "" and MIBS="": numeric OIDs, no MIB files read. Each trap is one
    // line: its varbinds, tab-separated.
    let mut child = crate::common::Child(
        Command::new(snmptrapd())
            .args([
                "-f",
                "-Lo",
                "-On",
                "-n",
                "-m",
                "",
                "-M",
                "/nonexistent",
                "-C",
                "-c",
            ])
            .arg(&conf)
            .args(["-F", "TRAP %V\\t%v\\n"])
            .arg(format!("udp:127.0.0.1:{port}"))
            .env("MIBS", "")
            .env("HOME", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let out = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // snmptrapd prints its version line once it listens; on its first run
    // on a machine it first says which directories it created.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("snmptrapd did not start: {before:?}"));
        if line.contains("NET-SNMP") {
            break;
        }
        before.push(line);
    }
    let cfg = NotifyConfig {
        seyren_url: "http://cw".into(),
        snmp_host: "127.0.0.1".into(),
        snmp_port: port,
        snmp_community: "seyren".into(),
        ..NotifyConfig::default()
    };
    let mut n = notification(SubscriptionType::Snmp, "", AlertType::Error);
    let mut second = n.alerts[0].clone();
    second.target = "auth.web2.failed".into();
    second.value = Some(15.5);
    n.alerts.push(second);
    Notifiers::new(&cfg, &SmtpConfig::default())
        .send(&n)
        .await
        .unwrap();
    let mut traps = Vec::new();
    while traps.len() < 2 {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a trap line");
        if line.starts_with("TRAP") {
            traps.push(line);
        }
    }
    let o = "1.3.6.1.4.1.32473.1";
    for (trap, (series, value)) in traps
        .iter()
        .zip([("auth.web1.failed", "12"), ("auth.web2.failed", "15.5")])
    {
        let binds: Vec<&str> = trap["TRAP ".len()..]
            .split('\t')
            .filter(|b| !b.is_empty())
            .collect();
        let want = [
            ".1.3.6.1.2.1.1.3.0 = Timeticks: (5000) 0:00:50.00".to_string(),
            format!(".1.3.6.1.6.3.1.1.4.1.0 = OID: .{o}"),
            format!(".{o}.1 = STRING: \"ssh\""),
            format!(".{o}.2 = STRING: \"{series}\""),
            format!(".{o}.3 = STRING: \"ERROR\""),
            format!(".{o}.4 = STRING: \"{value}\""),
            format!(".{o}.6 = STRING: \"5\""),
            format!(".{o}.5 = STRING: \"10\""),
            format!(".{o}.7 = STRING: \"c1\""),
            format!(".{o}.8 = STRING: \"{CHECK_URL}\""),
        ];
        assert_eq!(binds, want, "{trap}");
    }
}

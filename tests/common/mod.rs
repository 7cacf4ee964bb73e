//! Helpers shared by the integration tests: a recording TCP sink and
//! condition polling with a deadline (never a bare sleep).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// A destination that records every byte it receives.
#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    pub data: Arc<Mutex<Vec<u8>>>,
}

impl Sink {
    pub async fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Sink::serve(listener)
    }

    pub async fn start_at(addr: SocketAddr) -> Sink {
        Sink::serve(TcpListener::bind(addr).await.unwrap())
    }

    fn serve(listener: TcpListener) -> Sink {
        let addr = listener.local_addr().unwrap();
        let data = Arc::new(Mutex::new(Vec::new()));
        let d = data.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let d = d.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        d.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        Sink { addr, data }
    }

    pub fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.data.lock().unwrap())
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.data.lock().unwrap().clone()
    }

    pub async fn wait_lines(&self, n: usize) -> Vec<String> {
        wait_until(Duration::from_secs(30), || self.lines().len() >= n).await;
        self.lines()
    }
}

/// Polls `cond` until it holds; panics after `limit`.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A config with every listener on an ephemeral port and no self-metrics.
pub fn config(body: &str) -> carbonwatch::config::Config {
    let text = format!(
        "[listen]\nplaintext_tcp = \"127.0.0.1:0\"\nplaintext_udp = \"127.0.0.1:0\"\npickle_tcp = \"127.0.0.1:0\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[stats]\nenabled = false\n[alerting]\nstore = \"\"\n{body}"
    );
    carbonwatch::config::Config::parse(&text, std::path::Path::new("test.toml")).unwrap()
}

/// A free TCP port on loopback. The port is released before use, so a
/// concurrent process could take it; only used for external programs that
/// cannot bind port 0 and report it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port held (bound, not listening) so that nothing else gets
/// it and connects to it are refused: a backend that is down. Drop the
/// socket to bring a server up there.
pub fn down_port() -> (tokio::net::TcpSocket, u16) {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// Debian's carbon-cache, in the foreground, in a private directory.
pub struct CarbonCache {
    pub dir: tempfile::TempDir,
    pub line_port: u16,
    pub pickle_port: u16,
    pub query_port: u16,
    child: std::process::Child,
}

impl CarbonCache {
    /// Starts carbon-cache with a `1s:600s` retention and no rate limits,
    /// and waits until it accepts connections.
    pub async fn start() -> CarbonCache {
        CarbonCache::start_at(free_port()).await
    }

    /// [`CarbonCache::start`], with its plaintext port at `line_port`.
    pub async fn start_at(line_port: u16) -> CarbonCache {
        CarbonCache::start_with(line_port, "ENABLE_TAGS = False\n").await
    }

    /// [`CarbonCache::start`], registering every series it creates in
    /// the TagDB of the graphite-web at `graphite_url`.
    pub async fn start_tagging(graphite_url: &str) -> CarbonCache {
        let tags =
            format!("ENABLE_TAGS = True\nGRAPHITE_URL = {graphite_url}\nTAG_UPDATE_INTERVAL = 1\n");
        CarbonCache::start_with(free_port(), &tags).await
    }

    async fn start_with(line_port: u16, tags: &str) -> CarbonCache {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let (pickle_port, query_port) = (free_port(), free_port());
        std::fs::create_dir_all(format!("{d}/storage/whisper")).unwrap();
        std::fs::create_dir_all(format!("{d}/log")).unwrap();
        std::fs::write(
            format!("{d}/carbon.conf"),
            format!(
                "[cache]\nSTORAGE_DIR = {d}/storage\nLOCAL_DATA_DIR = {d}/storage/whisper\nWHITELISTS_DIR = {d}/storage/lists\n\
                 CONF_DIR = {d}\nLOG_DIR = {d}/log\nPID_DIR = {d}\nENABLE_LOGROTATION = False\nUSER =\n{tags}\
                 MAX_CACHE_SIZE = inf\nMAX_UPDATES_PER_SECOND = inf\nMAX_CREATES_PER_MINUTE = inf\n\
                 LINE_RECEIVER_INTERFACE = 127.0.0.1\nLINE_RECEIVER_PORT = {line_port}\n\
                 PICKLE_RECEIVER_INTERFACE = 127.0.0.1\nPICKLE_RECEIVER_PORT = {pickle_port}\n\
                 CACHE_QUERY_INTERFACE = 127.0.0.1\nCACHE_QUERY_PORT = {query_port}\nENABLE_UDP_LISTENER = False\n\
                 LOG_LISTENER_CONN_SUCCESS = False\nLOG_UPDATES = False\nLOG_CREATES = False\n"
            ),
        )
        .unwrap();
        std::fs::write(
            format!("{d}/storage-schemas.conf"),
            "[default]\npattern = .*\nretentions = 1s:600s\n",
        )
        .unwrap();
        std::fs::write(format!("{d}/storage-aggregation.conf"), "").unwrap();
        let child = CarbonCache::spawn(dir.path());
        let cache = CarbonCache {
            dir,
            line_port,
            pickle_port,
            query_port,
            child,
        };
        cache.wait_up().await;
        cache
    }

    fn spawn(dir: &std::path::Path) -> std::process::Child {
        std::process::Command::new("carbon-cache")
            .arg(format!("--config={}/carbon.conf", dir.display()))
            .args(["--debug", "start"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("carbon-cache (Debian graphite-carbon)")
    }

    async fn wait_up(&self) {
        let (l, p) = (self.line_port, self.pickle_port);
        let mut ok = false;
        for _ in 0..600 {
            let a = tokio::net::TcpStream::connect(("127.0.0.1", l))
                .await
                .is_ok();
            let b = tokio::net::TcpStream::connect(("127.0.0.1", p))
                .await
                .is_ok();
            if a && b {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ok, "carbon-cache did not start listening");
    }

    /// Every point in every whisper file, as `(metric, timestamp, value)`,
    /// read with Python's whisper module.
    pub fn points(&self) -> Vec<(String, i64, f64)> {
        const READ: &str = r#"
import json, os, sys, time, whisper
root = sys.argv[1]
out = []
now = int(time.time())
for dirpath, _, files in os.walk(root):
    for f in files:
        if not f.endswith(".wsp"):
            continue
        path = os.path.join(dirpath, f)
        metric = os.path.relpath(path, root)[:-4].replace(os.sep, ".")
        try:
            (start, end, step), values = whisper.fetch(path, now - 590, now + 1)
        except whisper.CorruptWhisperFile:
            # carbon-cache is still writing its header: no points yet.
            continue
        for i, v in enumerate(values):
            if v is not None:
                out.append([metric, start + i * step, v])
json.dump(out, sys.stdout)
"#;
        let root = self.dir.path().join("storage/whisper");
        let out = output_ok(
            std::process::Command::new("/usr/bin/python3")
                .arg("-c")
                .arg(READ)
                .arg(&root),
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for CarbonCache {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One sample from carbonwatch's `/metrics`: the first line starting
/// with `prefix`.
pub async fn metric(admin: SocketAddr, prefix: &str) -> Option<f64> {
    let body = http_get(admin, "/metrics").await?;
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// A plain HTTP/1.1 GET; `None` if the server is not up.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    Some(out)
}

/// An HTTP endpoint that records every request body as JSON and answers
/// with `status`.
#[derive(Clone)]
pub struct Hook {
    pub addr: SocketAddr,
    pub bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    pub status: Arc<std::sync::atomic::AtomicU16>,
}

impl Hook {
    pub async fn start() -> Hook {
        Hook::serve(TcpListener::bind("127.0.0.1:0").await.unwrap())
    }

    pub async fn start_at(addr: SocketAddr) -> Hook {
        Hook::serve(TcpListener::bind(addr).await.unwrap())
    }

    fn serve(listener: TcpListener) -> Hook {
        let hook = Hook {
            addr: listener.local_addr().unwrap(),
            bodies: Arc::default(),
            status: Arc::new(std::sync::atomic::AtomicU16::new(200)),
        };
        let h = hook.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let h = h.clone();
                tokio::spawn(async move { h.handle(s).await });
            }
        });
        hook
    }

    async fn handle(&self, mut s: tokio::net::TcpStream) {
        use tokio::io::AsyncWriteExt;
        let mut buf = Vec::new();
        let Some(body) = read_http_body(&mut s, &mut buf).await else {
            return;
        };
        let status = self.status.load(std::sync::atomic::Ordering::Relaxed);
        if status == 200 {
            self.bodies
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null));
        }
        let reply =
            format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        let _ = s.write_all(reply.as_bytes()).await;
    }

    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }

    pub async fn wait(&self, n: usize) -> Vec<serde_json::Value> {
        wait_until(Duration::from_secs(30), || self.bodies().len() >= n).await;
        self.bodies()
    }
}

/// A child process killed when dropped.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts TCP connections on `port`.
pub async fn wait_listening(port: u16, what: &str) {
    for _ in 0..2400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} did not start listening on {port}");
}

/// Debian's aiosmtpd, storing mail in a Maildir.
pub async fn smtpd(maildir: &std::path::Path) -> (Child, u16) {
    let port = free_port();
    let child = std::process::Command::new("/usr/bin/python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(maildir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 -m aiosmtpd (Debian python3-aiosmtpd)");
    let child = Child(child);
    wait_listening(port, "aiosmtpd").await;
    (child, port)
}

/// Every message in a Maildir, as text.
pub fn maildir_messages(maildir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(maildir.join(sub)) {
            for e in entries.flatten() {
                out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    out
}

/// Debian's prometheus-alertmanager on loopback.
pub async fn alertmanager(dir: &std::path::Path) -> (Child, u16) {
    let port = free_port();
    let conf = dir.join("alertmanager.yml");
    std::fs::write(
        &conf,
        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let child = std::process::Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus-alertmanager (Debian)");
    let child = Child(child);
    wait_listening(port, "alertmanager").await;
    (child, port)
}

/// Debian's graphite-web under Django's runserver, reading `cache`'s
/// whisper files (and its cache, through carbonlink), with its database
/// and logs in a private directory.
pub struct GraphiteWeb {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl GraphiteWeb {
    pub async fn start(cache: &CarbonCache) -> GraphiteWeb {
        GraphiteWeb::start_at(cache, free_port()).await
    }

    /// [`GraphiteWeb::start`] on `port`, with its local TagDB and no
    /// TagDB cache (so a query sees every series registered before it).
    pub async fn start_at(cache: &CarbonCache, port: u16) -> GraphiteWeb {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        let storage = cache.dir.path().join("storage").display().to_string();
        std::fs::create_dir_all(format!("{d}/log")).unwrap();
        std::fs::write(
            format!("{d}/cw_graphite_settings.py"),
            format!(
                "SECRET_KEY = 'carbonwatch-test'\nSTORAGE_DIR = '{storage}'\nWHISPER_DIR = '{storage}/whisper'\n\
                 LOG_DIR = '{d}/log'\nINDEX_FILE = '{d}/index'\n\
                 DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3', 'NAME': '{d}/graphite.db'}}}}\n\
                 CARBONLINK_HOSTS = ['127.0.0.1:{}:a']\n\
                 TAGDB = 'graphite.tags.localdatabase.LocalDatabaseTagDB'\nTAGDB_CACHE_DURATION = 0\n",
                cache.query_port
            ),
        )
        .unwrap();
        let django = |args: &[&str]| {
            let mut c = std::process::Command::new("/usr/bin/python3");
            c.args(["-m", "django"])
                .args(args)
                .current_dir(&d)
                .env("PYTHONPATH", &d)
                .env("GRAPHITE_SETTINGS_MODULE", "cw_graphite_settings")
                .env("DJANGO_SETTINGS_MODULE", "graphite.settings")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            c
        };
        let migrated = django(&["migrate", "--run-syncdb"])
            .status()
            .expect("graphite-web (Debian)");
        assert!(migrated.success(), "graphite-web migrate failed");
        let child = django(&["runserver", &format!("127.0.0.1:{port}"), "--noreload"])
            .spawn()
            .unwrap();
        wait_listening(port, "graphite-web").await;
        GraphiteWeb {
            dir,
            port,
            child: Some(Child(child)),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it, so that Graphite errors can be tested.
    pub fn stop(&mut self) {
        self.child = None;
    }
}

/// The `carbonwatch` binary built for the tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_carbonwatch");

/// `carbonwatch run --config path`, with its log captured.
pub fn run(path: &std::path::Path) -> std::process::Child {
    std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `cmd` to its end and returns what it printed; panics with its
/// stderr unless it succeeded.
pub fn output_ok(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Sends `sig` (as `kill` spells it, `-TERM`) to `child`.
pub fn signal(child: &std::process::Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Connects to carbonwatch's plaintext port once it listens.
pub async fn connect(port: u16) -> tokio::net::TcpStream {
    for _ in 0..400 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("carbonwatch did not start listening on {port}");
}

/// Stops `child` with SIGTERM, checks that it exited cleanly, and returns
/// its log.
pub fn stop(child: std::process::Child) -> String {
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

/// The kernel's largest socket buffer for `sysctl` (`tcp_wmem`, `tcp_rmem`).
pub fn tcp_buffer_max(sysctl: &str) -> usize {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{sysctl}"))
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap()
}

/// Sends `lines` to `app`'s plaintext port on a new connection and closes
/// it, so that everything written is read before the connection ends.
pub async fn send(app: &carbonwatch::app::App, lines: &str) {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    s.write_all(lines.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
}

pub mod receiver;

/// The service-manager notifications (`NOTIFY_SOCKET` datagrams) read from
/// `sock` until one has the line `want`; panics after a minute. `sock`
/// needs a read timeout.
pub fn notifications_until(sock: &std::os::unix::net::UnixDatagram, want: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            let done = msg.lines().any(|l| l == want);
            seen.push(msg);
            if done {
                return seen;
            }
        }
    }
    panic!("no {want} in {seen:?}");
}
#[allow(unused_imports)]
pub use receiver::{Receiver, Recorded};

// The load generator's HTTP request reader, shared by path: the webhook
// stand-in reads requests the same way.
#[path = "../../src/loadgen/http.rs"]
mod http;
pub use http::read_http_body;

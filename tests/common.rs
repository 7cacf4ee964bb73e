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
         [admin]\nlisten = \"127.0.0.1:0\"\n[stats]\nenabled = false\n{body}"
    );
    carbonwatch::config::Config::parse(&text, std::path::Path::new("test.toml")).unwrap()
}

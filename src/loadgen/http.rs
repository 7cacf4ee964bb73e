//! Reading HTTP/1.1 requests off a socket, just enough for a webhook
//! receiver: headers, then a `Content-Length` body. Shared with the test
//! suite's webhook (by path), so both read requests the same way.

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Reads the next HTTP/1.1 request from `s` and returns its body; `None`
/// at end of stream. Bytes past that request stay in `buf` for the next
/// call. Enough HTTP for a webhook receiver: `Content-Length` bodies only.
pub async fn read_http_body(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                return Some(body);
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

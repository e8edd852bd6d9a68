//! A minimal HTTP/1.1 client over a raw socket, for requests an ordinary
//! client would normalise away (`..`, `%2f`, odd methods), plus helpers to
//! read the metrics exposition.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub type Headers = Vec<(String, String)>;

pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Sends one request with `Connection: close` and reads the whole answer.
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    target: &str,
    extra: &[(&str, &str)],
) -> (u16, Headers, Vec<u8>) {
    try_raw(addr, method, target, extra)
        .await
        .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
}

pub async fn get_status(addr: SocketAddr, target: &str) -> Option<u16> {
    try_raw(addr, "GET", target, &[])
        .await
        .ok()
        .map(|(s, _, _)| s)
}

pub async fn try_raw(
    addr: SocketAddr,
    method: &str,
    target: &str,
    extra: &[(&str, &str)],
) -> Result<(u16, Headers, Vec<u8>), String> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut req =
            format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (n, v) in extra {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
        parse(&buf, method == "HEAD")
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// A whole HTTP/1.1 answer as read from the socket: status, headers (names
/// lower-cased) and body (de-chunked; for a HEAD request, whatever follows
/// the head).
pub fn parse_answer(buf: &[u8], head: bool) -> Result<(u16, Headers, Vec<u8>), String> {
    parse(buf, head)
}

fn parse(buf: &[u8], head: bool) -> Result<(u16, Headers, Vec<u8>), String> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no complete response head")?;
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    if head {
        return Ok((status, headers, rest.to_vec()));
    }
    let body = if header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok((status, headers, body))
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// `headers` without the fields that change from one answer to the next
/// (`Date`, `Age`): what two answers to the same request must share.
pub fn lasting(headers: Headers) -> Headers {
    headers
        .into_iter()
        .filter(|(n, _)| n != "date" && n != "age")
        .collect()
}

/// The value of one sample in a Prometheus text exposition; 0 when absent.
/// `labels` must list every label of the sample, in any order.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric_name, label_text) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if metric_name != name {
            continue;
        }
        let mut found: Vec<(String, String)> = label_text
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        found.sort();
        let mut want: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.sort();
        if found == want {
            return value.parse().unwrap_or(f64::NAN);
        }
    }
    0.0
}

/// `cdn_node_auth_rejections_total` for one reason.
pub fn auth_rejections(metrics: &str, reason: &str) -> f64 {
    metric(
        metrics,
        "cdn_node_auth_rejections_total",
        &[("reason", reason)],
    )
}

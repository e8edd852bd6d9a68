//! The HTTP/1.1 client of `benches/pop_workload.sh`: plays a request trace
//! (one `PATH` or `PATH FIRST-LAST` per line, the second a byte range)
//! against one server, either
//! - closed-loop: `--connections C`, each connection sending its next
//!   request when the last answer is read (the server's saturation rate),
//!   for `--duration` seconds or `--requests N` requests, or
//! - open-loop: `--rate R`, request `i` due at `i / R` seconds whatever the
//!   server does, on an idle kept-alive connection or a new one; its latency
//!   counts from when it was sent, never delayed by earlier answers, so a
//!   server that falls behind shows it.
//!
//! Prints one line: `pop-result requests=.. taken=.. bytes=.. duration_us=..
//! p50_us=.. p90_us=.. p99_us=.. errors=.. dropped=.. not_ok=.. hits=..
//! p99_hit_us=.. misses=.. p99_miss_us=..`
//! (`taken`: trace lines used, the next run's `--skip` adds them; `dropped`: due requests not sent because `--max-connections` were busy;
//! `not_ok`: answers other than 200 and 206; `hits` and `misses`: answers
//! whose `X-Cache` or `X-Cache-Status` field, as each server reports its
//! cache's outcome, begins with `HIT` or does not, with their own p99).
//!
//! `cargo run --release -- --addr 127.0.0.1:8080
//!  --trace trace.txt --query jwt=TOKEN --skip 0 --duration 20 --rate 500`

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Args {
    addr: String,
    trace: String,
    query: String,
    skip: usize,
    duration: Duration,
    connections: usize,
    rate: Option<f64>,
    max_connections: usize,
    requests: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: String::new(),
        trace: String::new(),
        query: String::new(),
        skip: 0,
        duration: Duration::from_secs(10),
        connections: 32,
        rate: None,
        max_connections: 1024,
        requests: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--addr" => args.addr = value,
            "--trace" => args.trace = value,
            "--query" => args.query = value,
            "--skip" => args.skip = number(&value)? as usize,
            "--duration" => args.duration = Duration::from_secs_f64(number(&value)?),
            "--connections" => args.connections = number(&value)? as usize,
            "--rate" => args.rate = Some(number(&value)?),
            "--max-connections" => args.max_connections = number(&value)? as usize,
            "--requests" => args.requests = Some(number(&value)? as usize),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.addr.is_empty() || args.trace.is_empty() {
        return Err("--addr and --trace are required".into());
    }
    Ok(args)
}

/// The request bytes of each trace line.
fn load_trace(args: &Args) -> Result<Vec<Vec<u8>>, String> {
    let text = std::fs::read_to_string(&args.trace).map_err(|e| format!("{}: {e}", args.trace))?;
    let separator = if args.query.is_empty() { "" } else { "?" };
    let requests: Vec<Vec<u8>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut words = line.split_whitespace();
            let path = words.next().unwrap_or("/");
            let range = words
                .next()
                .map(|r| format!("Range: bytes={r}\r\n"))
                .unwrap_or_default();
            format!(
                "GET {path}{separator}{} HTTP/1.1\r\nHost: {}\r\n{range}\r\n",
                args.query, args.addr
            )
            .into_bytes()
        })
        .collect();
    if requests.is_empty() {
        return Err("the trace is empty".into());
    }
    Ok(requests)
}

#[derive(Default)]
struct Stats {
    latencies_us: Vec<u64>,
    /// Of those, the answers the server says came from its cache, and the
    /// others it says something of.
    hit_us: Vec<u64>,
    miss_us: Vec<u64>,
    bytes: u64,
    errors: u64,
    dropped: u64,
    not_ok: u64,
}

type Conn = BufReader<TcpStream>;

/// What one exchange gave.
struct Answer {
    status: u16,
    body: u64,
    close: bool,
    /// The server's word on its cache (`X-Cache`, `X-Cache-Status`): a
    /// hit or not; `None` when it says nothing.
    hit: Option<bool>,
}

/// Sends one request and reads its answer.
async fn exchange(conn: &mut Conn, request: &[u8]) -> std::io::Result<Answer> {
    conn.get_mut().write_all(request).await?;
    let mut line = Vec::with_capacity(256);
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    conn.read_until(b'\n', &mut line).await?;
    let status: u16 = std::str::from_utf8(&line)
        .ok()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let (mut length, mut chunked, mut close, mut hit) = (None, false, false, None);
    loop {
        line.clear();
        if conn.read_until(b'\n', &mut line).await? == 0 {
            return Err(bad("header cut short"));
        }
        let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
        let text = text.trim_end();
        if text.is_empty() {
            break;
        }
        if let Some(v) = text.strip_prefix("content-length:") {
            length = v.trim().parse::<u64>().ok();
        } else if text.starts_with("transfer-encoding:") && text.ends_with("chunked") {
            chunked = true;
        } else if text.starts_with("connection:") && text.ends_with("close") {
            close = true;
        } else if let Some(v) = text
            .strip_prefix("x-cache:")
            .or_else(|| text.strip_prefix("x-cache-status:"))
        {
            hit = Some(v.trim().starts_with("hit"));
        }
    }
    let body = if chunked {
        let mut total = 0;
        loop {
            line.clear();
            conn.read_until(b'\n', &mut line).await?;
            let size = std::str::from_utf8(&line)
                .ok()
                .and_then(|l| l.trim().split(';').next())
                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| bad("bad chunk size"))?;
            discard(conn, size + 2).await?;
            total += size;
            if size == 0 {
                break total;
            }
        }
    } else {
        let length = length.ok_or_else(|| bad("no length"))?;
        discard(conn, length).await?;
        length
    };
    Ok(Answer {
        status,
        body,
        close,
        hit,
    })
}

async fn discard(conn: &mut Conn, mut left: u64) -> std::io::Result<()> {
    let mut scratch = [0u8; 64 * 1024];
    while left > 0 {
        let want = scratch
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = conn.read(&mut scratch[..want]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        left -= n as u64;
    }
    Ok(())
}

/// One request on `conn` (a new connection when `None`), counted from
/// `due`; gives the connection back when it may be used again.
async fn one(
    addr: &str,
    conn: Option<Conn>,
    request: &[u8],
    due: Instant,
    stats: &RefCell<Stats>,
) -> Option<Conn> {
    let mut conn = match conn {
        Some(conn) => conn,
        None => match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                BufReader::with_capacity(64 * 1024, stream)
            }
            Err(_) => {
                stats.borrow_mut().errors += 1;
                return None;
            }
        },
    };
    let result = exchange(&mut conn, request).await;
    let mut stats = stats.borrow_mut();
    match result {
        Ok(answer) => {
            let us = due.elapsed().as_micros() as u64;
            stats.latencies_us.push(us);
            match answer.hit {
                Some(true) => stats.hit_us.push(us),
                Some(false) => stats.miss_us.push(us),
                None => {}
            }
            stats.bytes += answer.body;
            if answer.status != 200 && answer.status != 206 {
                stats.not_ok += 1;
            }
            (!answer.close).then_some(conn)
        }
        Err(e) => {
            if stats.errors == 0 {
                eprintln!("pop_client: first error: {e}");
            }
            stats.errors += 1;
            None
        }
    }
}

async fn run(args: Args, trace: Rc<Vec<Vec<u8>>>) -> (Stats, Duration, usize) {
    let stats = Rc::new(RefCell::new(Stats::default()));
    let next = Rc::new(RefCell::new(args.skip));
    let addr: Rc<str> = args.addr.into();
    let start = Instant::now();
    let end = start + args.duration;
    let last = args.requests.map_or(usize::MAX, |n| args.skip + n);
    let take = {
        let next = next.clone();
        let trace = trace.clone();
        move || {
            let mut i = next.borrow_mut();
            let request = trace[*i % trace.len()].clone();
            *i += 1;
            request
        }
    };
    let mut tasks = Vec::new();
    match args.rate {
        None => {
            for _ in 0..args.connections {
                let (stats, addr, take, next) =
                    (stats.clone(), addr.clone(), take.clone(), next.clone());
                tasks.push(tokio::task::spawn_local(async move {
                    let mut conn = None;
                    while Instant::now() < end && *next.borrow() < last {
                        let request = take();
                        conn = one(&addr, conn, &request, Instant::now(), &stats).await;
                    }
                }));
            }
        }
        Some(rate) => {
            let idle: Rc<RefCell<Vec<Conn>>> = Rc::default();
            let busy = Rc::new(RefCell::new(0usize));
            let mut i = 0u64;
            loop {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                if due >= end {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                // Latency counts from here: tokio's timer wakes up to a
                // millisecond after `due`, which is the client's, not the
                // server's.
                let due = Instant::now();
                i += 1;
                let request = take();
                let conn = idle.borrow_mut().pop();
                if conn.is_none() && *busy.borrow() >= args.max_connections {
                    stats.borrow_mut().dropped += 1;
                    continue;
                }
                *busy.borrow_mut() += 1;
                let (stats, addr, idle, busy) =
                    (stats.clone(), addr.clone(), idle.clone(), busy.clone());
                tasks.push(tokio::task::spawn_local(async move {
                    if let Some(conn) = one(&addr, conn, &request, due, &stats).await {
                        idle.borrow_mut().push(conn);
                    }
                    *busy.borrow_mut() -= 1;
                }));
            }
        }
    }
    for task in tasks {
        let _ = tokio::time::timeout_at((end + Duration::from_secs(30)).into(), task).await;
    }
    let elapsed = start.elapsed();
    let stats = std::mem::take(&mut *stats.borrow_mut());
    let taken = *next.borrow() - args.skip;
    (stats, elapsed, taken)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("pop_client: {e}");
            std::process::exit(2);
        }
    };
    let trace = match load_trace(&args) {
        Ok(trace) => Rc::new(trace),
        Err(e) => {
            eprintln!("pop_client: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let local = tokio::task::LocalSet::new();
    let (mut stats, elapsed, taken) = local.block_on(&runtime, run(args, trace));
    stats.latencies_us.sort_unstable();
    stats.hit_us.sort_unstable();
    stats.miss_us.sort_unstable();
    let l = &stats.latencies_us;
    println!(
        "pop-result requests={} taken={} bytes={} duration_us={} p50_us={} p90_us={} p99_us={} errors={} dropped={} not_ok={} hits={} p99_hit_us={} misses={} p99_miss_us={}",
        l.len(),
        taken,
        stats.bytes,
        elapsed.as_micros(),
        percentile(l, 50.0),
        percentile(l, 90.0),
        percentile(l, 99.0),
        stats.errors,
        stats.dropped,
        stats.not_ok,
        stats.hit_us.len(),
        percentile(&stats.hit_us, 99.0),
        stats.miss_us.len(),
        percentile(&stats.miss_us, 99.0)
    );
}

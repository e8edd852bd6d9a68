//! A TCP tap between the node and S3: forwards bytes both ways and records
//! every request head the node sends, so tests can count origin requests and
//! see exactly what reached the origin. It can also misbehave on purpose.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pass everything through.
    Forward,
    /// Accept and read, never answer (origin read timeout).
    Stall,
}

#[derive(Default)]
struct State {
    heads: Vec<String>,
    response_bytes: u64,
}

pub struct Tap {
    pub port: u16,
    state: Arc<Mutex<State>>,
    mode: Arc<Mutex<Mode>>,
    task: JoinHandle<()>,
}

impl Tap {
    pub async fn start(upstream_port: u16) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tap");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let mode = Arc::new(Mutex::new(Mode::Forward));
        let (st, md) = (state.clone(), mode.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (st, md) = (st.clone(), md.clone());
                tokio::spawn(async move {
                    let mode = *md.lock().unwrap();
                    serve(client, upstream_port, st, mode).await;
                });
            }
        });
        Tap {
            port,
            state,
            mode,
            task,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Every request head seen so far, in order.
    pub fn heads(&self) -> Vec<String> {
        self.state.lock().unwrap().heads.clone()
    }

    pub fn requests(&self) -> usize {
        self.state.lock().unwrap().heads.len()
    }

    /// Bytes sent by the origin (headers and bodies).
    pub fn response_bytes(&self) -> u64 {
        self.state.lock().unwrap().response_bytes
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut client: TcpStream, upstream_port: u16, state: Arc<Mutex<State>>, mode: Mode) {
    if mode == Mode::Stall {
        let mut sink = [0u8; 4096];
        while let Ok(n) = client.read(&mut sink).await {
            if n == 0 {
                return;
            }
        }
        return;
    }
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let st = state.clone();
    let up = tokio::spawn(async move {
        let mut pending = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buf[..n]);
            // Requests to S3 are GET/HEAD without a body: a head ends at
            // the blank line.
            while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = pending.drain(..end + 4).collect();
                st.lock()
                    .unwrap()
                    .heads
                    .push(String::from_utf8_lossy(&head).into_owned());
            }
            if uw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = uw.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match ur.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        state.lock().unwrap().response_bytes += n as u64;
        if cw.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = cw.shutdown().await;
    up.abort();
}

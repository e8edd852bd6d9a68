//! A real browser for the tests: Debian's Chromium, headless, driven by
//! chromedriver over the W3C WebDriver protocol (JSON over HTTP); a static
//! file server that serves the player page (deploy/player/) from an origin
//! of its own; and the sample videos of deploy/sample/ as bucket objects.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{eventually, free_port, tools};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CHROMIUM: &str = "/usr/bin/chromium";
/// Chromium's switches: headless, no sandbox (tests may run as root),
/// nothing fetched or started besides the page, and media that play
/// without a click.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,900",
];
/// What one WebDriver command may take (a page load included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether the browser tests can run: chromium and chromedriver are
/// installed. When they are not: under CI the test fails with the setup
/// step that installs them; elsewhere `skipped: chromium not installed`
/// goes to stderr and the caller returns.
pub fn chromium_or_skip() -> bool {
    let missing: Vec<&str> = [CHROMIUM, "chromedriver"]
        .into_iter()
        .filter(|p| {
            if p.starts_with('/') {
                !Path::new(p).is_file()
            } else {
                !tools::on_path(p)
            }
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !tools::under_ci(),
        "{missing:?} not installed, and CI=true: run `bash deploy/setup.sh browser` before the tests"
    );
    eprintln!(
        "skipped: chromium not installed ({missing:?} missing; `bash deploy/setup.sh browser` installs them)"
    );
    false
}

/// The folder of the player page.
pub fn player_dir() -> PathBuf {
    Path::new(ROOT).join("deploy/player")
}

/// The sample videos as bucket objects, under the keys the quick start
/// uses: `courses/101/lecture-01.mp4` and `courses/101/hls/...`.
pub fn sample_objects() -> Vec<(String, Vec<u8>)> {
    let sample = Path::new(ROOT).join("deploy/sample");
    let mp4 = std::fs::read(sample.join("lecture-01.mp4")).expect("the sample MP4");
    let mut objects = vec![("courses/101/lecture-01.mp4".to_string(), mp4)];
    let hls = sample.join("hls");
    let mut files = Vec::new();
    files_under(&hls, &mut files);
    files.sort();
    assert!(
        files.len() >= 3,
        "the HLS sample has playlists and segments"
    );
    for file in files {
        let rel = file.strip_prefix(&hls).expect("under hls/");
        let key = format!("courses/101/hls/{}", rel.to_string_lossy());
        objects.push((key, std::fs::read(&file).expect("a sample file")));
    }
    objects
}

/// Every file under `dir`, in its subfolders too, appended to `out`.
pub fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Where screenshots go: `browser/` in the target folder.
pub fn screenshot_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is TARGET/tmp.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|target| target.join("browser"))
        .unwrap_or_else(|| Path::new(ROOT).join("target/browser"))
}

/// A static file server on a loopback port of its own: another origin than
/// the node's. Serves GET and HEAD of the files under its folder; stops
/// when dropped.
pub struct PageServer {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl PageServer {
    pub async fn start(root: PathBuf) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let root = root.clone();
                tokio::spawn(async move {
                    let _ = serve_file(stream, &root).await;
                });
            }
        });
        PageServer { port, task }
    }

    /// `http://127.0.0.1:PORT`, as a browser sends it in `Origin`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.origin())
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("md") | Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Answers one request with `Connection: close`.
async fn serve_file(mut stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let rel = if path.ends_with('/') {
        format!("{path}index.html")
    } else {
        path.to_string()
    };
    let file = (!rel.split('/').any(|s| s == ".." || s.contains('\\')))
        .then(|| root.join(rel.trim_start_matches('/')))
        .filter(|f| f.is_file());
    let (status, ctype, body) = match (method, file) {
        ("GET" | "HEAD", Some(file)) => ("200 OK", content_type(&file), std::fs::read(&file)?),
        ("GET" | "HEAD", None) => ("404 Not Found", "text/plain", b"not found".to_vec()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            b"method not allowed".to_vec(),
        ),
    };
    let mut answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        answer.extend_from_slice(&body);
    }
    stream.write_all(&answer).await?;
    stream.shutdown().await
}

/// Headless Chromium in a WebDriver session of its own chromedriver. The
/// driver runs in a process group of its own, with Chromium in it: all of
/// it is killed when the `Browser` is dropped.
pub struct Browser {
    port: u16,
    session: String,
    http: reqwest::Client,
    driver: Child,
    /// Chromium's profile, chromedriver's log, and both's temporary files.
    dir: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port (another one when that port was
    /// taken in between) and opens a session with a fresh profile.
    pub async fn start() -> Browser {
        let http = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .build()
            .expect("HTTP client");
        let mut last_log = String::new();
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let driver = spawn_driver(port, dir.path());
            let mut browser = Browser {
                port,
                session: String::new(),
                http: http.clone(),
                driver,
                dir,
            };
            if browser.wait_ready().await {
                browser.session = browser.new_session().await;
                return browser;
            }
            last_log = browser.driver_log();
        }
        panic!("chromedriver did not start:\n{last_log}");
    }

    /// Waits until chromedriver says it is ready; false when it exited (its
    /// port was taken).
    async fn wait_ready(&mut self) -> bool {
        let status_url = format!("http://127.0.0.1:{}/status", self.port);
        let (http, driver) = (&self.http, &mut self.driver);
        eventually("chromedriver to be ready", Duration::from_secs(30), || {
            let exited = driver.try_wait().ok().flatten().is_some();
            let request = http.get(&status_url).send();
            async move {
                if exited {
                    return Some(false);
                }
                let body = request.await.ok()?.text().await.ok()?;
                let status: Value = serde_json::from_str(&body).ok()?;
                (status["value"]["ready"] == true).then_some(true)
            }
        })
        .await
    }

    async fn new_session(&self) -> String {
        let profile = self.dir.path().join("profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
                    "timeouts": { "script": 30_000, "pageLoad": 60_000 },
                }
            }
        });
        let value = self.send("POST", "/session", Some(capabilities)).await;
        value["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {value}"))
            .to_string()
    }

    /// One WebDriver command; its `value`. Fails the test on a WebDriver
    /// error, with chromedriver's message.
    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = response.status();
        let text = response.text().await.expect("WebDriver answer");
        let mut answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {text}"));
        assert!(
            status.is_success(),
            "WebDriver {method} {path} answered {status}: {}",
            answer["value"]
        );
        answer["value"].take()
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Opens `url` and waits until the page has loaded.
    pub async fn goto(&self, url: &str) {
        self.send(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        )
        .await;
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the
    /// page; what it returns.
    pub async fn execute(&self, script: &str, args: &[Value]) -> Value {
        self.send(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// The page's `window.playerState` (null before the page set it).
    pub async fn player_state(&self) -> Value {
        let text = self
            .execute(
                "return JSON.stringify(window.playerState === undefined ? null : window.playerState);",
                &[],
            )
            .await;
        serde_json::from_str(text.as_str().expect("a JSON string")).expect("JSON")
    }

    /// Polls the page's `playerState` until `check` returns `Some`; fails
    /// the test after `limit`, showing the last state (the page's event log
    /// is in it).
    pub async fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&Value) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let state = self.player_state().await;
            if let Some(v) = check(&state) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {limit:?} waiting for {what}; the page's state:\n{state:#}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the page as `name` in `screenshot_dir()`; its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let value = self
            .send("GET", &self.session_path("/screenshot"), None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().expect("base64 text"))
            .expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }

    fn driver_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }
}

fn spawn_driver(port: u16, dir: &Path) -> Child {
    use std::os::unix::process::CommandExt as _;
    let log = std::fs::File::create(dir.join("chromedriver.log")).expect("log file");
    // Their temporary files (Chromium's singleton socket, the driver's
    // scoped folders) in the test's folder: killed, they remove nothing.
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).expect("temporary folder");
    Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        // A group of its own, which Chromium joins: one kill stops all.
        .process_group(0)
        .spawn()
        .expect("spawn chromedriver")
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group's id is the driver's pid.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

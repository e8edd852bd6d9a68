//! The keys the verifier uses now, and where they come from: key files and environment
//! variables (read again when a file changes or on SIGHUP) and JWKS URLs (fetched at
//! start-up, every `refresh_seconds`, and when a token names an unknown `kid`).
//!
//! Every source keeps its last good keys when a load fails. The keys in use are the union,
//! swapped as a whole; a request holds the set it started with.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use tokio::sync::{Notify, watch};

use crate::auth::algorithm;
use crate::auth::jwks::parse_jwks;
use crate::auth::jwks_url::{FETCH_TIMEOUT, JwksUrl};
use crate::auth::key::VerifyKey;
use crate::auth::keys::load_keys_quietly;
use crate::auth::settings::{
    DEFAULT_JWKS_MIN_FETCH_INTERVAL_MS, DEFAULT_JWKS_REFRESH_SECONDS, KeySettings,
};

/// The longest a request with an unknown `kid` waits for a fetch round.
pub const UNKNOWN_KID_WAIT: Duration = Duration::from_secs(8);

struct FileKeys {
    entries: Vec<KeySettings>,
    fingerprint: Vec<u8>,
    keys: Vec<VerifyKey>,
    checked_at: Instant,
}

struct UrlSource {
    url: JwksUrl,
    issuer: Option<String>,
    default_alg: Option<Algorithm>,
    refresh: Duration,
    min_interval: Duration,
    state: Mutex<UrlState>,
}

#[derive(Default)]
struct UrlState {
    keys: Option<Vec<VerifyKey>>,
    text: Option<String>,
    last_attempt: Option<Instant>,
    last_success: Option<Instant>,
    next_due: Option<Instant>,
}

pub(crate) struct KeyStore {
    current: RwLock<Arc<Vec<VerifyKey>>>,
    base_dir: PathBuf,
    files: Mutex<FileKeys>,
    urls: Vec<UrlSource>,
    wanted: Notify,
    requested: AtomicBool,
    rounds: watch::Sender<u64>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.current())
            .field(
                "urls",
                &self.urls.iter().map(|u| &u.url.text).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// `keys` are the file and environment keys loaded at start-up from `entries`; entries
    /// with a `jwks_url` (already checked) become URL sources, empty until fetched.
    pub fn new(entries: &[KeySettings], keys: Vec<VerifyKey>, base_dir: PathBuf) -> KeyStore {
        let file_entries: Vec<KeySettings> = entries
            .iter()
            .filter(|e| e.jwks_url.is_none())
            .cloned()
            .collect();
        let urls = entries
            .iter()
            .filter_map(|e| {
                let url = JwksUrl::parse(e.jwks_url.as_deref()?).ok()?;
                Some(UrlSource {
                    url,
                    issuer: e.issuer.clone(),
                    default_alg: e.algorithm.as_deref().and_then(algorithm::parse),
                    refresh: Duration::from_secs(
                        e.refresh_seconds.unwrap_or(DEFAULT_JWKS_REFRESH_SECONDS),
                    ),
                    min_interval: Duration::from_millis(
                        e.min_fetch_interval_ms
                            .unwrap_or(DEFAULT_JWKS_MIN_FETCH_INTERVAL_MS),
                    ),
                    state: Mutex::new(UrlState::default()),
                })
            })
            .collect();
        let fingerprint = fingerprint(&file_entries, &base_dir);
        KeyStore {
            current: RwLock::new(Arc::new(keys.clone())),
            base_dir,
            files: Mutex::new(FileKeys {
                entries: file_entries,
                fingerprint,
                keys,
                checked_at: Instant::now(),
            }),
            urls,
            wanted: Notify::new(),
            requested: AtomicBool::new(false),
            rounds: watch::channel(0).0,
        }
    }

    /// The keys in use now.
    pub fn current(&self) -> Arc<Vec<VerifyKey>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// True once every JWKS URL has been fetched successfully at least once.
    pub fn ready(&self) -> bool {
        self.urls.iter().all(|u| lock(&u.state).keys.is_some())
    }

    pub fn has_urls(&self) -> bool {
        !self.urls.is_empty()
    }

    /// Seconds since the stalest source was last loaded or confirmed.
    pub fn age(&self) -> Duration {
        let now = Instant::now();
        let files = now.saturating_duration_since(lock(&self.files).checked_at);
        self.urls
            .iter()
            .map(|u| {
                lock(&u.state)
                    .last_success
                    .map(|t| now.saturating_duration_since(t))
                    .unwrap_or(Duration::MAX)
            })
            .fold(files, Duration::max)
            .min(Duration::from_secs(u32::MAX as u64))
    }

    /// Asks the reloader for a fetch of every URL (a token named an unknown `kid`) and waits
    /// for the round to finish; fetches are single-flight and at most one per URL per
    /// `min_fetch_interval_ms`. False when there is no URL or the wait timed out.
    pub async fn fetch_for_unknown_kid(&self) -> bool {
        if self.urls.is_empty() {
            return false;
        }
        let mut rounds = self.rounds.subscribe();
        rounds.borrow_and_update();
        self.requested.store(true, Ordering::Release);
        self.wanted.notify_one();
        tokio::time::timeout(UNKNOWN_KID_WAIT, rounds.changed())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Resolves when a request asked for a fetch.
    pub async fn fetch_wanted(&self) {
        self.wanted.notified().await
    }

    /// Loads what is due: changed key files (all of them when `forced`), URLs whose refresh
    /// is due (all when `forced`, or when a request asked). Returns what was tried, by
    /// source, and whether the keys in use changed.
    pub async fn refresh(&self, forced: bool) -> (Vec<(String, Result<usize, String>)>, bool) {
        let mut results = Vec::new();
        let mut changed = false;
        {
            let mut files = lock(&self.files);
            let now_print = fingerprint(&files.entries, &self.base_dir);
            if forced || now_print != files.fingerprint {
                files.fingerprint = now_print;
                match load_keys_quietly(&files.entries, &self.base_dir) {
                    Ok(keys) => {
                        results.push(("files".to_owned(), Ok(keys.len())));
                        files.keys = keys;
                        files.checked_at = Instant::now();
                        changed = true;
                    }
                    Err(message) => results.push(("files".to_owned(), Err(message))),
                }
            } else {
                files.checked_at = Instant::now();
            }
        }
        let requested = self.requested.swap(false, Ordering::AcqRel);
        for source in &self.urls {
            let (due, wait) = {
                let state = lock(&source.state);
                let now = Instant::now();
                let scheduled = state.next_due.is_none_or(|t| now >= t);
                let earliest = state.last_attempt.map(|t| t + source.min_interval);
                let wait = earliest.map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
                (forced || requested || scheduled, wait)
            };
            if !due {
                continue;
            }
            if !wait.is_zero() {
                // Rate limit: wait for the slot rather than refuse the request that asked.
                tokio::time::sleep(wait).await;
            }
            let fetched = tokio::time::timeout(FETCH_TIMEOUT * 2, source.url.fetch())
                .await
                .unwrap_or_else(|_| Err("fetch timed out".to_owned()));
            let now = Instant::now();
            let mut state = lock(&source.state);
            state.last_attempt = Some(now);
            let result = fetched.and_then(|text| {
                if state.text.as_deref() == Some(text.as_str()) {
                    return Ok(None);
                }
                let (mut keys, problems) = parse_jwks(&text, &source.url.text, source.default_alg);
                for problem in &problems {
                    tracing::warn!(%problem, "JWK skipped");
                }
                if keys.is_empty() {
                    return Err(problems.join("; "));
                }
                for key in &mut keys {
                    key.issuer = source.issuer.clone();
                }
                Ok(Some((text, keys)))
            });
            match result {
                Ok(update) => {
                    state.last_success = Some(now);
                    state.next_due = Some(now + source.refresh);
                    let n = match update {
                        Some((text, keys)) => {
                            let n = keys.len();
                            state.text = Some(text);
                            state.keys = Some(keys);
                            changed = true;
                            n
                        }
                        None => state.keys.as_ref().map_or(0, Vec::len),
                    };
                    results.push((source.url.text.clone(), Ok(n)));
                }
                Err(message) => {
                    let retry = source.min_interval.max(Duration::from_secs(1));
                    state.next_due = Some(now + retry.min(source.refresh));
                    results.push((source.url.text.clone(), Err(message)));
                }
            }
        }
        if changed {
            let mut all: Vec<VerifyKey> = lock(&self.files).keys.clone();
            for source in &self.urls {
                all.extend(lock(&source.state).keys.iter().flatten().cloned());
            }
            *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(all);
        }
        if requested {
            self.rounds.send_modify(|n| *n += 1);
        }
        (results, changed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The bytes of every key file, to notice changes.
fn fingerprint(entries: &[KeySettings], base_dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        for path in [&entry.secret_file, &entry.public_key_file, &entry.jwks_file]
            .into_iter()
            .flatten()
        {
            match std::fs::read(base_dir.join(path)) {
                Ok(bytes) => {
                    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                    out.extend_from_slice(&bytes);
                }
                Err(_) => out.extend_from_slice(&u64::MAX.to_le_bytes()),
            }
        }
    }
    out
}

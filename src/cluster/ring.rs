//! A consistent-hash ring over nodes (a PoP's members, or the shields):
//! Pingora's Ketama load balancer (the ring of nginx's `hash ...
//! consistent`), with active checks of each node's `/healthz` and passive
//! marking: a node whose connection just failed is passed over for a while.
//! A node skipped for either reason hands its keys to the next node on the
//! ring; the other nodes' keys do not move.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::consistent::KetamaHashing;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora_http::RequestHeader;

/// The path every node answers on its peer listener for health checks.
pub const HEALTH_PATH: &str = "/healthz";
/// Ring points walked at most per pick: past a dead node's adjacent points,
/// repeats included (Pingora's examples use the same bound).
const MAX_ITERATIONS: usize = 256;

/// The ring's members, replaced as a whole (from the configuration, or the
/// fleet's control plane). Every member has weight 1: a zero weight panics
/// Pingora's Ketama.
#[derive(Clone, Default)]
pub struct Members(Arc<RwLock<BTreeSet<Backend>>>);

impl Members {
    pub fn new(addrs: impl IntoIterator<Item = SocketAddr>) -> Members {
        let m = Members::default();
        m.set(addrs);
        m
    }

    pub fn set(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        let set = addrs
            .into_iter()
            .map(|addr| Backend {
                addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
                weight: 1,
                ext: Default::default(),
            })
            .collect();
        if let Ok(mut members) = self.0.write() {
            *members = set;
        }
    }

    /// The members' addresses.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.0
            .read()
            .map(|m| m.iter().filter_map(inet).collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl ServiceDiscovery for Members {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let members = self.0.read().map(|m| m.clone()).unwrap_or_default();
        Ok((members, HashMap::new()))
    }
}

/// How often the ring looks again at its members and their health.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub health_check_interval: Duration,
    pub down_for: Duration,
}

pub struct Ring {
    lb: LoadBalancer<KetamaHashing>,
    members: Members,
    /// This node, when it is a member: always taken as healthy by itself.
    me: Option<SocketAddr>,
    /// Read on every pick, written only when a connection fails.
    failed: RwLock<HashMap<SocketAddr, Instant>>,
    timing: Timing,
    /// Set once the members were read and checked.
    refreshed: AtomicBool,
}

fn inet(b: &Backend) -> Option<SocketAddr> {
    b.addr.as_inet().copied()
}

impl Ring {
    pub fn new(members: Members, me: Option<SocketAddr>, timing: Timing) -> Ring {
        let mut backends = Backends::new(Box::new(members.clone()));
        let mut check = HttpHealthCheck::new("cdn-node", false);
        if let Ok(req) = RequestHeader::build("GET", HEALTH_PATH.as_bytes(), None) {
            check.req = req;
            let _ = check.req.insert_header("host", "cdn-node");
        }
        // One lost probe does not move keys; two do. Back after two good ones.
        check.consecutive_failure = 2;
        check.consecutive_success = 2;
        let probe_timeout = timing
            .health_check_interval
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(50));
        check.peer_template.options.connection_timeout = Some(probe_timeout);
        check.peer_template.options.read_timeout = Some(probe_timeout);
        backends.set_health_check(Box::new(check));
        let lb = LoadBalancer::<KetamaHashing>::from_backends(backends);
        Ring {
            lb,
            members,
            me,
            failed: RwLock::new(HashMap::new()),
            timing,
            refreshed: AtomicBool::new(false),
        }
    }

    /// Whether `b` may be given keys: this node always, another when its
    /// checks pass and no connection to it failed lately.
    fn usable(
        &self,
        b: &Backend,
        healthy: bool,
        failed: &HashMap<SocketAddr, Instant>,
        now: Instant,
    ) -> bool {
        let Some(addr) = inet(b) else { return false };
        Some(addr) == self.me || (healthy && failed.get(&addr).is_none_or(|until| *until <= now))
    }

    /// The node that owns `key`: the first on the ring that is usable and
    /// not in `skip`. `None` when none is left.
    pub fn pick(&self, key: &[u8], skip: &[SocketAddr]) -> Option<SocketAddr> {
        let now = Instant::now();
        let failed = self.failed.read().ok()?;
        self.lb
            .select_with(key, MAX_ITERATIONS, |b, healthy| {
                self.usable(b, healthy, &failed, now) && inet(b).is_some_and(|a| !skip.contains(&a))
            })
            .and_then(|b| inet(&b))
    }

    /// A connection to `addr` failed: pass it over for a while.
    pub fn mark_failed(&self, addr: SocketAddr) {
        if let Ok(mut failed) = self.failed.write() {
            let now = Instant::now();
            failed.retain(|_, until| *until > now);
            failed.insert(addr, now + self.timing.down_for);
        }
    }

    /// (members, of them usable).
    pub fn census(&self) -> (usize, usize) {
        let now = Instant::now();
        let backends = self.lb.backends().get_backend();
        let Ok(failed) = self.failed.read() else {
            return (backends.len(), 0);
        };
        let healthy = backends
            .iter()
            .filter(|b| self.usable(b, self.lb.backends().ready(b), &failed, now))
            .count();
        (backends.len(), healthy)
    }

    /// The members, which the fleet's control plane may replace.
    pub fn members(&self) -> &Members {
        &self.members
    }

    /// Reads the members and checks their health once.
    pub async fn refresh(&self) {
        if let Err(e) = self.lb.update().await {
            tracing::warn!(error = %e, "ring members could not be read");
        }
        self.lb.backends().run_health_check(true).await;
        self.refreshed.store(true, Ordering::Release);
    }

    /// Whether the members were read and checked at least once.
    pub fn is_refreshed(&self) -> bool {
        self.refreshed.load(Ordering::Acquire)
    }
}

/// Keeps a ring's members and health current until the server stops, and
/// reports them through `report`.
pub struct RingKeeper {
    pub ring: Arc<Ring>,
    pub report: Box<dyn Fn(usize, usize) + Send + Sync>,
}

#[async_trait]
impl BackgroundService for RingKeeper {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(self.ring.timing.health_check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            self.ring.refresh().await;
            let (size, healthy) = self.ring.census();
            (self.report)(size, healthy);
        }
    }
}

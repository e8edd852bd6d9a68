//! Assembles the node from a validated configuration: the proxy service on
//! the client listeners (and the peer listener in a PoP), the admin
//! service, and the origin resolver, all under one Pingora server.

use std::sync::Arc;
use std::time::Duration;

use pingora::server::Server;
use pingora::server::configuration::Opt;
use pingora::services::background::GenBackgroundService;
use pingora::services::listening::Service;

use crate::access_log::AccessLog;
use crate::admin::Admin;
use crate::auth::Verifier;
use crate::auth::settings::TokenSource;
use crate::cache::engine::{Engine, SketchSaver};
use crate::cluster::Cluster;
use crate::cluster::ring::{Ring, RingKeeper};
use crate::config::Config;
use crate::cors::Cors;
use crate::cors::settings::CorsConfig;
use crate::fast_exit::{ExitWhenIdle, Finishing};
use crate::fleet::Fleet;
use crate::limits::LimitedApp;
use crate::listeners::Kind;
use crate::metrics::Metrics;
use crate::origin::{Origin, TokenCarriers};
use crate::proxy::Edge;
use crate::proxy::peer::Listener;
use crate::slice::Slicer;

/// Pingora's process options that stay available on `cdn-node run`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessOptions {
    pub daemon: bool,
    pub upgrade: bool,
}

/// The assembled server, ready to run.
pub struct Node {
    server: Server,
    access_log: AccessLog,
}

impl Node {
    /// Runs until the server stops, then writes out the access log lines
    /// still buffered. A graceful stop or upgrade usually ends sooner, in
    /// [`ExitWhenIdle`], once nothing is left to serve, and SIGINT in
    /// [`crate::fast_exit::FastExit`]; this return is the end of a graceful
    /// stop whose grace period ran out.
    pub fn run(self) {
        self.server.run(pingora::server::RunArgs::default());
        self.access_log.flush();
    }
}

/// Builds the server with all its services, ready to run. Fails when the
/// cache folder cannot be opened.
pub fn build(config: Config, opts: ProcessOptions) -> Result<Node, String> {
    crate::process_setup::prepare(config.limits.max_connections);
    let server_conf = config.server_conf(opts.daemon);
    let opt = Opt {
        upgrade: opts.upgrade,
        daemon: opts.daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf);
    server.bootstrap();

    let cluster = config.cluster.clone().map(|c| Arc::new(Cluster::new(c)));
    let carriers = TokenCarriers::of(config.auth.token_sources());
    let origin = Arc::new(Origin::new(config.origin, cluster.clone(), carriers));
    // Resolve once now, so the first request has an address; a failure here
    // is not fatal: the background refresh keeps trying and /readyz says so.
    if let Some(Err(e)) = origin.resolver.as_ref().map(|r| r.resolve_blocking()) {
        tracing::warn!(error = %e, "origin not resolved at start-up; retrying in the background");
    }
    let metrics = Arc::new(Metrics::new());
    let verifier = Arc::new(config.auth);
    let cache = match config.cache {
        Some(cache_config) => Some(open_cache(cache_config)?),
        None => None,
    };

    let buffer = usize::try_from(config.log.access_buffer.0).unwrap_or(usize::MAX);
    let file = match &config.access_file {
        Some(path) => Some(Arc::new(
            crate::access_log::file::LogFile::open(path).map_err(|e| {
                format!("log.access_file {} cannot be opened ({e})", path.display())
            })?,
        )),
        None => None,
    };
    let access_log = AccessLog::new(config.log.access_stdout, file.clone(), buffer);
    if let Some(file) = file {
        server.add_service(GenBackgroundService::new(
            "access log reopener".to_string(),
            Arc::new(crate::access_log::file::LogReopener {
                file,
                log: access_log.clone(),
                metrics: metrics.clone(),
            }),
        ));
    }
    server.add_service(GenBackgroundService::new(
        "fast exit".to_string(),
        Arc::new(crate::fast_exit::FastExit {
            log: access_log.clone(),
        }),
    ));
    // What a graceful stop waits for before the process exits: the
    // listeners' accept loops to end, then the connections (client and
    // peer) to close, then the access log's last flush and the eviction
    // state saved.
    let finishing = Finishing::default();
    let accepting = Finishing::default();
    server.add_service(GenBackgroundService::new(
        "access log flusher".to_string(),
        Arc::new(finishing.must_finish(crate::access_log::Flusher {
            log: access_log.clone(),
            interval: Duration::from_millis(config.log.access_flush_ms),
        })),
    ));
    let edge = Edge {
        verifier: verifier.clone(),
        origin: origin.clone(),
        metrics: metrics.clone(),
        access_log: access_log.clone(),
        cache,
        slicer: cache.and_then(open_slicer),
        cors: config.cors.clone().map(|c| open_cors(c, &verifier)),
        cluster: cluster.clone(),
        listener: Listener::Client,
    };
    let rings = add_fleet(&mut server, &edge, &metrics);
    let peer_connections = add_peer_listener(
        &mut server,
        &edge,
        &config.limits,
        config.server.threads,
        opts,
        &accepting,
    )?;
    let lane = crate::lane::Lane::of(edge.clone());
    let mut proxy_app = pingora_proxy::http_proxy(&server.configuration, edge);
    proxy_app.server_options = Some(crate::listeners::server_options());
    let limited = LimitedApp::new(proxy_app, &config.limits, metrics.clone(), lane);
    let mut connections = vec![limited.open_connections()];
    crate::listeners::add_workers(
        &mut server,
        &limited,
        Kind::Http,
        &config.http_listeners,
        config.server.threads,
        opts.upgrade,
        &accepting,
    )?;
    connections.extend(peer_connections);
    // Then the fills finished by those connections, still being committed.
    if let Some(engine) = cache {
        connections.push(engine.store.commits_in_progress());
    }
    let mut certs = Vec::new();
    if !config.https_listeners.is_empty() {
        certs = crate::listeners::add_https(
            &mut server,
            &limited,
            &config.https_listeners,
            config.server.threads,
            opts.upgrade,
            &accepting,
        )?;
    }

    let resolved = origin.clone();
    let keys = verifier.clone();
    // The auth reloader, and the certificate reloader with HTTPS.
    let reloaders = 1 + usize::from(!certs.is_empty());
    let ready = Arc::new(move || {
        resolved.is_ready()
            && keys.keys_ready()
            && rings.iter().all(|r| r.is_refreshed())
            && crate::reload_trigger::set_up() >= reloaders
    });
    let fleet = config.fleet.map(|fleet_config| {
        let (fleet, rules) = Fleet::new(fleet_config, &metrics, cache, verifier.clone());
        server.add_service(GenBackgroundService::new(
            "fleet rules".to_string(),
            Arc::new(rules),
        ));
        // A member of a PoP is known by its peer listener (without a
        // cluster section, by its first client listener), and the PoP's
        // ring follows the members listed.
        let me = match &cluster {
            Some(cluster) => Some(cluster.me()),
            None => config.http_listeners.first().copied(),
        };
        if let Some(me) = me {
            let ready = ready.clone();
            server.add_service(GenBackgroundService::new(
                "fleet membership".to_string(),
                Arc::new(finishing.must_finish(fleet.membership(me, Box::new(move || ready())))),
            ));
        }
        if let Some(cluster) = &cluster {
            server.add_service(GenBackgroundService::new(
                "ring members from the fleet".to_string(),
                Arc::new(crate::cluster::follow::Follow {
                    from: fleet.members(),
                    members: cluster.pop.members().clone(),
                }),
            ));
        }
        fleet
    });
    let admin = Admin {
        metrics: metrics.clone(),
        ready: Box::new(move || ready()),
        cache,
        token: config.admin_token,
        auth: Some(verifier.clone()),
        fleet: fleet.as_ref().map(|f| crate::fleet::admin::FleetAdmin {
            writer: f.writer(),
            status: f.status(),
        }),
        cluster: cluster.clone(),
        parents: origin.parents.clone(),
    };
    let mut admin_service = Service::new("cdn-node admin".to_string(), admin);
    admin_service.add_tcp(&config.admin_listen.to_string());

    if let Some(engine) = cache {
        server.add_service(GenBackgroundService::new(
            "eviction state saver".to_string(),
            Arc::new(finishing.must_finish(SketchSaver(engine))),
        ));
    }
    server.add_service(GenBackgroundService::new(
        "exit when idle".to_string(),
        Arc::new(ExitWhenIdle {
            log: access_log.clone(),
            connections,
            accepting,
            finishing,
        }),
    ));
    if !certs.is_empty() {
        server.add_service(GenBackgroundService::new(
            "TLS certificate reloader".to_string(),
            Arc::new(crate::tls::CertReloader {
                certs,
                metrics: metrics.clone(),
            }),
        ));
    }
    server.add_service(admin_service);
    if let Some(resolver) = origin.resolver.clone() {
        server.add_service(GenBackgroundService::new(
            "origin resolver".to_string(),
            resolver,
        ));
    }
    server.add_service(GenBackgroundService::new(
        "auth reloader".to_string(),
        Arc::new(crate::auth::reload::AuthReloader { verifier, metrics }),
    ));
    Ok(Node { server, access_log })
}

/// The peer listener of a PoP's node: a second proxy over the same cache,
/// taking hop markers instead of tokens, one worker per thread as for
/// clients. Returns its count of open connections, which a graceful stop
/// waits for as it does for the clients'.
fn add_peer_listener(
    server: &mut Server,
    edge: &Edge,
    limits: &crate::limits::Limits,
    workers: usize,
    opts: ProcessOptions,
    accepting: &Finishing,
) -> Result<Option<tokio::sync::watch::Receiver<usize>>, String> {
    let Some(cluster) = &edge.cluster else {
        return Ok(None);
    };
    let peers = Edge {
        listener: Listener::Peer,
        ..edge.clone()
    };
    let mut app = pingora_proxy::http_proxy(&server.configuration, peers);
    app.server_options = Some(crate::listeners::server_options());
    let limited = LimitedApp::for_peers(app, limits, edge.metrics.clone());
    crate::listeners::add_workers(
        server,
        &limited,
        Kind::Peer,
        &[cluster.config.listen],
        workers,
        opts.upgrade,
        accepting,
    )?;
    Ok(Some(limited.open_connections()))
}

/// The fleet's rings, when configured: the services keeping the PoP's and
/// the shields' rings current. Returns the rings, which `/readyz` waits
/// for.
fn add_fleet(server: &mut Server, edge: &Edge, metrics: &Arc<Metrics>) -> Vec<Arc<Ring>> {
    let mut rings = Vec::new();
    let mut keep = |server: &mut Server, ring: Arc<Ring>, name: &'static str| {
        let m = metrics.clone();
        server.add_service(GenBackgroundService::new(
            format!("{name} ring"),
            Arc::new(RingKeeper {
                ring: ring.clone(),
                report: Box::new(move |size, healthy| {
                    let c = &m.cluster;
                    c.ring_members.with_label_values(&[name]).set(size as i64);
                    c.ring_healthy
                        .with_label_values(&[name])
                        .set(healthy as i64);
                }),
            }),
        ));
        rings.push(ring);
    };
    if let Some(cluster) = &edge.cluster {
        keep(server, cluster.pop.clone(), "pop");
    }
    if let Some(parents) = &edge.origin.parents {
        keep(server, parents.clone(), "parents");
    }
    rings
}

/// The slicer, when the cache slices large objects; it lives as long as the
/// process, as the cache does.
fn open_slicer(engine: &'static Engine) -> Option<&'static Slicer> {
    let config = engine.config.slicing?;
    Some(Box::leak(Box::new(Slicer::new(config))))
}

/// CORS as the node runs it, for the process's lifetime: each request's
/// module refers to it without counting references.
fn open_cors(config: CorsConfig, verifier: &Verifier) -> &'static Cors {
    let token_headers: Vec<&str> = verifier
        .token_sources()
        .iter()
        .filter_map(|s| match s {
            TokenSource::Header(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    let exposed: Vec<&str> = config.exposed.iter().map(String::as_str).collect();
    Box::leak(Box::new(Cors::new(
        config.clone(),
        &exposed,
        &token_headers,
    )))
}

/// Opens the disk cache before Pingora starts its runtimes: scanning the
/// folder and seeding eviction happen once, on a short-lived runtime.
fn open_cache(config: crate::cache::settings::CacheConfig) -> Result<&'static Engine, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the cache loader: {e}"))?;
    let started = std::time::Instant::now();
    let engine = runtime.block_on(Engine::open(config))?;
    let snap = engine.snapshot();
    tracing::info!(
        objects = snap.stored_objects,
        bytes = snap.stored_bytes,
        took_ms = started.elapsed().as_millis() as u64,
        "disk cache opened"
    );
    Ok(Box::leak(Box::new(engine)))
}

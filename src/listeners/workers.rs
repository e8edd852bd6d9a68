//! The client listeners, plain HTTP and HTTPS alike, served by one
//! single-thread Pingora service per worker thread, each with its own
//! listening socket (`SO_REUSEPORT`).
//!
//! With one service of N threads, Pingora 0.9.1 accepts every connection on
//! one thread, where the socket is registered with that thread's reactor, and
//! runs the connection on a random thread of the service. Every readiness
//! event of a connection running elsewhere then crosses threads (an eventfd
//! write and a wake-up): about 0.4 per small request. Here each worker is a
//! one-thread service accepting on its own socket, so a connection is
//! accepted, registered and served on one thread, as in an nginx worker with
//! `listen ... reuseport`. The kernel spreads new connections over the
//! workers' sockets by their addresses; workers racing on one shared socket
//! split 50 connections as unevenly as 13 to 38, leaving one thread idle
//! while the other queues. The hash is blind to a thread held by TLS
//! handshakes; an HTTPS connection arriving on one busier with them than
//! another is handed over before its handshake (`limits::spread`).
//!
//! Pingora finds inherited listening sockets by their address string (the key
//! of its table of sockets handed over in a graceful upgrade). Worker 0 uses
//! the address itself, so an upgrade to or from a build with a single service
//! keeps that socket; worker `i` uses `ADDRESS#worker-i`. Every worker's key
//! is in the table before Pingora looks for it, so Pingora never binds an
//! address itself and closes each descriptor once. A socket inherited from a
//! build without `SO_REUSEPORT` cannot be joined: the other workers then
//! accept on duplicates of it.
//!
//! A worker counts itself among the listeners the graceful stop waits for
//! (see `fast_exit`) until its accept loops have ended and every connection
//! they accepted has been counted by the application.
//!
//! Sockets are made with `rustix`. Pingora's table holds raw descriptors:
//! borrowing or closing one of them is the only unsafe code here.

#![deny(unsafe_code)]

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::{Fds, ListenFds, ShutdownWatch};
use pingora::services::Service as ServiceTrait;
use pingora::services::listening::Service;

use crate::fast_exit::Entered;

/// Bytes of a response a connection gathers before it writes them out.
/// Pingora's default (1,460, one segment) sends a header and a body over
/// about 1.2 KB in two writes: the header when the body does not fit after
/// it, then the body. Each write wakes the client, so an answer of a few
/// kilobytes (a manifest given the token: 1.7 KB for a 6-rendition master
/// playlist, 20 KB for 100 segments) cost two sends and two wake-ups.
/// Larger bodies, written in chunks of this size or more, still go out
/// directly; the buffer's pages are touched only as far as it is filled.
/// Under TLS the buffer gathers encrypted records: a header record and a
/// body record leave in one send, as do the frames of several HTTP/2
/// streams written together.
pub const WRITE_BUFFER: usize = 32 * 1024;

/// Which listeners a group of sockets serves: the setting that names their
/// addresses (for messages) and the services' name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    Https,
    /// The peer listener of a PoP's node (plain HTTP).
    Peer,
}

impl Kind {
    fn setting(self) -> &'static str {
        match self {
            Kind::Http => "listeners.http",
            Kind::Https => "listeners.https",
            Kind::Peer => "cluster.listen",
        }
    }

    fn service_name(self, index: usize) -> String {
        match self {
            Kind::Http => format!("cdn-node {index}"),
            Kind::Https => format!("cdn-node https {index}"),
            Kind::Peer => format!("cdn-node peers {index}"),
        }
    }
}

/// The key of `worker`'s socket for `addr` in Pingora's socket table.
pub fn key(addr: &SocketAddr, worker: usize) -> String {
    if worker == 0 {
        addr.to_string()
    } else {
        format!("{addr}#worker-{worker}")
    }
}

/// The listening sockets of one kind of listener, shared by its workers.
pub struct HttpSockets {
    kind: Kind,
    addrs: Vec<SocketAddr>,
    workers: usize,
    /// Sockets bound at start-up (per address, per worker), until they are
    /// put in the table.
    bound: Mutex<Option<Vec<Vec<OwnedFd>>>>,
}

impl HttpSockets {
    /// Binds every worker's socket now, so that an address in use stops the
    /// start with a clear message, unless the sockets are to be inherited
    /// from the running node (`inherit`, a graceful upgrade).
    pub fn bind(
        kind: Kind,
        addrs: &[SocketAddr],
        workers: usize,
        inherit: bool,
    ) -> Result<Arc<Self>, String> {
        let bound = if inherit {
            None
        } else {
            let sockets = addrs
                .iter()
                .map(|a| {
                    bind_group(a, workers)
                        .map_err(|e| format!("{} {a}: cannot listen ({e})", kind.setting()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(sockets)
        };
        Ok(Arc::new(HttpSockets {
            kind,
            addrs: addrs.to_vec(),
            workers,
            bound: Mutex::new(bound),
        }))
    }

    /// Puts every worker's socket in the table, once: inherited ones stay,
    /// the ones bound at start-up go in, and a worker still without one gets
    /// a new socket in the address's group (or, when the inherited socket
    /// has no `SO_REUSEPORT`, a duplicate of it). Sockets of workers an
    /// earlier node had beyond this one's count are closed.
    fn publish(&self, table: &mut Fds) -> io::Result<()> {
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        let mut fresh = bound.take().map(Vec::into_iter);
        for addr in &self.addrs {
            let mut own = fresh.as_mut().and_then(Iterator::next).map(Vec::into_iter);
            for worker in 0..self.workers {
                let socket = own.as_mut().and_then(Iterator::next);
                let k = key(addr, worker);
                if table.get(&k).is_some() {
                    continue;
                }
                let fd = match socket {
                    Some(s) => s.into_raw_fd(),
                    None => match (bind_reuseport(addr), table.get(&key(addr, 0))) {
                        (Ok(s), _) => s.into_raw_fd(),
                        (Err(e), Some(&first)) if e.kind() == io::ErrorKind::AddrInUse => {
                            duplicate(first)?.into_raw_fd()
                        }
                        (Err(e), _) => return Err(e),
                    },
                };
                table.add(k, fd);
            }
        }
        close_extra_workers(table, &self.addrs, self.workers);
        Ok(())
    }
}

/// One listening socket per worker on `addr`, all in one `SO_REUSEPORT`
/// group. An address already in use fails, whether or not its holder allows
/// sharing: a second node started by mistake must not take half the
/// connections.
fn bind_group(addr: &SocketAddr, workers: usize) -> io::Result<Vec<OwnedFd>> {
    let mut addr = *addr;
    if addr.port() != 0 {
        // A plain bind, without SO_REUSEPORT, fails on any listener there.
        drop(TcpListener::bind(addr)?);
    }
    let mut sockets = Vec::with_capacity(workers);
    for _ in 0..workers {
        let socket = bind_reuseport(&addr)?;
        if addr.port() == 0 {
            // The port the kernel chose, for the other workers.
            addr = TcpListener::from(socket.try_clone()?).local_addr()?;
        }
        sockets.push(socket);
    }
    Ok(sockets)
}

/// A listening socket on `addr` that others with `SO_REUSEPORT` may join,
/// non-blocking, with the long accept queue Pingora asks for.
fn bind_reuseport(addr: &SocketAddr) -> io::Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, ipproto, sockopt};
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    // Owned from here: closed if a later step fails.
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        Some(ipproto::TCP),
    )?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    sockopt::set_socket_reuseport(&fd, true)?;
    rustix::net::bind(&fd, addr)?;
    rustix::net::listen(&fd, BACKLOG)?;
    Ok(fd)
}

/// Pingora's own listen backlog (the kernel caps it at `somaxconn`).
const BACKLOG: i32 = 65535;

/// A new descriptor for the socket of `fd`, a descriptor of the table.
#[allow(unsafe_code)]
fn duplicate(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: the descriptor is in Pingora's table, open for the process's
    // lifetime; it is only borrowed for the duplication.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    borrowed.try_clone_to_owned()
}

/// Removes from the table, and closes, the sockets of workers numbered
/// `workers` or above: a node with more threads handed them over.
#[allow(unsafe_code)]
fn close_extra_workers(table: &mut Fds, addrs: &[SocketAddr], workers: usize) {
    let (keys, descriptors) = table.serialize();
    let extra = |k: &str| {
        addrs.iter().any(|a| {
            k.strip_prefix(&format!("{a}#worker-"))
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|n| n >= workers)
        })
    };
    if !keys.iter().any(|k| extra(k)) {
        return;
    }
    let mut kept = (Vec::new(), Vec::new());
    for (k, fd) in keys.into_iter().zip(descriptors) {
        if extra(&k) {
            // SAFETY: an open descriptor of the table, owned by nobody else:
            // it leaves the table here, and no service looks this key up.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        } else {
            kept.0.push(k);
            kept.1.push(fd);
        }
    }
    let mut rebuilt = Fds::new();
    rebuilt.deserialize(kept.0, kept.1);
    *table = rebuilt;
}

/// One worker: Pingora's listening service on one thread, with the workers'
/// sockets published before it looks for its own.
pub struct Worker<A> {
    service: Service<A>,
    sockets: Arc<HttpSockets>,
    /// Held until the accept loops have ended (see [`Worker::new`]).
    accepting: Option<Entered>,
}

impl<A: ServerApp + Send + Sync + 'static> Worker<A> {
    /// Worker number `index` serving `app` on every address of `sockets`;
    /// `accepting` is released once the worker accepts no more and what it
    /// accepted has reached `app`.
    pub fn new(index: usize, app: A, sockets: Arc<HttpSockets>, accepting: Entered) -> Self {
        let mut service = Service::new(sockets.kind.service_name(index), app);
        service.threads = Some(1);
        let buffers = L4BufferSettings::default().write(WRITE_BUFFER);
        for addr in &sockets.addrs {
            service.add_listener(ListenerConfig::tcp(key(addr, index)).l4_buffer(buffers));
        }
        Worker {
            service,
            sockets,
            accepting: Some(accepting),
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServiceTrait for Worker<A> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        if let Some(fds) = &fds
            && let Err(e) = self.sockets.publish(&mut fds.lock())
        {
            // Pingora would fail the same way, but only for this thread's
            // service; a node that cannot listen must not keep running.
            tracing::error!(error = %e, setting = self.sockets.kind.setting(), "the listeners cannot listen");
            std::process::exit(1);
        }
        ServiceTrait::start_service(&mut self.service, fds, shutdown, listeners_per_fd).await;
        // The accept loops have ended (at the shutdown). Each connection
        // they accepted last is a task spawned on this one-thread runtime
        // (`work_stealing: false`) that reaches the application, and is
        // counted there, on its first run. That runtime runs the tasks
        // spawned from its thread in order: once a task spawned now has run,
        // every one spawned before it has started.
        let _ = tokio::spawn(async {}).await;
        self.accepting.take();
    }

    fn name(&self) -> &str {
        ServiceTrait::name(&self.service)
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        ServiceTrait::listen_addresses(&self.service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    /// A new handle on a descriptor of the table, without taking it over.
    fn listener(fd: RawFd) -> TcpListener {
        TcpListener::from(duplicate(fd).unwrap())
    }

    /// What a descriptor is (`socket:[inode]`), or `None` once closed.
    fn target(fd: RawFd) -> Option<std::path::PathBuf> {
        std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()
    }

    fn keys(table: &Fds) -> Vec<String> {
        let mut keys = table.serialize().0;
        keys.sort();
        keys
    }

    /// Accepts whatever is queued on `socket` now.
    fn drain(socket: &TcpListener) -> usize {
        let mut n = 0;
        while socket.accept().is_ok() {
            n += 1;
        }
        n
    }

    #[test]
    fn a_fresh_start_gives_each_worker_a_socket_and_the_kernel_spreads_connections() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let sockets = HttpSockets::bind(Kind::Http, &[any], 3, false).unwrap();
        let mut table = Fds::new();
        sockets.publish(&mut table).unwrap();
        assert_eq!(
            keys(&table),
            [
                "127.0.0.1:0",
                "127.0.0.1:0#worker-1",
                "127.0.0.1:0#worker-2"
            ]
        );
        let fds: Vec<RawFd> = (0..3).map(|w| *table.get(&key(&any, w)).unwrap()).collect();
        let workers: Vec<TcpListener> = fds.iter().map(|fd| listener(*fd)).collect();
        let bound = workers[0].local_addr().unwrap();
        assert_ne!(bound.port(), 0);
        for (w, fd) in workers.iter().zip(&fds) {
            assert_eq!(w.local_addr().unwrap(), bound, "one address");
            assert!(
                fds.iter()
                    .filter(|other| target(**other) == target(*fd))
                    .count()
                    == 1
            );
        }
        // 60 connections: each worker's socket gets some (all on one of
        // three has a chance of 3 in 3^60).
        let clients: Vec<TcpStream> = (0..60)
            .map(|_| TcpStream::connect(bound).unwrap())
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut got = [0; 3];
        while got.iter().sum::<usize>() < clients.len() && std::time::Instant::now() < deadline {
            for (n, w) in got.iter_mut().zip(&workers) {
                *n += drain(w);
            }
        }
        assert_eq!(got.iter().sum::<usize>(), 60, "{got:?}");
        assert!(got.iter().all(|n| *n > 0), "{got:?}");

        // Publishing again (every worker does) changes nothing.
        sockets.publish(&mut table).unwrap();
        assert_eq!(keys(&table).len(), 3);
        assert_eq!(*table.get(&key(&any, 1)).unwrap(), fds[1]);
    }

    #[test]
    fn inherited_sockets_are_kept_missing_workers_join_and_extra_ones_close() {
        let group = bind_group(&"127.0.0.1:0".parse().unwrap(), 4).unwrap();
        let addr = TcpListener::from(group[0].try_clone().unwrap())
            .local_addr()
            .unwrap();
        let fds: Vec<RawFd> = group.into_iter().map(IntoRawFd::into_raw_fd).collect();
        // The node before had four workers (worker 1's key lost here, as
        // from a node whose count differed) and an admin listener.
        let mut table = Fds::new();
        for w in [0, 2, 3] {
            table.add(key(&addr, w), fds[w]);
        }
        let admin = TcpListener::bind("127.0.0.1:0").unwrap();
        let admin_key = admin.local_addr().unwrap().to_string();
        table.add(admin_key.clone(), admin.into_raw_fd());
        let (extra2, extra3) = (target(fds[2]).unwrap(), target(fds[3]).unwrap());

        let sockets = HttpSockets::bind(Kind::Http, &[addr], 2, true).unwrap();
        sockets.publish(&mut table).unwrap();
        let mut want = vec![admin_key, key(&addr, 0), key(&addr, 1)];
        want.sort();
        assert_eq!(keys(&table), want);
        assert_eq!(
            *table.get(&key(&addr, 0)).unwrap(),
            fds[0],
            "not bound again"
        );
        let joined = *table.get(&key(&addr, 1)).unwrap();
        assert_eq!(listener(joined).local_addr().unwrap(), addr);
        assert_ne!(target(joined), target(fds[0]), "a socket of its own");
        // The extra workers' descriptors are closed (their numbers are free,
        // or taken by something other than those sockets).
        assert_ne!(target(fds[2]), Some(extra2));
        assert_ne!(target(fds[3]), Some(extra3));
    }

    #[test]
    fn a_socket_inherited_without_reuseport_is_shared() {
        let old = TcpListener::bind("127.0.0.1:0").unwrap();
        old.set_nonblocking(true).unwrap();
        let addr = old.local_addr().unwrap();
        let base = old.into_raw_fd();
        let mut table = Fds::new();
        table.add(key(&addr, 0), base);

        let sockets = HttpSockets::bind(Kind::Http, &[addr], 3, true).unwrap();
        sockets.publish(&mut table).unwrap();
        for w in 1..3 {
            let fd = *table.get(&key(&addr, w)).unwrap();
            assert_ne!(fd, base);
            assert_eq!(target(fd), target(base), "worker {w} shares the socket");
        }
    }

    #[test]
    fn an_address_in_use_is_named_whoever_holds_it() {
        let plain = TcpListener::bind("127.0.0.1:0").unwrap();
        let sharing = bind_reuseport(&"127.0.0.1:0".parse().unwrap()).unwrap();
        let sharing = TcpListener::from(sharing);
        for taken in [&plain, &sharing] {
            let addr = taken.local_addr().unwrap();
            for (kind, setting) in [
                (Kind::Http, "listeners.http"),
                (Kind::Https, "listeners.https"),
            ] {
                let err = HttpSockets::bind(kind, &[addr], 2, false).err().unwrap();
                assert!(
                    err.starts_with(&format!("{setting} {addr}: cannot listen")),
                    "{err}"
                );
            }
        }
    }
}

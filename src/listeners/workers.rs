//! The plain HTTP listeners, served by one single-thread Pingora service per
//! worker thread.
//!
//! With one service of N threads, Pingora 0.9.1 accepts every connection on
//! one thread, where the socket is registered with that thread's reactor, and
//! runs the connection on a random thread of the service. Every readiness
//! event of a connection running elsewhere then crosses threads (an eventfd
//! write and a wake-up): about 0.4 per small request. Here each worker is a
//! one-thread service accepting on its own duplicate of the listening socket,
//! so a connection is accepted, registered and served on one thread, as in an
//! nginx worker. The kernel's accept queue stays one: the workers race for
//! each new connection, and an idle worker wins it.
//!
//! Pingora finds inherited listening sockets by their address string (the key
//! of its table of sockets handed over in a graceful upgrade). Worker 0 uses
//! the address itself, so an upgrade to or from a build with a single service
//! keeps the socket; worker `i` uses `ADDRESS#worker-i`. Every worker's key is
//! put in the table, with its own duplicate descriptor, before Pingora looks
//! for it, so Pingora never binds one address twice and closes each
//! descriptor once.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::server::{Fds, ListenFds, ShutdownWatch};
use pingora::services::Service as ServiceTrait;
use pingora::services::listening::Service;

/// The key of `worker`'s socket for `addr` in Pingora's socket table.
pub fn key(addr: &SocketAddr, worker: usize) -> String {
    if worker == 0 {
        addr.to_string()
    } else {
        format!("{addr}#worker-{worker}")
    }
}

/// The listening sockets of the plain HTTP listeners, shared by the workers.
pub struct HttpSockets {
    addrs: Vec<SocketAddr>,
    workers: usize,
    /// Sockets bound at start-up, until they are put in the table.
    bound: Mutex<Option<Vec<TcpListener>>>,
}

impl HttpSockets {
    /// Binds the addresses now, so that an address in use stops the start
    /// with a clear message, unless the sockets are to be inherited from the
    /// running node (`inherit`, a graceful upgrade).
    pub fn bind(addrs: &[SocketAddr], workers: usize, inherit: bool) -> Result<Arc<Self>, String> {
        let bound = if inherit {
            None
        } else {
            let sockets = addrs
                .iter()
                .map(|a| bind(a).map_err(|e| format!("listeners.http {a}: cannot listen ({e})")))
                .collect::<Result<Vec<_>, _>>()?;
            Some(sockets)
        };
        Ok(Arc::new(HttpSockets {
            addrs: addrs.to_vec(),
            workers,
            bound: Mutex::new(bound),
        }))
    }

    /// Puts every worker's socket in the table, once: the address's socket
    /// (inherited, bound at start-up, or bound now) under the address, and a
    /// duplicate of it under each other worker's key. Sockets of workers an
    /// earlier node had beyond this one's count are closed.
    fn publish(&self, table: &mut Fds) -> io::Result<()> {
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        let mut fresh = bound.take().map(Vec::into_iter);
        for addr in &self.addrs {
            let own = fresh.as_mut().and_then(Iterator::next);
            let base = match table.get(&key(addr, 0)) {
                Some(fd) => *fd,
                None => {
                    let socket = match own {
                        Some(s) => s,
                        None => bind(addr)?,
                    };
                    let fd = socket.into_raw_fd();
                    table.add(key(addr, 0), fd);
                    fd
                }
            };
            for worker in 1..self.workers {
                if table.get(&key(addr, worker)).is_none() {
                    table.add(key(addr, worker), duplicate(base)?);
                }
            }
        }
        close_extra_workers(table, &self.addrs, self.workers);
        Ok(())
    }
}

/// Binds a listening socket as Pingora does: address reuse, non-blocking,
/// the long accept queue Pingora asks for when it takes the socket over.
fn bind(addr: &SocketAddr) -> io::Result<TcpListener> {
    // std sets SO_REUSEADDR; Pingora calls listen() again with its backlog.
    let socket = TcpListener::bind(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn duplicate(fd: RawFd) -> io::Result<RawFd> {
    // The descriptor is in the table, open for the process's lifetime.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    Ok(borrowed.try_clone_to_owned()?.into_raw_fd())
}

/// Removes from the table, and closes, the sockets of workers numbered
/// `workers` or above: a node with more threads handed them over.
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
            // Owned by nobody else: no service looks this key up.
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
}

impl<A: ServerApp + Send + Sync + 'static> Worker<A> {
    /// Worker number `index` serving `app` on every plain HTTP address.
    pub fn new(index: usize, app: A, sockets: Arc<HttpSockets>) -> Self {
        let mut service = Service::new(format!("cdn-node {index}"), app);
        service.threads = Some(1);
        for addr in &sockets.addrs {
            service.add_tcp(&key(addr, index));
        }
        Worker { service, sockets }
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
            tracing::error!(error = %e, "the HTTP listeners cannot listen");
            std::process::exit(1);
        }
        ServiceTrait::start_service(&mut self.service, fds, shutdown, listeners_per_fd).await
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

    /// The socket behind a descriptor of the table, without taking it over.
    fn local_addr(fd: RawFd) -> SocketAddr {
        let owned = duplicate(fd).unwrap();
        let socket = TcpListener::from(unsafe { OwnedFd::from_raw_fd(owned) });
        socket.local_addr().unwrap()
    }

    fn keys(table: &Fds) -> Vec<String> {
        let mut keys = table.serialize().0;
        keys.sort();
        keys
    }

    #[test]
    fn a_fresh_start_gives_every_worker_the_one_socket() {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let sockets = HttpSockets::bind(&[any], 3, false).unwrap();
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
        assert_ne!(fds[0], fds[1], "each worker has its own descriptor");
        let bound = local_addr(fds[0]);
        assert_ne!(bound.port(), 0);
        for fd in &fds {
            assert_eq!(local_addr(*fd), bound);
        }
        // A connection queued on the socket is accepted through another
        // worker's descriptor.
        let _client = TcpStream::connect(bound).unwrap();
        let worker2 =
            TcpListener::from(unsafe { OwnedFd::from_raw_fd(duplicate(fds[2]).unwrap()) });
        worker2.set_nonblocking(false).unwrap();
        worker2.accept().unwrap();

        // Publishing again (every worker does) changes nothing.
        sockets.publish(&mut table).unwrap();
        assert_eq!(keys(&table).len(), 3);
        assert_eq!(*table.get(&key(&any, 1)).unwrap(), fds[1]);
    }

    #[test]
    fn inherited_sockets_are_kept_and_extra_workers_closed() {
        let old = bind(&"127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = old.local_addr().unwrap();
        let base = old.into_raw_fd();
        // The node before had four workers and an admin listener.
        let mut table = Fds::new();
        table.add(key(&addr, 0), base);
        let extra3 = duplicate(base).unwrap();
        let extra2 = duplicate(base).unwrap();
        table.add(key(&addr, 3), extra3);
        table.add(key(&addr, 2), extra2);
        let admin = bind(&"127.0.0.1:0".parse().unwrap()).unwrap();
        let admin_key = admin.local_addr().unwrap().to_string();
        table.add(admin_key.clone(), admin.into_raw_fd());

        let sockets = HttpSockets::bind(&[addr], 2, true).unwrap();
        sockets.publish(&mut table).unwrap();
        let mut want = vec![admin_key, key(&addr, 0), key(&addr, 1)];
        want.sort();
        assert_eq!(keys(&table), want);
        assert_eq!(*table.get(&key(&addr, 0)).unwrap(), base, "not bound again");
        assert_eq!(local_addr(*table.get(&key(&addr, 1)).unwrap()), addr);
        // The extra workers' descriptors are closed (their numbers are free,
        // or taken by something other than the socket).
        let target = |fd: RawFd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        let socket = target(base).unwrap();
        for fd in [extra2, extra3] {
            assert_ne!(
                target(fd),
                Some(socket.clone()),
                "descriptor {fd} still open"
            );
        }
    }

    #[test]
    fn an_address_in_use_is_named() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = HttpSockets::bind(&[addr], 2, false).err().unwrap();
        assert!(
            err.starts_with(&format!("listeners.http {addr}: cannot listen")),
            "{err}"
        );
    }
}

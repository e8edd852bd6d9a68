//! Counting open connections, in all and per client IP address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use prometheus::IntGauge;
use tokio::sync::watch;

/// Why a connection was refused; `reason()` is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    MaxConnections,
    PerClient,
}

impl Refused {
    pub fn reason(self) -> &'static str {
        match self {
            Refused::MaxConnections => "max_connections",
            Refused::PerClient => "per_client",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// The connections open now. One lock covers both counts: it is taken
/// twice per connection, never per request.
#[derive(Debug)]
pub struct ConnectionTable {
    max_total: usize,
    max_per_client: Option<usize>,
    counts: Mutex<Counts>,
    open: IntGauge,
    /// The total, for those who wait on it (the graceful stop waits for 0).
    published: watch::Sender<usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    table: Arc<ConnectionTable>,
    client: Option<IpAddr>,
}

impl ConnectionTable {
    pub fn new(max_total: usize, max_per_client: Option<usize>, open: IntGauge) -> Self {
        ConnectionTable {
            max_total,
            max_per_client,
            counts: Mutex::new(Counts::default()),
            open,
            published: watch::Sender::new(0),
        }
    }

    /// The number of connections open, kept up to date: `wait_for(|n| *n == 0)`
    /// resolves once none is left.
    pub fn watch_open(&self) -> watch::Receiver<usize> {
        self.published.subscribe()
    }

    /// Takes a place for a connection from `client` (IPv4-mapped IPv6
    /// addresses count as IPv4), or says which limit is reached.
    pub fn admit(self: &Arc<Self>, client: Option<IpAddr>) -> Result<Permit, Refused> {
        let client = client.map(|ip| ip.to_canonical());
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.total >= self.max_total {
            return Err(Refused::MaxConnections);
        }
        let tracked = match (client, self.max_per_client) {
            (Some(ip), Some(max)) => {
                let n = counts.per_client.entry(ip).or_insert(0);
                if *n >= max {
                    return Err(Refused::PerClient);
                }
                *n += 1;
                Some(ip)
            }
            _ => None,
        };
        counts.total += 1;
        self.published.send_replace(counts.total);
        self.open.inc();
        Ok(Permit {
            table: self.clone(),
            client: tracked,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.table.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total = counts.total.saturating_sub(1);
        self.table.published.send_replace(counts.total);
        if let Some(ip) = self.client
            && let Some(n) = counts.per_client.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                counts.per_client.remove(&ip);
            }
        }
        self.table.open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_in_all_and_per_client() {
        let gauge = IntGauge::new("open", "open").unwrap();
        let table = Arc::new(ConnectionTable::new(3, Some(2), gauge.clone()));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let a_mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();

        let p1 = table.admit(Some(a)).unwrap();
        let p2 = table.admit(Some(a_mapped)).unwrap();
        assert_eq!(table.admit(Some(a)).unwrap_err(), Refused::PerClient);
        let p3 = table.admit(Some(b)).unwrap();
        assert_eq!(table.admit(Some(b)).unwrap_err(), Refused::MaxConnections);
        assert_eq!(table.admit(None).unwrap_err(), Refused::MaxConnections);
        assert_eq!((table.open(), gauge.get()), (3, 3));

        drop(p1);
        let p4 = table.admit(Some(a)).unwrap();
        drop((p2, p3, p4));
        assert_eq!((table.open(), gauge.get()), (0, 0));
        assert!(table.counts.lock().unwrap().per_client.is_empty());
    }

    #[tokio::test]
    async fn the_count_is_published_until_the_last_connection_closes() {
        let table = Arc::new(ConnectionTable::new(
            10,
            None,
            IntGauge::new("open", "open").unwrap(),
        ));
        let mut open = table.watch_open();
        assert_eq!(*open.borrow_and_update(), 0);
        let first = table.admit(None).unwrap();
        let second = table.admit(None).unwrap();
        assert_eq!(*open.borrow_and_update(), 2);
        let waiter = {
            let mut open = open.clone();
            tokio::spawn(async move { open.wait_for(|n| *n == 0).await.ok().map(|n| *n) })
        };
        drop(first);
        assert_eq!(*open.borrow_and_update(), 1);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one connection is still open");
        drop(second);
        assert_eq!(waiter.await.unwrap(), Some(0));
        // A refused connection changes nothing.
        let full = Arc::new(ConnectionTable::new(
            0,
            None,
            IntGauge::new("open", "open").unwrap(),
        ));
        let open = full.watch_open();
        assert!(full.admit(None).is_err());
        assert!(!open.has_changed().unwrap());
    }

    #[test]
    fn no_per_client_limit() {
        let table = Arc::new(ConnectionTable::new(
            2,
            None,
            IntGauge::new("open", "open").unwrap(),
        ));
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let _p = (
            table.admit(Some(ip)).unwrap(),
            table.admit(Some(ip)).unwrap(),
        );
        assert_eq!(table.admit(Some(ip)).unwrap_err(), Refused::MaxConnections);
    }
}

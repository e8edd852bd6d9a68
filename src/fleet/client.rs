//! A connection to the fleet's etcd from the `fleet.etcd` settings: its
//! endpoints, TLS and credentials, with timeouts short enough that a dead
//! member is noticed within seconds.

use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use super::settings::FleetConfig;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings on idle connections (the watch): a member gone without a
/// word is noticed after the interval plus the timeout.
const KEEP_ALIVE: Duration = Duration::from_secs(2);

pub async fn connect(config: &FleetConfig) -> Result<Client, etcd_client::Error> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
        .with_keep_alive(KEEP_ALIVE, KEEP_ALIVE)
        .with_keep_alive_while_idle(true);
    if let Some((user, password)) = &config.credentials {
        options = options.with_user(user, password);
    }
    if let Some(tls) = &config.tls {
        let mut t = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
        if let Some((cert, key)) = &tls.identity {
            t = t.identity(Identity::from_pem(cert, key));
        }
        options = options.with_tls(t);
    }
    Client::connect(&config.endpoints, Some(options)).await
}

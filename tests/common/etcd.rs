//! A real etcd (Debian's etcd-server, the v3 API), one member on a free
//! loopback port with its data folder in a tempdir, for the fleet tests.
//! It can be stopped and started again on the same port and data, and
//! driven with etcdctl. Killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port, tools};

pub struct Etcd {
    pub client_port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Etcd {
    pub async fn start() -> Etcd {
        let mut etcd = Etcd {
            client_port: free_port(),
            peer_port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        etcd.resume().await;
        etcd
    }

    /// `http://127.0.0.1:PORT`, as `fleet.etcd.endpoints` takes it.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Starts the process (again) on the same port and data folder, and
    /// waits until it answers.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "etcd is running already");
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("log");
        let child = Command::new(tools::require("etcd"))
            .arg("--name=test")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=test={peer}"))
            // Tests write many rules at once.
            .arg("--max-txn-ops=10000")
            .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
        eventually("etcd to answer", Duration::from_secs(20), || async {
            self.ctl(&["endpoint", "health"]).ok().map(|_| ())
        })
        .await;
    }

    /// Kills the process (SIGKILL); the data stays for `resume`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs etcdctl against this member: its stdout, or its stderr.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(tools::require("etcdctl"))
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .arg("--dial-timeout=1s")
            .args(args)
            .output()
            .expect("run etcdctl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// The current revision of the key space.
    pub fn revision(&self) -> i64 {
        let out = self
            .ctl(&["endpoint", "status", "--write-out=json"])
            .expect("endpoint status");
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        v[0]["Status"]["header"]["revision"]
            .as_i64()
            .expect("revision")
    }

    /// Keys under `prefix`, one a line.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.ctl(&["get", "--prefix", "--keys-only", prefix])
            .expect("get")
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

//! s3s-fs, an S3-compatible server over a folder that checks SigV4.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port, tools};

pub const ACCESS_KEY: &str = "AKIDCDNNODETEST";
pub const SECRET_KEY: &str = "cdn-node-test-secret-key-0123456789";
pub const BUCKET: &str = "videos";

pub struct S3 {
    pub port: u16,
    pub root: tempfile::TempDir,
    child: Child,
}

impl S3 {
    /// Starts s3s-fs with one bucket holding `objects` (key, bytes).
    pub async fn start<K: AsRef<str>, B: AsRef<[u8]>>(objects: &[(K, B)]) -> S3 {
        let root = tempfile::tempdir().expect("tempdir");
        let bucket = root.path().join(BUCKET);
        std::fs::create_dir_all(&bucket).expect("bucket dir");
        let s3 = Self::spawn(root).await;
        for (key, body) in objects {
            s3.put(key.as_ref(), body.as_ref());
        }
        s3
    }

    async fn spawn(mut root: tempfile::TempDir) -> S3 {
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(tools::require("s3s-fs"))
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
                .arg(root.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn s3s-fs");
            let mut s3 = S3 { port, root, child };
            let up = eventually("s3s-fs to listen", Duration::from_secs(20), || {
                let exited = s3.child.try_wait().ok().flatten().is_some();
                async move {
                    if exited {
                        return Some(false);
                    }
                    tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .ok()
                        .map(|_| true)
                }
            })
            .await;
            if up {
                return s3;
            }
            root = std::mem::replace(&mut s3.root, tempfile::tempdir().expect("tempdir"));
        }
        panic!("s3s-fs did not start");
    }

    /// Writes an object straight into the bucket folder.
    pub fn put(&self, key: &str, body: &[u8]) {
        let path = self.object_path(key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, body).expect("write object");
    }

    /// Gives an object a `Cache-Control` header, written into s3s-fs's
    /// attribute file for it (as a PUT with `Cache-Control` would).
    pub fn set_cache_control(&self, key: &str, value: &str) {
        use base64::Engine as _;
        let encode = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let path = self.root.path().join(format!(
            ".bucket-{}.object-{}.metadata.json",
            encode(BUCKET),
            encode(key)
        ));
        let json = format!("{{\"cache_control\":{value:?}}}");
        std::fs::write(path, json).expect("write object attributes");
    }

    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

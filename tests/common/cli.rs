//! `cdn-node` run as a command rather than a server: `check`, `token`.

use std::path::Path;
use std::process::{Command, Output};

/// Dummy secrets for configurations that read them from the environment
/// (`secret_env`, `credentials: { from: env }`); the HMAC secret needs 32
/// bytes.
pub const DUMMY_SECRETS: &[(&str, &str)] = &[
    (
        "CDN_NODE_HMAC_SECRET",
        "dummy-hmac-secret-for-config-checks-only-0123456789",
    ),
    ("AWS_ACCESS_KEY_ID", "AKIDUMMYCONFIGCHECK0"),
    (
        "AWS_SECRET_ACCESS_KEY",
        "dummy-secret-access-key-for-config-checks",
    ),
];

/// The node binary, as a command with nothing set.
pub fn cdn_node() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cdn-node"))
}

/// `cdn-node check -c CONF` with `DUMMY_SECRETS` in the environment.
pub fn check(conf: &Path) -> Output {
    cdn_node()
        .args(["check", "-c"])
        .arg(conf)
        .envs(DUMMY_SECRETS.iter().copied())
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("run cdn-node check")
}

/// A command's stdout and stderr, for failure messages.
pub fn report(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

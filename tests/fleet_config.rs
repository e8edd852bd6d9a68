//! The `fleet` section as `cdn-node check` sees it: every problem names
//! its key and the fix; a node without the section needs no etcd; the
//! `purge` and `revoke` commands read the section alone and say when it is
//! missing.

mod common;

use std::process::Command;

use common::world::World;

fn check(fleet_yaml: &str) -> (bool, String) {
    let yaml = fleet_yaml.to_string();
    let out = World::builder()
        .file(
            "ca.pem",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .file("etcd.password", "secret\n")
        .configure(move |o| o.extra_yaml.push_str(&yaml))
        .check();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    (out.status.success(), text)
}

const GOOD: &str =
    "fleet:\n  name: prod\n  pop: fra1\n  etcd:\n    endpoints: [\"http://10.0.0.1:2379\"]\n";

#[test]
fn the_fleet_section_is_checked_key_by_key() {
    // (the section, what the output must say)
    let cases: &[(&str, &[&str])] = &[
        (GOOD, &["ok"]),
        (
            "fleet:\n  name: prod\n  pop: fra1\n  etcd:\n    endpoints: [\"https://e1:2379\"]\n    tls: { ca_file: ca.pem }\n    username: node\n    password_file: etcd.password\n",
            &["ok"],
        ),
        (
            "fleet:\n  name: prod\n  etcd:\n    endpoints: [\"http://e:2379\"]\n",
            &["fleet", "pop"],
        ),
        (
            "fleet:\n  name: \"prod/eu\"\n  pop: fra1\n  etcd:\n    endpoints: [\"http://e:2379\"]\n",
            &["fleet.name", "letters, digits"],
        ),
        (
            "fleet:\n  name: prod\n  pop: fra1\n  etcd:\n    endpoints: []\n",
            &["fleet.etcd.endpoints", "list the etcd members"],
        ),
        (
            "fleet:\n  name: prod\n  pop: fra1\n  etcd:\n    endpoints: [\"http://e\"]\n",
            &["fleet.etcd.endpoints[0]", "has no port"],
        ),
        (
            "fleet:\n  name: prod\n  pop: fra1\n  etcd:\n    endpoints: [\"https://e:2379\"]\n",
            &["fleet.etcd.endpoints[0]", "set fleet.etcd.tls"],
        ),
        (
            "fleet:\n  name: prod\n  pop: fra1\n  etcd:\n    endpoints: [\"https://e:2379\"]\n    tls: { ca_file: missing.pem }\n",
            &["fleet.etcd.tls.ca_file", "cannot be read"],
        ),
        (
            "fleet:\n  name: prod\n  pop: fra1\n  etcd:\n    endpoints: [\"http://e:2379\"]\n    username: node\n",
            &["fleet.etcd.password_file", "is missing"],
        ),
        (
            "fleet:\n  name: prod\n  pop: fra1\n  etcd:\n    endpoints: [\"http://e:2379\"]\n    prefix: cdn\n",
            &["fleet.etcd.prefix", "absolute"],
        ),
        (
            "fleet:\n  name: prod\n  pop: fra1\n  lease_ttl_seconds: 1000\n  etcd:\n    endpoints: [\"http://e:2379\"]\n",
            &["fleet.lease_ttl_seconds", "2 to 300"],
        ),
        (
            "fleet:\n  name: prod\n  pop: fra1\n  purge_rule_ttl_seconds: 1\n  etcd:\n    endpoints: [\"http://e:2379\"]\n",
            &["fleet.purge_rule_ttl_seconds", "out of range"],
        ),
        (
            "fleet:\n  name: prod\n  pop: fra1\n  peers: []\n  etcd:\n    endpoints: [\"http://e:2379\"]\n",
            &["fleet", "peers"],
        ),
    ];
    for (yaml, wants) in cases {
        let (ok, text) = check(yaml);
        assert_eq!(ok, wants == &["ok"], "{yaml}\n{text}");
        for want in *wants {
            assert!(text.contains(want), "{yaml}\nwant {want:?} in:\n{text}");
        }
    }
}

#[test]
fn the_commands_need_the_fleet_section() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("cdn-node.yaml");
    std::fs::write(&conf, "server:\n  threads: 1\n").expect("write");
    for args in [
        &["purge", "--path", "/v/a.mp4"][..],
        &["revoke", "--jti", "x"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_cdn-node"))
            .args(args)
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("run");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("fleet: missing"), "{err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_cdn-node"))
        .args(["purge", "-c"])
        .arg(&conf)
        .output()
        .expect("run");
    assert!(!out.status.success(), "a purge names a path or a prefix");
}

//! The deployment artifacts under deploy/: the Prometheus configuration, alert
//! rules and their unit tests pass promtool; every metric the alerts and the
//! Grafana dashboard query is one the node exports (src/metrics/names.rs);
//! the systemd unit passes `systemd-analyze verify`; the shell scripts pass
//! `shellcheck`; the example configurations pass `cdn-node check` and agree
//! with the unit, the container image and, for the example PoP
//! (deploy/pop/), with each other and with the script that runs them.

mod common;
#[path = "common/promql.rs"]
mod promql;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::cli::report;
use common::tools;
use promql::metric_names_in;
use serde_json::Value;

/// Series Prometheus itself adds to every scrape.
const PROMETHEUS_SERIES: &[&str] = &["up"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A fresh empty directory under the system's temporary directory.
fn scratch_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "cdn-node-deploy-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs promtool with `args` in the repository root; fails with a clear
/// message when promtool is not installed.
fn promtool(args: &[&str]) -> Output {
    Command::new(tools::require("promtool"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run promtool")
}

fn assert_promtool_ok(args: &[&str]) -> String {
    let out = promtool(args);
    let text = report(&out);
    assert!(
        out.status.success(),
        "promtool {} failed:\n{text}",
        args.join(" ")
    );
    text
}

// ---- metric names ----------------------------------------------------------

/// The string constants of src/metrics/names.rs (`const NAME: &str = "...";`),
/// read as text so that names added later are picked up without changes here.
fn exported_names() -> BTreeSet<String> {
    let text = read("src/metrics/names.rs");
    let mut names = BTreeSet::new();
    for item in text.split("const ").skip(1) {
        let item = item.split(';').next().unwrap_or_default();
        let Some((head, value)) = item.split_once('=') else {
            continue;
        };
        if !head.contains("&str") {
            continue;
        }
        let mut parts = value.split('"');
        if let (Some(_), Some(name)) = (parts.next(), parts.next()) {
            names.insert(name.to_string());
        }
    }
    assert!(
        names.contains("cdn_node_requests_total"),
        "no metric names found in src/metrics/names.rs: {names:?}"
    );
    names
}

/// Whether `name` is exported: as is, or as a histogram's `_bucket`, `_count`
/// or `_sum` series (allowed for any known name that is not a counter).
fn is_exported(name: &str, exported: &BTreeSet<String>) -> bool {
    if exported.contains(name) || PROMETHEUS_SERIES.contains(&name) {
        return true;
    }
    ["_bucket", "_count", "_sum"].iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|base| exported.contains(base) && !base.ends_with("_total"))
    })
}

/// Checks the names used by `exprs` (labelled by where they come from):
/// fails on any name that src/metrics/names.rs does not export.
fn check_names(what: &str, exprs: &[(String, String)]) {
    let exported = exported_names();
    let mut unknown = Vec::new();
    for (place, expr) in exprs {
        let names = metric_names_in(expr);
        assert!(
            !names.is_empty(),
            "{what}: {place} selects no metric: {expr}"
        );
        for name in names {
            if !is_exported(&name, &exported) {
                unknown.push(format!("{place}: {name}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "{what} uses metric names that src/metrics/names.rs does not define:\n  {}",
        unknown.join("\n  ")
    );
}

#[test]
fn metric_name_extraction() {
    let names = metric_names_in(
        r#"sum by (pop, instance) (rate(cdn_node_a_total{kind!~"s3_.*", x="y"}[5m] offset 10m))
           / on(pop) group_left(instance) max without (le) (cdn_node_b) > bool 0.5
           or histogram_quantile(0.9, sum by (le) (rate(cdn_node_c_bucket{pop=~"$pop"}[$__rate_interval])))
           unless absent(up{job="cdn-node"}) * 1e3"#,
    );
    let expected: BTreeSet<String> = ["cdn_node_a_total", "cdn_node_b", "cdn_node_c_bucket", "up"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, expected);

    let exported: BTreeSet<String> = ["cdn_node_x_seconds", "cdn_node_y_total"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(is_exported("cdn_node_x_seconds_bucket", &exported));
    assert!(is_exported("cdn_node_x_seconds_count", &exported));
    assert!(!is_exported("cdn_node_y_total_bucket", &exported));
    assert!(!is_exported("cdn_node_z", &exported));
}

// ---- Prometheus ------------------------------------------------------------

#[test]
fn prometheus_config_passes_promtool() {
    let text = assert_promtool_ok(&["check", "config", "deploy/prometheus/prometheus.yml"]);
    assert!(
        !text.contains("WARNING"),
        "promtool check config warned:\n{text}"
    );

    let config: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/prometheus/prometheus.yml")).unwrap();
    let jobs = config["scrape_configs"].as_sequence().unwrap();
    let job = jobs
        .iter()
        .find(|j| j["job_name"].as_str() == Some("cdn-node"))
        .expect("a scrape job named cdn-node");
    assert_eq!(job["scrape_interval"].as_str(), Some("15s"));
    let statics = job["static_configs"].as_sequence().expect("static_configs");
    assert!(
        statics.iter().all(|s| s["labels"]["pop"].is_string()),
        "every static target group has a pop label"
    );
    assert!(
        job["file_sd_configs"].as_sequence().is_some(),
        "file_sd_configs example"
    );
    let rule_files = config["rule_files"].as_sequence().unwrap();
    assert!(rule_files.iter().any(|f| f.as_str() == Some("alerts.yml")));
}

#[test]
fn alert_rules_pass_promtool() {
    assert_promtool_ok(&["check", "rules", "deploy/prometheus/alerts.yml"]);
}

#[test]
fn alert_rule_unit_tests_pass() {
    assert_promtool_ok(&["test", "rules", "deploy/prometheus/alerts.test.yml"]);
}

fn alert_rules() -> Vec<serde_yaml::Value> {
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/prometheus/alerts.yml")).unwrap();
    rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
        .collect()
}

#[test]
fn alerts_are_complete_and_use_exported_metrics() {
    let rules = alert_rules();
    assert!(!rules.is_empty());
    let mut exprs = Vec::new();
    for rule in &rules {
        let name = rule["alert"]
            .as_str()
            .unwrap_or_else(|| panic!("only alerting rules expected: {rule:?}"));
        assert!(rule["for"].is_string(), "{name}: no `for:`");
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("warning" | "critical")),
            "{name}: severity is {severity:?}"
        );
        for key in ["summary", "description"] {
            assert!(
                rule["annotations"][key]
                    .as_str()
                    .is_some_and(|s| !s.trim().is_empty()),
                "{name}: no {key} annotation"
            );
        }
        exprs.push((name.to_string(), rule["expr"].as_str().unwrap().to_string()));
    }
    check_names("alerts.yml", &exprs);
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_test() {
    let tests: serde_yaml::Value =
        serde_yaml::from_str(&read("deploy/prometheus/alerts.test.yml")).unwrap();
    let mut fires = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for group in tests["tests"].as_sequence().unwrap() {
        for case in group["alert_rule_test"].as_sequence().unwrap() {
            let name = case["alertname"].as_str().unwrap().to_string();
            let expected = case["exp_alerts"].as_sequence().map_or(0, |s| s.len());
            if expected == 0 {
                quiet.insert(name);
            } else {
                fires.insert(name);
            }
        }
    }
    for rule in alert_rules() {
        let name = rule["alert"].as_str().unwrap();
        assert!(fires.contains(name), "{name}: no test where it fires");
        assert!(quiet.contains(name), "{name}: no test where it stays quiet");
    }
}

// ---- Grafana ----------------------------------------------------------------

fn collect_exprs(value: &Value, place: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            let here = map
                .get("title")
                .and_then(Value::as_str)
                .map_or(place.to_string(), |t| format!("panel \"{t}\""));
            for (key, v) in map {
                if key == "expr" {
                    out.push((here.clone(), v.as_str().unwrap().to_string()));
                } else {
                    collect_exprs(v, &here, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, place, out)),
        _ => {}
    }
}

fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/grafana/cdn-node.json")).expect("valid JSON")
}

fn dashboard_exprs() -> Vec<(String, String)> {
    let mut exprs = Vec::new();
    collect_exprs(&dashboard(), "dashboard", &mut exprs);
    exprs
}

#[test]
fn dashboard_is_well_formed() {
    let dash = dashboard();
    assert!(dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    assert!(dash["uid"].is_string() && dash["title"].is_string());

    let vars = dash["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("template variable {name}"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for name in ["pop", "instance"] {
        assert_eq!(var(name)["type"], "query");
        // label_values(SELECTOR, LABEL): the selector names the metric.
        let query = var(name)["definition"].as_str().unwrap();
        let selector = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
            .map(|(selector, label)| {
                assert_eq!(label.trim(), name, "variable {name}: {query}");
                selector
            })
            .unwrap_or_else(|| panic!("variable {name}: expected label_values(..): {query}"));
        check_names(
            "dashboard variables",
            &[(name.to_string(), selector.to_string())],
        );
    }

    let panels = dash["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "{title}: id reused"
        );
        let grid = &panel["gridPos"];
        assert!(
            grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24,
            "{title}: wider than the grid"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no query");
        let mut refs = BTreeSet::new();
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{title}");
            assert!(refs.insert(target["refId"].as_str().unwrap()), "{title}");
            let expr = target["expr"].as_str().unwrap();
            assert!(
                expr.contains("$pop") && expr.contains("$instance"),
                "{title}: the query ignores the pop/instance variables: {expr}"
            );
        }
    }
}

#[test]
fn dashboard_uses_exported_metrics() {
    check_names("cdn-node.json", &dashboard_exprs());
}

/// Every dashboard query, with Grafana's variables replaced, parses as
/// PromQL: promtool checks them as recording rules.
#[test]
fn dashboard_queries_parse() {
    let exprs = dashboard_exprs();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, (_, expr)) in exprs.iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$pop", ".*")
            .replace("$instance", ".*");
        let quoted = serde_json::to_string(&expr).unwrap();
        rules.push_str(&format!(
            "      - record: dashboard:query_{n}\n        expr: {quoted}\n"
        ));
    }
    let dir = scratch_dir("dashboard");
    let file = dir.join("dashboard-queries.yml");
    std::fs::write(&file, rules).unwrap();
    let out = promtool(&["check", "rules", file.to_str().unwrap()]);
    let text = report(&out);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "dashboard queries:\n{text}");
}

// ---- systemd ------------------------------------------------------------------

const UNIT: &str = "deploy/systemd/cdn-node.service";
const INSTALLED_BIN: &str = "/usr/local/bin/cdn-node";
const INSTALLED_RELOAD: &str = "/usr/local/libexec/cdn-node-reload";

/// The unit with the installed paths of the binary and the reload helper
/// replaced by the ones in this tree, so that `systemd-analyze verify`
/// (which checks that commands exist) can run before installation.
fn unit_for_verify(dir: &Path) -> PathBuf {
    let unit = read(UNIT);
    assert!(unit.contains(INSTALLED_BIN) && unit.contains(INSTALLED_RELOAD));
    let reload = root().join("deploy/systemd/cdn-node-reload");
    let unit = unit
        .replace(INSTALLED_BIN, env!("CARGO_BIN_EXE_cdn-node"))
        .replace(INSTALLED_RELOAD, reload.to_str().unwrap());
    let path = dir.join("cdn-node.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn systemd_unit_verifies() {
    if !tools::present_or_skip(
        "systemd-analyze",
        &format!("`systemd-analyze verify {UNIT}`"),
    ) {
        return;
    }
    let dir = scratch_dir("systemd");
    let unit = unit_for_verify(&dir);
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze");
    let text = report(&out);
    let _ = std::fs::remove_dir_all(&dir);
    let about_unit: Vec<&str> = text.lines().filter(|l| l.contains("cdn-node")).collect();
    assert!(
        about_unit.is_empty(),
        "systemd-analyze verify {UNIT}:\n{}",
        about_unit.join("\n")
    );
}

fn unit_setting(key: &str) -> Vec<String> {
    read(UNIT)
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

fn check_config(rel: &str) {
    let out = common::cli::check(&root().join(rel));
    assert!(
        out.status.success(),
        "cdn-node check -c {rel}:\n{}",
        report(&out)
    );
}

fn yaml(rel: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&read(rel)).unwrap()
}

#[test]
fn systemd_config_passes_check_and_matches_the_unit() {
    check_config("deploy/systemd/cdn-node.yaml");
    let conf = yaml("deploy/systemd/cdn-node.yaml");
    let pid_file = conf["server"]["pid_file"].as_str().unwrap();
    let sock = conf["server"]["upgrade_sock"].as_str().unwrap();
    assert_eq!(unit_setting("PIDFile"), [pid_file]);
    assert_eq!(unit_setting("Type"), ["forking"]);
    // The daemon writes both in the unit's RuntimeDirectory.
    let runtime = format!("/run/{}/", unit_setting("RuntimeDirectory")[0]);
    assert!(pid_file.starts_with(&runtime) && sock.starts_with(&runtime));
    // The reload helper is handed the same paths.
    let reload = unit_setting("ExecReload");
    assert_eq!(reload.len(), 1);
    let args: Vec<&str> = reload[0].split_whitespace().collect();
    assert_eq!(
        args,
        [
            INSTALLED_RELOAD,
            "/etc/cdn-node/cdn-node.yaml",
            pid_file,
            sock
        ]
    );
    // Daemon mode would send the access log to /dev/null with error_log set.
    assert!(conf["server"]["error_log"].is_null());
    // The stop timeout covers the graceful shutdown.
    let grace = conf["server"]["grace_period_seconds"].as_u64().unwrap();
    let drain = conf["server"]["graceful_shutdown_timeout_seconds"]
        .as_u64()
        .unwrap();
    let stop: u64 = unit_setting("TimeoutStopSec")[0]
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(grace + drain < stop, "TimeoutStopSec={stop} too short");
}

#[test]
fn reload_helper_is_valid_shell() {
    let script = root().join("deploy/systemd/cdn-node-reload");
    let out = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(out.status.success(), "bash -n: {}", report(&out));
    if tools::present_or_skip("shellcheck", "deploy/systemd/cdn-node-reload") {
        let out = Command::new("shellcheck").arg(&script).output().unwrap();
        assert!(out.status.success(), "shellcheck:\n{}", report(&out));
    }
}

/// Every shell script under deploy/ (the sourced helpers included) parses
/// and passes shellcheck, following what the scripts source (`-x`).
#[test]
fn deploy_scripts_are_valid_shell() {
    let mut scripts = Vec::new();
    collect_files(&root().join("deploy"), ".sh", &mut scripts);
    scripts.sort();
    for must in ["deploy/lib.sh", "deploy/quickstart.sh", "deploy/pop/run.sh"] {
        assert!(
            scripts.iter().any(|s| s.ends_with(must)),
            "{must} not found among {scripts:?}"
        );
    }
    for script in &scripts {
        let out = Command::new("bash").arg("-n").arg(script).output().unwrap();
        assert!(
            out.status.success(),
            "bash -n {}: {}",
            script.display(),
            report(&out)
        );
    }
    if tools::present_or_skip("shellcheck", "the scripts under deploy/") {
        let out = Command::new("shellcheck")
            .arg("-x")
            .args(&scripts)
            .current_dir(root())
            .output()
            .unwrap();
        assert!(out.status.success(), "shellcheck -x:\n{}", report(&out));
    }
}

/// The files under `dir` (recursively) whose names end with `suffix`.
fn collect_files(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, suffix, out);
        } else if path.to_str().is_some_and(|p| p.ends_with(suffix)) {
            out.push(path);
        }
    }
}

// ---- the example PoP ------------------------------------------------------------

const POP_EDGES: &[&str] = &["edge-1", "edge-2", "edge-3"];
const POP_SHIELD: &str = "shield";
/// The secret files deploy/pop/run.sh writes beside its copies of the
/// configurations.
const POP_SECRET_FILES: &[&str] = &[
    "cluster.key",
    "hmac.key",
    "admin.token",
    "s3-access-key-id",
    "s3-secret-access-key",
];

fn pop_yaml(node: &str) -> serde_yaml::Value {
    yaml(&format!("deploy/pop/{node}.yaml"))
}

fn strings(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("expected a list: {v:?}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Every string value under `v` whose key ends with `_file` (the secrets),
/// but for `server.pid_file`.
fn file_settings(v: &serde_yaml::Value, out: &mut Vec<String>) {
    match v {
        serde_yaml::Value::Mapping(map) => {
            for (k, v) in map {
                match (k.as_str(), v.as_str()) {
                    (Some(k), Some(path)) if k.ends_with("_file") && k != "pid_file" => {
                        out.push(path.to_string())
                    }
                    _ => file_settings(v, out),
                }
            }
        }
        serde_yaml::Value::Sequence(items) => items.iter().for_each(|v| file_settings(v, out)),
        _ => {}
    }
}

/// Each deploy/pop configuration passes `cdn-node check` as run.sh runs it:
/// a copy in a folder beside the secret files it names (dummy values here).
#[test]
fn pop_configs_pass_check() {
    let dir = scratch_dir("pop");
    for name in POP_SECRET_FILES {
        std::fs::write(
            dir.join(name),
            "dummy-secret-for-config-checks-only-0123456789",
        )
        .unwrap();
    }
    let mut failures = Vec::new();
    for node in POP_EDGES.iter().chain([&POP_SHIELD]) {
        let copy = dir.join(format!("{node}.yaml"));
        std::fs::copy(root().join(format!("deploy/pop/{node}.yaml")), &copy).unwrap();
        let out = common::cli::check(&copy);
        if !out.status.success() {
            failures.push(format!("deploy/pop/{node}.yaml:\n{}", report(&out)));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "cdn-node check:\n{}",
        failures.join("\n")
    );
}

/// The four files describe one fleet: the edges list the same PoP (each
/// itself included) and the shield as their parent, the shield shards with
/// nobody and alone reaches S3, no two listeners or caches coincide, and
/// every secret file named is one run.sh writes.
#[test]
fn pop_configs_agree_with_each_other_and_run_sh() {
    let shield = pop_yaml(POP_SHIELD);
    let shield_peer = shield["cluster"]["listen"].as_str().unwrap().to_string();
    assert_eq!(strings(&shield["cluster"]["peers"]), Vec::<String>::new());
    assert!(shield["origin"]["parents"].is_null());
    assert!(shield["origin"]["endpoint"].is_string());

    let edge_peers: Vec<String> = POP_EDGES
        .iter()
        .map(|e| {
            pop_yaml(e)["cluster"]["listen"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut listeners = BTreeSet::new();
    let mut caches = BTreeSet::new();
    let mut names = BTreeSet::new();
    let script = read("deploy/pop/run.sh");
    for node in POP_EDGES.iter().chain([&POP_SHIELD]) {
        let conf = pop_yaml(node);
        names.insert(conf["cluster"]["name"].as_str().unwrap().to_string());
        let mut own = strings(&conf["listeners"]["http"]);
        own.push(conf["admin"]["listen"].as_str().unwrap().to_string());
        own.push(conf["cluster"]["listen"].as_str().unwrap().to_string());
        let ip = own[0].rsplit_once(':').unwrap().0.to_string();
        for addr in own {
            assert!(
                addr.starts_with(&format!("{ip}:")),
                "{node}: {addr} is not on the node's own address {ip}"
            );
            assert!(listeners.insert(addr.clone()), "{node}: {addr} used twice");
            // run.sh's usage text lists the layout.
            assert!(
                script
                    .lines()
                    .any(|l| l.starts_with('#') && l.split_whitespace().any(|w| w == addr)),
                "run.sh's header does not list {addr} ({node})"
            );
        }
        assert!(caches.insert(conf["cache"]["dir"].as_str().unwrap().to_string()));
        for key in ["pid_file", "upgrade_sock"] {
            assert!(
                conf["server"][key].as_str().unwrap().starts_with(*node),
                "{node}: server.{key} is not named after the node"
            );
        }
        let mut files = Vec::new();
        file_settings(&conf, &mut files);
        for file in files {
            assert!(
                POP_SECRET_FILES.contains(&file.as_str()) && script.contains(&file),
                "{node}: {file} is not a secret file deploy/pop/run.sh writes"
            );
        }
        if *node == POP_SHIELD {
            continue;
        }
        assert_eq!(strings(&conf["cluster"]["peers"]), edge_peers, "{node}");
        assert_eq!(
            strings(&conf["origin"]["parents"]),
            std::slice::from_ref(&shield_peer),
            "{node}"
        );
        assert!(
            conf["origin"]["endpoint"].is_null() && conf["origin"]["credentials"].is_null(),
            "{node}: only the shield talks to S3"
        );
    }
    assert_eq!(names.len(), 1, "one fleet name: {names:?}");
    assert!(POP_SECRET_FILES.iter().all(|f| script.contains(f)));
}

// ---- container ----------------------------------------------------------------

#[test]
fn container_config_passes_check_and_matches_the_image() {
    check_config("deploy/container/cdn-node.yaml");
    let file = read("deploy/container/Containerfile");
    let manifest = read("Cargo.toml");
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"'))
        .expect("rust-version in Cargo.toml");
    assert!(
        file.contains(&format!("rust:{rust_version}-bookworm")),
        "the build stage's Rust is not Cargo.toml's rust-version {rust_version}"
    );
    assert!(file.contains("cargo build --release --locked"));
    assert!(file.contains("USER 10001"), "runs as a non-root user");

    // The health probe and EXPOSE use the configuration's admin port.
    let conf = yaml("deploy/container/cdn-node.yaml");
    let admin = conf["admin"]["listen"].as_str().unwrap();
    let port = admin.rsplit(':').next().unwrap();
    assert!(
        file.contains(&format!("/dev/tcp/127.0.0.1/{port}")),
        "HEALTHCHECK does not probe admin port {port}"
    );
    let expose = file
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .unwrap();
    assert!(expose.split_whitespace().any(|p| p == port));
    for listen in conf["listeners"]["http"].as_sequence().unwrap() {
        let port = listen.as_str().unwrap().rsplit(':').next().unwrap();
        assert!(expose.split_whitespace().any(|p| p == port));
    }
}

//! The deployment artifacts under deploy/: the Prometheus configuration, alert
//! rules and their unit tests pass promtool; every metric the alerts and the
//! Grafana dashboard query is one the node exports (src/metrics/names.rs);
//! the systemd unit passes `systemd-analyze verify` and its reload helper
//! `shellcheck`; the example configurations pass `cdn-node check` and agree
//! with the unit and the container image.

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

//! The programs the tests run besides the node, and what a test does when
//! one is missing. deploy/setup.sh installs each of them (the group named
//! below), and tests/run.sh runs that setup first: a missing tool is a
//! broken setup, never a reason to pass quietly.

use std::path::Path;

/// Each program, and the deploy/setup.sh group that installs it.
const TOOLS: &[(&str, &str)] = &[
    ("s3s-fs", "s3"),
    ("promtool", "promtool"),
    ("curl", "build"),
    ("openssl", "test-tools"),
    ("shellcheck", "test-tools"),
    ("systemd-analyze", "test-tools"),
    ("faketime", "test-tools"),
    ("etcd", "fleet"),
    ("etcdctl", "fleet"),
    ("node", "conformance"),
];

fn setup_group(name: &str) -> &'static str {
    TOOLS
        .iter()
        .find(|(tool, _)| *tool == name)
        .map(|(_, group)| *group)
        .unwrap_or_else(|| panic!("{name} is not a tool the tests know: add it to TOOLS"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `name` is an executable file in a folder of `PATH`.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| is_executable(&d.join(name))))
}

/// Whether the tests run under CI (`CI=true`, as CI services set it).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The program `name`, for a test that cannot do without it: the test
/// fails, naming the setup step that installs it, when it is not on `PATH`.
pub fn require(name: &str) -> &str {
    let group = setup_group(name);
    assert!(
        on_path(name),
        "{name} is not installed (not found on PATH): run `bash deploy/setup.sh {group}`"
    );
    name
}

/// Whether `check`, which needs the program `name`, can run. When `name`
/// is not on `PATH`: under CI the test fails (the setup installs it there);
/// elsewhere a `skipped: ...` line goes to stderr and the caller returns
/// without checking.
pub fn present_or_skip(name: &str, check: &str) -> bool {
    if on_path(name) {
        return true;
    }
    let group = setup_group(name);
    assert!(
        !under_ci(),
        "{name} is not installed (not found on PATH), and CI=true: run `bash deploy/setup.sh {group}` before the tests"
    );
    eprintln!(
        "skipped: {name} not installed: {check} not checked (`bash deploy/setup.sh {group}` installs it)"
    );
    false
}

//! Secrets come from files or environment variables, never from the YAML
//! itself, and never reach a log line or an error message.

use std::path::Path;

use super::Problem;

/// Reads a secret file (relative paths resolve against `base_dir`), trimming
/// one trailing newline. Problems name the key and the path, never the content.
pub fn from_file(
    key: &str,
    path: &str,
    base_dir: &Path,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let full = base_dir.join(path);
    match std::fs::read_to_string(&full) {
        Ok(text) => {
            let value = text.trim_end_matches(['\n', '\r']).to_string();
            if value.is_empty() {
                problems.push(Problem::new(
                    key,
                    format!("file {} is empty: put the secret in it", full.display()),
                ));
                return None;
            }
            Some(value)
        }
        Err(e) => {
            problems.push(Problem::new(
                key,
                format!(
                    "file {} cannot be read ({e}): give the path of a readable file holding the secret",
                    full.display()
                ),
            ));
            None
        }
    }
}

/// Reads a secret from an environment variable through `env` (injected so
/// tests do not touch the process environment).
pub fn from_env(
    key: &str,
    var: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    match env(var) {
        Some(v) if !v.is_empty() => Some(v),
        _ => {
            problems.push(Problem::new(
                key,
                format!("environment variable {var} is not set or empty: export it before starting the node"),
            ));
            None
        }
    }
}

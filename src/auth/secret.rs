//! HMAC secrets: where they come from and which ones are refused.
//!
//! Messages name the file or variable and the length, never the secret itself.

use std::path::Path;

use crate::auth::settings::MIN_HMAC_SECRET_BYTES;

/// Reads an HMAC secret file. Trailing `\r` and `\n` are not part of the secret, so that
/// `openssl rand -hex 32 > file` and an editor's final newline give the same secret.
pub fn read_secret_file(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = std::fs::read(path).map_err(|e| {
        format!(
            "file {} cannot be read ({e}): give the path of a file holding the HMAC secret",
            path.display()
        )
    })?;
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    check_secret(&bytes, &format!("file {}", path.display()))?;
    Ok(bytes)
}

/// Refuses empty and short secrets. `whence` names where the secret came from.
pub fn check_secret(bytes: &[u8], whence: &str) -> Result<(), String> {
    if bytes.is_empty() {
        return Err(format!(
            "{whence} holds an empty secret: write a random secret of at least \
             {MIN_HMAC_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
        ));
    }
    if bytes.len() < MIN_HMAC_SECRET_BYTES {
        return Err(format!(
            "{whence} holds a secret of only {} bytes: HMAC needs at least \
             {MIN_HMAC_SECRET_BYTES}; write a longer random one (e.g. `openssl rand -hex 32`)",
            bytes.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_secret_table() {
        let long = [7u8; MIN_HMAC_SECRET_BYTES];
        let cases: &[(&[u8], Option<&str>)] = &[
            (b"", Some("empty")),
            (b"short", Some("only 5 bytes")),
            (&long[..MIN_HMAC_SECRET_BYTES - 1], Some("only 31 bytes")),
            (&long, None),
        ];
        for (bytes, want) in cases {
            match (check_secret(bytes, "test"), want) {
                (Ok(()), None) => {}
                (Err(msg), Some(needle)) => {
                    assert!(msg.contains(needle), "{msg}");
                    assert!(!msg.contains("short\""), "secret leaked: {msg}");
                }
                (got, want) => panic!("{bytes:?}: got {got:?}, want {want:?}"),
            }
        }
    }
}

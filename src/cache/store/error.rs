//! Errors of the store, and their conversion to Pingora errors.

use pingora_error::{Error, ErrorType};
use std::io;
use std::path::PathBuf;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cache store: {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A Pingora internal error carrying `context`.
pub(crate) fn pingora_err(context: impl Into<String>) -> Box<Error> {
    Error::explain(ErrorType::InternalError, context.into())
}

/// A Pingora internal error caused by `cause`.
pub(crate) fn pingora_io(context: &'static str, cause: io::Error) -> Box<Error> {
    Error::because(ErrorType::InternalError, context, cause)
}

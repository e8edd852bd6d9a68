//! A request the hit lane admitted and then handed on to Pingora's path:
//! its forward to the owner failed before anything was sent to the client
//! (the owner unreachable, or an answer the lane does not frame). The
//! token must not be checked twice (a replay-protected one would be
//! refused the second time), so the lane's admission goes with the
//! request: `request_filter` takes it instead of admitting the request
//! again.
//!
//! It is held in a task-local slot for exactly the one Pingora session the
//! lane starts for that request: the session runs in the lane's task, and
//! the slot is gone when the session ends.

use std::cell::RefCell;
use std::future::Future;

use super::admit::Admitted;

tokio::task_local! {
    static HANDED: RefCell<Option<Admitted>>;
}

/// Runs `session` (Pingora's session of the one request the lane admitted)
/// with the admission handed to it.
pub async fn with<F: Future>(admitted: Admitted, session: F) -> F::Output {
    HANDED.scope(RefCell::new(Some(admitted)), session).await
}

/// The admission the lane handed on with this request, once.
pub fn take() -> Option<Admitted> {
    HANDED
        .try_with(|handed| handed.borrow_mut().take())
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthOutcome;

    fn admitted(path: &str) -> Admitted {
        Admitted {
            path: path.to_string(),
            query: String::new(),
            subject: None,
            auth: AuthOutcome::Public,
            renewal: None,
            token_query: None,
        }
    }

    #[tokio::test]
    async fn an_admission_is_taken_once_and_only_inside_its_session() {
        assert!(take().is_none(), "nothing is handed outside a session");
        let inside = with(admitted("/a.mp4"), async {
            let first = take().map(|a| a.path);
            let second = take().map(|a| a.path);
            (first, second)
        })
        .await;
        assert_eq!(inside, (Some("/a.mp4".to_string()), None));
        assert!(take().is_none(), "the slot ends with its session");
    }
}

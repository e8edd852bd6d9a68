//! The refusal of an HTTP/1 request head that grew past the size limits,
//! written by the stream itself in the read that crossed the limit: the
//! answer ([`super::refuse`]), the connection's sending side closed, then
//! what the client still sends read and dropped until it closes too or
//! [`LINGER`] has passed, so that the client reads the answer instead of a
//! reset.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pingora::protocols::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::refuse;
use super::watch::Over;

/// The longest a refused connection stays open after its head passed a
/// limit: the answer is written and the client's further bytes dropped.
pub const LINGER: Duration = Duration::from_secs(5);

/// Reads of dropped bytes per poll while lingering, before yielding.
const LINGER_READS_PER_POLL: usize = 16;

/// The steps of answering a head that passed a limit.
pub struct Refusing {
    pub over: Over,
    answer: &'static [u8],
    sent: usize,
    pub step: Step,
    /// The end of the whole refusal.
    linger: Pin<Box<Sleep>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Write,
    Flush,
    Close,
    Drain,
    Done,
}

impl Refusing {
    /// The refusal of a head over `over` (a `HEAD` request's: no body).
    pub fn new(over: Over, head_request: bool) -> Refusing {
        Refusing {
            over,
            answer: refuse::http1(over, head_request),
            sent: 0,
            step: Step::Write,
            linger: Box::pin(tokio::time::sleep(LINGER)),
        }
    }

    /// Takes the refusal as far as it goes now; ready (with the error the
    /// reader gets) once it is over.
    pub fn poll(&mut self, inner: &mut Stream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let pending = match self.step {
                Step::Write if self.sent == self.answer.len() => {
                    self.step = Step::Flush;
                    false
                }
                Step::Write => {
                    let rest = &self.answer[self.sent..];
                    match Pin::new(&mut *inner).poll_write(cx, rest) {
                        Poll::Ready(Ok(n)) if n > 0 => {
                            self.sent += n;
                            false
                        }
                        Poll::Ready(_) => {
                            self.step = Step::Done;
                            false
                        }
                        Poll::Pending => true,
                    }
                }
                Step::Flush => match Pin::new(&mut *inner).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        self.step = Step::Close;
                        false
                    }
                    Poll::Ready(Err(_)) => {
                        self.step = Step::Done;
                        false
                    }
                    Poll::Pending => true,
                },
                Step::Close => match Pin::new(&mut *inner).poll_shutdown(cx) {
                    Poll::Ready(_) => {
                        self.step = Step::Drain;
                        false
                    }
                    Poll::Pending => true,
                },
                Step::Drain => match Self::drain(inner, cx) {
                    Poll::Ready(()) => {
                        self.step = Step::Done;
                        false
                    }
                    Poll::Pending => true,
                },
                Step::Done => return Poll::Ready(Err(self.error())),
            };
            if pending {
                if self.linger.as_mut().poll(cx).is_ready() {
                    self.step = Step::Done;
                    continue;
                }
                return Poll::Pending;
            }
        }
    }

    /// Reads and drops what the client sends; ready when it has closed (or
    /// the connection failed).
    fn drain(inner: &mut Stream, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 4096];
        for _ in 0..LINGER_READS_PER_POLL {
            let mut dropped = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *inner).poll_read(cx, &mut dropped) {
                Poll::Ready(Ok(())) if !dropped.filled().is_empty() => {}
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return Poll::Pending,
            }
        }
        // A client sending fast: let other tasks run, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn error(&self) -> io::Error {
        let what = match self.over {
            Over::RequestLine => "request line over limits.max_header_field_bytes",
            Over::Field => "a request header field over limits.max_header_field_bytes",
            Over::Head => "request header over limits.max_header_bytes",
        };
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{what}: answered {}", refuse::status(self.over)),
        )
    }
}

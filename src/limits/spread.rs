//! New TLS connections spread over the worker threads by the handshakes
//! each has under way.
//!
//! Each worker thread accepts on its own `SO_REUSEPORT` socket
//! ([`crate::listeners`]), and the kernel hands a new connection to one of
//! them by a hash of its addresses, blind to what the thread is doing. A
//! kept-alive connection costs its thread little, and a hash spreads many
//! of them evenly. A full TLS handshake is different: its signature holds
//! the thread for up to half a millisecond (RSA-2048), and a few
//! connections arriving together on one thread wait in turn while another
//! thread has nothing to do. So a connection that arrives on a thread with
//! at least two handshakes more under way than the least busy thread is
//! handed to that thread before its handshake, as an nginx worker that is
//! free takes the next connection from the queue the workers share.
//!
//! Threads join on their first connection (the runtime each one is then
//! running is where connections are sent); a thread that has not joined
//! yet receives none.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest, Stream};
use tokio::runtime::Handle;

use crate::config::sections::MAX_THREADS;

/// The worker threads of one listener kind and their handshakes under way.
pub struct Spread {
    /// Tells spreads apart in [`PLACE`].
    id: usize,
    threads: Box<[Thread]>,
    joined: AtomicUsize,
}

/// The next [`Spread::id`].
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

#[derive(Default)]
struct Thread {
    runtime: OnceLock<Handle>,
    handshaking: AtomicUsize,
}

thread_local! {
    /// This thread's place in a [`Spread`]: the spread's id and the
    /// thread's index in it (`usize::MAX`: it could not join). One place
    /// per thread: a worker thread serves one listener kind, so it asks
    /// one spread (a thread asking two in turn would join again at each
    /// change and use up the places).
    static PLACE: Cell<(usize, usize)> = const { Cell::new((0, usize::MAX)) };
}

/// Where a new connection's handshake is to run.
pub enum Place {
    /// On this thread.
    Here(Handshake),
    /// On another worker thread's runtime.
    There(Handle, Handshake),
}

/// A handshake counted as under way on a thread until dropped.
pub struct Handshake {
    spread: Arc<Spread>,
    thread: Option<usize>,
}

impl Drop for Handshake {
    fn drop(&mut self) {
        if let Some(t) = self.thread {
            self.spread.threads[t]
                .handshaking
                .fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Spread {
    pub fn new() -> Arc<Spread> {
        Arc::new(Spread {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            threads: (0..MAX_THREADS).map(|_| Thread::default()).collect(),
            joined: AtomicUsize::new(0),
        })
    }

    /// Where the handshake of a connection that arrived on this thread
    /// runs. Must be called on a worker thread's runtime.
    pub fn begin(self: &Arc<Self>) -> Place {
        match self.place() {
            Some(here) => self.begin_on(here),
            None => Place::Here(Handshake {
                spread: self.clone(),
                thread: None,
            }),
        }
    }

    /// [`Spread::begin`] for a connection that arrived on thread `here`.
    fn begin_on(self: &Arc<Self>, here: usize) -> Place {
        let counted = |thread| Handshake {
            spread: self.clone(),
            thread: Some(thread),
        };
        let busy = self.threads[here]
            .handshaking
            .fetch_add(1, Ordering::AcqRel)
            + 1;
        if busy < 2 {
            return Place::Here(counted(here));
        }
        let joined = self.joined.load(Ordering::Acquire).min(MAX_THREADS);
        // The least busy other thread, looked at from the next one on so
        // that equally idle threads share the connections moved.
        let least = (1..joined)
            .map(|step| (here + step) % joined)
            .filter_map(|t| {
                let runtime = self.threads[t].runtime.get()?;
                let n = self.threads[t].handshaking.load(Ordering::Acquire);
                Some((t, n, runtime))
            })
            .min_by_key(|&(_, n, _)| n);
        if let Some((there, n, runtime)) = least
            && n + 2 <= busy
            && self.threads[there]
                .handshaking
                .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.threads[here]
                .handshaking
                .fetch_sub(1, Ordering::AcqRel);
            return Place::There(runtime.clone(), counted(there));
        }
        Place::Here(counted(here))
    }

    /// This thread's index, joining with the runtime it runs now on its
    /// first call; `None` when every place is taken or there is no runtime.
    fn place(&self) -> Option<usize> {
        let me = self.id;
        let (spread, index) = PLACE.get();
        if spread == me {
            return (index != usize::MAX).then_some(index);
        }
        let index = Handle::try_current()
            .ok()
            .and_then(|runtime| self.join(runtime));
        PLACE.set((me, index.unwrap_or(usize::MAX)));
        index
    }

    /// Takes the next place for a thread running `runtime`.
    fn join(&self, runtime: Handle) -> Option<usize> {
        let index = self.joined.fetch_add(1, Ordering::AcqRel);
        let thread = self.threads.get(index)?;
        // A fresh index: nobody else sets its runtime.
        let _ = thread.runtime.set(runtime);
        Some(index)
    }
}

/// The socket of `stream`, a TCP connection accepted on this thread, taken
/// out of this thread's reactor to be sent to another thread ([`attach`]).
/// Nothing may have been read from it or written to it.
pub fn detach(stream: Stream) -> io::Result<std::net::TcpStream> {
    let l4 = stream
        .into_any()
        .downcast::<L4Stream>()
        .map_err(|_| io::Error::new(io::ErrorKind::Unsupported, "not a TCP connection"))?;
    // SAFETY: the descriptor is `l4`'s socket, open while `l4` lives; it is
    // only borrowed to be duplicated.
    #[allow(unsafe_code)]
    let fd = unsafe { BorrowedFd::borrow_raw(l4.as_raw_fd()) };
    let socket = fd.try_clone_to_owned()?;
    // Dropping the stream takes its descriptor out of this thread's reactor
    // and closes it; the duplicate keeps the connection open.
    drop(l4);
    Ok(std::net::TcpStream::from(socket))
}

/// A connection [`detach`]ed on another thread, as this thread's runtime's
/// stream, with what Pingora's listener sets on an accepted one (no Nagle
/// delay, the addresses). Pingora's own write buffer it cannot have: its
/// setter is Pingora's alone. Under TLS the records of one write still
/// leave together, in one `writev`.
pub fn attach(socket: std::net::TcpStream) -> io::Result<Stream> {
    let tcp = tokio::net::TcpStream::from_std(socket)?;
    let mut l4 = L4Stream::from(tcp);
    l4.set_nodelay()
        .map_err(|e| io::Error::other(e.to_string()))?;
    let digest = SocketDigest::from_raw_fd(l4.as_raw_fd());
    l4.set_socket_digest(digest);
    Ok(Box::new(l4))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spread of `threads` joined threads, all on the current runtime.
    fn joined(threads: usize) -> Arc<Spread> {
        let spread = Spread::new();
        for _ in 0..threads {
            spread.join(Handle::current());
        }
        spread
    }

    fn counts(spread: &Spread, threads: usize) -> Vec<usize> {
        (0..threads)
            .map(|t| spread.threads[t].handshaking.load(Ordering::Acquire))
            .collect()
    }

    #[tokio::test]
    async fn a_connection_moves_only_to_a_thread_two_handshakes_less_busy() {
        // (handshakes under way per thread, the thread it arrives on,
        // where it runs, the counts after)
        let cases: &[(&[usize], usize, usize, &[usize])] = &[
            (&[0, 0], 0, 0, &[1, 0]),
            (&[1, 0], 0, 1, &[1, 1]),
            (&[1, 1], 0, 0, &[2, 1]),
            (&[2, 1], 0, 1, &[2, 2]),
            (&[3, 0, 1], 0, 1, &[3, 1, 1]),
            (&[0, 5, 0], 1, 2, &[0, 5, 1]),
            (&[1, 2, 1], 1, 2, &[1, 2, 2]),
            (&[1, 1, 1], 1, 1, &[1, 2, 1]),
            (&[4], 0, 0, &[5]),
        ];
        for &(before, arrives, runs, after) in cases {
            let spread = joined(before.len());
            for (t, &n) in before.iter().enumerate() {
                spread.threads[t].handshaking.store(n, Ordering::Release);
            }
            let place = spread.begin_on(arrives);
            let thread = match &place {
                Place::Here(h) => h.thread,
                Place::There(_, h) => h.thread,
            };
            assert_eq!(thread, Some(runs), "{before:?} arriving on {arrives}");
            assert_eq!(
                matches!(place, Place::There(..)),
                runs != arrives,
                "{before:?} arriving on {arrives}"
            );
            assert_eq!(counts(&spread, before.len()), after, "{before:?}");
            drop(place);
            assert_eq!(counts(&spread, before.len()), before, "{before:?}");
        }
    }

    #[tokio::test]
    async fn a_thread_not_yet_joined_receives_nothing() {
        let spread = joined(1);
        spread.threads[0].handshaking.store(3, Ordering::Release);
        // Thread 1 has a count but no runtime: it never joined.
        let place = spread.begin_on(0);
        assert!(matches!(place, Place::Here(_)));
        assert_eq!(counts(&spread, 2), [4, 0]);
    }

    #[tokio::test]
    async fn a_thread_joins_once_and_keeps_its_place() {
        let spread = Spread::new();
        let first = spread.begin();
        let second = spread.begin();
        assert_eq!(spread.joined.load(Ordering::Acquire), 1);
        assert_eq!(counts(&spread, 1), [2]);
        drop((first, second));
        assert_eq!(counts(&spread, 1), [0]);
        // Another spread on the same thread gives it a place of its own.
        let other = Spread::new();
        drop(other.begin());
        assert_eq!(other.joined.load(Ordering::Acquire), 1);
    }

    #[test]
    fn without_a_runtime_nothing_is_counted() {
        let spread = Spread::new();
        let place = spread.begin();
        assert!(matches!(place, Place::Here(Handshake { thread: None, .. })));
        assert_eq!(spread.joined.load(Ordering::Acquire), 0);
    }
}

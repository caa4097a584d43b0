//! # orderly-head-guard — refusals made before a route is matched
//!
//! actix-http answers some requests itself, before any `App` middleware runs, with a bare
//! status: a request line or header section its parser will not take (400, 431), a head that
//! is too slow (408), malformed framing (400). It offers no hook to render those answers, so
//! they carry no problem body, no request id and no security headers (ADR 0016).
//!
//! [`guard`] wraps a connection's stream in [`Guarded`], which sits between it and actix-http. It holds back each request head
//! until it is complete, checks it as actix would ([`framing`]) against [`Limits`] that are
//! stricter than actix's own, and passes it on unchanged, followed by its body. A head that
//! would be refused is never passed on: the guard ends actix's input there (actix finishes the
//! responses it is writing for earlier, pipelined requests and lets go of the stream), then
//! [`Owed::answer`] writes the answer a [`Responder`] renders — the application's
//! problem+json — logs one INFO line and closes the connection, draining what the client still
//! sends so that it reads the answer.
//!
//! Owns: the bytes of a connection until actix may see them. Must not touch: the domain, or
//! what an answer says (the [`Responder`] does).

pub mod framing;

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

use framing::{Framer, Step};
pub use framing::{Limits, Refusal, RefusalKind};

/// A refusal's answer as bytes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The request id the answer carries, for the log line.
    pub request_id: String,
    /// A whole HTTP/1.1 response, `Connection: close` included.
    pub bytes: Vec<u8>,
}

/// Renders the answer to a refused request.
pub type Responder = Arc<dyn Fn(&Refusal) -> Answer + Send + Sync>;

/// How long a refused connection is drained after the answer, so that the client reads the
/// answer rather than a reset caused by unread bytes.
const LINGER: Duration = Duration::from_secs(2);

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// A connection's stream, with every request head checked before actix reads it.
pub struct Guarded<T: AsyncRead + AsyncWrite + Unpin + 'static> {
    /// `None` once handed to the task that writes a refusal.
    io: Option<T>,
    framer: Framer,
    /// Read from the socket, not yet given to actix; the first `released` bytes may be.
    pending: Vec<u8>,
    released: usize,
    /// The head deadline, while a head is awaited (see [`Limits::head_timeout`]).
    deadline: Option<Pin<Box<Sleep>>>,
    head_timeout: Duration,
    /// Whether any byte of the connection has arrived yet.
    first_head: bool,
    /// The client ended its side.
    eof: bool,
    /// A request was refused: actix reads no more, and the answer is owed.
    refusal: Option<Refusal>,
    responder: Responder,
    /// Where the stream and the answer go once actix lets go of the stream.
    owed: Rc<RefCell<Option<(T, Answer)>>>,
}

/// The answer a connection may owe its client once actix is done with it.
pub struct Owed<T> {
    owed: Rc<RefCell<Option<(T, Answer)>>>,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Owed<T> {
    /// Writes the answer to a refused request, if one is owed, and closes the connection.
    /// Call it once actix's service for the connection has finished (and dropped the stream).
    pub async fn answer(self) {
        let owed = self.owed.borrow_mut().take();
        if let Some((io, answer)) = owed {
            answer_and_close(io, answer.bytes).await;
        }
    }
}

/// Guards `io` with `limits`; the head timeout of the first request starts now. Hand the
/// [`Guarded`] stream to actix and, once actix is done, call [`Owed::answer`].
pub fn guard<T: AsyncRead + AsyncWrite + Unpin + 'static>(
    io: T,
    limits: Limits,
    responder: Responder,
) -> (Guarded<T>, Owed<T>) {
    let owed = Rc::new(RefCell::new(None));
    (Guarded::new(io, limits, responder, owed.clone()), Owed { owed })
}

impl<T: AsyncRead + AsyncWrite + Unpin + 'static> Guarded<T> {
    fn new(io: T, limits: Limits, responder: Responder, owed: Rc<RefCell<Option<(T, Answer)>>>) -> Self {
        Self {
            io: Some(io),
            framer: Framer::new(limits),
            pending: Vec::new(),
            released: 0,
            deadline: Some(Box::pin(tokio::time::sleep(limits.head_timeout))),
            head_timeout: limits.head_timeout,
            first_head: true,
            eof: false,
            refusal: None,
            responder,
            owed,
        }
    }

    fn io(&mut self) -> io::Result<&mut T> {
        self.io.as_mut().ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// Runs the framer over what is pending until it needs more input.
    fn advance(&mut self) {
        while self.refusal.is_none() {
            // Nothing is released beyond what is pending.
            let Some(unreleased) = self.pending.get(self.released..) else { break };
            match self.framer.step(unreleased) {
                Step::Release(n) => self.released += n,
                Step::NeedMore => break,
                Step::Refuse(refusal) => self.refusal = Some(refusal),
            }
        }
        // A later head's deadline starts with its first byte; there is none while a body
        // streams in or before the next request starts.
        let head_started = self.pending.len() > self.released;
        if !self.framer.awaiting_head() || (!head_started && !self.first_head) {
            self.deadline = None;
        } else if self.deadline.is_none() {
            self.deadline = Some(Box::pin(tokio::time::sleep(self.head_timeout)));
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + 'static> AsyncRead for Guarded<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.released > 0 {
                let n = this.released.min(buf.remaining());
                buf.put_slice(this.pending.drain(..n).as_slice());
                this.released -= n;
                return Poll::Ready(Ok(()));
            }
            // A refusal, or the client's end: actix sees the end of its input.
            if this.refusal.is_some() || this.eof {
                return Poll::Ready(Ok(()));
            }
            if let Some(deadline) = this.deadline.as_mut()
                && deadline.as_mut().poll(cx).is_ready()
            {
                this.refusal = Some(Refusal {
                    kind: RefusalKind::RequestTimeout,
                    detail: format!("the request head did not arrive within {} ms", this.head_timeout.as_millis()),
                    path: None,
                });
                continue;
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(this.io()?).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                this.eof = true;
                continue;
            }
            this.first_head = false;
            this.pending.extend_from_slice(read.filled());
            this.advance();
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + 'static> AsyncWrite for Guarded<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(self.io()?).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.io()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The answer to a refusal still has to go out: the stream closes once it is written,
        // when this value is dropped.
        if self.refusal.is_some() {
            return Pin::new(self.io()?).poll_flush(cx);
        }
        Pin::new(self.io()?).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.io()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(AsyncWrite::is_write_vectored)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin + 'static> Drop for Guarded<T> {
    /// actix is done with the connection, whether it shut the stream down or just dropped it:
    /// a refusal's answer is now owed, to be written after whatever actix wrote for earlier
    /// requests ([`Owed::answer`]).
    fn drop(&mut self) {
        let (Some(refusal), Some(io)) = (self.refusal.take(), self.io.take()) else { return };
        let answer = (self.responder)(&refusal);
        tracing::info!(
            request_id = %answer.request_id,
            status = refusal.kind.status(),
            path = refusal.path.as_deref().unwrap_or(""),
            reason = %refusal.detail,
            "request refused before routing"
        );
        *self.owed.borrow_mut() = Some((io, answer));
    }
}

/// Writes the answer, ends the write side, and drains the read side for a while so that the
/// client's unread bytes do not turn the close into a reset that would discard the answer.
async fn answer_and_close<T: AsyncRead + AsyncWrite + Unpin>(mut io: T, answer: Vec<u8>) {
    if io.write_all(&answer).await.is_err() || io.flush().await.is_err() {
        return;
    }
    let _ = io.shutdown().await;
    let until = Instant::now() + LINGER;
    let mut sink = [0u8; READ_CHUNK];
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, io.read(&mut sink)).await {
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn responder() -> Responder {
        Arc::new(|refusal: &Refusal| Answer {
            request_id: "id-1".to_owned(),
            bytes: format!("HTTP/1.1 {} X\r\nConnection: close\r\n\r\n", refusal.kind.status()).into_bytes(),
        })
    }

    /// A guarded server side of a duplex pipe whose reads are echoed to `seen`.
    async fn serve(limits: Limits, client_sends: &'static [u8], pause: Option<Duration>) -> (Vec<u8>, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let server_task = tokio::task::spawn_local(async move {
                    let (mut guarded, owed) = guard(server, limits, responder());
                    // What actix does: read to the end, answer, shut down, let go.
                    let mut seen = Vec::new();
                    let _ = guarded.read_to_end(&mut seen).await;
                    let _ = guarded.write_all(b"<actix>").await;
                    let _ = guarded.shutdown().await;
                    drop(guarded);
                    owed.answer().await;
                    seen
                });
                client.write_all(client_sends).await.unwrap_or_default();
                if let Some(pause) = pause {
                    tokio::time::sleep(pause).await;
                }
                let mut answer = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await;
                // The client is done: the server's drain ends with its close.
                drop(client);
                (server_task.await.unwrap_or_default(), answer)
            })
            .await
    }

    #[tokio::test]
    async fn a_refused_head_ends_actix_input_and_is_answered_after_what_actix_wrote() {
        let (seen, answer) = serve(
            Limits::default(),
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n",
            None,
        )
        .await;
        assert_eq!(seen, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(String::from_utf8_lossy(&answer), "<actix>HTTP/1.1 400 X\r\nConnection: close\r\n\r\n");
    }

    #[tokio::test]
    async fn a_slow_head_is_answered_408() {
        let limits = Limits { head_timeout: Duration::from_millis(200), ..Limits::default() };
        let (seen, answer) = serve(limits, b"GET / HTTP/1.1\r\nHo", None).await;
        assert!(seen.is_empty());
        assert!(String::from_utf8_lossy(&answer).ends_with("HTTP/1.1 408 X\r\nConnection: close\r\n\r\n"));
    }
}

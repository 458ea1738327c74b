//! One TCP connection to one broker: framing, correlation ids, pipelining, version
//! negotiation and request timeouts.
//!
//! Shape: a writer task owns the write half and a reader task owns the read half. A request is
//! encoded by the caller, handed to the writer through a channel (so a caller that gives up can
//! never leave half a frame on the socket), and registered in the in-flight queue *before* its
//! bytes are written. Kafka answers requests on one connection in order, so the reader expects
//! each response to carry the correlation id at the front of that queue.
//!
//! Invariants:
//! - Any protocol violation (garbage frame, oversized size prefix, a correlation id that is not
//!   next in line, a truncated frame) closes the connection; every request in flight fails with
//!   the same typed [`NetError::Closed`]. A closed connection is never reused.
//! - A request that gets no answer within its timeout closes the connection: a late answer would
//!   otherwise be matched to the wrong request.
//! - The connection counts requests in flight and remembers when it was last used, so the pool
//!   can reap idle connections without ever closing one that is still waiting for an answer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Request, StrBytes, VersionRange,
};
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use super::error::{CloseReason, ConnectCause, NetError};
use super::frame::{buffer_for_frame, frame_with_size, FrameReader};
use super::sasl;
use super::security::Security;
use super::transport::{self, ReadHalf, WriteHalf};
use super::versions::{BrokerCompat, BrokerVersions};

/// KIP-368: a new session is opened when this share of the broker's session lifetime has
/// passed (the Java client re-authenticates between 85% and 95% of it).
const SESSION_RENEWAL_SHARE: f64 = 0.85;

/// Settings for one connection.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    pub client_id: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub max_frame_bytes: usize,
    /// Quirks of the broker to allow for (`net.broker_compat`); Apache Kafka's protocol by
    /// default.
    pub compat: BrokerCompat,
    /// TLS and SASL (`[security]`); plaintext by default.
    pub security: Security,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        Self {
            client_id: "wasmkafka".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_frame_bytes: 100 * 1024 * 1024,
            compat: BrokerCompat::Kafka,
            security: Security::default(),
        }
    }
}

/// Per-request overrides.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendOptions {
    /// Use exactly this version instead of negotiating one.
    pub version: Option<i16>,
    /// Wait this long for the answer instead of the connection's request timeout (long polls
    /// add their max wait to it).
    pub timeout: Option<Duration>,
}

type Reply = Result<Bytes, NetError>;

struct InFlight {
    correlation_id: i32,
    reply: oneshot::Sender<Reply>,
}

struct Outgoing {
    frame: Bytes,
    in_flight: InFlight,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<InFlight>,
    closed: Option<CloseReason>,
}

/// State shared by the handle and the two I/O tasks.
struct Shared {
    broker: i32,
    addr: String,
    queue: Mutex<Queue>,
    closed: AtomicBool,
    closed_notify: Notify,
    in_flight: AtomicUsize,
    created: Instant,
    last_used_ms: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Closes the connection once; fails everything in flight with the reason.
    fn close(&self, reason: CloseReason) {
        let waiting = {
            let mut queue = self.queue.lock().expect("connection queue poisoned");
            if queue.closed.is_some() {
                return;
            }
            queue.closed = Some(reason.clone());
            std::mem::take(&mut queue.waiting)
        };
        self.closed.store(true, Ordering::Release);
        self.closed_notify.notify_waiters();
        tracing::debug!(broker = self.broker, addr = %self.addr, %reason, "connection closed");
        for in_flight in waiting {
            let _ = in_flight.reply.send(Err(self.closed_error(reason.clone())));
        }
    }

    /// Why the connection closed (`ClosedByClient` if it has not recorded a reason).
    fn close_reason(&self) -> CloseReason {
        let queue = self.queue.lock().expect("connection queue poisoned");
        queue.closed.clone().unwrap_or(CloseReason::ClosedByClient)
    }

    fn closed_error(&self, reason: CloseReason) -> NetError {
        NetError::Closed {
            addr: self.addr.clone(),
            reason,
        }
    }

    /// Resolves once the connection is closed; race-free because interest is registered
    /// before the flag is checked.
    async fn wait_closed(&self) {
        loop {
            let notified = self.closed_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    fn touch(&self) {
        let ms = self.created.elapsed().as_millis() as u64;
        self.last_used_ms.store(ms, Ordering::Relaxed);
    }
}

struct Inner {
    shared: Arc<Shared>,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    next_correlation_id: AtomicI32,
    versions: BrokerVersions,
    options: ConnectionOptions,
    client_id: StrBytes,
    tasks: [JoinHandle<()>; 2],
    /// When a SASL session should be replaced by a new connection (KIP-368).
    renew_session_at: Option<Instant>,
    /// How long the ApiVersions handshake took.
    handshake_round_trip: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.close(CloseReason::ClosedByClient);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A cheap, cloneable handle to one broker connection. The socket closes when the last handle
/// is dropped or on [`Connection::close`].
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("broker", &self.inner.shared.broker)
            .field("addr", &self.inner.shared.addr)
            .field("open", &self.is_open())
            .finish()
    }
}

impl Connection {
    /// Connects (TCP, then TLS when configured), starts the I/O tasks, negotiates API versions
    /// and authenticates with SASL when configured.
    pub async fn connect(
        broker: i32,
        addr: &str,
        options: ConnectionOptions,
    ) -> Result<Connection, NetError> {
        let connect_error = |cause: ConnectCause| NetError::connect(broker, addr, cause);
        let (read_half, write_half) =
            transport::open(broker, addr, &options.security, options.connect_timeout).await?;
        let sasl = options.security.sasl.clone();
        let mut connection = Self::start(
            broker,
            addr,
            (read_half, write_half),
            options,
            BrokerVersions::default(),
        );
        let asked = Instant::now();
        let versions = connection
            .negotiate_versions()
            .await
            .map_err(|error| match error {
                // TLS 1.3: a broker that refuses the client certificate says so with an alert
                // after the handshake, on the first read.
                NetError::Closed {
                    reason: CloseReason::Tls(reason),
                    ..
                } => NetError::Tls {
                    addr: addr.to_string(),
                    reason,
                },
                other => connect_error(ConnectCause::ApiVersions(Box::new(other))),
            })?;
        // Restart the handle with the negotiated table; the tasks and socket stay the same.
        let inner = Arc::get_mut(&mut connection.inner)
            .expect("no other handle exists during the handshake");
        inner.versions = versions;
        inner.handshake_round_trip = asked.elapsed();
        if let Some(sasl) = &sasl {
            let started = Instant::now();
            let lifetime =
                sasl::authenticate(&connection, sasl)
                    .await
                    .map_err(|error| match error {
                        NetError::Authentication { .. }
                        | NetError::OAuthBearer { .. }
                        | NetError::OAuthToken { .. } => error,
                        other => connect_error(ConnectCause::Sasl(Box::new(other))),
                    })?;
            let inner = Arc::get_mut(&mut connection.inner)
                .expect("no other handle exists during the handshake");
            inner.renew_session_at =
                lifetime.map(|lifetime| started + lifetime.mul_f64(SESSION_RENEWAL_SHARE));
        }
        Ok(connection)
    }

    fn start(
        broker: i32,
        addr: &str,
        (read_half, write_half): (ReadHalf, WriteHalf),
        options: ConnectionOptions,
        versions: BrokerVersions,
    ) -> Connection {
        let shared = Arc::new(Shared {
            broker,
            addr: addr.to_string(),
            queue: Mutex::new(Queue::default()),
            closed: AtomicBool::new(false),
            closed_notify: Notify::new(),
            in_flight: AtomicUsize::new(0),
            created: Instant::now(),
            last_used_ms: Default::default(),
        });
        let (outgoing, outgoing_rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_loop(shared.clone(), write_half, outgoing_rx));
        let reader = tokio::spawn(read_loop(
            shared.clone(),
            read_half,
            options.max_frame_bytes,
        ));
        Connection {
            inner: Arc::new(Inner {
                shared,
                outgoing,
                next_correlation_id: AtomicI32::new(1),
                versions,
                client_id: StrBytes::from_string(options.client_id.clone()),
                options,
                tasks: [writer, reader],
                renew_session_at: None,
                handshake_round_trip: Duration::ZERO,
            }),
        }
    }

    /// ApiVersions v3, falling back to v0 for brokers that answer UNSUPPORTED_VERSION (they
    /// answer in v0 format then).
    async fn negotiate_versions(&self) -> Result<BrokerVersions, NetError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("wasmkafka"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        const UNSUPPORTED_VERSION: i16 = 35;
        let mut response = None;
        for version in [3, 0] {
            let options = SendOptions {
                version: Some(version),
                timeout: None,
            };
            match self.send_with(&request, options).await {
                Ok((_, answer)) if answer.error_code == UNSUPPORTED_VERSION => continue,
                Ok((_, answer)) => {
                    response = Some(answer);
                    break;
                }
                Err(NetError::Decode { .. }) => continue,
                Err(other) => return Err(other),
            }
        }
        let response: ApiVersionsResponse = response.ok_or_else(|| NetError::Decode {
            addr: self.addr().to_string(),
            api: "ApiVersions".into(),
            version: 0,
            reason: "no ApiVersions version was accepted".into(),
        })?;
        if response.error_code != 0 {
            return Err(NetError::Decode {
                addr: self.addr().to_string(),
                api: "ApiVersions".into(),
                version: 0,
                reason: format!("error code {}", response.error_code),
            });
        }
        Ok(BrokerVersions::new(response.api_keys.iter().map(|k| {
            (
                k.api_key,
                VersionRange {
                    min: k.min_version,
                    max: k.max_version,
                },
            )
        })))
    }

    /// Sends a request with the negotiated version and waits for its answer.
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Response, NetError> {
        Ok(self.send_with(request, SendOptions::default()).await?.1)
    }

    /// Sends a request with per-request options; returns the version used and the answer.
    pub async fn send_with<R: Request>(
        &self,
        request: &R,
        options: SendOptions,
    ) -> Result<(i16, R::Response), NetError> {
        let api = ApiKey::try_from(R::KEY).expect("every Request type has a known ApiKey");
        let version = match options.version {
            Some(version) => version,
            None => self.version_for::<R>(api)?,
        };
        let correlation_id = self
            .inner
            .next_correlation_id
            .fetch_add(1, Ordering::Relaxed);
        let frame = self.encode(api, version, correlation_id, request)?;
        let timeout = options
            .timeout
            .unwrap_or(self.inner.options.request_timeout);
        let body = self.round_trip(api, correlation_id, frame, timeout).await?;
        let response = self.decode::<R>(api, version, body)?;
        Ok((version, response))
    }

    /// The version this connection uses for a request type.
    pub fn version_for<R: Request>(&self, api: ApiKey) -> Result<i16, NetError> {
        let cap = self.inner.options.compat.max_version(api);
        self.inner
            .versions
            .pick(api, R::VERSIONS, cap)
            .map_err(|broker_range| NetError::UnsupportedVersion {
                addr: self.addr().to_string(),
                api: format!("{api:?}"),
                client_min: R::VERSIONS.min,
                client_max: cap.unwrap_or(R::VERSIONS.max),
                broker_range,
            })
    }

    /// The broker's announced range for an API key (for diagnostics and feature checks).
    pub fn broker_versions(&self) -> &BrokerVersions {
        &self.inner.versions
    }

    fn encode<R: Request>(
        &self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        request: &R,
    ) -> Result<Bytes, NetError> {
        let encode_error = |reason: String| NetError::Encode {
            api: format!("{api:?}"),
            version,
            reason,
        };
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.inner.client_id.clone()));
        let mut buf = buffer_for_frame();
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(|e| encode_error(e.to_string()))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| encode_error(e.to_string()))?;
        frame_with_size(buf).map_err(|e| encode_error(e.to_string()))
    }

    fn decode<R: Request>(
        &self,
        api: ApiKey,
        version: i16,
        mut body: Bytes,
    ) -> Result<R::Response, NetError> {
        let decode_error = |reason: String| NetError::Decode {
            addr: self.addr().to_string(),
            api: format!("{api:?}"),
            version,
            reason,
        };
        ResponseHeader::decode(&mut body, R::Response::header_version(version))
            .map_err(|e| decode_error(format!("header: {e:#}")))?;
        let response =
            R::Response::decode(&mut body, version).map_err(|e| decode_error(format!("{e:#}")))?;
        if body.has_remaining() {
            tracing::trace!(api = ?api, version, extra = body.remaining(), "response had trailing bytes");
        }
        Ok(response)
    }

    async fn round_trip(
        &self,
        api: ApiKey,
        correlation_id: i32,
        frame: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, NetError> {
        let shared = &self.inner.shared;
        let (reply, answer) = oneshot::channel();
        let outgoing = Outgoing {
            frame,
            in_flight: InFlight {
                correlation_id,
                reply,
            },
        };
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        shared.touch();
        let _in_flight = InFlightGuard(shared);
        if let Err(rejected) = self.inner.outgoing.send(outgoing) {
            drop(rejected);
            return Err(shared.closed_error(shared.close_reason()));
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_dropped)) => Err(shared.closed_error(CloseReason::ClosedByClient)),
            Err(_elapsed) => {
                shared.close(CloseReason::RequestTimedOut);
                Err(NetError::RequestTimeout {
                    addr: shared.addr.clone(),
                    api: format!("{api:?}"),
                    correlation_id,
                    timeout,
                })
            }
        }
    }

    /// How long the ApiVersions handshake took: one round trip to the broker with a small
    /// request it answers at once (two against a broker that only speaks ApiVersions v0).
    /// What fetch answers are sized to (`fetch::size`).
    pub fn handshake_round_trip(&self) -> Duration {
        self.inner.handshake_round_trip
    }

    /// The broker id this connection was opened for (negative ids are bootstrap addresses).
    pub fn broker(&self) -> i32 {
        self.inner.shared.broker
    }

    pub fn addr(&self) -> &str {
        &self.inner.shared.addr
    }

    pub fn is_open(&self) -> bool {
        !self.inner.shared.closed.load(Ordering::Acquire)
    }

    /// True when the SASL session is near the end of the lifetime the broker gave it: the pool
    /// opens a new connection for new requests and lets this one finish what is in flight.
    pub fn session_expiring(&self) -> bool {
        self.inner
            .renew_session_at
            .is_some_and(|at| Instant::now() >= at)
    }

    /// Requests sent and not yet answered (or failed).
    pub fn in_flight(&self) -> usize {
        self.inner.shared.in_flight.load(Ordering::Acquire)
    }

    /// Time since a request was last sent on this connection.
    pub fn idle_for(&self) -> Duration {
        let shared = &self.inner.shared;
        let last = Duration::from_millis(shared.last_used_ms.load(Ordering::Relaxed));
        shared.created.elapsed().saturating_sub(last)
    }

    /// True when both handles refer to the same connection.
    pub fn same_as(&self, other: &Connection) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Closes the connection; requests in flight fail with `reason`.
    pub fn close(&self, reason: CloseReason) {
        self.inner.shared.close(reason);
    }

    /// Resolves when the connection has closed.
    pub async fn closed(&self) {
        self.inner.shared.wait_closed().await;
    }
}

struct InFlightGuard<'a>(&'a Shared);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
    }
}

async fn write_loop(
    shared: Arc<Shared>,
    write_half: WriteHalf,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut writer = BufWriter::new(write_half);
    loop {
        let next = tokio::select! {
            next = outgoing.recv() => next,
            _ = shared.wait_closed() => None,
        };
        let Some(first) = next else { break };
        // Write everything that is queued, then flush once (pipelined requests share a syscall).
        let mut batch = vec![first];
        while let Ok(more) = outgoing.try_recv() {
            batch.push(more);
        }
        for Outgoing { frame, in_flight } in batch {
            {
                let mut queue = shared.queue.lock().expect("connection queue poisoned");
                if let Some(reason) = &queue.closed {
                    let _ = in_flight
                        .reply
                        .send(Err(shared.closed_error(reason.clone())));
                    continue;
                }
                queue.waiting.push_back(in_flight);
            }
            if let Err(e) = writer.write_all(&frame).await {
                shared.close(CloseReason::Io(e.into()));
                return;
            }
        }
        if let Err(e) = writer.flush().await {
            shared.close(CloseReason::Io(e.into()));
            return;
        }
    }
    // Fail whatever is still queued in the channel, with the reason the connection closed.
    outgoing.close();
    while let Ok(Outgoing { in_flight, .. }) = outgoing.try_recv() {
        let _ = in_flight
            .reply
            .send(Err(shared.closed_error(shared.close_reason())));
    }
}

async fn read_loop(shared: Arc<Shared>, read_half: ReadHalf, max_frame_bytes: usize) {
    let mut frames = FrameReader::new(read_half, max_frame_bytes);
    loop {
        let frame = tokio::select! {
            frame = frames.next() => frame,
            _ = shared.wait_closed() => return,
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(error) => {
                shared.close(error.into());
                return;
            }
        };
        if frame.len() < 4 {
            shared.close(CloseReason::InvalidFrame(format!(
                "a {}-byte frame has no correlation id",
                frame.len()
            )));
            return;
        }
        let correlation_id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let next = {
            let mut queue = shared.queue.lock().expect("connection queue poisoned");
            match queue.waiting.front() {
                Some(front) if front.correlation_id == correlation_id => queue.waiting.pop_front(),
                Some(front) => {
                    let expected = front.correlation_id;
                    drop(queue);
                    shared.close(CloseReason::CorrelationMismatch {
                        expected,
                        got: correlation_id,
                    });
                    return;
                }
                None => {
                    drop(queue);
                    shared.close(CloseReason::UnexpectedResponse(correlation_id));
                    return;
                }
            }
        };
        if let Some(in_flight) = next {
            // The caller may have given up (dropped its future); that is fine, the stream stays
            // in step because this answer was consumed.
            let _ = in_flight.reply.send(Ok(frame));
        }
    }
}

impl sasl::SaslPeer for Connection {
    fn addr(&self) -> &str {
        Connection::addr(self)
    }

    async fn handshake(
        &self,
        request: SaslHandshakeRequest,
    ) -> Result<SaslHandshakeResponse, NetError> {
        let options = SendOptions {
            version: Some(1),
            timeout: None,
        };
        Ok(self.send_with(&request, options).await?.1)
    }

    async fn authenticate(
        &self,
        request: SaslAuthenticateRequest,
    ) -> Result<SaslAuthenticateResponse, NetError> {
        self.send(&request).await
    }
}

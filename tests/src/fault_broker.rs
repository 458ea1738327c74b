//! A scripted fault broker: what the real test broker cannot do on cue.
//!
//! Several nodes listen on their own loopback ports and share one cluster state: a Metadata
//! answer names every node, topics have chosen leaders and error codes, and a script of faults
//! can be queued per (node, API): delays, dropped answers, closed sockets, truncated answers,
//! garbage bytes, oversized length prefixes and wrong correlation ids. Requests and responses
//! use kafka-protocol's broker-side codecs; custom answers for any API are plugged in with
//! [`FaultCluster::respond_with`]. Topics carry ids (KIP-516) in Metadata answers from v10 on,
//! and the ApiVersions table can be changed per API ([`FaultCluster::withdraw_api`] plays a
//! broker without KIP-848's ConsumerGroupHeartbeat).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataRequest, MetadataResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, StrBytes};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use wasmkafka::net::frame::FrameReader;

/// What a node does with the next matching request instead of answering normally.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer normally after a delay (later requests on the connection wait too, as on Kafka).
    Delay(Duration),
    /// Never answer this request; keep the connection open.
    Drop,
    /// Close the socket without answering.
    Close,
    /// Write the first half of the real answer, then close the socket.
    CloseMidResponse,
    /// Write these raw bytes instead of the answer (keep the connection open).
    Garbage(Vec<u8>),
    /// Write a size prefix claiming `claimed` bytes, then `sent` bytes of body, then keep the
    /// connection open for a moment and close it.
    OversizedLength { claimed: u32, sent: usize },
    /// Answer with a correlation id that is off by `offset`.
    WrongCorrelationId { offset: i32 },
}

/// One request a node received.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub node: i32,
    /// Which accepted connection of the node (1 = the first) carried the request.
    pub connection: u64,
    pub api_key: i16,
    pub version: i16,
    pub correlation_id: i32,
    pub body: Bytes,
}

/// The context a custom responder gets.
pub struct RequestContext<'a> {
    pub node: i32,
    pub header: &'a RequestHeader,
    pub body: Bytes,
    pub cluster: &'a FaultCluster,
}

impl RequestContext<'_> {
    /// Decodes the request body as `T`.
    pub fn decode<T: Decodable>(&self) -> Result<T> {
        T::decode(&mut self.body.clone(), self.header.request_api_version)
    }
}

type Responder = Arc<dyn Fn(&RequestContext<'_>) -> Result<Option<Bytes>> + Send + Sync>;

/// A scripted party's answer to one request (see [`FaultCluster::respond_through`]); `None`
/// means: never answer.
pub type ScriptedAnswer<S> = fn(&S, &RequestContext<'_>) -> Result<Option<Bytes>>;

/// A topic id (KIP-516) as its 16 bytes; all zeros is no id (a broker before Kafka 2.8).
pub type TopicId = [u8; 16];

/// The id [`FaultCluster::add_topic`] gives a topic: derived from its name (the same in every
/// cluster, never all zeros), in the layout of a version 4 UUID.
pub fn default_topic_id(name: &str) -> TopicId {
    // FNV-1a, twice with different offsets: stable across runs and platforms.
    let fnv = |offset: u64| {
        name.bytes().fold(offset, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    let mut id = [0; 16];
    id[..8].copy_from_slice(&fnv(0xcbf2_9ce4_8422_2325).to_be_bytes());
    id[8..].copy_from_slice(&fnv(0x6c62_272e_07bb_0142).to_be_bytes());
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    id
}

/// A topic id as kafka-protocol's `Uuid` (inferred from where it goes: `with_topic_id(uuid(id))`),
/// without naming the `uuid` crate.
pub fn uuid<T>(id: TopicId) -> T
where
    T: TryFrom<Vec<u8>>,
    T::Error: std::fmt::Debug,
{
    T::try_from(id.to_vec()).expect("a topic id has 16 bytes")
}

/// A topic as the fault cluster describes it.
#[derive(Debug, Clone)]
pub struct FaultTopic {
    pub name: String,
    /// (partition, leader node, error code)
    pub partitions: Vec<(i32, i32, i16)>,
}

struct Node {
    id: i32,
    port: u16,
    accepted: AtomicU64,
}

struct State {
    nodes: Vec<Node>,
    /// Node ids named in Metadata answers (a subset of `nodes` to simulate a vanished broker).
    advertised: Mutex<Vec<i32>>,
    topics: Mutex<Vec<FaultTopic>>,
    faults: Mutex<VecDeque<(Option<i32>, ApiKey, Fault)>>,
    responders: Mutex<HashMap<i16, Responder>>,
    /// Leader epochs Metadata answers give partitions (-1 where none was set).
    leader_epochs: Mutex<HashMap<(String, i32), i32>>,
    /// Topic-level error codes of refused topics (see [`FaultCluster::refuse_topic`]).
    refused_topics: Mutex<HashMap<String, i16>>,
    /// Topic ids Metadata answers give topics (KIP-516; v10+ of Metadata carries them).
    topic_ids: Mutex<HashMap<String, TopicId>>,
    api_versions: Mutex<Vec<(i16, i16, i16)>>,
    seen: Mutex<Vec<SeenRequest>>,
    delaying_now: AtomicUsize,
    delaying_max: AtomicUsize,
}

/// A running fault cluster. Dropping it stops every node.
#[derive(Clone)]
pub struct FaultCluster {
    state: Arc<State>,
    tasks: Arc<Vec<JoinHandle<()>>>,
}

impl FaultCluster {
    /// Starts `nodes` brokers with ids 1..=nodes on free loopback ports.
    pub async fn start(nodes: usize) -> Result<FaultCluster> {
        let mut listeners = Vec::new();
        for id in 1..=nodes as i32 {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            listeners.push((id, listener));
        }
        let state = Arc::new(State {
            nodes: listeners
                .iter()
                .map(|(id, l)| Node {
                    id: *id,
                    port: l.local_addr().expect("bound").port(),
                    accepted: AtomicU64::new(0),
                })
                .collect(),
            advertised: Mutex::new((1..=nodes as i32).collect()),
            topics: Mutex::default(),
            faults: Mutex::default(),
            responders: Mutex::default(),
            leader_epochs: Mutex::default(),
            refused_topics: Mutex::default(),
            topic_ids: Mutex::default(),
            api_versions: Mutex::new(default_api_versions()),
            seen: Mutex::default(),
            delaying_now: AtomicUsize::new(0),
            delaying_max: AtomicUsize::new(0),
        });
        let mut tasks = Vec::new();
        let cluster_for_tasks = Arc::downgrade(&state);
        for (id, listener) in listeners {
            let state = cluster_for_tasks.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        return;
                    };
                    let Some(state) = state.upgrade() else { return };
                    let connection = state
                        .nodes
                        .iter()
                        .find(|n| n.id == id)
                        .map_or(0, |n| n.accepted.fetch_add(1, Ordering::SeqCst) + 1);
                    let _ = socket.set_nodelay(true);
                    let cluster = FaultCluster {
                        state,
                        tasks: Arc::new(Vec::new()),
                    };
                    tokio::spawn(async move { cluster.serve(id, connection, socket).await });
                }
            }));
        }
        Ok(FaultCluster {
            state,
            tasks: Arc::new(tasks),
        })
    }

    /// `127.0.0.1:port` of a node.
    pub fn addr(&self, node: i32) -> String {
        format!("127.0.0.1:{}", self.node(node).port)
    }

    pub fn port(&self, node: i32) -> u16 {
        self.node(node).port
    }

    fn node(&self, id: i32) -> &Node {
        self.state
            .nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no fault node {id}"))
    }

    /// TCP connections a node accepted so far.
    pub fn accepted(&self, node: i32) -> u64 {
        self.node(node).accepted.load(Ordering::SeqCst)
    }

    /// Adds a topic; `leaders[i]` leads partition `i`.
    pub fn add_topic(&self, name: &str, leaders: &[i32]) {
        let partitions = leaders
            .iter()
            .enumerate()
            .map(|(p, leader)| (p as i32, *leader, 0))
            .collect();
        self.state.topics.lock().unwrap().push(FaultTopic {
            name: name.to_string(),
            partitions,
        });
        self.state
            .topic_ids
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_insert_with(|| default_topic_id(name));
    }

    /// The topics, as Metadata answers describe them.
    pub fn topics(&self) -> Vec<FaultTopic> {
        self.state.topics.lock().unwrap().clone()
    }

    /// The id Metadata answers give `topic` (see [`default_topic_id`]); `None` for a topic the
    /// cluster does not have or one without an id.
    pub fn topic_id(&self, topic: &str) -> Option<TopicId> {
        self.state
            .topic_ids
            .lock()
            .unwrap()
            .get(topic)
            .copied()
            .filter(|id| *id != [0; 16])
    }

    /// Gives `topic` another id (a topic deleted and created again), or none with `[0; 16]`
    /// (as a broker before KIP-516 answers).
    pub fn set_topic_id(&self, topic: &str, id: TopicId) {
        self.state
            .topic_ids
            .lock()
            .unwrap()
            .insert(topic.to_string(), id);
    }

    /// Sets a partition's leader and error code in Metadata answers (e.g. to move leadership or
    /// answer LEADER_NOT_AVAILABLE).
    pub fn set_partition(&self, topic: &str, partition: i32, leader: i32, error_code: i16) {
        let mut topics = self.state.topics.lock().unwrap();
        let topic = topics
            .iter_mut()
            .find(|t| t.name == topic)
            .unwrap_or_else(|| panic!("no fault topic {topic}"));
        let entry = topic
            .partitions
            .iter_mut()
            .find(|(p, _, _)| *p == partition)
            .unwrap_or_else(|| panic!("no partition {partition}"));
        *entry = (partition, leader, error_code);
    }

    /// Refuses `topic` as Kafka refuses a topic a client may not describe: a Metadata answer
    /// that names it gives `error_code` (TOPIC_AUTHORIZATION_FAILED: 29) and no partitions; an
    /// answer for every topic leaves it out.
    pub fn refuse_topic(&self, topic: &str, error_code: i16) {
        self.state
            .refused_topics
            .lock()
            .unwrap()
            .insert(topic.to_string(), error_code);
    }

    /// Answers for `topic` as usual again (after [`FaultCluster::refuse_topic`]).
    pub fn accept_topic(&self, topic: &str) {
        self.state.refused_topics.lock().unwrap().remove(topic);
    }

    /// Sets the leader epoch Metadata answers give a partition (KIP-320; -1 unless set).
    pub fn set_leader_epoch(&self, topic: &str, partition: i32, epoch: i32) {
        self.state
            .leader_epochs
            .lock()
            .unwrap()
            .insert((topic.to_string(), partition), epoch);
    }

    /// Which nodes Metadata answers name (to make a broker vanish from the cluster).
    pub fn advertise(&self, nodes: &[i32]) {
        *self.state.advertised.lock().unwrap() = nodes.to_vec();
    }

    /// Queues a fault for the next request of `api` on `node` (any node with `None`).
    pub fn inject(&self, node: Option<i32>, api: ApiKey, fault: Fault) {
        self.state
            .faults
            .lock()
            .unwrap()
            .push_back((node, api, fault));
    }

    /// Answers `api` with a custom responder (returning `None` means: never answer).
    pub fn respond_with<F>(&self, api: ApiKey, responder: F)
    where
        F: Fn(&RequestContext<'_>) -> Result<Option<Bytes>> + Send + Sync + 'static,
    {
        self.state
            .responders
            .lock()
            .unwrap()
            .insert(api as i16, Arc::new(responder));
    }

    /// Answers each API of `answers` with its method of `scripted` (called on a clone of it,
    /// so a scripted party whose clones share their state answers from that state): how the
    /// scripted coordinators and the scripted log plug in.
    pub fn respond_through<S>(&self, scripted: &S, answers: &[(ApiKey, ScriptedAnswer<S>)])
    where
        S: Clone + Send + Sync + 'static,
    {
        for &(api, answer) in answers {
            let scripted = scripted.clone();
            self.respond_with(api, move |ctx| answer(&scripted, ctx));
        }
    }

    /// The ApiVersions table the nodes announce: (api key, min, max).
    pub fn api_versions(&self) -> Vec<(i16, i16, i16)> {
        self.state.api_versions.lock().unwrap().clone()
    }

    /// Replaces the ApiVersions table: (api key, min, max).
    pub fn set_api_versions(&self, versions: Vec<(i16, i16, i16)>) {
        *self.state.api_versions.lock().unwrap() = versions;
    }

    /// Announces `api` in ApiVersions answers with this range (replacing the one announced).
    /// Clients ask once per connection: set it before the client connects.
    pub fn announce_api(&self, api: ApiKey, min: i16, max: i16) {
        let mut versions = self.state.api_versions.lock().unwrap();
        versions.retain(|(key, _, _)| *key != api as i16);
        versions.push((api as i16, min, max));
    }

    /// Leaves `api` out of ApiVersions answers, as a broker that does not implement it
    /// (ConsumerGroupHeartbeat: a broker before KIP-848). Set before the client connects.
    pub fn withdraw_api(&self, api: ApiKey) {
        self.state
            .api_versions
            .lock()
            .unwrap()
            .retain(|(key, _, _)| *key != api as i16);
    }

    /// Every request received so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.state.seen.lock().unwrap().clone()
    }

    /// How many requests are being delayed right now.
    pub fn delaying_now(&self) -> usize {
        self.state.delaying_now.load(Ordering::SeqCst)
    }

    /// The most requests that were being delayed at the same moment (a concurrency probe).
    pub fn max_concurrently_delayed(&self) -> usize {
        self.state.delaying_max.load(Ordering::SeqCst)
    }

    fn take_fault(&self, node: i32, api: i16) -> Option<Fault> {
        let mut faults = self.state.faults.lock().unwrap();
        let index = faults
            .iter()
            .position(|(n, a, _)| *a as i16 == api && n.is_none_or(|n| n == node))?;
        faults.remove(index).map(|(_, _, fault)| fault)
    }

    async fn serve(&self, node: i32, connection: u64, socket: TcpStream) {
        let (read, mut socket) = socket.into_split();
        let mut frames = FrameReader::new(read, 64 * 1024 * 1024);
        loop {
            let Ok(frame) = frames.next().await else {
                return;
            };
            let mut body = frame.clone();
            let Ok(header) = decode_request_header_from_buffer(&mut body) else {
                return;
            };
            self.state.seen.lock().unwrap().push(SeenRequest {
                node,
                connection,
                api_key: header.request_api_key,
                version: header.request_api_version,
                correlation_id: header.correlation_id,
                body: body.clone(),
            });
            let fault = self.take_fault(node, header.request_api_key);
            if let Some(Fault::Delay(delay)) = &fault {
                let now = self.state.delaying_now.fetch_add(1, Ordering::SeqCst) + 1;
                self.state.delaying_max.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(*delay).await;
                self.state.delaying_now.fetch_sub(1, Ordering::SeqCst);
            }
            let context = RequestContext {
                node,
                header: &header,
                body,
                cluster: self,
            };
            let answer = match self.answer(&context) {
                Ok(Some(answer)) => answer,
                Ok(None) => continue,
                Err(error) => {
                    eprintln!("fault broker node {node}: cannot answer: {error:#}");
                    return;
                }
            };
            let correlation_id = match &fault {
                Some(Fault::WrongCorrelationId { offset }) => header.correlation_id + offset,
                _ => header.correlation_id,
            };
            let Ok(response) = frame_response(&header, correlation_id, &answer) else {
                return;
            };
            let written = match fault {
                None | Some(Fault::Delay(_)) | Some(Fault::WrongCorrelationId { .. }) => {
                    socket.write_all(&response).await
                }
                Some(Fault::Drop) => Ok(()),
                Some(Fault::Close) => return,
                Some(Fault::CloseMidResponse) => {
                    let _ = socket.write_all(&response[..response.len() / 2]).await;
                    return;
                }
                Some(Fault::Garbage(bytes)) => socket.write_all(&bytes).await,
                Some(Fault::OversizedLength { claimed, sent }) => {
                    let mut bytes = claimed.to_be_bytes().to_vec();
                    bytes.extend(std::iter::repeat_n(0xAB, sent));
                    let _ = socket.write_all(&bytes).await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return;
                }
            };
            if written.is_err() {
                return;
            }
        }
    }

    fn answer(&self, context: &RequestContext<'_>) -> Result<Option<Bytes>> {
        let api = context.header.request_api_key;
        let responder = self.state.responders.lock().unwrap().get(&api).cloned();
        if let Some(responder) = responder {
            return responder(context);
        }
        let version = context.header.request_api_version;
        match ApiKey::try_from(api).map_err(|_| anyhow!("unknown api key {api}"))? {
            ApiKey::ApiVersions => Ok(Some(encode(&self.api_versions_response(), version)?)),
            ApiKey::Metadata => {
                let request: MetadataRequest = context.decode()?;
                Ok(Some(encode(&self.metadata_response(&request), version)?))
            }
            other => Err(anyhow!("no responder for {other:?}; use respond_with")),
        }
    }

    fn api_versions_response(&self) -> ApiVersionsResponse {
        let api_keys = self
            .state
            .api_versions
            .lock()
            .unwrap()
            .iter()
            .map(|(key, min, max)| {
                ApiVersion::default()
                    .with_api_key(*key)
                    .with_min_version(*min)
                    .with_max_version(*max)
            })
            .collect();
        ApiVersionsResponse::default().with_api_keys(api_keys)
    }

    /// The Metadata answer: every advertised node, the requested (or all) topics.
    pub fn metadata_response(&self, request: &MetadataRequest) -> MetadataResponse {
        let advertised = self.state.advertised.lock().unwrap().clone();
        let brokers = self
            .state
            .nodes
            .iter()
            .filter(|n| advertised.contains(&n.id))
            .map(|n| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(n.id))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(n.port as i32)
            })
            .collect();
        let wanted: Option<Vec<String>> = request.topics.as_ref().map(|topics| {
            topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect()
        });
        let leader_epochs = self.state.leader_epochs.lock().unwrap().clone();
        let refused = self.state.refused_topics.lock().unwrap().clone();
        let topic_ids = self.state.topic_ids.lock().unwrap().clone();
        let topics = self
            .state
            .topics
            .lock()
            .unwrap()
            .iter()
            .filter(|t| match &wanted {
                None => !refused.contains_key(&t.name),
                Some(wanted) => wanted.contains(&t.name),
            })
            .map(|t| {
                if let Some(code) = refused.get(&t.name) {
                    return MetadataResponseTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
                        .with_error_code(*code);
                }
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
                    // Encoded from v10 on only: older answers stay as they were.
                    .with_topic_id(uuid(topic_ids.get(&t.name).copied().unwrap_or_default()))
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|(p, leader, error)| {
                                MetadataResponsePartition::default()
                                    .with_partition_index(*p)
                                    .with_leader_id(BrokerId(*leader))
                                    .with_leader_epoch(
                                        leader_epochs
                                            .get(&(t.name.clone(), *p))
                                            .copied()
                                            .unwrap_or(-1),
                                    )
                                    .with_error_code(*error)
                                    .with_replica_nodes(vec![BrokerId(*leader)])
                                    .with_isr_nodes(vec![BrokerId(*leader)])
                            })
                            .collect(),
                    )
            })
            .collect();
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_controller_id(BrokerId(1))
            .with_cluster_id(Some(StrBytes::from_static_str("fault-cluster")))
            .with_topics(topics)
    }
}

impl Drop for FaultCluster {
    fn drop(&mut self) {
        if Arc::strong_count(&self.tasks) == 1 {
            for task in self.tasks.iter() {
                task.abort();
            }
        }
    }
}

/// Encodes a response body at a version.
pub fn encode<T: Encodable>(message: &T, version: i16) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    message
        .encode(&mut buf, version)
        .with_context(|| format!("encoding {} v{version}", std::any::type_name::<T>()))?;
    Ok(buf.freeze())
}

fn frame_response(header: &RequestHeader, correlation_id: i32, body: &[u8]) -> Result<Bytes> {
    let api = ApiKey::try_from(header.request_api_key).map_err(|_| anyhow!("unknown api key"))?;
    // ApiVersions answers always use header v0; the codec's table knows that.
    let header_version = api.response_header_version(header.request_api_version);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0, 0, 0, 0]);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, header_version)?;
    buf.extend_from_slice(body);
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// The ApiVersions table the fault nodes announce by default.
fn default_api_versions() -> Vec<(i16, i16, i16)> {
    [
        (ApiKey::Produce, 3, 9),
        (ApiKey::Fetch, 4, 12),
        (ApiKey::ListOffsets, 1, 7),
        (ApiKey::OffsetForLeaderEpoch, 3, 4),
        (ApiKey::Metadata, 1, 12),
        (ApiKey::OffsetCommit, 2, 8),
        (ApiKey::OffsetFetch, 1, 7),
        (ApiKey::FindCoordinator, 0, 3),
        (ApiKey::JoinGroup, 0, 7),
        (ApiKey::Heartbeat, 0, 4),
        (ApiKey::LeaveGroup, 0, 4),
        (ApiKey::SyncGroup, 0, 5),
        (ApiKey::ApiVersions, 0, 3),
        // KIP-848 (Kafka 4.0): classic members never use it; withdraw it to play an older
        // broker (FaultCluster::withdraw_api).
        (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    ]
    .into_iter()
    .map(|(key, min, max)| (key as i16, min, max))
    .collect()
}

//! The wire client against the scripted fault broker: every fault gives a typed error, no
//! panic, and the pool recovers on the next request.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, MetadataRequest};
use wasmkafka::client::{Client, ClientError};
use wasmkafka::cluster::MetadataOptions;
use wasmkafka::net::{
    CloseReason, ConnKey, ConnectionOptions, NetError, Pool, PoolOptions, Purpose,
};
use wasmkafka_tests::fault_broker::{Fault, FaultCluster};

fn options() -> PoolOptions {
    PoolOptions {
        connection: ConnectionOptions {
            request_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            max_frame_bytes: 16 * 1024 * 1024,
            ..ConnectionOptions::default()
        },
        reconnect_backoff: Duration::from_millis(10),
        reconnect_backoff_max: Duration::from_millis(50),
        ..PoolOptions::default()
    }
}

async fn cluster_and_client(nodes: usize) -> (FaultCluster, Client) {
    wasmkafka_tests::init_tracing();
    let cluster = FaultCluster::start(nodes).await.unwrap();
    cluster.add_topic("t", &[1]);
    let client = Client::new(vec![cluster.addr(1)], options());
    client.refresh_metadata().await.unwrap();
    (cluster, client)
}

fn metadata_request() -> MetadataRequest {
    MetadataRequest::default().with_topics(None)
}

/// Injects `fault` into the next Metadata request on node 1, checks the typed error, then checks
/// that the next request on the same key succeeds on a new connection.
async fn fault_then_recover(fault: Fault) -> NetError {
    let (cluster, client) = cluster_and_client(1).await;
    client
        .send(1, Purpose::Default, &metadata_request())
        .await
        .unwrap();
    let accepted_before = cluster.accepted(1);
    cluster.inject(Some(1), ApiKey::Metadata, fault);
    let error = match client.send(1, Purpose::Default, &metadata_request()).await {
        Err(ClientError::Net(error)) => error,
        other => panic!("expected a network error, got {other:?}"),
    };
    let answer = client.send(1, Purpose::Default, &metadata_request()).await;
    assert!(answer.is_ok(), "the pool did not recover: {answer:?}");
    assert_eq!(
        cluster.accepted(1),
        accepted_before + 1,
        "recovery should reconnect once"
    );
    error
}

fn closed_reason(error: NetError) -> CloseReason {
    match error {
        NetError::Closed { reason, .. } => reason,
        other => panic!("expected a closed connection, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_frame_without_correlation_id_is_a_typed_error() {
    let error = fault_then_recover(Fault::Garbage(vec![0, 0, 0, 2, 0xde, 0xad])).await;
    assert!(
        matches!(closed_reason(error), CloseReason::InvalidFrame(_)),
        "a 2-byte frame has no correlation id"
    );
}

#[tokio::test]
async fn garbage_bytes_that_look_like_a_frame_close_the_connection() {
    // A well-formed size prefix around random bytes: the "correlation id" is wrong.
    let error = fault_then_recover(Fault::Garbage(vec![
        0, 0, 0, 6, 0x13, 0x37, 0xbe, 0xef, 1, 2,
    ]))
    .await;
    assert!(matches!(
        closed_reason(error),
        CloseReason::CorrelationMismatch {
            got: 0x1337beef,
            ..
        }
    ));
}

#[tokio::test]
async fn negative_size_prefix_is_a_typed_error() {
    let error = fault_then_recover(Fault::Garbage(vec![0xff, 0xff, 0xff, 0xf0])).await;
    assert!(matches!(closed_reason(error), CloseReason::InvalidFrame(_)));
}

#[tokio::test]
async fn oversized_length_prefix_is_refused_before_reading() {
    let error = fault_then_recover(Fault::OversizedLength {
        claimed: 0x7fff_fff0,
        sent: 16,
    })
    .await;
    assert_eq!(
        closed_reason(error),
        CloseReason::FrameTooLarge {
            claimed: 0x7fff_fff0,
            limit: 16 * 1024 * 1024
        }
    );
}

/// Resident memory of this process in bytes (Linux).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test]
async fn a_large_claimed_size_within_the_limit_is_not_allocated_up_front() {
    // 15 MiB claimed (under the 16 MiB limit), 16 bytes sent, then the socket closes. Four of
    // these at once (one per purpose) would cost 60 MiB if the claimed size were allocated.
    let (cluster, client) = cluster_and_client(1).await;
    let before = resident_bytes();
    let mut tasks = Vec::new();
    for purpose in Purpose::ALL {
        cluster.inject(
            Some(1),
            ApiKey::Metadata,
            Fault::OversizedLength {
                claimed: 15 * 1024 * 1024,
                sent: 16,
            },
        );
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            client.send(1, purpose, &metadata_request()).await
        }));
    }
    for task in tasks {
        match task.await.unwrap() {
            Err(ClientError::Net(error)) => assert!(
                matches!(
                    closed_reason(error.clone()),
                    CloseReason::Truncated { read: 16, expected } if expected == 15 * 1024 * 1024
                ),
                "{error}"
            ),
            other => panic!("expected a truncated frame, got {other:?}"),
        }
    }
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 30 * 1024 * 1024,
        "memory grew by {grown} bytes for 4 x 16 bytes received"
    );
}

#[tokio::test]
async fn socket_closed_mid_response_is_a_typed_error() {
    let error = fault_then_recover(Fault::CloseMidResponse).await;
    assert!(matches!(
        closed_reason(error),
        CloseReason::Truncated { .. }
    ));
}

#[tokio::test]
async fn socket_closed_without_answer_is_a_typed_error() {
    let error = fault_then_recover(Fault::Close).await;
    assert_eq!(closed_reason(error), CloseReason::PeerClosed);
}

#[tokio::test]
async fn wrong_correlation_id_closes_the_connection() {
    let error = fault_then_recover(Fault::WrongCorrelationId { offset: 7 }).await;
    assert!(matches!(
        closed_reason(error),
        CloseReason::CorrelationMismatch { .. }
    ));
}

#[tokio::test]
async fn unanswered_request_times_out_and_closes_the_connection() {
    let error = fault_then_recover(Fault::Drop).await;
    assert!(
        matches!(error, NetError::RequestTimeout { timeout, .. } if timeout == Duration::from_secs(2)),
        "{error}"
    );
}

#[tokio::test]
async fn a_failure_fails_every_request_in_flight_on_that_connection() {
    let (cluster, client) = cluster_and_client(1).await;
    let connection = client.connection(1, Purpose::Default).await.unwrap();
    // The first answer is delayed, the second truncated: both callers must see an error.
    cluster.inject(
        Some(1),
        ApiKey::Metadata,
        Fault::Delay(Duration::from_millis(200)),
    );
    cluster.inject(Some(1), ApiKey::Metadata, Fault::CloseMidResponse);
    let request = metadata_request();
    let (first, second, third) = tokio::join!(
        connection.send(&request),
        connection.send(&request),
        connection.send(&request)
    );
    assert!(first.is_ok(), "the delayed answer still arrives: {first:?}");
    assert!(matches!(second, Err(NetError::Closed { .. })), "{second:?}");
    assert!(matches!(third, Err(NetError::Closed { .. })), "{third:?}");
    assert!(!connection.is_open());
}

#[tokio::test]
async fn pipelined_requests_share_one_connection() {
    let (cluster, client) = cluster_and_client(1).await;
    let connection = client.connection(1, Purpose::Default).await.unwrap();
    let accepted = cluster.accepted(1);
    // The first answer is held back so the other 49 requests pile up behind it in flight.
    cluster.inject(
        Some(1),
        ApiKey::Metadata,
        Fault::Delay(Duration::from_millis(300)),
    );
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let connection = connection.clone();
            tokio::spawn(async move { connection.send(&metadata_request()).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        connection.in_flight(),
        50,
        "all 50 requests are in flight at once"
    );
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        cluster.accepted(1),
        accepted,
        "pipelining must not open connections"
    );
    let ids: Vec<i32> = cluster
        .seen()
        .iter()
        .filter(|r| r.api_key == ApiKey::Metadata as i16 && r.connection == accepted)
        .map(|r| r.correlation_id)
        .collect();
    assert_eq!(ids.len(), 50);
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "correlation ids must be unique per connection"
    );
}

#[tokio::test]
async fn three_brokers_in_metadata_get_their_own_connections() {
    let (cluster, client) = cluster_and_client(3).await;
    let metadata = client.metadata();
    assert_eq!(
        metadata.brokers.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for broker in [1, 2, 3] {
        for purpose in Purpose::ALL {
            client
                .send(broker, purpose, &metadata_request())
                .await
                .unwrap();
        }
    }
    let open = client.pool().open_connections();
    let per_broker: Vec<ConnKey> = open
        .iter()
        .map(|(k, _)| *k)
        .filter(|k| k.broker > 0)
        .collect();
    assert_eq!(
        per_broker.len(),
        Purpose::ALL.len() * 3,
        "every purpose x 3 brokers: {per_broker:?}"
    );
    for (key, connection) in &open {
        if key.broker > 0 {
            assert_eq!(connection.addr(), cluster.addr(key.broker), "{key:?}");
        }
    }
    // Node 1 also served the bootstrap connection.
    let purposes = Purpose::ALL.len() as u64;
    assert_eq!(cluster.accepted(1), purposes + 1);
    assert_eq!(cluster.accepted(2), purposes);
    assert_eq!(cluster.accepted(3), purposes);
}

#[tokio::test]
async fn a_broker_that_leaves_the_metadata_loses_its_connections() {
    let (cluster, client) = cluster_and_client(3).await;
    let to_three = client.connection(3, Purpose::Fetch).await.unwrap();
    cluster.advertise(&[1, 2]);
    let metadata = client.refresh_metadata().await.unwrap();
    assert!(!metadata.brokers.contains_key(&3));
    assert!(
        !to_three.is_open(),
        "connections to a vanished broker are closed"
    );
    assert!(matches!(
        client.send(3, Purpose::Fetch, &metadata_request()).await,
        Err(ClientError::Net(NetError::UnknownBroker(3)))
    ));
}

#[tokio::test]
async fn hundred_callers_for_one_key_make_one_tcp_connect() {
    let (cluster, client) = cluster_and_client(1).await;
    // Slow handshakes widen the window in which callers pile up.
    cluster.inject(
        Some(1),
        ApiKey::ApiVersions,
        Fault::Delay(Duration::from_millis(300)),
    );
    let accepted = cluster.accepted(1);
    let pool = client.pool().clone();
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let pool = pool.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                pool.get(ConnKey::new(1, Purpose::Fetch)).await
            })
        })
        .collect();
    let mut connections = Vec::new();
    for task in tasks {
        connections.push(task.await.unwrap().unwrap());
    }
    assert!(
        connections
            .iter()
            .all(|c| c.same_as(&connections[0]) && c.is_open()),
        "every caller got the same open connection"
    );
    assert_eq!(
        cluster.accepted(1) - accepted,
        1,
        "one TCP connect for 100 callers"
    );
    assert_eq!(
        pool.open_connections()
            .iter()
            .filter(|(k, _)| k.broker == 1)
            .count(),
        1
    );
}

#[tokio::test]
async fn different_keys_connect_in_parallel() {
    let cluster = FaultCluster::start(1).await.unwrap();
    let pool = Pool::new(options());
    pool.set_address(1, cluster.addr(1));
    for _ in Purpose::ALL {
        cluster.inject(
            Some(1),
            ApiKey::ApiVersions,
            Fault::Delay(Duration::from_millis(400)),
        );
    }
    let tasks: Vec<_> = Purpose::ALL
        .into_iter()
        .map(|purpose| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get(ConnKey::new(1, purpose)).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        cluster.max_concurrently_delayed(),
        Purpose::ALL.len(),
        "every handshake was in progress at once (no global connect lock)"
    );
}

#[tokio::test]
async fn concurrent_callers_share_a_connect_failure_and_later_ones_retry() {
    let pool = Pool::new(options());
    // A port nobody listens on.
    let dead = wasmkafka_tests::kafka::free_port().unwrap();
    pool.set_address(7, format!("127.0.0.1:{dead}"));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.get(ConnKey::new(7, Purpose::Default)).await })
        })
        .collect();
    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert!(
            matches!(error, NetError::Connect { broker: 7, .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("is the broker running"),
            "{error}"
        );
    }
    let attempts = pool.stats().connect_attempts;
    assert!(
        attempts < 20,
        "callers queued behind a failing connect share it ({attempts} attempts)"
    );
    pool.get(ConnKey::new(7, Purpose::Default))
        .await
        .unwrap_err();
    assert_eq!(
        pool.stats().connect_attempts,
        attempts + 1,
        "a later caller tries again"
    );
}

#[tokio::test]
async fn idle_connections_are_reaped_but_never_with_a_request_in_flight() {
    let cluster = FaultCluster::start(1).await.unwrap();
    let pool = Pool::new(PoolOptions {
        idle_timeout: Duration::from_millis(150),
        ..options()
    });
    pool.set_address(1, cluster.addr(1));
    let idle = pool.get(ConnKey::new(1, Purpose::Default)).await.unwrap();
    let busy = pool.get(ConnKey::new(1, Purpose::Fetch)).await.unwrap();
    cluster.inject(
        Some(1),
        ApiKey::Metadata,
        Fault::Delay(Duration::from_millis(1200)),
    );
    let request = metadata_request();
    let answer = busy.send(&request);
    let check = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        (idle.is_open(), busy.is_open())
    };
    let (answer, (idle_open, busy_open)) = tokio::join!(answer, check);
    assert!(!idle_open, "the idle connection was reaped");
    assert!(
        busy_open,
        "the connection with a request in flight was not reaped"
    );
    assert!(answer.is_ok(), "{answer:?}");
    assert!(pool.stats().reaped >= 1);
    // A reaped key reconnects on demand.
    let again = pool.get(ConnKey::new(1, Purpose::Default)).await.unwrap();
    assert!(again.is_open());
}

#[tokio::test]
async fn stale_metadata_errors_make_the_next_lookup_refresh() {
    let (cluster, client) = cluster_and_client(2).await;
    assert_eq!(
        client.fresh_metadata().await.unwrap().leader("t", 0),
        Some(1)
    );
    let metadata_requests = || {
        cluster
            .seen()
            .iter()
            .filter(|r| r.api_key == ApiKey::Metadata as i16)
            .count()
    };
    let before = metadata_requests();
    // Fresh metadata is served from the cache.
    client.fresh_metadata().await.unwrap();
    assert_eq!(metadata_requests(), before);
    // Leadership moves; a NOT_LEADER_OR_FOLLOWER answer marks the cache stale.
    cluster.set_partition("t", 0, 2, 0);
    client.observe_error(ResponseError::NotLeaderOrFollower);
    assert_eq!(
        client.fresh_metadata().await.unwrap().leader("t", 0),
        Some(2)
    );
    assert_eq!(metadata_requests(), before + 1);
    // An error unrelated to metadata does not.
    client.observe_error(ResponseError::OffsetOutOfRange);
    client.fresh_metadata().await.unwrap();
    assert_eq!(metadata_requests(), before + 1);
    // A leaderless partition is reported as such.
    cluster.set_partition("t", 0, -1, ResponseError::LeaderNotAvailable.code());
    client.observe_error(ResponseError::UnknownTopicOrPartition);
    let metadata = client.fresh_metadata().await.unwrap();
    assert_eq!(metadata.leader("t", 0), None);
    assert_eq!(
        metadata.topics["t"].partitions[&0].error,
        Some(ResponseError::LeaderNotAvailable)
    );
}

#[tokio::test]
async fn a_connection_failure_marks_metadata_stale() {
    let (cluster, client) = cluster_and_client(2).await;
    client.fresh_metadata().await.unwrap();
    let before = cluster.seen().len();
    cluster.inject(Some(2), ApiKey::Metadata, Fault::Close);
    assert!(client
        .send(2, Purpose::Default, &metadata_request())
        .await
        .is_err());
    client.fresh_metadata().await.unwrap();
    let refreshed = cluster.seen()[before..]
        .iter()
        .filter(|r| r.api_key == ApiKey::Metadata as i16)
        .count();
    assert_eq!(refreshed, 2, "the failed request, then a refresh");
}

fn metadata_requests(cluster: &FaultCluster) -> usize {
    cluster
        .seen()
        .iter()
        .filter(|r| r.api_key == ApiKey::Metadata as i16)
        .count()
}

async fn client_with_ages(cluster: &FaultCluster, min_age: Duration) -> Client {
    let client = Client::with_metadata_options(
        vec![cluster.addr(1)],
        options(),
        MetadataOptions {
            min_age,
            max_age: Duration::from_secs(60),
        },
    );
    client.refresh_metadata().await.unwrap();
    client
}

#[tokio::test]
async fn refreshes_asked_for_within_the_floor_share_one_metadata_request() {
    wasmkafka_tests::init_tracing();
    let cluster = FaultCluster::start(1).await.unwrap();
    cluster.add_topic("t", &[1]);
    let floor = Duration::from_millis(400);
    let client = client_with_ages(&cluster, floor).await;
    let refreshed_at = Instant::now();
    let before = metadata_requests(&cluster);
    // Eight callers at once, half of them after an error marked the cache stale.
    client.observe_error(ResponseError::NotLeaderOrFollower);
    let callers: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    client.refresh_metadata().await
                } else {
                    client.fresh_metadata().await
                }
            })
        })
        .collect();
    let mut generations = BTreeSet::new();
    for caller in callers {
        generations.insert(caller.await.unwrap().unwrap().generation);
    }
    assert_eq!(
        metadata_requests(&cluster),
        before + 1,
        "one request for all"
    );
    assert_eq!(generations.len(), 1, "every caller got the same answer");
    assert!(
        refreshed_at.elapsed() >= floor - Duration::from_millis(20),
        "the refresh waited for the floor: {:?}",
        refreshed_at.elapsed()
    );
    assert!(!client.metadata_is_stale());
}

/// The floor is per topic: a lookup answered a moment ago is served from the cache, and one
/// naming a topic not asked for lately goes out at once (what a group leader does right after
/// its own rejoin's lookup). The same topics asked for again within the floor wait for it.
#[tokio::test]
async fn by_name_lookups_wait_the_floor_only_for_topics_asked_for_lately() {
    wasmkafka_tests::init_tracing();
    let cluster = FaultCluster::start(1).await.unwrap();
    cluster.add_topic("mine", &[1]);
    cluster.add_topic("theirs", &[1, 1]);
    // A floor no test waits out: a lookup that waited for it would not end in time.
    let client = Client::with_metadata_options(
        vec![cluster.addr(1)],
        options(),
        MetadataOptions {
            min_age: Duration::from_secs(60),
            max_age: Duration::from_secs(600),
        },
    );
    let lookup = |topics: &'static [&'static str]| {
        let client = client.clone();
        async move {
            let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
            tokio::time::timeout(Duration::from_secs(10), client.refresh_topics(&topics))
                .await
                .map(|answer| answer.unwrap())
        }
    };
    let before = metadata_requests(&cluster);
    let answer = lookup(&["mine"])
        .await
        .expect("nothing asked yet: no floor");
    assert_eq!(answer.partition_counts(&["mine".to_string()])["mine"], 1);
    assert_eq!(metadata_requests(&cluster), before + 1);

    let again = lookup(&["mine"]).await.expect("served from the cache");
    assert_eq!(again.generation, answer.generation);
    assert_eq!(metadata_requests(&cluster), before + 1, "no second request");

    let wider = lookup(&["mine", "theirs"])
        .await
        .expect("a topic not asked for lately does not wait");
    assert_eq!(wider.partition_counts(&["theirs".to_string()])["theirs"], 2);
    assert_eq!(metadata_requests(&cluster), before + 2);
    lookup(&["theirs", "mine"])
        .await
        .expect("served from the cache");
    assert_eq!(metadata_requests(&cluster), before + 2);

    // Marked stale, the cache is not served; asking for the same topics again waits.
    client.observe_error(ResponseError::NotLeaderOrFollower);
    let waiting = tokio::spawn(lookup(&["mine"]));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "the lookup waits for the floor");
    assert_eq!(metadata_requests(&cluster), before + 2);
    waiting.abort();
}

#[tokio::test]
async fn a_cache_marked_stale_again_and_again_refreshes_at_the_floor_only() {
    wasmkafka_tests::init_tracing();
    let cluster = FaultCluster::start(1).await.unwrap();
    cluster.add_topic("t", &[1]);
    let client = client_with_ages(&cluster, Duration::from_millis(250)).await;
    // A leader is being elected: every answer says LEADER_NOT_AVAILABLE.
    cluster.set_partition("t", 0, -1, ResponseError::LeaderNotAvailable.code());
    let before = metadata_requests(&cluster);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1100) {
        client.observe_error(ResponseError::LeaderNotAvailable);
        let metadata = client.fresh_metadata().await.unwrap();
        assert_eq!(metadata.leader("t", 0), None);
    }
    let refreshes = metadata_requests(&cluster) - before;
    assert!(
        (3..=5).contains(&refreshes),
        "{refreshes} refreshes in 1.1 s with a 250 ms floor"
    );
}

#[tokio::test]
async fn an_answer_for_some_topics_keeps_the_others() {
    wasmkafka_tests::init_tracing();
    let cluster = FaultCluster::start(2).await.unwrap();
    cluster.add_topic("t", &[1]);
    cluster.add_topic("u", &[1, 1]);
    let client = client_with_ages(&cluster, Duration::from_millis(10)).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    cluster.set_partition("t", 0, 2, 0);
    let metadata = client.refresh_topics(&["t".to_string()]).await.unwrap();
    assert_eq!(metadata.leader("t", 0), Some(2));
    assert_eq!(
        metadata.topics["u"].partitions.len(),
        2,
        "u was not asked about"
    );
    let asked = cluster.seen().last().cloned().unwrap();
    assert_eq!(asked.api_key, ApiKey::Metadata as i16);
    // The answer for `t` alone does not count as an answer for every topic.
    assert_eq!(metadata.all_topics_generation, 1);
    assert_eq!(metadata.generation, 2);
}

//! A TCP proxy that holds every chunk it forwards for a fixed time, in each direction: a round
//! trip through it costs twice that delay, with no limit on bandwidth. A slow link on
//! loopback (this machine's kernel has no `netem` qdisc): a broker that advertises the proxy's
//! port gets every client connection through it. `wasmkafka-bench --rtt-ms` and the fetch-size
//! test use it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::kafka::{Kafka, KafkaOptions};

/// The most one read takes from a socket before it is queued.
const CHUNK: usize = 256 * 1024;

/// A running proxy on a loopback port. Connections wait until an upstream address is set.
pub struct DelayProxy {
    port: u16,
    /// The delay in each direction, in microseconds; a change applies to chunks read after it.
    one_way_us: Arc<AtomicU64>,
    upstream: watch::Sender<Option<String>>,
}

impl DelayProxy {
    /// Binds a free loopback port and starts accepting, with no delay and no upstream yet.
    pub async fn listen() -> Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let one_way_us = Arc::new(AtomicU64::new(0));
        let (upstream, upstream_rx) = watch::channel(None);
        tokio::spawn(accept_loop(listener, upstream_rx, one_way_us.clone()));
        Ok(DelayProxy {
            port,
            one_way_us,
            upstream,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where connections go (`host:port`); connections accepted before wait for it.
    pub fn set_upstream(&self, addr: String) {
        self.upstream.send_replace(Some(addr));
    }

    /// Sets the delay in each direction (half the round trip it adds).
    pub fn set_one_way_delay(&self, delay: Duration) {
        self.one_way_us
            .store(delay.as_micros() as u64, Ordering::Relaxed);
    }
}

/// A single Apache Kafka node behind `proxy`: it advertises the proxy's port, and the proxy
/// forwards to it, so every client connection after the first metadata answer crosses the
/// proxy.
pub async fn kafka_behind(proxy: &DelayProxy) -> Result<Kafka> {
    let kafka = Kafka::start_with(KafkaOptions {
        overrides: vec![(
            "advertised.listeners".into(),
            format!("PLAINTEXT://127.0.0.1:{}", proxy.port()),
        )],
        ..KafkaOptions::default()
    })
    .await?;
    proxy.set_upstream(kafka.addr());
    Ok(kafka)
}

async fn accept_loop(
    listener: TcpListener,
    upstream: watch::Receiver<Option<String>>,
    one_way_us: Arc<AtomicU64>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let mut upstream = upstream.clone();
        let one_way_us = one_way_us.clone();
        tokio::spawn(async move {
            let Ok(addr) = upstream.wait_for(Option::is_some).await.map(|a| a.clone()) else {
                return;
            };
            let Ok(server) = TcpStream::connect(addr.expect("waited for Some")).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(forward(client_read, server_write, one_way_us.clone()));
            forward(server_read, client_write, one_way_us).await;
        });
    }
}

/// Copies `from` to `to`, each chunk written no earlier than the delay after it was read, in
/// order. At the end of `from`, shuts down `to`'s write side.
async fn forward(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, one_way_us: Arc<AtomicU64>) {
    let (queue, mut queued) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        loop {
            let mut chunk = vec![0; CHUNK];
            match from.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    chunk.truncate(n);
                    let delay = Duration::from_micros(one_way_us.load(Ordering::Relaxed));
                    if queue.send((Instant::now() + delay, chunk)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    while let Some((due, chunk)) = queued.recv().await {
        tokio::time::sleep_until(due).await;
        if to.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that echoes what it reads.
    async fn echo_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.into_split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_round_trip_takes_twice_the_delay_and_bytes_arrive_whole_in_order() {
        let proxy = DelayProxy::listen().await.unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port()))
            .await
            .unwrap();
        // Accepted before the upstream is known: the connection waits for it.
        proxy.set_upstream(echo_server().await);
        proxy.set_one_way_delay(Duration::from_millis(30));

        let started = std::time::Instant::now();
        client.write_all(b"ping").await.unwrap();
        let mut answer = [0; 4];
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"ping");
        let round_trip = started.elapsed();
        assert!(
            round_trip >= Duration::from_millis(60),
            "a round trip through a 30 ms proxy took {round_trip:?}"
        );

        // Several MB in many chunks come back byte for byte.
        let sent: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (mut read, mut write) = client.into_split();
        let writer = tokio::spawn({
            let sent = sent.clone();
            async move {
                write.write_all(&sent).await.unwrap();
                write.shutdown().await.unwrap();
            }
        });
        let mut echoed = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), read.read_to_end(&mut echoed))
            .await
            .expect("the echo ended")
            .unwrap();
        writer.await.unwrap();
        assert_eq!(echoed.len(), sent.len());
        assert!(echoed == sent, "the echoed bytes differ from those sent");
    }
}

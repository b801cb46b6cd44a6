//! A WebSocket subscriber that stops reading is closed instead of being buffered for without
//! bound: the server reads a page at a time and gives up on a send after the send timeout.

use prom_runtime::gateway::GatewayOptions;
use prom_runtime::testing::Harness;
use prom_runtime::{MemoryBus, PublishOptions};
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const SPEC: &str = r#"
topics:
  blob.stored:
    versions:
      1:
        schema:
          type: object
          required: [n, data]
          properties:
            n: { type: integer }
            data: { type: string }
"#;

/// Far more than loopback socket buffers hold (about 38 MiB in all).
const EVENTS: i64 = 600;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_stops_reading_is_disconnected_before_the_backlog_is_sent() {
    let options = GatewayOptions::default().with_send_timeout(Duration::from_millis(300)).with_page_size(20);
    let harness = Harness::gateway_only(MemoryBus::new().into(), SPEC, options).await.expect("harness");
    let data = "x".repeat(64 * 1024);
    for first in (0..EVENTS).step_by(50) {
        let batch = (first..first + 50)
            .map(|n| ("blob.stored".to_string(), json!({ "n": n, "data": data }), PublishOptions::default()))
            .collect();
        harness.producer().publish_all(batch).await.expect("publish");
    }
    let url = format!("ws://{}/topics/blob.stored/events?from=earliest", harness.address());
    // A small receive window, so the server's sends stall soon after the client stops reading.
    let tcp = tokio::net::TcpSocket::new_v4().expect("socket");
    tcp.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let tcp = tcp.connect(harness.address()).await.expect("connect");
    let (mut socket, _) = tokio_tungstenite::client_async(&url, tcp).await.expect("handshake");
    // Not reading: the server's sends stall once the socket buffers are full.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut received = 0;
    let mut close = None;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(20), futures_util::StreamExt::next(&mut socket))
            .await
            .expect("the session ends instead of hanging");
        match next {
            Some(Ok(Message::Text(_))) => {
                received += 1;
                if received == EVENTS {
                    break;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                close = frame;
                break;
            }
            Some(Ok(_)) => {}
            // The close frame may not fit in the full buffer: then the connection just ends.
            Some(Err(_)) | None => break,
        }
    }
    assert!(received < EVENTS, "the server gave up on the slow client ({received} of {EVENTS} events sent)");
    if let Some(frame) = close {
        assert_eq!(u16::from(frame.code), 1008);
        assert!(frame.reason.contains("did not read"), "{}", frame.reason);
    }
    harness.stop().await.expect("stop");
}

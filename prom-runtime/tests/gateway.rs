//! The HTTP gateway in process ([`Harness`]): real HTTP requests (reqwest), real SSE parsing and
//! a real WebSocket client (tokio-tungstenite) against the real server.

mod common;

use common::sse::{JsonBody, SseStream};
use prom_runtime::gateway::{GatewayOptions, Tokens};
use prom_runtime::testing::Harness;
use prom_runtime::{AnyBus, EventBus, MemoryBus};
use serde_json::{Value, json};
use std::time::Duration;

const SPEC: &str = r#"
topics:
  heartbeat.received:
    key: /processId
    partitions: 4
    versions:
      1:
        schema:
          type: object
          required: [processId, seq]
          additionalProperties: false
          properties:
            processId: { type: string }
            seq: { type: integer, minimum: 0 }
"#;

const TOPIC_URL: &str = "/topics/heartbeat.received/events";
const WAIT: Duration = Duration::from_secs(10);

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().expect("client")
}

fn beat(seq: i64) -> Value {
    json!({ "processId": "p1", "seq": seq })
}

async fn body(response: reqwest::Response) -> Value {
    serde_json::from_str(&response.text().await.expect("body")).expect("JSON body")
}

async fn head(harness: &Harness) -> i64 {
    harness.producer().bus().heads("heartbeat.received").await.expect("head").total()
}

#[tokio::test]
async fn publishing_validates_stores_and_answers_with_a_receipt() {
    let harness = Harness::memory(SPEC).await.expect("harness");
    let client = http();
    let url = harness.url(TOPIC_URL);

    let response = client.post(&url).json_body(&beat(1)).send().await.expect("publish");
    assert_eq!(response.status(), 201);
    let receipt = body(response).await;
    assert_eq!(receipt["offset"], 1);
    assert_eq!(receipt["duplicate"], false);
    assert!(receipt["id"].as_str().is_some_and(|id| id.len() == 36), "{receipt}");
    assert!(receipt["partition"].as_u64().is_some_and(|p| p < 4), "{receipt}");

    // A retry with the same Idempotency-Key gets the same receipt, marked duplicate.
    let first =
        client.post(&url).header("idempotency-key", "k-1").json_body(&beat(2)).send().await.expect("publish");
    let first = body(first).await;
    let retry =
        client.post(&url).header("idempotency-key", "k-1").json_body(&beat(2)).send().await.expect("retry");
    assert_eq!(retry.status(), 201);
    let retry = body(retry).await;
    assert_eq!(
        (retry["id"].clone(), retry["offset"].clone()),
        (first["id"].clone(), first["offset"].clone())
    );
    assert_eq!((first["duplicate"].clone(), retry["duplicate"].clone()), (json!(false), json!(true)));
    assert_eq!(head(&harness).await, 2);

    // Invalid: 400, each JSON pointer and reason listed, nothing stored.
    let response =
        client.post(&url).json_body(&json!({ "processId": 7, "seq": -1 })).send().await.expect("invalid");
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem = body(response).await;
    assert_eq!(problem["type"], "tag:prom,2026:problem/invalid-payload");
    let pointers: Vec<&str> =
        problem["errors"].as_array().expect("errors").iter().filter_map(|e| e["pointer"].as_str()).collect();
    assert!(pointers.contains(&"/processId") && pointers.contains(&"/seq"), "{problem}");
    assert!(problem["errors"][0]["reason"].as_str().is_some_and(|r| !r.is_empty()), "{problem}");
    let not_json = client
        .post(&url)
        .body("{\"seq\": ")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("send");
    assert_eq!(not_json.status(), 400);
    assert!(body(not_json).await["detail"].as_str().is_some_and(|d| d.contains("line 1, column")));
    assert_eq!(head(&harness).await, 2, "nothing stored");

    // Unknown topic, wrong media type, unknown method.
    let response =
        client.post(harness.url("/topics/nope/events")).json_body(&beat(1)).send().await.expect("send");
    assert_eq!(response.status(), 404);
    assert!(body(response).await["detail"].as_str().is_some_and(|d| d.contains("`nope`")));
    let response =
        client.post(&url).header("content-type", "text/plain").body("x").send().await.expect("send");
    assert_eq!(response.status(), 415);
    let response = client.delete(&url).send().await.expect("send");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    harness.stop().await.expect("stop");
}

#[tokio::test]
async fn ndjson_batches_publish_atomically_and_bodies_over_the_limit_get_413() {
    let options = GatewayOptions::default().with_max_body_bytes(200);
    let harness = Harness::gateway_only(MemoryBus::new().into(), SPEC, options).await.expect("harness");
    let client = http();
    let url = harness.url(TOPIC_URL);
    let ndjson = |lines: &[Value]| lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");

    // One bad line: the batch is refused, the line named, nothing stored.
    let bad = ndjson(&[beat(1), json!({ "processId": "p1" }), beat(3)]);
    let response = client
        .post(&url)
        .header("content-type", "application/x-ndjson")
        .body(bad)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 400);
    let problem = body(response).await;
    assert_eq!(problem["line"], 2, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "", "{problem}");
    assert_eq!(head(&harness).await, 0);

    let good = ndjson(&[beat(1), beat(2), beat(3)]);
    let response = client
        .post(&url)
        .header("content-type", "application/x-ndjson")
        .body(good)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 201);
    let receipts = body(response).await;
    let offsets: Vec<i64> =
        receipts["events"].as_array().expect("events").iter().filter_map(|r| r["offset"].as_i64()).collect();
    assert_eq!(offsets, [1, 2, 3]);

    // Over 200 bytes: 413, whether announced by Content-Length or streamed without one.
    let large = json!({ "processId": "p".repeat(300), "seq": 1 });
    let response = client.post(&url).json_body(&large).send().await.expect("send");
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert_eq!(chunked_post_status(&harness, &"p".repeat(300)).await, 413, "counted while streaming");
    assert_eq!(chunked_post_status(&harness, "p1").await, 201, "a small chunked body is taken");
    assert_eq!(head(&harness).await, 4);
    harness.stop().await.expect("stop");
}

/// POSTs a payload with `processId` = `id` in chunked encoding (no `Content-Length`); the status.
async fn chunked_post_status(harness: &Harness, id: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(harness.address()).await.expect("connect");
    let body = json!({ "processId": id, "seq": 1 }).to_string();
    let mut request = format!(
        "POST {TOPIC_URL} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    for piece in body.as_bytes().chunks(64) {
        request.push_str(&format!("{:x}\r\n{}\r\n", piece.len(), std::str::from_utf8(piece).expect("ASCII")));
    }
    request.push_str("0\r\n\r\n");
    socket.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, socket.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    answer.get(9..12).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("no status in {answer:?}"))
}

#[tokio::test]
async fn sse_streams_events_with_offsets_as_ids_and_resumes_after_last_event_id() {
    let harness = Harness::memory(SPEC).await.expect("harness");
    let client = http();
    let url = harness.url(TOPIC_URL);
    let mut live = SseStream::open(&client, &format!("{url}?from=latest"), &[]).await;
    for seq in 1..=3 {
        let response = client.post(&url).json_body(&beat(seq)).send().await.expect("publish");
        assert_eq!(response.status(), 201);
    }
    for seq in 1..=3 {
        let event = live.next(WAIT).await.expect("an event");
        assert_eq!(event.id.as_deref(), Some(seq.to_string().as_str()));
        let record: Value = serde_json::from_str(&event.data).expect("JSON data");
        assert_eq!(record["payload"], beat(seq));
        assert_eq!(record["topic"], "heartbeat.received");
        assert_eq!(record["offset"], seq);
    }
    let mut resumed = SseStream::open(&client, &url, &[("last-event-id", "2")]).await;
    assert_eq!(resumed.next(WAIT).await.expect("event").id.as_deref(), Some("3"));
    let mut from = SseStream::open(&client, &format!("{url}?from=2"), &[]).await;
    assert_eq!(from.next(WAIT).await.expect("event").id.as_deref(), Some("2"));

    for (query, status) in [("?from=soon", 400), ("?limit=1", 400), ("?group=g&from=3", 400)] {
        let response = client.get(format!("{url}{query}")).send().await.expect("send");
        assert_eq!(response.status(), status, "{query}");
        assert_eq!(response.headers()["content-type"], "application/problem+json");
    }
    let response = client.get(harness.url("/topics/nope/events")).send().await.expect("send");
    assert_eq!(response.status(), 404);
    // Stopping the server ends open streams.
    harness.stop().await.expect("stop");
    assert_eq!(live.next(WAIT).await, None);
}

#[tokio::test]
async fn sse_ids_are_topic_positions_on_a_store_numbering_per_partition() {
    let bus: AnyBus = MemoryBus::per_partition().into();
    let harness = Harness::gateway_only(bus, SPEC, GatewayOptions::default()).await.expect("harness");
    let client = http();
    let url = harness.url(TOPIC_URL);
    // Eight processes spread over the 4 partitions, whose offsets each start at 1.
    let beats: Vec<Value> =
        (0..16).map(|n| json!({ "processId": format!("p{}", n % 8), "seq": n })).collect();
    for beat in &beats {
        let response = client.post(&url).json_body(beat).send().await.expect("publish");
        assert_eq!(response.status(), 201);
    }
    let mut stream = SseStream::open(&client, &url, &[]).await;
    let mut ids = Vec::new();
    for _ in 0..beats.len() {
        let event = stream.next(WAIT).await.expect("an event");
        let record: Value = serde_json::from_str(&event.data).expect("JSON data");
        ids.push((event.id.expect("an id"), record["payload"]["seq"].as_i64().expect("seq")));
    }
    assert!(ids.iter().any(|(id, _)| id.contains(':')), "vector ids: {ids:?}");
    // Resuming after any id gives exactly the events not yet received, by header or query.
    for (at, (id, _)) in ids.iter().enumerate().step_by(5) {
        let rest: std::collections::BTreeSet<i64> = ids[at + 1..].iter().map(|(_, seq)| *seq).collect();
        for resume in [Some(id.as_str()), None] {
            let mut resumed = match resume {
                Some(id) => SseStream::open(&client, &url, &[("last-event-id", id)]).await,
                None => SseStream::open(&client, &format!("{url}?after={id}"), &[]).await,
            };
            let mut got = std::collections::BTreeSet::new();
            for _ in 0..rest.len() {
                let event = resumed.next(WAIT).await.expect("an event");
                let record: Value = serde_json::from_str(&event.data).expect("JSON data");
                got.insert(record["payload"]["seq"].as_i64().expect("seq"));
            }
            assert_eq!(got, rest, "after {id}");
        }
    }
    for (query, header) in [("?after=1.x", None), ("?after=3&from=latest", None), ("", Some("-2"))] {
        let mut request = client.get(format!("{url}{query}"));
        if let Some(value) = header {
            request = request.header("last-event-id", value);
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), 400, "{query} {header:?}");
    }
    harness.stop().await.expect("stop");
}

#[tokio::test]
async fn a_group_resumes_where_its_last_stream_left_off() {
    // Quick keep-alives, so a closed stream is noticed at once and its member leaves the group.
    let options = GatewayOptions::default().with_keep_alive(Duration::from_millis(100));
    let harness = Harness::gateway_only(MemoryBus::new().into(), SPEC, options).await.expect("harness");
    let client = http();
    let url = harness.url(TOPIC_URL);
    for seq in 1..=2 {
        client.post(&url).json_body(&beat(seq)).send().await.expect("publish");
    }
    let mut first = SseStream::open(&client, &format!("{url}?group=dashboard"), &[]).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(first.next(WAIT).await.expect("event").id.expect("id"));
    }
    assert_eq!(seen, ["1", "2"]);
    drop(first);
    client.post(&url).json_body(&beat(3)).send().await.expect("publish");
    let mut second = SseStream::open(&client, &format!("{url}?group=dashboard"), &[]).await;
    // At least once: what the first stream took and acked is not sent again once committed.
    let next = second.next(Duration::from_secs(30)).await.expect("event");
    assert_eq!(next.id.as_deref(), Some("3"), "the group's committed position");
    harness.stop().await.expect("stop");
}

#[tokio::test]
async fn a_new_group_from_latest_gets_every_event_published_once_its_stream_is_open() {
    let harness = Harness::gateway_only(MemoryBus::new().into(), SPEC, GatewayOptions::default())
        .await
        .expect("harness");
    let client = http();
    let url = harness.url(TOPIC_URL);
    client.post(&url).json_body(&beat(1)).send().await.expect("publish");
    // The response has started once `open` returns; the group's start is fixed by then.
    let mut stream = SseStream::open(&client, &format!("{url}?group=fresh&from=latest"), &[]).await;
    for seq in 2..=4 {
        client.post(&url).json_body(&beat(seq)).send().await.expect("publish");
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(stream.next(WAIT).await.expect("event").id.expect("id"));
    }
    assert_eq!(seen, ["2", "3", "4"], "not the event before the stream, none after it skipped");
    harness.stop().await.expect("stop");
}

#[tokio::test]
async fn websocket_upgrades_of_the_same_route_stream_events_as_messages() {
    use tokio_tungstenite::tungstenite::Message;
    let harness = Harness::memory(SPEC).await.expect("harness");
    let client = http();
    for seq in 1..=2 {
        client.post(harness.url(TOPIC_URL)).json_body(&beat(seq)).send().await.expect("publish");
    }
    let ws_url = format!("ws://{}{TOPIC_URL}?from=earliest", harness.address());
    let (mut socket, response) = tokio_tungstenite::connect_async(&ws_url).await.expect("connect");
    assert_eq!(response.status(), 101);
    let mut offsets = Vec::new();
    while offsets.len() < 2 {
        let message =
            tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut socket)).await.expect("in time");
        match message.expect("open").expect("message") {
            Message::Text(text) => {
                let record: Value = serde_json::from_str(&text).expect("JSON");
                assert_eq!(record["payload"]["seq"], record["offset"]);
                offsets.push(record["offset"].as_i64().expect("offset"));
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(offsets, [1, 2]);
    // Stopping the server closes the session with 1001 and a reason.
    harness.stop().await.expect("stop");
    let closed = loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut socket)).await.expect("in time") {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = closed.expect("a close frame with a reason");
    assert_eq!(u16::from(frame.code), 1001);
    assert!(frame.reason.contains("stopping"), "{}", frame.reason);
}

#[tokio::test]
async fn tokens_are_checked_before_anything_else() {
    let tokens = Tokens::parse(
        "tokens",
        r#"{"tokens": [
            {"name": "ingest", "token": "ingest-0123456789", "actions": ["publish"], "topics": ["heartbeat.*"]},
            {"name": "watch", "token": "watch-0123456789a", "actions": ["subscribe"], "topics": ["other.*"]}
        ]}"#,
    )
    .expect("tokens");
    let options = GatewayOptions::default().with_tokens(tokens);
    let bus: AnyBus = MemoryBus::new().into();
    let harness = Harness::gateway_only(bus, SPEC, options).await.expect("harness");
    let client = http();
    let url = harness.url(TOPIC_URL);

    let response = client.post(&url).json_body(&beat(1)).send().await.expect("send");
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let response =
        client.post(&url).bearer_auth("ingest-012345678X").json_body(&beat(1)).send().await.expect("send");
    assert_eq!(response.status(), 401);
    let response = client.get(&url).bearer_auth("watch-0123456789a").send().await.expect("send");
    assert_eq!(response.status(), 403);
    let problem = body(response).await;
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("token `watch`") && detail.contains("`subscribe`") && !detail.contains("0123456789"),
        "{detail}"
    );
    let response =
        client.post(&url).bearer_auth("ingest-0123456789").json_body(&beat(1)).send().await.expect("send");
    assert_eq!(response.status(), 201);
    // Paths outside the gateway need `read`.
    let response =
        client.get(harness.url("/anything")).bearer_auth("ingest-0123456789").send().await.expect("send");
    assert_eq!(response.status(), 403);
    harness.stop().await.expect("stop");
}

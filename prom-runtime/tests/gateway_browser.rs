//! Browser token transport: an `EventSource` cannot set `Authorization`, nor can a browser
//! WebSocket, so subscribe routes take the token as `?access_token=` (SSE) or as the WebSocket
//! subprotocol `base64url.bearer.prom.<token>` next to `prom.v1`. Real HTTP (reqwest), real SSE
//! parsing and a real WebSocket client (tokio-tungstenite) against the real server.

mod common;

use common::sse::{JsonBody, SseStream};
use prom_runtime::gateway::browser::{WS_PROTOCOL, WS_TOKEN_PREFIX};
use prom_runtime::gateway::{GatewayOptions, Tokens};
use prom_runtime::testing::Harness;
use prom_runtime::{AnyBus, MemoryBus};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SPEC: &str = r#"
topics:
  heartbeat.received:
    key: /processId
    versions:
      1:
        schema:
          type: object
          required: [processId, seq]
          properties:
            processId: { type: string }
            seq: { type: integer }
"#;

const TOPIC_URL: &str = "/topics/heartbeat.received/events";
const WAIT: Duration = Duration::from_secs(10);
/// A token with characters that need escaping in a URL and cannot stand in a subprotocol.
const WATCH: &str = "watch/0123+4567=89";
const INGEST: &str = "ingest-0123456789";
const OTHER: &str = "other-0123456789ab";

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().expect("client")
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            n |= u32::from(*b) << (16 - 8 * i);
        }
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn harness() -> Harness {
    let tokens = Tokens::parse(
        "tokens",
        &json!({ "tokens": [
            { "name": "watch", "token": WATCH, "actions": ["subscribe"], "topics": ["heartbeat.*"] },
            { "name": "ingest", "token": INGEST, "actions": ["publish"], "topics": ["*"] },
            { "name": "other", "token": OTHER, "actions": ["subscribe"], "topics": ["other.*"] }
        ]})
        .to_string(),
    )
    .expect("tokens");
    let bus: AnyBus = MemoryBus::new().into();
    let harness = Harness::gateway_only(bus, SPEC, GatewayOptions::default().with_tokens(tokens))
        .await
        .expect("harness");
    for seq in 1..=2 {
        let response = http()
            .post(harness.url(TOPIC_URL))
            .bearer_auth(INGEST)
            .json_body(&json!({ "processId": "p1", "seq": seq }))
            .send()
            .await
            .expect("publish");
        assert_eq!(response.status(), 201);
    }
    harness
}

async fn problem(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn sse_takes_the_token_as_access_token_on_subscribe_routes_only() {
    let harness = harness().await;
    let client = http();
    let url = harness.url(TOPIC_URL);
    let mut stream =
        SseStream::open(&client, &format!("{url}?from=earliest&access_token={}", encode(WATCH)), &[]).await;
    let first = stream.next(WAIT).await.expect("an event");
    assert_eq!(first.id.as_deref(), Some("1"));
    assert_eq!(serde_json::from_str::<Value>(&first.data).expect("JSON")["payload"]["seq"], 1);

    // A wrong token: 401; a token for other topics: 403 — neither echoes the token.
    let (status, body) =
        problem(client.get(format!("{url}?access_token=watch-wrong-0123456")).send().await.expect("send"))
            .await;
    assert_eq!(status, 401);
    assert!(body.contains("access_token") && !body.contains("watch-wrong"), "{body}");
    let (status, body) =
        problem(client.get(format!("{url}?access_token={OTHER}")).send().await.expect("send")).await;
    assert_eq!(status, 403);
    assert!(body.contains("token `other`") && !body.contains(OTHER), "{body}");

    // Not on publish, not on other routes, not twice, not with a header too.
    let response = client
        .post(format!("{url}?access_token={INGEST}"))
        .json_body(&json!({ "processId": "p1", "seq": 9 }))
        .send()
        .await
        .expect("send");
    let (status, body) = problem(response).await;
    assert_eq!(status, 400);
    assert!(body.contains("only on GET") && !body.contains(INGEST), "{body}");
    let (status, _) = problem(
        client.get(harness.url(&format!("/anything?access_token={INGEST}"))).send().await.expect("send"),
    )
    .await;
    assert_eq!(status, 400);
    let twice = format!("{url}?access_token={0}&access_token={0}", encode(WATCH));
    assert_eq!(problem(client.get(twice).send().await.expect("send")).await.0, 400);
    let both = client
        .get(format!("{url}?access_token={}", encode(WATCH)))
        .bearer_auth(WATCH)
        .send()
        .await
        .expect("send");
    assert_eq!(problem(both).await.0, 400);
    harness.stop().await.expect("stop");
}

#[tokio::test]
async fn websockets_take_the_token_as_a_subprotocol_and_get_prom_v1_back() {
    let harness = harness().await;
    let ws_url = format!("ws://{}{TOPIC_URL}?from=earliest", harness.address());
    let connect = |token: &str, offer_v1: bool| {
        let mut request = ws_url.as_str().into_client_request().expect("request");
        let mut offered = vec![format!("{WS_TOKEN_PREFIX}{}", base64url(token.as_bytes()))];
        if offer_v1 {
            offered.insert(0, WS_PROTOCOL.to_owned());
        }
        request.headers_mut().insert("sec-websocket-protocol", offered.join(", ").parse().expect("header"));
        tokio_tungstenite::connect_async(request)
    };
    let (mut socket, response) = connect(WATCH, true).await.expect("connect");
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["sec-websocket-protocol"], WS_PROTOCOL, "the token is never echoed");
    let record = loop {
        match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut socket)).await.expect("in time") {
            Some(Ok(Message::Text(text))) => break serde_json::from_str::<Value>(&text).expect("JSON"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(record["offset"], 1);

    for (token, offer_v1, status) in
        [("watch-wrong-0123456", true, 401), (OTHER, true, 403), (WATCH, false, 400)]
    {
        match connect(token, offer_v1).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), status, "{token}");
                let body =
                    String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
                assert!(!body.contains(token) && !body.contains(&base64url(token.as_bytes())), "{body}");
            }
            other => panic!("{token}: expected {status}, got {other:?}"),
        }
    }
    harness.stop().await.expect("stop");
}

/// A page written for a secured server also works on an open one: the parameter is ignored.
#[tokio::test]
async fn an_open_server_ignores_access_token() {
    let harness = Harness::memory(SPEC).await.expect("harness");
    let url = harness.url(TOPIC_URL);
    let mut stream = SseStream::open(&http(), &format!("{url}?from=latest&access_token=anything"), &[]).await;
    let response =
        http().post(&url).json_body(&json!({ "processId": "p1", "seq": 1 })).send().await.expect("publish");
    assert_eq!(response.status(), 201);
    assert_eq!(stream.next(WAIT).await.expect("an event").id.as_deref(), Some("1"));
    harness.stop().await.expect("stop");
}

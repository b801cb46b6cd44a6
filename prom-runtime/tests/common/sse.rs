//! A real Server-Sent Events reader over reqwest: frames split on blank lines, fields parsed as
//! the SSE specification says (comments skipped, `data` lines joined).

use std::time::Duration;

/// One event of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// An open event stream.
pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
}

impl SseStream {
    /// Opens `url` with `Accept: text/event-stream` and `headers`; panics unless it answers 200.
    pub async fn open(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> SseStream {
        let mut request = client.get(url).header("accept", "text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("subscribe");
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(response.headers()["content-type"], "text/event-stream", "{url}");
        SseStream { response, buffer: String::new() }
    }

    /// The next event (comments and keep-alives skipped); `None` when the stream ended. Panics
    /// after `wait` without one.
    pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        tokio::time::timeout(wait, self.next_event()).await.expect("an event in time")
    }

    async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_frame(&frame) {
                    return Some(event);
                }
                continue;
            }
            let chunk = self.response.chunk().await.ok()??;
            self.buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }
}

/// Parses one frame; `None` for a frame of comments only.
fn parse_frame(frame: &str) -> Option<SseEvent> {
    let mut event = SseEvent::default();
    let mut data = Vec::new();
    for line in frame.lines() {
        if line.starts_with(':') || line.is_empty() {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => event.id = Some(value.to_string()),
            "event" => event.event = Some(value.to_string()),
            "data" => data.push(value),
            _ => {}
        }
    }
    if data.is_empty() && event.id.is_none() && event.event.is_none() {
        return None;
    }
    event.data = data.join("\n");
    Some(event)
}

/// `RequestBuilder::json` needs reqwest's `json` feature; this sends the same.
pub trait JsonBody {
    /// Sets `value` as the JSON body.
    fn json_body(self, value: &serde_json::Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, value: &serde_json::Value) -> Self {
        self.header("content-type", "application/json").body(value.to_string())
    }
}

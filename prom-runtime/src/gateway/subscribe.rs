//! `GET /topics/{topic}/events`: the topic as Server-Sent Events, or as WebSocket messages on
//! an upgrade of the same route.
//!
//! A stream reads one page of events (at most [`super::GatewayOptions::page_size`]) only when
//! the connection has taken the previous one, so a slow client costs at most a page plus the
//! connection's write buffer: it is never buffered without bound. An SSE client that takes
//! nothing for the server's idle timeout is disconnected; a WebSocket client that does not
//! read a message within the send timeout is disconnected (with close code 1008 and a reason
//! when the close frame still fits in the connection's buffers).
//!
//! Without `group`, the stream starts at `from` (`earliest`, `latest`, or an offset: that event
//! first), or after `after` or `Last-Event-ID` (a topic position in its text form, as each SSE
//! event's `id` gives it: the position just after that event). With `group`, it joins the consumer group on the topic as a
//! member (partitions are shared with the group's other members) and starts at the group's
//! committed position; events are acknowledged once handed to the connection and committed as
//! the group commits (at least every 200 ms while events flow, and when the stream ends), so
//! an event is delivered at least once to the group: one not yet committed when a connection
//! breaks is delivered again to the next member.

use super::Gateway;
use super::failures::problem_of;
use crate::bus::{AnyBus, EventBus, TopicPosition};
use crate::consumer::{AckMode, Delivery, Start, SubscribeOptions, Subscription};
use crate::error::Error;
use crate::record::EventRecord;
use crate::registry::Route;
use crate::server::ConnectionHold;
use crate::server::problem::{Kind, Problem};
use crate::server::target::parse_query_string;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::header::UPGRADE;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The longest a plain stream waits for new events before looking again.
const WAIT: Duration = Duration::from_secs(1);
/// The longest group name taken.
const MAX_GROUP_LEN: usize = 200;

/// Where a stream starts without a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    Earliest,
    Latest,
    /// This offset first.
    Offset(i64),
}

/// A validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Query {
    from: From,
    /// Resume after this position (like `Last-Event-ID`, for clients that cannot set headers).
    after: Option<TopicPosition>,
    group: Option<String>,
}

pub(super) async fn subscribe(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    match start(gateway, request).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

async fn start(gateway: Arc<Gateway>, request: Request) -> Result<Response, Problem> {
    let topic = super::topic_of(request.uri().path())
        .ok_or_else(|| Problem::new(Kind::NotFound, "the path names no topic"))?;
    let reporter = gateway.options.reporter.clone();
    let doing = format!("subscribing to `{topic}`");
    let partitions = match gateway.producer.registry().route(&topic) {
        Ok(Route::Topic(t) | Route::Versioned(t, _) | Route::DeadLetters(t)) => t.partitions,
        Err(e) => return Err(problem_of(&e, &doing, &reporter)),
    };
    let query = parse(request.uri().query().unwrap_or_default())?;
    let last_event_id = last_event_id(request.headers())?;
    if query.after.is_some() && (query.group.is_some() || query.from != From::Earliest) {
        return Err(Problem::new(
            Kind::BadRequest,
            "`after` resumes a stream without a group where it stopped: give it alone, without `from` or `group`",
        ));
    }
    let source = match &query.group {
        Some(group) => {
            let start = match query.from {
                From::Earliest => Start::Earliest,
                From::Latest => Start::Latest,
                From::Offset(_) => {
                    return Err(Problem::new(
                        Kind::BadRequest,
                        "with `group`, `from` takes `earliest` or `latest` (where the group starts the first \
                         time); the group's committed position says where it resumes",
                    ));
                }
            };
            let options = SubscribeOptions {
                start,
                batch_size: gateway.options.page_size,
                max_in_flight: gateway.options.page_size,
                ack: AckMode::Manual,
                partitions,
                partitioned: true,
                poll_timeout: WAIT,
                ..SubscribeOptions::default()
            };
            // The group's start is fixed before the response starts: with `from=latest` every
            // event published after the client sees the response reaches it.
            let subscription =
                Subscription::subscribe(gateway.producer.bus().clone(), &topic, group, options)
                    .await
                    .map_err(|e| problem_of(&e, &doing, &reporter))?;
            Source::Group { subscription: Some(Box::new(subscription)), handed: Vec::new() }
        }
        None => {
            let after = match (query.after.or(last_event_id), query.from) {
                (Some(seen), _) => seen,
                (None, From::Earliest) => TopicPosition::start(),
                (None, From::Offset(first)) => TopicPosition::after(first - 1),
                (None, From::Latest) => gateway
                    .producer
                    .bus()
                    .heads(&topic)
                    .await
                    .map_err(|e| problem_of(&e, &doing, &reporter))?,
            };
            Source::Plain { after }
        }
    };
    let stream = Stream { gateway: Arc::clone(&gateway), topic, source, stop: gateway.stop.clone() };
    if request.headers().contains_key(UPGRADE) {
        let (mut parts, _) = request.into_parts();
        let hold = parts.extensions.remove::<Arc<ConnectionHold>>();
        let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, &()).await.map_err(|rejection| {
            Problem::new(
                Kind::BadRequest,
                format!("the WebSocket upgrade is malformed: {}", rejection.body_text()),
            )
        })?;
        // Browsers that sent their token as a subprotocol offered `prom.v1` and need it back.
        let upgrade = upgrade.protocols([super::browser::WS_PROTOCOL]);
        let send_timeout = gateway.options.send_timeout;
        let keep_alive = gateway.options.keep_alive;
        return Ok(upgrade.on_upgrade(move |socket| async move {
            let _hold = hold;
            websocket(socket, stream, keep_alive, send_timeout).await;
        }));
    }
    let keep_alive = KeepAlive::new().interval(gateway.options.keep_alive);
    let events = futures_util::stream::unfold((stream, VecDeque::new()), sse_next);
    let mut response = Sse::new(events).keep_alive(keep_alive).into_response();
    // Proxies that buffer would hold events back.
    response.headers_mut().insert("x-accel-buffering", axum::http::HeaderValue::from_static("no"));
    Ok(response)
}

/// Parses `from` and `group`; anything else is refused.
fn parse(raw: &str) -> Result<Query, Problem> {
    let bad = |detail: String| Problem::new(Kind::BadRequest, detail);
    let mut query = Query { from: From::Earliest, after: None, group: None };
    for (name, value) in parse_query_string(raw).map_err(bad)? {
        match name.as_str() {
            "from" => {
                query.from = match value.as_str() {
                    "earliest" => From::Earliest,
                    "latest" => From::Latest,
                    offset => match offset.parse::<i64>() {
                        Ok(n) if n >= 1 => From::Offset(n),
                        _ => {
                            return Err(bad(format!(
                                "`from={offset}`: write `earliest`, `latest`, or an offset (1 or more) to start at"
                            )));
                        }
                    },
                }
            }
            "after" => {
                query.after = Some(value.parse().map_err(|e: crate::bus::PositionError| {
                    bad(format!("`after`: {e}; give the `id` of the last event received"))
                })?);
            }
            "group" => {
                if value.is_empty() || value.len() > MAX_GROUP_LEN || value.chars().any(char::is_control) {
                    return Err(bad(format!(
                        "`group` must be 1 to {MAX_GROUP_LEN} characters, none of them control characters"
                    )));
                }
                query.group = Some(value);
            }
            // A browser's token: the token check took it out already; a server without tokens
            // ignores it, so a page written for a secured server works on an open one too.
            super::browser::ACCESS_TOKEN => {}
            other => {
                return Err(bad(format!(
                    "unknown query parameter `{other}`; this route takes `from`, `after` and `group`"
                )));
            }
        }
    }
    Ok(query)
}

/// The `Last-Event-ID` header: the position after the last event the client received.
fn last_event_id(headers: &HeaderMap) -> Result<Option<TopicPosition>, Problem> {
    let Some(value) = headers.get("last-event-id") else { return Ok(None) };
    match value.to_str().ok().and_then(|text| text.trim().parse::<TopicPosition>().ok()) {
        Some(position) => Ok(Some(position)),
        None => Err(Problem::new(
            Kind::BadRequest,
            "`Last-Event-ID` must be the `id` of an event this route sent (an offset like `42`, or a \
             position like `42.0:57.3:61`)",
        )),
    }
}

/// Where a stream's events come from.
enum Source {
    /// The topic after `after`, which moves past each event read.
    Plain { after: TopicPosition },
    /// A member of a consumer group; `handed` are deliveries given to the connection, acked
    /// when the next page is asked for.
    Group { subscription: Option<Box<Subscription<AnyBus>>>, handed: Vec<Delivery> },
}

impl Drop for Source {
    fn drop(&mut self) {
        // Commit what was acked and leave the group at once, so other members take over.
        if let Source::Group { subscription, .. } = self
            && let Some(subscription) = subscription.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = subscription.close().await;
            });
        }
    }
}

/// One subscriber's stream.
struct Stream {
    gateway: Arc<Gateway>,
    topic: String,
    source: Source,
    stop: watch::Receiver<bool>,
}

/// One item for the client: an event (with its SSE `id`) or a failure to tell it about.
enum Item {
    Event(EventRecord, String),
    Failure(Value),
}

impl Stream {
    /// The next page: `None` once the server stops.
    async fn next_page(&mut self) -> Option<Vec<Item>> {
        loop {
            if *self.stop.borrow() {
                return None;
            }
            let mut stop = self.stop.clone();
            let stopping = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            let page = tokio::select! {
                () = stopping => return None,
                page = self.read() => page,
            };
            match page {
                Ok(records) if records.is_empty() => continue,
                Ok(records) => return Some(records.into_iter().map(|(r, id)| self.decode(r, id)).collect()),
                Err(e) => {
                    let problem =
                        problem_of(&e, &format!("reading `{}`", self.topic), &self.gateway.options.reporter);
                    return Some(vec![Item::Failure(problem.body())]);
                }
            }
        }
    }

    /// Reads one page (empty after a wait without events), each event with its SSE `id`: the
    /// position just after it without a group, its offset with one (the group's cursors say
    /// where it resumes). Cancel-safe.
    async fn read(&mut self) -> Result<Vec<(EventRecord, String)>, Error> {
        let bus = self.gateway.producer.bus();
        let page_size = self.gateway.options.page_size;
        match &mut self.source {
            Source::Plain { after } => {
                let page = bus.read_topic(&self.topic, after, page_size).await?;
                if page.is_empty() {
                    bus.wait(&self.topic, after, WAIT).await;
                }
                let ordered = bus.ordered();
                Ok(page
                    .into_iter()
                    .map(|record| {
                        after.advance(&record, ordered);
                        (record, after.to_string())
                    })
                    .collect())
            }
            Source::Group { subscription, handed } => {
                let Some(subscription) = subscription.as_mut() else { return Err(Error::Closed) };
                for delivery in handed.drain(..) {
                    subscription.ack(&delivery);
                }
                let deliveries = subscription.poll().await?;
                let records =
                    deliveries.iter().map(|d| (d.record.clone(), d.record.offset.to_string())).collect();
                *handed = deliveries;
                Ok(records)
            }
        }
    }

    /// The event upcast to the latest version, or a failure naming it.
    fn decode(&self, record: EventRecord, sse_id: String) -> Item {
        let (offset, id) = (record.offset, record.id);
        match self.gateway.producer.registry().decode(record) {
            Ok(record) => Item::Event(record, sse_id),
            Err(e) => {
                let doing = format!("reading event {id} (offset {offset}) of `{}`", self.topic);
                let body = problem_of(&e, &doing, &self.gateway.options.reporter)
                    .with("offset", json!(offset))
                    .body();
                Item::Failure(body)
            }
        }
    }
}

/// The SSE stream's next event; the stream ends when the server stops.
async fn sse_next(
    (mut stream, mut pending): (Stream, VecDeque<Item>),
) -> Option<(Result<Event, Infallible>, (Stream, VecDeque<Item>))> {
    loop {
        if let Some(item) = pending.pop_front() {
            let event = match item {
                Item::Event(record, id) => Event::default().id(id).json_data(&record).unwrap_or_else(|_| {
                    Event::default().event("error").data("the event could not be written as JSON")
                }),
                Item::Failure(problem) => Event::default().event("error").data(problem.to_string()),
            };
            return Some((Ok(event), (stream, pending)));
        }
        pending.extend(stream.next_page().await?);
    }
}

/// Serves one WebSocket session: each event as a text message (the event as JSON); failures as
/// `{"error": problem}`. Ends when the client closes, the server stops (1001), or the client
/// does not read within `send_timeout` (1008).
async fn websocket(mut socket: WebSocket, mut stream: Stream, keep_alive: Duration, send_timeout: Duration) {
    let mut ping = tokio::time::interval(keep_alive);
    ping.reset();
    loop {
        let outgoing = tokio::select! {
            page = stream.next_page() => match page {
                Some(items) => items,
                None => {
                    close(&mut socket, 1001, "the server is stopping; reconnect to resume", send_timeout).await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                // Pongs and anything the client sends are not needed; a close or an error ends it.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => vec![],
        };
        let messages: Vec<Message> = if outgoing.is_empty() {
            vec![Message::Ping(Default::default())]
        } else {
            outgoing
                .into_iter()
                .map(|item| {
                    let text = match item {
                        Item::Event(record, _) => serde_json::to_string(&record).unwrap_or_default(),
                        Item::Failure(problem) => json!({ "error": problem }).to_string(),
                    };
                    Message::Text(text.into())
                })
                .collect()
        };
        for message in messages {
            match tokio::time::timeout(send_timeout, socket.send(message)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return,
                Err(_) => {
                    let reason = format!("the client did not read for {} ms", send_timeout.as_millis());
                    close(&mut socket, 1008, &reason, Duration::from_millis(100)).await;
                    return;
                }
            }
        }
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str, wait: Duration) {
    let frame = CloseFrame { code, reason: reason.to_string().into() };
    let _ = tokio::time::timeout(wait, socket.send(Message::Close(Some(frame)))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_take_from_and_group_only() {
        assert_eq!(parse("").ok(), Some(Query { from: From::Earliest, after: None, group: None }));
        assert_eq!(
            parse("from=latest&group=g").ok(),
            Some(Query { from: From::Latest, after: None, group: Some("g".into()) })
        );
        assert_eq!(parse("from=7").ok(), Some(Query { from: From::Offset(7), after: None, group: None }));
        assert_eq!(
            parse("after=7.1:9").ok(),
            Some(Query {
                from: From::Earliest,
                after: Some(TopicPosition::with_parts(7, [(1, 9)])),
                group: None
            })
        );
        for bad in ["from=0", "from=x", "group=", "limit=3", "from=%ff", "after=x", "after=-1"] {
            assert_eq!(parse(bad).map_err(|p| p.kind()).err(), Some(Kind::BadRequest), "{bad}");
        }
    }
}

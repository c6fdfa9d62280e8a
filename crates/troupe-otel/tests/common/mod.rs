//! An OTLP/HTTP receiver for the tests: `POST /v1/traces` on 127.0.0.1, its protobuf bodies
//! decoded with the OTLP's own generated types, every span kept; and helpers to read spans.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;

/// What the receiver was sent.
#[derive(Default)]
pub struct Received {
    pub spans: Vec<Span>,
    /// `service.name` of each resource that sent spans.
    pub services: Vec<String>,
    /// The `Content-Type` of each request.
    pub content_types: Vec<String>,
}

pub struct Collector {
    /// The collector's address, as a user gives it (`http://127.0.0.1:PORT`).
    pub endpoint: String,
    received: Arc<Mutex<Received>>,
}

impl Collector {
    /// Listens on a port of its own, served from a thread of its own: the exporter's blocking
    /// calls cannot stall it, whatever runtime the test runs on.
    pub fn start() -> Self {
        let received = Arc::new(Mutex::new(Received::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let state = received.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new()
                    .route("/v1/traces", post(traces))
                    .with_state(state);
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Self {
            endpoint: format!("http://{addr}"),
            received,
        }
    }

    /// Everything received so far, taken.
    pub fn take(&self) -> Received {
        std::mem::take(&mut *self.received.lock().unwrap())
    }
}

async fn traces(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> ([(header::HeaderName, &'static str); 1], Vec<u8>) {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf body");
    let mut r = received.lock().unwrap();
    r.content_types.push(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
    );
    for rs in request.resource_spans {
        if let Some(name) = rs
            .resource
            .as_ref()
            .and_then(|res| string(&res.attributes, "service.name"))
        {
            r.services.push(name);
        }
        for ss in rs.scope_spans {
            r.spans.extend(ss.spans);
        }
    }
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

fn value<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

pub fn string(attrs: &[KeyValue], key: &str) -> Option<String> {
    match value(attrs, key)? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

pub fn int(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match value(attrs, key)? {
        any_value::Value::IntValue(i) => Some(*i),
        _ => None,
    }
}

pub fn boolean(attrs: &[KeyValue], key: &str) -> Option<bool> {
    match value(attrs, key)? {
        any_value::Value::BoolValue(b) => Some(*b),
        _ => None,
    }
}

pub fn double(attrs: &[KeyValue], key: &str) -> Option<f64> {
    match value(attrs, key)? {
        any_value::Value::DoubleValue(d) => Some(*d),
        _ => None,
    }
}

pub fn strings(attrs: &[KeyValue], key: &str) -> Option<Vec<String>> {
    match value(attrs, key)? {
        any_value::Value::ArrayValue(a) => a
            .values
            .iter()
            .map(|v| match &v.value {
                Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Reading a received span.
pub trait SpanExt {
    fn str(&self, key: &str) -> Option<String>;
    fn int(&self, key: &str) -> Option<i64>;
    fn flag(&self, key: &str) -> Option<bool>;
    fn is_error(&self) -> bool;
    fn error_message(&self) -> String;
    fn is_child_of(&self, parent: &Span) -> bool;
    fn is_root(&self) -> bool;
    fn event_names(&self) -> Vec<&str>;
    /// Start and end, in milliseconds since the epoch.
    fn start_ms(&self) -> u64;
    fn end_ms(&self) -> u64;
}

impl SpanExt for Span {
    fn str(&self, key: &str) -> Option<String> {
        string(&self.attributes, key)
    }
    fn int(&self, key: &str) -> Option<i64> {
        int(&self.attributes, key)
    }
    fn flag(&self, key: &str) -> Option<bool> {
        boolean(&self.attributes, key)
    }
    fn is_error(&self) -> bool {
        self.status
            .as_ref()
            .is_some_and(|s| s.code == StatusCode::Error as i32)
    }
    fn error_message(&self) -> String {
        self.status
            .as_ref()
            .map(|s| s.message.clone())
            .unwrap_or_default()
    }
    fn is_child_of(&self, parent: &Span) -> bool {
        self.trace_id == parent.trace_id && self.parent_span_id == parent.span_id
    }
    fn is_root(&self) -> bool {
        self.parent_span_id.is_empty()
    }
    fn event_names(&self) -> Vec<&str> {
        self.events.iter().map(|e| e.name.as_str()).collect()
    }
    fn start_ms(&self) -> u64 {
        assert_eq!(
            self.start_time_unix_nano % 1_000_000,
            0,
            "whole milliseconds"
        );
        self.start_time_unix_nano / 1_000_000
    }
    fn end_ms(&self) -> u64 {
        assert_eq!(self.end_time_unix_nano % 1_000_000, 0, "whole milliseconds");
        self.end_time_unix_nano / 1_000_000
    }
}

/// The spans called `name`, in start order.
pub fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    let mut found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
    found.sort_by_key(|s| s.start_time_unix_nano);
    found
}

/// The one span called `name`.
pub fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found = named(spans, name);
    assert_eq!(
        found.len(),
        1,
        "one span `{name}` expected; spans: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    found[0]
}

//! The web UI of a running job: a live page like Spark's Streaming tab, a REST API shaped like
//! Spark's streaming API, and Prometheus metrics, served by every process on one port.
//!
//! | route | what |
//! |---|---|
//! | `/` | the page (everything it needs is in the binary: no CDN) |
//! | `/metrics` | Prometheus text format ([`metrics`](crate::metrics)) |
//! | `/api/v1/version` | `{"spark": "sluice <version>"}` |
//! | `/api/v1/applications` | the job (Spark's application list: one, with its attempt) |
//! | `/api/v1/applications/{app}` | the job's `ApplicationInfo` |
//! | `/api/v1/applications/{app}/streaming/statistics` | Spark's `StreamingStatistics` |
//! | `/api/v1/applications/{app}/streaming/receivers` | Spark's `ReceiverInfo` per receiver (`/{streamId}`: one) |
//! | `/api/v1/applications/{app}/streaming/batches` | retained batches, newest first (`?status=queued`, `processing`, `completed`, `failed`: those alone) |
//! | `/api/v1/applications/{app}/streaming/batches/{batchId}` | one batch (`batchId`: its time in ms) |
//! | `/api/v1/applications/{app}/streaming/batches/{batchId}/operations` | its output operations (`/{outputOpId}`: one) |
//!
//! Unknown routes, applications and batches answer 404 with `{"error": "…"}`.
//!
//! The server runs on a thread of its own with a one-thread tokio runtime; the job's workers
//! only touch it through the listeners ([`Status`], [`crate::metrics::Metrics`]),
//! once per completed batch. Its listener is bounded (`bounded`): at most
//! [`MAX_CONNECTIONS`] connections at once, [`FIRST_BYTE`] for a request to start and [`IDLE`]
//! without a byte before one is closed,
//! so clients of the UI cannot take the descriptors the job's checkpoint writes need.

mod bounded;
mod event_log;
mod json;
mod status;

pub use bounded::{FIRST_BYTE, IDLE, MAX_CONNECTIONS};
pub use event_log::{EventLog, logs_in, replay};

pub use status::{BatchJson, InputJson, JobDescription, StateJson, Statistics, Status, spark_date};

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::error::{Result, SluiceError};
use crate::metrics::Metrics;

/// The page: HTML, CSS and script in one file, compiled into the binary.
const PAGE: &str = include_str!("page.html");

/// How many following ports are tried when the asked one is taken (Spark's
/// `spark.port.maxRetries`).
pub const PORT_RETRIES: u16 = 16;

#[derive(Clone)]
struct Shared {
    status: Arc<Status>,
    metrics: Arc<Metrics>,
}

/// A running web UI; it serves until the process ends.
#[derive(Debug)]
pub struct WebUi {
    addr: SocketAddr,
}

impl WebUi {
    /// Serves `status` and `metrics` on `addr` (`host:port`; port 0 for any free one); an
    /// address in use is a configuration error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use sluice::webui::{JobDescription, Status, WebUi};
    /// let job = JobDescription { name: "wc".into(), batch_ms: 1000, workers: 1, processes: 1, process: 0, settings: vec![] };
    /// let metrics = Arc::new(sluice::metrics::Metrics::new(std::time::Duration::from_secs(1)));
    /// let ui = WebUi::start("127.0.0.1:0", Arc::new(Status::new(job, 100)), metrics)?;
    /// assert_ne!(ui.local_addr().port(), 0);
    /// # Ok::<(), sluice::SluiceError>(())
    /// ```
    pub fn start(addr: &str, status: Arc<Status>, metrics: Arc<Metrics>) -> Result<WebUi> {
        Self::serve(bind(addr, 0)?, status, metrics)
    }

    /// As [`start`](WebUi::start), but when `addr`'s port is taken, on the first free one of
    /// the [`PORT_RETRIES`] that follow it (Spark's `spark.port.maxRetries` for its default
    /// 4040): for a default address, not for one the user chose.
    pub fn start_near(addr: &str, status: Arc<Status>, metrics: Arc<Metrics>) -> Result<WebUi> {
        Self::serve(bind(addr, PORT_RETRIES)?, status, metrics)
    }

    fn serve(listener: TcpListener, status: Arc<Status>, metrics: Arc<Metrics>) -> Result<WebUi> {
        let addr = "the web UI's socket";
        let local = listener.local_addr().map_err(|e| SluiceError::Io {
            action: "cannot read the web UI's address",
            path: addr.into(),
            source: e,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| SluiceError::Io {
                action: "cannot set up the web UI's socket",
                path: addr.into(),
                source: e,
            })?;
        let app = router(Shared { status, metrics });
        std::thread::Builder::new()
            .name("sluice-webui".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!("web UI: cannot start its runtime: {e}");
                        return;
                    }
                };
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => {
                            let l = bounded::Bounded::new(l, MAX_CONNECTIONS, IDLE);
                            if let Err(e) = axum::serve(l, app).await {
                                tracing::error!("web UI stopped: {e}");
                            }
                        }
                        Err(e) => tracing::error!("web UI: {e}"),
                    }
                });
            })
            .map_err(|e| SluiceError::Io {
                action: "cannot start the web UI's thread",
                path: addr.into(),
                source: e,
            })?;
        Ok(WebUi { addr: local })
    }

    /// The address it serves on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Binds `addr`, or the first free port of the `retries` after it.
fn bind(addr: &str, retries: u16) -> Result<TcpListener> {
    let bad = |why: String| SluiceError::InvalidConfig {
        problem: format!("the web UI address `{addr}` {why}"),
        fix: "give --ui as host:port (127.0.0.1:4040), or --ui off".into(),
    };
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| bad("has no port".into()))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad(format!("has the port `{port}`, not a number 0–65535")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let mut last = None;
    let tries = if port == 0 { 1 } else { retries + 1 };
    for p in (0..tries).filter_map(|i| port.checked_add(i)) {
        match TcpListener::bind((host, p)) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(bad(format!("cannot be listened on ({e})"))),
        }
    }
    let last = last.map(|e| e.to_string()).unwrap_or_default();
    Err(SluiceError::InvalidConfig {
        problem: if retries == 0 {
            format!("the web UI address `{addr}` is in use ({last})")
        } else {
            format!(
                "the web UI address `{addr}` and the {retries} ports after it are in use ({last})"
            )
        },
        fix: "give --ui another host:port, or --ui off".into(),
    })
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/api/v1/version", get(version))
        .route("/api/v1/applications", get(applications))
        .route("/api/v1/applications/{app}", get(application))
        .route(
            "/api/v1/applications/{app}/streaming/receivers",
            get(receivers),
        )
        .route(
            "/api/v1/applications/{app}/streaming/receivers/{id}",
            get(receiver),
        )
        .route(
            "/api/v1/applications/{app}/streaming/batches/{batch}/operations/{op}",
            get(operation),
        )
        .route(
            "/api/v1/applications/{app}/streaming/statistics",
            get(statistics),
        )
        .route("/api/v1/applications/{app}/streaming/batches", get(batches))
        .route(
            "/api/v1/applications/{app}/streaming/batches/{batch}",
            get(batch),
        )
        .route(
            "/api/v1/applications/{app}/streaming/batches/{batch}/operations",
            get(operations),
        )
        .fallback(|| async { not_found("no such route".into()) })
        .with_state(shared)
}

fn not_found(why: String) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": why })),
    )
        .into_response()
}

async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE)
}

async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn applications(State(s): State<Shared>) -> impl IntoResponse {
    Json(serde_json::json!([s.status.application()]))
}

async fn application(State(s): State<Shared>, Path(app): Path<String>) -> Response {
    match wrong_app(&s, &app) {
        None => Json(s.status.application()).into_response(),
        Some(why) => not_found(why),
    }
}

async fn version() -> impl IntoResponse {
    Json(serde_json::json!({ "spark": concat!("sluice ", env!("CARGO_PKG_VERSION")) }))
}

async fn receivers(State(s): State<Shared>, Path(app): Path<String>) -> Response {
    match wrong_app(&s, &app) {
        None => Json(s.status.receivers()).into_response(),
        Some(why) => not_found(why),
    }
}

async fn receiver(State(s): State<Shared>, Path((app, id)): Path<(String, String)>) -> Response {
    if let Some(why) = wrong_app(&s, &app) {
        return not_found(why);
    }
    let found = id
        .parse::<usize>()
        .ok()
        .and_then(|i| s.status.receivers().into_iter().nth(i));
    match found {
        Some(r) => Json(r).into_response(),
        None => not_found(format!("no receiver `{id}`")),
    }
}

async fn operation(
    State(s): State<Shared>,
    Path((app, batch, op)): Path<(String, String, String)>,
) -> Response {
    match find_batch(&s, &app, &batch) {
        Ok(b) => match b
            .output_operations
            .into_iter()
            .find(|o| o.output_op_id.to_string() == op)
        {
            Some(o) => Json(o).into_response(),
            None => not_found(format!("batch {batch} has no output operation `{op}`")),
        },
        Err(why) => not_found(why),
    }
}

/// Why `app` is not this job's application (a 404 names the one there is).
fn wrong_app(s: &Shared, app: &str) -> Option<String> {
    let name = &s.status.job().name;
    (app != name).then(|| format!("no application `{app}`: this job is `{name}`"))
}

async fn statistics(State(s): State<Shared>, Path(app): Path<String>) -> Response {
    match wrong_app(&s, &app) {
        None => Json(s.status.statistics()).into_response(),
        Some(why) => not_found(why),
    }
}

/// The retained batches; `?status=QUEUED|PROCESSING|COMPLETED|FAILED` (any case) keeps those
/// of one status, as Spark's API does.
async fn batches(
    State(s): State<Shared>,
    Path(app): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(why) = wrong_app(&s, &app) {
        return not_found(why);
    }
    let wanted = query.as_deref().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("status="))
            .map(str::to_ascii_uppercase)
    });
    let mut all = s.status.batches();
    match wanted.as_deref() {
        None => {}
        Some(w @ ("QUEUED" | "PROCESSING" | "COMPLETED" | "FAILED")) => {
            all.retain(|b| b.status == w);
        }
        Some(other) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({
                    "error": format!("unknown status `{other}`: give QUEUED, PROCESSING, COMPLETED or FAILED")
                })),
            )
                .into_response();
        }
    }
    Json(all).into_response()
}

/// The retained batch `batch` of application `app`, or why there is none (a 404).
fn find_batch(s: &Shared, app: &str, batch: &str) -> Result<BatchJson, String> {
    if let Some(why) = wrong_app(s, app) {
        return Err(why);
    }
    let Ok(t) = batch.parse::<u64>() else {
        return Err(format!("`{batch}` is not a batch id (a batch time in ms)"));
    };
    s.status.batch(t).ok_or_else(|| {
        format!("no batch {t}: it has not completed, or is older than the batches kept")
    })
}

async fn batch(State(s): State<Shared>, Path((app, batch)): Path<(String, String)>) -> Response {
    match find_batch(&s, &app, &batch) {
        Ok(b) => Json(b).into_response(),
        Err(why) => not_found(why),
    }
}

async fn operations(
    State(s): State<Shared>,
    Path((app, batch)): Path<(String, String)>,
) -> Response {
    match find_batch(&s, &app, &batch) {
        Ok(b) => Json(b.output_operations).into_response(),
        Err(why) => not_found(why),
    }
}

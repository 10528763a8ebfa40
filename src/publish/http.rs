//! The built-in HTTP server: the published files, the statistics as JSON, and a health check.
//!
//! It serves `results/` (public files only; `results.private/` is never exposed), so what a
//! client downloads is exactly what was written, and because files are replaced by rename a
//! client never receives half a file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::snapshot::Published;
use crate::model::Clock;
use crate::model::event::Event;
use crate::publish::json::{EntryJson, EventJson, stats_json};
use crate::publish::pages::THESAURUS_DIR;
use crate::stats::Report;

#[derive(Clone)]
struct AppState {
    results_dir: Arc<PathBuf>,
    published: watch::Receiver<Published>,
    clock: Arc<dyn Clock>,
}

pub use super::snapshot::Rebuilds;

/// When a copy of a file written at `modified` goes stale: at its next rebuild, `interval`
/// later (the `Expires:` Echolot's `.meta` files gave Apache). Returns that instant and the
/// seconds left from `now`, never negative: a daemon that stopped rebuilding makes every
/// copy stale at once instead of promising freshness it cannot deliver.
pub fn freshness(modified: i64, interval: i64, now: i64) -> (i64, i64) {
    let expires = modified.saturating_add(interval.max(0));
    (expires, expires.saturating_sub(now).max(0))
}

pub fn router(
    results_dir: &Path,
    published: watch::Receiver<Published>,
    clock: Arc<dyn Clock>,
) -> Router {
    let state = AppState { results_dir: Arc::new(results_dir.to_owned()), published, clock };
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/v1/remailers", get(api_remailers))
        .route("/api/v1/remailers/{nick}", get(api_remailer))
        .route("/api/v1/chains", get(api_chains))
        .route("/api/v1/events", get(api_events))
        .route("/api/v1/consensus", get(api_consensus))
        .route("/consensus/{file}", get(consensus_file))
        .route("/yamn/{file}", get(yamn_file))
        .route("/{file}", get(results_file))
        // The index links its files relatively: it must be fetched as a directory.
        .route("/thesaurus", get(|| async { Redirect::permanent("/thesaurus/") }))
        .route("/thesaurus/", get(thesaurus_index))
        .route("/thesaurus/{file}", get(thesaurus_file))
        .with_state(state)
}

/// How the connection loop protects the daemon from slow or numerous clients.
#[derive(Debug, Clone, Copy)]
pub struct ServeLimits {
    /// Connections served at once; more wait in the kernel's backlog. Kept below the
    /// process's open-file limit, so clients can never starve the ingester and the sender of
    /// file descriptors.
    pub max_connections: usize,
    /// A client must send a request's whole header within this time, also on a kept-alive
    /// connection (counted from the end of the previous response).
    pub header_read_timeout: Duration,
    /// No connection lives longer than this, however it trickles.
    pub connection_lifetime: Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(60),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` turns true. The listener is shared: a
/// reload stops one accept loop and starts the next on the same socket, and connections
/// in progress finish under the loop that accepted them.
///
/// Our own accept loop instead of `axum::serve`, which has neither a header-read timeout nor
/// a connection limit: 100 half-sent requests stayed open indefinitely, and a thousand slow
/// connections exhausted the file descriptors the ingester and the sender need.
pub async fn serve(
    listener: Arc<TcpListener>,
    app: Router,
    limits: ServeLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A permit first: at the limit, new connections wait in the backlog instead of
        // taking a descriptor each.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: wait a little instead of spinning.
                    tracing::warn!("HTTP: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let app = app.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection =
                builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // Errors are the client's (timeouts, resets); nothing to report.
            let _ = tokio::time::timeout(limits.connection_lifetime, connection).await;
        });
    }
}

/// `Tue, 14 Nov 2023 22:13:20 GMT` (RFC 9110 IMF-fixdate).
pub fn http_date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("atom") => "application/atom+xml",
        Some("asc") => "application/pgp-keys",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "text/plain; charset=utf-8",
    }
}

/// Only plain file names inside results/: no paths, no dot files (temporary files start
/// with a dot), nothing that could climb out of the directory.
fn is_servable_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

async fn results_file(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    serve_file(&state, None, &name, &headers).await
}

/// The consensus of the pinger network (`[consensus]`): the agreed lists a client's
/// allpingers entry can point at, and the last round's report.
async fn consensus_file(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    serve_file(&state, Some(CONSENSUS_DIR), &name, &headers).await
}

async fn api_consensus(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve_file(&state, Some(CONSENSUS_DIR), "consensus.json", &headers).await
}

/// Where the consensus files are, under `results/`.
const CONSENSUS_DIR: &str = "consensus";

/// The files YAMN clients fetch (`results/yamn/`).
async fn yamn_file(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    serve_file(&state, Some(super::YAMN_DIR), &name, &headers).await
}

/// The thesaurus directory (Echolot's URLs): its index and the raw replies.
async fn thesaurus_file(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    serve_file(&state, Some(THESAURUS_DIR), &name, &headers).await
}

async fn thesaurus_index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve_file(&state, Some(THESAURUS_DIR), "index.html", &headers).await
}

/// A file of `results/` (or of its `subdir`), with its content type, `ETag` and
/// `Last-Modified`; 304 when the client has it already. Every file gets `nosniff`, so a
/// raw reply a remailer wrote as HTML stays text; HTML also gets a Content-Security-Policy
/// forbidding scripts and every outside load (the pages need neither), behind the escaping
/// of remailer strings.
async fn serve_file(
    state: &AppState,
    subdir: Option<&str>,
    name: &str,
    headers: &HeaderMap,
) -> Response {
    let name = name.to_owned();
    if !is_servable_name(&name) {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    let dir = match subdir {
        Some(subdir) => {
            // The subdirectory must be a real directory of the tree, not a link out of it.
            let dir = state.results_dir.join(subdir);
            match tokio::fs::symlink_metadata(&dir).await {
                Ok(m) if m.is_dir() => dir,
                _ => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
            }
        }
        None => state.results_dir.as_ref().clone(),
    };
    let path = dir.join(&name);
    // Read the file once: after an atomic rename the old inode stays readable, so the bytes
    // and the metadata below belong to one consistent version. O_NOFOLLOW: a symbolic link
    // in the tree (`results/leak -> ../secret`) is never followed out of it.
    let file = match tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .await
    {
        Ok(f) => f,
        Err(_) => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    let meta = match file.metadata().await {
        Ok(m) if m.is_file() => m,
        _ => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    let modified = meta.modified().ok().and_then(|m| m.duration_since(UNIX_EPOCH).ok());
    let etag = format!("\"{:x}-{:x}\"", modified.map_or(0, |d| d.as_nanos()), meta.len());
    // The validators and freshness go on a 304 too, so a cache renews its copy's lifetime.
    let mut validators = vec![(header::ETAG, etag.clone())];
    if let Some(m) = modified {
        let modified = m.as_secs() as i64;
        let now = state.clock.now();
        let (expires, max_age) =
            freshness(modified, state.published.borrow().rebuilds.interval_of(&name), now);
        validators.push((header::LAST_MODIFIED, http_date(modified)));
        validators.push((header::EXPIRES, http_date(expires)));
        validators.push((header::CACHE_CONTROL, format!("public, max-age={max_age}")));
    }
    let not_modified =
        headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str());
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut body = Vec::with_capacity(meta.len() as usize);
        let mut file = file;
        if tokio::io::AsyncReadExt::read_to_end(&mut file, &mut body).await.is_err() {
            return (StatusCode::INTERNAL_SERVER_ERROR, "read error\n").into_response();
        }
        body.into_response()
    };
    let h = response.headers_mut();
    for (key, value) in validators {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(key, v);
        }
    }
    if not_modified {
        return response;
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(&name)));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if name.ends_with(".html") {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_POLICY));
    }
    response
}

/// The pages' Content-Security-Policy: inline styles and nothing else.
const PAGE_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `/`: the HTML index once it has been published, else a plain list of the files.
async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.results_dir.join("index.html").is_file() {
        return serve_file(&state, None, "index.html", &headers).await;
    }
    let mut names: Vec<String> = match std::fs::read_dir(state.results_dir.as_ref()) {
        Ok(dir) => dir
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_servable_name(n))
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    let mut body = String::from("fathometer remailer statistics\n\n");
    for n in names {
        body.push_str(&format!("/{n}\n"));
    }
    body.push_str("/api/v1/remailers\n/api/v1/chains\n/api/v1/events\n/healthz\n");
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    last_tick: Option<i64>,
    last_build: Option<i64>,
    ingester_last_round: Option<i64>,
    reason: Option<String>,
}

async fn healthz(State(state): State<AppState>) -> Response {
    let p = state.published.borrow().clone();
    let reason = p.problem(state.clock.now());
    let status = if reason.is_some() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    let body = Health {
        status: if reason.is_some() { "unhealthy" } else { "ok" },
        last_tick: p.last_tick,
        last_build: p.last_build,
        ingester_last_round: p.ingester.last_round,
        reason,
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let snapshot = state.published.borrow().clone();
    let body = super::metrics::render(&snapshot, state.clock.now());
    ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], body).into_response()
}

fn latest(state: &AppState) -> Option<Arc<Report>> {
    state.published.borrow().report.clone()
}

fn not_ready() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "statistics not built yet\n").into_response()
}

/// Public view: hidden remailers are not exposed over HTTP.
fn public_entries(report: &Report) -> serde_json::Value {
    let json = stats_json(report, false);
    fn keep(list: Vec<EntryJson<'_>>) -> Vec<EntryJson<'_>> {
        list.into_iter().filter(|e| e.listed).collect()
    }
    serde_json::json!({
        "now": json.now,
        "model": json.model,
        "lists": {
            "mix": keep(json.lists.mix),
            "cpunk": keep(json.lists.cpunk),
            "yamn": keep(json.lists.yamn),
        },
    })
}

async fn api_remailers(State(state): State<AppState>) -> Response {
    match latest(&state) {
        Some(report) => Json(public_entries(&report)).into_response(),
        None => not_ready(),
    }
}

async fn api_remailer(State(state): State<AppState>, UrlPath(nick): UrlPath<String>) -> Response {
    let Some(report) = latest(&state) else { return not_ready() };
    let json = stats_json(&report, false);
    fn find<'a>(list: Vec<EntryJson<'a>>, nick: &str) -> Option<EntryJson<'a>> {
        list.into_iter().find(|e| e.listed && e.nick == nick)
    }
    let mix = find(json.lists.mix, &nick);
    let cpunk = find(json.lists.cpunk, &nick);
    let yamn = find(json.lists.yamn, &nick);
    if mix.is_none() && cpunk.is_none() && yamn.is_none() {
        return (StatusCode::NOT_FOUND, Json(serde_json::json!({"error": "no such remailer"})))
            .into_response();
    }
    Json(serde_json::json!({ "nick": nick, "mix": mix, "cpunk": cpunk, "yamn": yamn }))
        .into_response()
}

async fn api_chains(State(state): State<AppState>) -> Response {
    match latest(&state) {
        Some(report) => Json(stats_json(&report, false).broken_chains).into_response(),
        None => not_ready(),
    }
}

/// `GET /api/v1/events?since=&remailer=`: the public events of the last 30 days recorded
/// at or after `since` (Unix seconds or RFC 3339), oldest first, optionally of one remailer
/// (by nick or address).
#[derive(serde::Deserialize)]
struct EventQuery {
    since: Option<String>,
    remailer: Option<String>,
}

async fn api_events(State(state): State<AppState>, Query(q): Query<EventQuery>) -> Response {
    let since = match q.since.as_deref().map(str::trim) {
        None | Some("") => i64::MIN,
        Some(text) => match text
            .parse::<i64>()
            .ok()
            .or_else(|| chrono::DateTime::parse_from_rfc3339(text).ok().map(|d| d.timestamp()))
        {
            Some(t) => t,
            None => {
                let error = "`since` is Unix seconds or an RFC 3339 time";
                return (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": error })))
                    .into_response();
            }
        },
    };
    let events = state.published.borrow().events.clone();
    let of_remailer = |e: &Event| match (&q.remailer, &e.remailer) {
        (None, _) => true,
        (Some(want), Some(r)) => {
            r.nick.as_deref() == Some(want.as_str()) || r.address.eq_ignore_ascii_case(want)
        }
        (Some(_), None) => false,
    };
    let shown: Vec<EventJson<'_>> = events
        .iter()
        .rev()
        .filter(|e| e.is_public() && e.recorded_at >= since && of_remailer(e))
        .map(EventJson::of)
        .collect();
    Json(serde_json::json!({ "events": shown })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_served() {
        for ok in ["mlist.txt", "rlist2.txt", "pubring.mix", "pgp-all.asc", "index.html"] {
            assert!(is_servable_name(ok), "{ok}");
        }
        for bad in ["", ".mlist.txt.tmp.1", "..", "../secret", "a/b", "fathometer.sqlite\0", "x y"]
        {
            assert!(!is_servable_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_copy_is_fresh_until_the_next_rebuild_and_never_negatively() {
        assert_eq!(freshness(1_000, 300, 1_100), (1_300, 200));
        assert_eq!(freshness(1_000, 300, 1_300), (1_300, 0));
        assert_eq!(freshness(1_000, 300, 9_999), (1_300, 0), "a stuck daemon: stale at once");
        assert_eq!(freshness(1_000, 300, 900), (1_300, 400), "a clock behind the file's");
        assert_eq!(freshness(i64::MAX - 5, 300, 0).0, i64::MAX, "no overflow");
        let rebuilds = Rebuilds { lists_secs: 300, keyrings_secs: 28_800 };
        assert_eq!(rebuilds.interval_of("pubring.mix"), 28_800);
        assert_eq!(rebuilds.interval_of("pgp-all.asc"), 28_800);
        assert_eq!(rebuilds.interval_of("mlist.txt"), 300);
        assert_eq!(rebuilds.interval_of("index.html"), 300);
    }

    #[test]
    fn content_types_and_dates() {
        assert_eq!(content_type("mlist.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type("pubring.mix"), "text/plain; charset=utf-8");
        assert_eq!(content_type("pgp-all.asc"), "application/pgp-keys");
        assert_eq!(content_type("echolot.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("events.atom"), "application/atom+xml");
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
    }
}

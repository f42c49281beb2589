//! The collector's HTTP server: `/metrics` (canonical series of every target whose latest
//! scrape worked, the engines' own series of targets with `raw = true`, then llmwatch's
//! self-metrics), the JSON API under `/api/v1/`, `/healthz`
//! and `/readyz`. With `auth` configured, everything but the health routes needs it.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;

use super::api;
use super::raw::{RawView, write_raw};
use crate::collect::state::{Health, Store};
use crate::config::AuthConfig;
use crate::engines::canonical::{View, write_canonical};

/// What the handlers share.
pub struct App {
    /// The state.
    pub store: Arc<Store>,
    /// Self-metrics.
    pub registry: Arc<Registry>,
    /// Required credentials, if any.
    pub auth: Option<AuthConfig>,
    /// The proxy running in this process, if any.
    pub proxy: Option<Arc<crate::proxy::Proxy>>,
    /// The alerts evaluated here, unless `[alerting] enabled = false`.
    pub alerts: Option<Arc<std::sync::Mutex<crate::alerting::Alerts>>>,
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/snapshot", get(snapshot))
        .route("/api/v1/history", get(history))
        .route("/api/v1/client_gap", get(client_gap))
        .route("/api/v1/overview", get(overview))
        .route("/api/v1/detail", get(detail))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/gpus", get(gpus))
        .route("/", get(crate::ui::web::index))
        .route("/assets/app.js", get(crate::ui::web::script))
        .route("/assets/style.css", get(crate::ui::web::style))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_auth));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(guarded)
        .with_state(app)
}

async fn require_auth(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    match &app.auth {
        Some(auth) if !authorised(auth, request.headers()) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"llmwatch\"")],
            "credentials required\n",
        )
            .into_response(),
        _ => next.run(request).await,
    }
}

fn authorised(auth: &AuthConfig, headers: &HeaderMap) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if let (Some(token), Some(bearer)) = (&auth.bearer_token, given.strip_prefix("Bearer ")) {
        return constant_time_eq(token.as_bytes(), bearer.trim().as_bytes());
    }
    if let (Some(user), Some(password), Some(basic)) =
        (&auth.username, &auth.password, given.strip_prefix("Basic "))
    {
        let expected = base64_encode(format!("{user}:{password}").as_bytes());
        return constant_time_eq(expected.as_bytes(), basic.trim().as_bytes());
    }
    false
}

/// Compares secrets without returning early on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    if app.store.all_attempted() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not every target has been scraped yet\n",
        )
            .into_response()
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    match render_metrics(&app, true) {
        Some(body) => (
            [(
                header::CONTENT_TYPE,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            )],
            body,
        )
            .into_response(),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode self-metrics\n",
        )
            .into_response(),
    }
}

/// The `/metrics` body: canonical series of every target whose latest scrape worked, GPU
/// series, the engines' own series of targets with `raw = true` (when `raw`: OTLP leaves
/// them out, their names are the engines' and not OpenTelemetry's), the in-process proxy's
/// series, the alerts' and the self-metrics. `None` if the self-metrics cannot be encoded.
pub fn render_metrics(app: &App, raw: bool) -> Option<String> {
    let statuses = app.store.statuses();
    let views: Vec<View<'_>> = statuses
        .iter()
        .filter(|s| s.health == Health::Up)
        .filter_map(|s| {
            let good = s.last_good.as_ref()?;
            Some(View {
                instance: Some(s.target.name.as_str()),
                labels: &s.target.labels,
                engine: good.engine?,
                version: good.version.as_str(),
                readings: &good.readings,
            })
        })
        .collect();
    let mut body = String::with_capacity(64 * 1024);
    write_canonical(&mut body, &views);
    super::gpus::write(&mut body, &statuses);
    if raw {
        let raw: Vec<RawView<'_>> = statuses
            .iter()
            .filter(|s| s.health == Health::Up)
            .filter_map(|s| {
                Some(RawView {
                    instance: s.target.name.as_str(),
                    labels: &s.target.labels,
                    text: s.last_good.as_ref()?.raw.as_deref()?,
                })
            })
            .collect();
        write_raw(&mut body, &raw);
    }
    if let Some(proxy) = &app.proxy {
        body.push_str(&proxy.render_metrics());
        super::gap::write(&mut body, proxy, &app.store, crate::clock::unix_now());
    }
    if let Some(alerts) = &app.alerts {
        alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_metrics(&mut body);
    }
    prometheus_client::encoding::prometheus_text::encode(&mut body, &app.registry).ok()?;
    Some(body)
}

async fn alerts(State(app): State<Arc<App>>) -> Response {
    let body = match &app.alerts {
        Some(alerts) => alerts.lock().unwrap_or_else(|e| e.into_inner()).api(),
        None => serde_json::json!({
            "status": "success",
            "data": {"alerts": [], "not_enough_data": [], "disabled": "[alerting] enabled = false"}
        }),
    };
    axum::Json(body).into_response()
}

async fn gpus(State(app): State<Arc<App>>) -> Response {
    axum::Json(super::gpus::api(&app.store.statuses())).into_response()
}

async fn targets(State(app): State<Arc<App>>) -> Response {
    axum::Json(api::targets(&app.store.statuses())).into_response()
}

async fn snapshot(State(app): State<Arc<App>>) -> Response {
    axum::Json(api::snapshot(&app.store.statuses())).into_response()
}

async fn history(State(app): State<Arc<App>>, Query(query): Query<api::HistoryQuery>) -> Response {
    match api::history(&app.store, &query) {
        Ok(body) => axum::Json(body).into_response(),
        Err(message) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": message })),
        )
            .into_response(),
    }
}

/// `/api/v1/client_gap`: per model through the in-process proxy, the client and engine TTFT
/// means, their counts, and the gap or why there is none.
async fn client_gap(State(app): State<Arc<App>>) -> Response {
    let body = match &app.proxy {
        Some(proxy) => serde_json::json!({
            "proxy": true,
            "window_seconds": super::gap::WINDOW.as_secs_f64(),
            "min_coverage": super::gap::MIN_COVERAGE,
            "models": super::gap::gaps(proxy, &app.store, crate::clock::unix_now()),
        }),
        None => serde_json::json!({
            "proxy": false,
            "models": [],
            "reason": "no proxy runs in this process: start up with --proxy-upstream or a [proxy] section",
        }),
    };
    axum::Json(body).into_response()
}

/// A JSON error answer.
fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

async fn overview(State(app): State<Arc<App>>, Query(q): Query<crate::ui::api::Query>) -> Response {
    match crate::ui::overview::overview(&app.store, &q, crate::clock::unix_now()) {
        Ok(body) => axum::Json(body).into_response(),
        Err(message) => bad_request(message),
    }
}

async fn detail(State(app): State<Arc<App>>, Query(q): Query<crate::ui::api::Query>) -> Response {
    let now = crate::clock::unix_now();
    // What the proxy running here saw for the model shown.
    let client = |model: &str, grid: crate::ui::api::Grid<'_>| {
        let Some(proxy) = app.proxy.as_ref() else {
            return crate::ui::api::ClientSide::default();
        };
        let gap = super::gap::gaps(proxy, &app.store, now)
            .into_iter()
            .find(|g| g.model == model)
            .and_then(|g| serde_json::to_value(g).ok());
        crate::ui::api::ClientSide {
            gap,
            outcomes: proxy.outcome_rates(model, grid, now),
        }
    };
    match crate::ui::api::detail(&app.store, &q, now, client) {
        Ok(Some(body)) => axum::Json(body).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({
                "error": format!(
                    "no target named {:?}: it is not (or no longer) among up's targets",
                    q.target.as_deref().unwrap_or("")
                )
            })),
        )
            .into_response(),
        Err(message) => bad_request(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn credentials_are_checked_exactly() {
        let auth = AuthConfig {
            bearer_token: Some("s3cret".into()),
            username: Some("ops".into()),
            password: Some("pw".into()),
        };
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, value.parse().unwrap());
            h
        };
        assert!(authorised(&auth, &with("Bearer s3cret")));
        assert!(!authorised(&auth, &with("Bearer s3cre")));
        assert!(authorised(
            &auth,
            &with(&format!("Basic {}", base64_encode(b"ops:pw")))
        ));
        assert!(!authorised(
            &auth,
            &with(&format!("Basic {}", base64_encode(b"ops:px")))
        ));
        assert!(!authorised(&auth, &HeaderMap::new()));
    }
}

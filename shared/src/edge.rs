//! The HTTP edge every function shares, whatever the transport: CORS from an allow-list,
//! security headers on every response (errors and panics included), and one metric per request
//! (route, method, status, latency): CloudWatch Embedded Metric Format log lines under Lambda,
//! Prometheus text at `GET /metrics` elsewhere.

use crate::config::{ConfigError, Env};
use alloy::transports::http::reqwest::Url;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

/// `HSTS_MAX_AGE` when unset: two years, the hstspreload.org minimum is one.
pub const DEFAULT_HSTS_MAX_AGE: u64 = 63_072_000;

/// The request headers a browser may send cross-origin (preflight `Access-Control-Allow-Headers`).
const ALLOWED_HEADERS: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    HeaderName::from_static("idempotency-key"),
];

/// The response headers a cross-origin script may read besides the safelisted ones.
const EXPOSED_HEADERS: [HeaderName; 2] = [header::RETRY_AFTER, header::WWW_AUTHENTICATE];

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// What the edge is told by configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EdgeConfig {
    /// `CORS_ALLOWED_ORIGINS`: origins (`scheme://host[:port]`), comma-separated. Empty (the
    /// default): no CORS headers at all, so browsers keep the same-origin policy.
    pub cors_allowed_origins: Vec<String>,
    /// `HSTS_MAX_AGE` in seconds (default two years); 0 leaves the header out (plain-HTTP
    /// development behind no TLS terminator).
    pub hsts_max_age: u64,
}

impl EdgeConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            cors_allowed_origins: origins(env.get("CORS_ALLOWED_ORIGINS").as_deref())?,
            hsts_max_age: env.parse_or("HSTS_MAX_AGE", DEFAULT_HSTS_MAX_AGE)?,
        })
    }
}

/// Parses the allow-list. Each entry must be a bare http(s) origin; `*` is refused, because a
/// wildcard would let any site drive the API with a user's token.
fn origins(raw: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let invalid = |entry: &str, why: &str| {
        ConfigError::invalid(
            "CORS_ALLOWED_ORIGINS",
            format!("{entry:?} is not allowed: {why}"),
        )
    };
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            if entry == "*" {
                return Err(invalid(entry, "list the origins; `*` is never allowed"));
            }
            let url =
                Url::parse(entry).map_err(|_| invalid(entry, "expected scheme://host[:port]"))?;
            let bare = url.path() == "/"
                && url.query().is_none()
                && url.fragment().is_none()
                && url.username().is_empty()
                && url.password().is_none()
                && !entry.ends_with('/');
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
                return Err(invalid(
                    entry,
                    "expected scheme://host[:port], nothing after",
                ));
            }
            Ok(url.origin().ascii_serialization())
        })
        .collect()
}

/// The CORS layer for a function whose routes take `methods`, or `None` when no origin is
/// allowed. Preflights from a listed origin are answered with those methods; other origins get
/// no CORS headers (the browser refuses). Never credentials: tokens travel in `Authorization`,
/// not cookies.
pub fn cors(config: &EdgeConfig, methods: &[Method]) -> Option<CorsLayer> {
    if config.cors_allowed_origins.is_empty() {
        return None;
    }
    let origins = config
        .cors_allowed_origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok());
    let mut allowed: Vec<Method> = methods.to_vec();
    allowed.dedup();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods(allowed)
            .allow_headers(ALLOWED_HEADERS)
            .expose_headers(EXPOSED_HEADERS)
            .max_age(PREFLIGHT_MAX_AGE),
    )
}

/// Security headers on every response: `nosniff`, `Referrer-Policy: no-referrer`, HSTS (unless
/// its max-age is 0), and `Cache-Control: no-store` unless the route chose its own (the JWKS is
/// public and cacheable; everything else may carry tokens or personal data).
pub fn security_headers(router: Router, config: &EdgeConfig) -> Router {
    let router = router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ));
    if config.hsts_max_age == 0 {
        return router;
    }
    match HeaderValue::from_str(&format!(
        "max-age={}; includeSubDomains",
        config.hsts_max_age
    )) {
        Ok(value) => router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            value,
        )),
        Err(_) => router,
    }
}

/// One request, as measured.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/users/{id}/role`), never the raw path; `unmatched` for 404s.
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// Where per-request metrics go.
#[derive(Clone)]
pub enum Metrics {
    /// Under Lambda: one EMF line on stdout per request, which CloudWatch turns into metrics
    /// with no agent (the Powertools convention: `POWERTOOLS_METRICS_NAMESPACE`,
    /// `POWERTOOLS_SERVICE_NAME`).
    Emf(Arc<EmfTarget>),
    /// Elsewhere: a latency histogram per route, method and status, served at `GET /metrics`.
    Prometheus(Arc<Prometheus>),
}

#[derive(Debug)]
pub struct EmfTarget {
    pub namespace: String,
    pub service: String,
}

pub struct Prometheus {
    registry: Registry,
    requests: Family<RequestLabels, Histogram>,
}

/// Latency buckets in seconds: 1 ms to 10 s.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

impl Metrics {
    /// EMF under Lambda, Prometheus otherwise. `service` names the function (or `gateway`).
    pub fn for_transport(env: &Env, under_lambda: bool, service: &str) -> Self {
        if under_lambda {
            return Self::Emf(Arc::new(EmfTarget {
                namespace: env
                    .get("POWERTOOLS_METRICS_NAMESPACE")
                    .unwrap_or_else(|| "gantry".into()),
                service: env
                    .get("POWERTOOLS_SERVICE_NAME")
                    .unwrap_or_else(|| service.to_owned()),
            }));
        }
        Self::prometheus()
    }

    pub fn prometheus() -> Self {
        let mut registry = Registry::default();
        let requests =
            Family::<RequestLabels, Histogram>::new_with_constructor(|| Histogram::new(BUCKETS));
        registry.register(
            "http_request_duration_seconds",
            "HTTP requests by route template, method and status, with their latency",
            requests.clone(),
        );
        Self::Prometheus(Arc::new(Prometheus { registry, requests }))
    }

    fn record(&self, labels: RequestLabels, latency: Duration) {
        match self {
            Self::Prometheus(prometheus) => prometheus
                .requests
                .get_or_create(&labels)
                .observe(latency.as_secs_f64()),
            Self::Emf(target) => {
                let line = emf_line(target, &labels, latency, now_millis());
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
        }
    }

    /// The Prometheus text exposition, or `None` under Lambda (EMF has no endpoint).
    pub fn render(&self) -> Option<String> {
        let Self::Prometheus(prometheus) = self else {
            return None;
        };
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &prometheus.registry).ok()?;
        Some(text)
    }
}

fn now_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// One EMF document: the metric `latency` (milliseconds) and `requests` (count), with the
/// dimensions service, route, method and status.
pub fn emf_line(
    target: &EmfTarget,
    labels: &RequestLabels,
    latency: Duration,
    timestamp_ms: u128,
) -> serde_json::Value {
    serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": target.namespace,
                "Dimensions": [["service", "route", "method", "status"]],
                "Metrics": [
                    {"Name": "latency", "Unit": "Milliseconds"},
                    {"Name": "requests", "Unit": "Count"}
                ]
            }]
        },
        "service": target.service,
        "route": labels.route,
        "method": labels.method,
        "status": labels.status.to_string(),
        "latency": latency.as_secs_f64() * 1000.0,
        "requests": 1
    })
}

async fn measure(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    let labels = RequestLabels {
        route,
        method,
        status: response.status().as_u16(),
    };
    metrics.record(labels, started.elapsed());
    response
}

/// Measures every request `router` serves (its fallback included).
pub fn measured(router: Router, metrics: &Metrics) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        metrics.clone(),
        measure,
    ))
}

/// `GET /metrics` in Prometheus text, when the metrics are Prometheus ones.
pub fn metrics_route(metrics: &Metrics) -> Router {
    if !matches!(metrics, Metrics::Prometheus(_)) {
        return Router::new();
    }
    let metrics = metrics.clone();
    Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = metrics.render().unwrap_or_default();
            std::future::ready(
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    text,
                )
                    .into_response(),
            )
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Vec<String>, ConfigError> {
        origins(Some(raw))
    }

    #[test]
    fn origins_are_normalised_and_wildcards_refused() -> crate::TestResult {
        assert_eq!(
            parse(" https://App.example.com , http://localhost:5173")?,
            ["https://app.example.com", "http://localhost:5173"]
        );
        assert_eq!(parse("https://a.example:443")?, ["https://a.example"]);
        for bad in [
            "*",
            "https://a.example/",
            "https://a.example/path",
            "ftp://a.example",
            "a.example",
            "https://user@a.example",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
        assert!(origins(None)?.is_empty());
        Ok(())
    }

    #[test]
    fn hsts_defaults_to_two_years_and_zero_turns_it_off() -> crate::TestResult {
        let config = EdgeConfig::from_env(&Env::from_pairs([("X", "y")]))?;
        assert_eq!(config.hsts_max_age, DEFAULT_HSTS_MAX_AGE);
        let config = EdgeConfig::from_env(&Env::from_pairs([("HSTS_MAX_AGE", "0")]))?;
        assert_eq!(config.hsts_max_age, 0);
        assert!(EdgeConfig::from_env(&Env::from_pairs([("HSTS_MAX_AGE", "-1")])).is_err());
        Ok(())
    }

    #[test]
    fn an_emf_line_declares_its_metrics_and_dimensions() {
        let target = EmfTarget {
            namespace: "gantry".into(),
            service: "login".into(),
        };
        let labels = RequestLabels {
            route: "/login-email-password".into(),
            method: "POST".into(),
            status: 401,
        };
        let line = emf_line(
            &target,
            &labels,
            Duration::from_micros(2500),
            1_700_000_000_000,
        );
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000_u64);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "gantry");
        // Every dimension and metric the directive names is a member of the document.
        for key in directive["Dimensions"][0].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            assert!(
                line[key].is_string(),
                "dimension {key} must be a string member"
            );
        }
        for metric in directive["Metrics"].as_array().into_iter().flatten() {
            let name = metric["Name"].as_str().unwrap_or_default();
            assert!(
                line[name].is_number(),
                "metric {name} must be a number member"
            );
        }
        assert_eq!(line["status"], "401");
        assert_eq!(line["latency"], 2.5);
    }

    #[test]
    fn prometheus_text_counts_requests_by_route_method_and_status() {
        let metrics = Metrics::prometheus();
        let labels = RequestLabels {
            route: "/users/{id}/role".into(),
            method: "PUT".into(),
            status: 403,
        };
        metrics.record(labels.clone(), Duration::from_millis(3));
        metrics.record(labels, Duration::from_millis(30));
        let text = metrics.render().unwrap_or_default();
        assert!(
            text.contains(
                r#"http_request_duration_seconds_count{route="/users/{id}/role",method="PUT",status="403"} 2"#
            ),
            "{text}"
        );
        assert!(
            Metrics::Emf(Arc::new(EmfTarget {
                namespace: "n".into(),
                service: "s".into()
            }))
            .render()
            .is_none()
        );
    }
}

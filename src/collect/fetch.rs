//! HTTP fetch of a metrics endpoint: a timeout, a body-size limit, an `Accept` header that keeps
//! SGLang on the text format, and an optional bearer token (llama.cpp with `--api-key` guards
//! `/metrics`). Error statuses that mean something specific (501 from a llama.cpp started
//! without `--metrics`, 401/403) get their own error with the fix in the message.

use std::time::Duration;

/// Ask for classic text; SGLang switches to OpenMetrics only when asked, and vLLM/TGI/llama.cpp
/// ignore the header.
pub const ACCEPT: &str = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1";

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Largest body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Sent as `Authorization: Bearer …` when set. Never logged.
    pub bearer_token: Option<String>,
}

/// A fetched body.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// HTTP status (always a success status here).
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body as bytes (checked for UTF-8 later, with the position of the first bad byte).
    pub body: Vec<u8>,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL does not parse.
    #[error("{url}: invalid URL: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// Connection refused, DNS failure, reset…
    #[error("{url}: request failed: {reason}")]
    Request {
        /// The URL.
        url: String,
        /// The transport error, flattened.
        reason: String,
    },
    /// The timeout elapsed.
    #[error("{url}: no complete response within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The limit.
        timeout: Duration,
    },
    /// llama.cpp without `--metrics`.
    #[error(
        "{url}: HTTP 501: the server does not serve metrics (llama.cpp answers this when started without --metrics: restart it with --metrics)"
    )]
    MetricsDisabled {
        /// The URL.
        url: String,
    },
    /// Authentication required.
    #[error(
        "{url}: HTTP {status}: the endpoint needs credentials (llama.cpp with --api-key guards /metrics): pass --bearer-token or set LLMWATCH_BEARER_TOKEN"
    )]
    Unauthorized {
        /// The URL.
        url: String,
        /// 401 or 403.
        status: u16,
    },
    /// Any other non-success status.
    #[error("{url}: HTTP {status}: {snippet}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The start of the body, for context.
        snippet: String,
    },
    /// The body is larger than allowed.
    #[error("{url}: the body exceeds the limit of {limit} bytes (raise --max-body-bytes)")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
}

/// `http://host:port` and `http://host:port/` mean the engine's `/metrics`: rewrites such a
/// URL's path and says whether it did.
pub fn default_metrics_path(url: &mut reqwest::Url) -> bool {
    let root = url.path() == "/" || url.path().is_empty();
    if root {
        url.set_path("/metrics");
    }
    root
}

/// Installs rustls' ring crypto provider for the process (once; later calls are no-ops).
/// reqwest is built without a default provider, and refuses to build a client without one.
pub fn install_tls_provider() {
    #[cfg(feature = "tls")]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `builder` trusting the CA certificates of the PEM file at `path` besides the system's
/// roots; the reason in words when the file cannot be read or holds no certificate.
#[cfg(feature = "tls")]
pub fn trusting(
    builder: reqwest::ClientBuilder,
    path: &std::path::Path,
) -> Result<reqwest::ClientBuilder, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let certificates =
        reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| flatten_error(&e))?;
    if certificates.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(builder.tls_certs_merge(certificates))
}

/// Without TLS there is nothing to trust a CA for.
#[cfg(not(feature = "tls"))]
pub fn trusting(
    _: reqwest::ClientBuilder,
    _: &std::path::Path,
) -> Result<reqwest::ClientBuilder, String> {
    Err("this llmwatch was built without TLS (feature `tls`)".into())
}

/// Builds the HTTP client used for scrapes.
pub fn client(opts: &FetchOptions) -> Result<reqwest::Client, FetchError> {
    install_tls_provider();
    reqwest::Client::builder()
        .timeout(opts.timeout)
        .connect_timeout(opts.timeout)
        .build()
        .map_err(|e| FetchError::Request {
            url: String::new(),
            reason: flatten_error(&e),
        })
}

/// Fetches `url`, reading at most `opts.max_body_bytes`.
pub async fn fetch(
    client: &reqwest::Client,
    url: &str,
    opts: &FetchOptions,
    accept: &str,
) -> Result<Fetched, FetchError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| FetchError::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let mut request = client
        .get(parsed)
        .timeout(opts.timeout)
        .header(reqwest::header::ACCEPT, accept)
        .header(
            reqwest::header::USER_AGENT,
            concat!("llmwatch/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(token) = &opts.bearer_token {
        request = request.bearer_auth(token);
    }
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            FetchError::Timeout {
                url: url.to_string(),
                timeout: opts.timeout,
            }
        } else {
            FetchError::Request {
                url: url.to_string(),
                reason: flatten_error(&e),
            }
        }
    };
    let mut response = request.send().await.map_err(transport)?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(len) = response.content_length()
        && len > opts.max_body_bytes as u64
    {
        return Err(FetchError::TooLarge {
            url: url.to_string(),
            limit: opts.max_body_bytes,
        });
    }
    // Sized once when the length is known: no doubling, no half-empty buffer kept around.
    let expected = response.content_length().unwrap_or(0);
    let mut body = Vec::with_capacity(
        usize::try_from(expected)
            .unwrap_or(0)
            .min(opts.max_body_bytes),
    );
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > opts.max_body_bytes {
            return Err(FetchError::TooLarge {
                url: url.to_string(),
                limit: opts.max_body_bytes,
            });
        }
        body.extend_from_slice(&chunk);
    }
    check_status(url, status, &body)?;
    Ok(Fetched {
        status,
        content_type,
        body,
    })
}

pub(super) fn check_status(url: &str, status: u16, body: &[u8]) -> Result<(), FetchError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let url = url.to_string();
    Err(match status {
        501 => FetchError::MetricsDisabled { url },
        401 | 403 => FetchError::Unauthorized { url, status },
        _ => FetchError::Status {
            url,
            status,
            snippet: snippet(body),
        },
    })
}

/// The first line of a body, cut to 120 characters, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body.get(..512).unwrap_or(body));
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.chars().take(120).collect()
}

/// reqwest errors nest their cause; show the whole chain on one line.
pub fn flatten_error(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

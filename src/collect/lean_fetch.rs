//! Scrapes over the lean HTTP/1.1 client: what `up` uses for plain-HTTP targets. A thousand
//! targets every few seconds is thousands of requests a minute, and the general client's
//! per-request work (a connection task, header maps, a body channel) cost more CPU than
//! parsing the bodies. Same limits, errors and failure reasons as [`super::fetch`]; HTTPS,
//! credentials in the URL, a proxy from the environment and redirects stay with the general
//! client.

use std::sync::Arc;
use std::time::Duration;

use super::fetch::{FetchError, FetchOptions, Fetched, check_status};
use crate::http1::{Failure, Pool};

/// How long a kept-alive connection to a target may idle and still be reused: longer than
/// any scrape interval people use, as the general client's pool allowed.
const MAX_IDLE: Duration = Duration::from_secs(90);

/// Proxy settings the general client follows and this one does not.
const PROXY_VARIABLES: [&str; 4] = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/// A target's connections and the path asked for on them.
pub struct LeanTarget {
    pool: Arc<Pool>,
    path: String,
    url: String,
}

impl std::fmt::Debug for LeanTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanTarget")
            .field("url", &self.url)
            .finish()
    }
}

impl LeanTarget {
    /// The lean client for `url`, when it can serve it: `http://`, no credentials in the
    /// URL, no proxy in the environment.
    pub fn for_url(url: &str) -> Option<LeanTarget> {
        let parsed = reqwest::Url::parse(url).ok()?;
        let plain = parsed.scheme() == "http"
            && parsed.username().is_empty()
            && parsed.password().is_none();
        let proxied = PROXY_VARIABLES
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|value| !value.is_empty()));
        if !plain || proxied {
            return None;
        }
        let pool = Pool::resolving(&parsed)
            .ok()?
            .with_max_idle(MAX_IDLE)
            .without_kept_buffers();
        let mut path = parsed.path().to_string();
        if let Some(query) = parsed.query() {
            path.push('?');
            path.push_str(query);
        }
        Some(LeanTarget {
            pool: Arc::new(pool),
            path,
            url: url.to_string(),
        })
    }

    /// Fetches the target; `Ok(None)` for a redirect, which the general client follows.
    pub async fn fetch(
        &self,
        opts: &FetchOptions,
        accept: &str,
        keep_alive: bool,
    ) -> Result<Option<Fetched>, FetchError> {
        let request = self.request(opts, accept, keep_alive);
        tokio::time::timeout(opts.timeout, self.exchange(&request, opts.max_body_bytes))
            .await
            .map_err(|_| FetchError::Timeout {
                url: self.url.clone(),
                timeout: opts.timeout,
            })?
    }

    /// The request, whole: `GET`, the headers the general client sends, the token.
    fn request(&self, opts: &FetchOptions, accept: &str, keep_alive: bool) -> Vec<u8> {
        let token = opts.bearer_token.as_deref();
        let more = 96 + accept.len() + token.map_or(0, |t| t.len() + 24);
        let mut request = self.pool.request_head("GET", &self.path, more);
        let user_agent = concat!("llmwatch/", env!("CARGO_PKG_VERSION"));
        for part in ["Accept: ", accept, "\r\nUser-Agent: ", user_agent, "\r\n"] {
            request.extend_from_slice(part.as_bytes());
        }
        if let Some(token) = token {
            for part in ["Authorization: Bearer ", token, "\r\n"] {
                request.extend_from_slice(part.as_bytes());
            }
        }
        if !keep_alive {
            request.extend_from_slice(b"Connection: close\r\n");
        }
        request.extend_from_slice(b"\r\n");
        request
    }

    async fn exchange(&self, request: &[u8], limit: usize) -> Result<Option<Fetched>, FetchError> {
        let failed = |f| lean_failure(&self.url, f);
        let mut response = self.pool.send_idempotent(request).await.map_err(failed)?;
        let status = response.status;
        if (300..400).contains(&status) {
            return Ok(None);
        }
        let too_large = || FetchError::TooLarge {
            url: self.url.clone(),
            limit,
        };
        let declared = response
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(too_large());
        }
        let content_type = response.header("content-type").map(str::to_string);
        // Sized once when the length is known: no doubling, no half-empty buffer kept.
        let expected = usize::try_from(declared.unwrap_or(0)).unwrap_or(0);
        let mut body = Vec::with_capacity(expected.min(limit));
        while response.append_to(&mut body).await.map_err(failed)? {
            if body.len() > limit {
                return Err(too_large());
            }
        }
        check_status(&self.url, status, &body)?;
        Ok(Some(Fetched {
            status,
            content_type,
            body,
        }))
    }
}

/// A lean client's failure as the general client's error, so the scrape's failure reason
/// (`refused`, `connection`) is the same whichever client fetched.
fn lean_failure(url: &str, failure: Failure) -> FetchError {
    let reason = match failure {
        Failure::Refused => "Connection refused",
        Failure::Connect => "cannot connect, or the connection closed before an answer",
        Failure::Incomplete => "the connection was cut mid-answer",
        Failure::Invalid => "the answer is not HTTP/1.1",
    };
    FetchError::Request {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests;

//! Where a request goes: upstreams serve listed models (or any model, as the default);
//! replicas of one model are balanced least-outstanding, and a replica that just failed
//! (connection refused, 5xx) is skipped for a while — passive health checking.

use std::cell::OnceCell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a failing replica is skipped.
const BENCHED_FOR: Duration = Duration::from_secs(10);

/// One upstream server.
pub struct Upstream {
    /// Base URL, without a trailing slash.
    pub base: String,
    /// Models it serves; empty means any (a default upstream).
    pub models: Vec<String>,
    /// The lean HTTP/1.1 client's pool, for `http://` upstreams.
    pub lean: Option<std::sync::Arc<crate::http1::Pool>>,
    /// Its host and port, as spans name the server (read once, not per request).
    pub server: (std::sync::Arc<str>, Option<u16>),
    outstanding: AtomicUsize,
    /// Whether `failed_at` holds a failure: read first, so that a healthy upstream's request
    /// takes no lock and no clock reading.
    failing: AtomicBool,
    failed_at: Mutex<Option<Instant>>,
}

impl Upstream {
    /// Parses `URL[,models=a|b]`; `connect_timeout` bounds connecting to it.
    pub fn parse(arg: &str, connect_timeout: std::time::Duration) -> Result<Upstream, String> {
        let mut parts = arg.split(',');
        let url = parts.next().unwrap_or_default().trim();
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("upstream {url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("upstream {url:?}: use http:// or https://"));
        }
        if cfg!(not(feature = "tls")) && parsed.scheme() == "https" {
            return Err(format!(
                "upstream {url:?}: this llmwatch was built without TLS (feature `tls`)"
            ));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(format!(
                "upstream {url:?}: no credentials in URLs; clients' Authorization headers pass through"
            ));
        }
        let mut models = Vec::new();
        for part in parts {
            match part.split_once('=') {
                Some(("models", list)) => models.extend(
                    list.split('|')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_string),
                ),
                _ => {
                    return Err(format!(
                        "upstream {arg:?}: unknown option {part:?} (models=a|b)"
                    ));
                }
            }
        }
        // The lean client resolves its address once, so it takes plain HTTP to addresses
        // and localhost; names go through reqwest, which resolves them per connection.
        let host = parsed.host_str().unwrap_or_default();
        // An IPv6 address without its brackets, as spans name the server too.
        let bare_host = host.trim_matches(['[', ']']);
        let literal = bare_host.parse::<std::net::IpAddr>().is_ok();
        let lean = match parsed.scheme() {
            "http" if literal || host == "localhost" => Some(std::sync::Arc::new(
                crate::http1::Pool::new(&parsed)?.with_connect_timeout(connect_timeout),
            )),
            _ => None,
        };
        Ok(Upstream {
            server: (bare_host.into(), parsed.port_or_known_default()),
            base: crate::bench::base_url(url).to_string(),
            models,
            lean,
            outstanding: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
            failed_at: Mutex::new(None),
        })
    }

    fn serves(&self, model: &str) -> bool {
        self.models.iter().any(|m| m == model)
    }

    /// Whether it has not failed in the last [`BENCHED_FOR`]; `now` is read once per choice,
    /// and only when an upstream has failed.
    fn healthy(&self, now: &OnceCell<Instant>) -> bool {
        if !self.failing.load(Ordering::Acquire) {
            return true;
        }
        let failed = *self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        let now = *now.get_or_init(Instant::now);
        failed.is_none_or(|at| now.duration_since(at) >= BENCHED_FOR)
    }

    /// Records a failure: skipped for a while.
    pub fn failed(&self) {
        let mut failed_at = self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        *failed_at = Some(Instant::now());
        self.failing.store(true, Ordering::Release);
    }

    /// Records a success: healthy again.
    pub fn succeeded(&self) {
        if !self.failing.load(Ordering::Acquire) {
            return;
        }
        let mut failed_at = self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        *failed_at = None;
        self.failing.store(false, Ordering::Release);
    }

    /// A request chosen by [`choose`] has ended.
    pub fn release(&self) {
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Chooses the upstream for `model`: those listing it, else the defaults (listing none);
/// among them a healthy one with the fewest requests outstanding (any one when none is
/// healthy, so a recovered server is found again). Its index; it counts the request as
/// outstanding until [`Upstream::release`].
pub fn choose(upstreams: &[Upstream], model: Option<&str>) -> Option<usize> {
    let listed: Vec<usize> = match model {
        Some(m) => (0..upstreams.len())
            .filter(|i| upstreams[*i].serves(m))
            .collect(),
        None => Vec::new(),
    };
    let candidates: Vec<usize> = if listed.is_empty() {
        (0..upstreams.len())
            .filter(|i| upstreams[*i].models.is_empty())
            .collect()
    } else {
        listed
    };
    let now = OnceCell::new();
    let load = |i: &&usize| upstreams[**i].outstanding.load(Ordering::Acquire);
    let chosen = *candidates
        .iter()
        .filter(|i| upstreams[**i].healthy(&now))
        .min_by_key(load)
        .or_else(|| candidates.iter().min_by_key(load))?;
    upstreams[chosen].outstanding.fetch_add(1, Ordering::AcqRel);
    Some(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn upstreams(args: &[&str]) -> Vec<Upstream> {
        args.iter()
            .map(|a| Upstream::parse(a, SECOND).unwrap())
            .collect()
    }

    #[test]
    fn an_upstreams_server_is_its_host_without_brackets_and_its_port() {
        for (arg, host, port) in [
            ("http://127.0.0.1:8000", "127.0.0.1", 8000),
            ("http://vllm:8000/,models=a", "vllm", 8000),
            ("https://engine.example.com/v1", "engine.example.com", 443),
            ("http://[::1]:8080", "::1", 8080),
            ("http://[::1]", "::1", 80),
        ] {
            let upstream = Upstream::parse(arg, SECOND).unwrap();
            assert_eq!(
                (&*upstream.server.0, upstream.server.1),
                (host, Some(port)),
                "{arg}"
            );
            let base = crate::otlp::trace::host_and_port(&upstream.base);
            assert_eq!((base.0.as_str(), base.1), (host, Some(port)), "{arg}");
        }
    }

    #[test]
    fn models_route_to_their_replicas_least_outstanding_first() {
        let ups = upstreams(&["http://a:1,models=m1", "http://b:1,models=m1", "http://c:1"]);
        let first = choose(&ups, Some("m1")).unwrap();
        let second = choose(&ups, Some("m1")).unwrap();
        assert_ne!(first, second, "spread over replicas");
        assert_eq!(choose(&ups, Some("other")), Some(2));
        ups[first].release();
        // The first is free again; the second still has one outstanding.
        assert_eq!(choose(&ups, Some("m1")), Some(first));
    }

    #[test]
    fn a_failed_replica_is_skipped_until_none_is_left() {
        let ups = upstreams(&["http://a:1,models=m", "http://b:1,models=m"]);
        ups[0].failed();
        for _ in 0..3 {
            assert_eq!(choose(&ups, Some("m")), Some(1));
        }
        ups[1].failed();
        assert!(
            choose(&ups, Some("m")).is_some(),
            "all failing: still try one"
        );
        assert!(
            choose(&ups[..1], Some("nope")).is_none(),
            "no default upstream"
        );
    }

    #[test]
    fn a_failed_replica_that_succeeds_again_is_chosen_again() {
        let ups = upstreams(&["http://a:1,models=m", "http://b:1,models=m"]);
        ups[0].failed();
        assert_eq!(choose(&ups, Some("m")), Some(1));
        ups[0].succeeded();
        // b has one outstanding; a, healthy again, has none.
        assert_eq!(choose(&ups, Some("m")), Some(0));
    }

    #[test]
    fn bad_upstreams_are_refused() {
        assert!(Upstream::parse("ftp://x", SECOND).is_err());
        assert!(Upstream::parse("http://u:p@x", SECOND).is_err());
        assert!(Upstream::parse("http://x,weight=2", SECOND).is_err());
        assert_eq!(
            Upstream::parse("http://x:8000/v1/", SECOND).unwrap().base,
            "http://x:8000"
        );
    }
}

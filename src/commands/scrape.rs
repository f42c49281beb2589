//! `llmwatch scrape URL|FILE|-`: fetch one scrape, detect the engine and version, normalise,
//! and report every canonical signal as native, derived or missing.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::collect::body::{self, BodyError};
use crate::collect::fetch::{self, ACCEPT, FetchError, FetchOptions};
use crate::collect::probe::{Probed, probe};
use crate::engines::{Detection, Engine, Index, Reading, detect, normalise};
use crate::exposition::{self, Exposition, MetricType, Mode, ParseError};

/// Everything the command needs, already validated by the CLI layer.
#[derive(Debug, Clone)]
pub struct ScrapeArgs {
    /// `http(s)://…`, a file path, or `-` for standard input.
    pub target: String,
    /// Fetch limits and credentials.
    pub fetch: FetchOptions,
    /// Skip malformed lines (and report them) instead of failing.
    pub lenient: bool,
    /// Model label for engines whose series carry none.
    pub model: Option<String>,
    /// Ask the engine's info endpoint for its exact version.
    pub probe_version: bool,
}

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// HTTP trouble.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Not Prometheus text.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// A file or standard input could not be read.
    #[error("{origin}: cannot read: {error}")]
    Read {
        /// The path.
        origin: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A file larger than the body limit.
    #[error("{origin}: larger than the limit of {limit} bytes (raise --max-body-bytes)")]
    TooLarge {
        /// The path.
        origin: String,
        /// The limit.
        limit: usize,
    },
    /// A malformed line in strict mode.
    #[error("{origin}: {error} (use --lenient to skip malformed lines)")]
    Parse {
        /// URL or file.
        origin: String,
        /// Where and why.
        error: ParseError,
    },
    /// The same series twice.
    #[error("{origin}: duplicate series, which Prometheus rejects: {}", series.join("; "))]
    Duplicates {
        /// URL or file.
        origin: String,
        /// The series, with counts.
        series: Vec<String>,
    },
}

/// A family of an unknown exposition, shown raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilySummary {
    /// Family name.
    pub name: String,
    /// Declared type.
    pub kind: MetricType,
    /// Number of samples.
    pub samples: usize,
}

/// The result of one scrape, owned.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// URL or file the body came from.
    pub origin: String,
    /// Engine and fingerprinted version range.
    pub detection: Detection,
    /// Exact version from the info endpoint, when asked and reachable.
    pub probed: Option<Probed>,
    /// Why the info endpoint did not answer, when asked.
    pub probe_error: Option<String>,
    /// One reading per canonical signal (empty for an unknown engine).
    pub readings: Vec<Reading>,
    /// Every family, for showing an unknown exposition raw.
    pub families: Vec<FamilySummary>,
    /// Sample count.
    pub samples: usize,
    /// Things the user should know (skipped lines, decoded bodies).
    pub warnings: Vec<String>,
    /// A GPU exporter's GPUs, when the body is one rather than an engine's.
    pub gpu: Option<crate::gpu::GpuScrape>,
}

impl Analysis {
    /// The engine, if recognised.
    pub fn engine(&self) -> Option<Engine> {
        self.detection.engine
    }

    /// The version to show: exact when probed, else the fingerprint range.
    pub fn version(&self) -> &str {
        self.probed
            .as_ref()
            .map_or(self.detection.version.as_str(), |p| {
                p.version_or(&self.detection.version)
            })
    }
}

/// Parses, checks, detects and normalises one body. `model` labels the series of engines
/// that carry no model label (TGI, llama.cpp).
pub fn analyse(body: &Body<'_>, mode: Mode, model: Option<&str>) -> Result<Analysis, ScrapeError> {
    let (exp, mut warnings) = parse_lines_of(body, mode)?;
    let (duplicates, mut analysis) = beside_duplicate_check(&exp, || {
        let index = Index::new(&exp);
        let detection = detect(&index);
        summarise(body.origin, &index, detection, model, Vec::new())
    });
    warnings.extend(duplicates_found(body.origin, mode, duplicates)?);
    analysis.warnings.splice(0..0, warnings);
    Ok(analysis)
}

/// Bodies with fewer samples check for duplicates on the calling thread: starting a thread
/// costs more than the check.
const DUPLICATE_CHECK_THREAD_FROM: usize = 20_000;

/// Runs `work` while a second thread checks the same parsed body for duplicate series. On a
/// large body each takes about as long as the other (a 400-model vLLM body: about 8 ms
/// each), and a one-shot command has the cores to spare.
fn beside_duplicate_check<T>(exp: &Exposition<'_>, work: impl FnOnce() -> T) -> (Vec<String>, T) {
    if exp.sample_count() < DUPLICATE_CHECK_THREAD_FROM {
        return (exp.duplicate_series(), work());
    }
    std::thread::scope(|scope| {
        let check = std::thread::Builder::new()
            .name("duplicates".to_string())
            .spawn_scoped(scope, || exp.duplicate_series());
        let out = work();
        let duplicates = match check {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No thread to be had: check here instead.
            Err(_) => exp.duplicate_series(),
        };
        (duplicates, out)
    })
}

/// A body to analyse and where it came from.
pub struct Body<'t> {
    /// URL or file, for messages.
    pub origin: &'t str,
    /// The text.
    pub text: &'t str,
    /// Whether it is OpenMetrics, held to that specification.
    pub openmetrics: bool,
}

/// Parses a body; malformed lines (lenient) and duplicate series become warnings or errors.
fn parse_body<'t>(
    body: &Body<'t>,
    mode: Mode,
) -> Result<(Exposition<'t>, Vec<String>), ScrapeError> {
    let (exp, mut warnings) = parse_lines_of(body, mode)?;
    warnings.extend(duplicates_found(body.origin, mode, exp.duplicate_series())?);
    Ok((exp, warnings))
}

/// Parses a body; malformed lines become warnings (lenient) or the error (strict).
fn parse_lines_of<'t>(
    body: &Body<'t>,
    mode: Mode,
) -> Result<(Exposition<'t>, Vec<String>), ScrapeError> {
    let (origin, text) = (body.origin, body.text);
    let exp =
        exposition::parse_as(text, mode, body.openmetrics).map_err(|error| ScrapeError::Parse {
            origin: origin.to_string(),
            error,
        })?;
    let warnings = exp
        .skipped
        .iter()
        .map(|e| format!("{origin}: skipped {e}"))
        .collect();
    Ok((exp, warnings))
}

/// Duplicate series: the error (strict) or a warning (lenient, where their values add up).
fn duplicates_found(
    origin: &str,
    mode: Mode,
    duplicates: Vec<String>,
) -> Result<Option<String>, ScrapeError> {
    if duplicates.is_empty() {
        return Ok(None);
    }
    if mode == Mode::Strict {
        return Err(ScrapeError::Duplicates {
            origin: origin.to_string(),
            series: duplicates,
        });
    }
    Ok(Some(format!(
        "{origin}: duplicate series, values added up: {}",
        duplicates.join("; ")
    )))
}

/// Normalises a detected scrape and keeps what the renderers need.
fn summarise(
    origin: &str,
    index: &Index<'_, '_>,
    detection: Detection,
    model: Option<&str>,
    warnings: Vec<String>,
) -> Analysis {
    let exp = index.exposition();
    let mut readings = match detection.engine {
        Some(engine) => normalise(index, engine, model.unwrap_or("unknown")),
        None => Vec::new(),
    };
    let mut warnings = warnings;
    // Series whose numbers are invalid are left out, not shown as nonsense quantiles.
    warnings.extend(
        crate::collect::integrity::exclude_invalid(&mut readings)
            .into_iter()
            .map(|p| format!("{origin}: {}: {} ({})", p.series, p.detail, p.kind.as_str())),
    );
    let gpu = detection
        .engine
        .is_none()
        .then(|| crate::gpu::detect(index))
        .flatten()
        .map(|source| crate::gpu::normalise(exp, source));
    let families = exp
        .families
        .iter()
        .map(|f| FamilySummary {
            name: f.name.to_string(),
            kind: f.kind,
            samples: f.samples.len(),
        })
        .collect();
    Analysis {
        origin: origin.to_string(),
        detection,
        probed: None,
        probe_error: None,
        readings,
        families,
        samples: exp.sample_count(),
        warnings,
        gpu,
    }
}

/// Runs the whole command: read or fetch, check the body, parse and detect, ask the engine's
/// info endpoint (URLs only), then normalise once with the model name it gave.
pub async fn scrape(args: &ScrapeArgs) -> Result<Analysis, ScrapeError> {
    let mode = if args.lenient {
        Mode::Lenient
    } else {
        Mode::Strict
    };
    if !is_url(&args.target) {
        let bytes = read_local(&args.target, args.fetch.max_body_bytes)?;
        let checked = body::check(&args.target, &bytes, None)?;
        let body = Body {
            origin: &args.target,
            text: &checked.text,
            openmetrics: checked.openmetrics,
        };
        let mut analysis = analyse(&body, mode, args.model.as_deref())?;
        analysis.warnings.splice(0..0, checked.warnings);
        return Ok(analysis);
    }
    let url = metrics_url(&args.target);
    let client = fetch::client(&args.fetch)?;
    let fetched = fetch::fetch(&client, &url, &args.fetch, ACCEPT).await?;
    let checked = body::check(&url, &fetched.body, fetched.content_type.as_deref())?;
    let body = Body {
        origin: &url,
        text: &checked.text,
        openmetrics: checked.openmetrics,
    };
    let (exp, warnings) = parse_body(&body, mode)?;
    let index = Index::new(&exp);
    let detection = detect(&index);
    let probed = match detection.engine.filter(|_| args.probe_version) {
        Some(engine) => {
            let probe_opts = FetchOptions {
                timeout: args.fetch.timeout.min(Duration::from_secs(2)),
                max_body_bytes: 1 << 20,
                bearer_token: args.fetch.bearer_token.clone(),
            };
            Some(probe(&client, &url, engine, &probe_opts).await)
        }
        None => None,
    };
    // The info endpoint names the model of engines whose series carry no model label.
    let probed_model = probed
        .as_ref()
        .and_then(|p| p.as_ref().ok()?.model.as_deref());
    let model = args.model.as_deref().or(probed_model);
    let warnings = [checked.warnings, warnings].concat();
    let mut analysis = summarise(&url, &index, detection, model, warnings);
    match probed {
        Some(Ok(p)) => analysis.probed = Some(p),
        Some(Err(e)) => analysis.probe_error = Some(e),
        None => {}
    }
    Ok(analysis)
}

fn is_url(target: &str) -> bool {
    target.starts_with("http://") || target.starts_with("https://")
}

/// `http://host:port` and `http://host:port/` mean the engine's `/metrics`.
pub fn metrics_url(target: &str) -> String {
    match reqwest::Url::parse(target) {
        Ok(mut url) => {
            if fetch::default_metrics_path(&mut url) {
                url.to_string()
            } else {
                target.to_string()
            }
        }
        Err(_) => target.to_string(),
    }
}

fn read_local(target: &str, limit: usize) -> Result<Vec<u8>, ScrapeError> {
    let read_err = |error| ScrapeError::Read {
        origin: target.to_string(),
        error,
    };
    let mut bytes = Vec::new();
    let taken = (limit as u64).saturating_add(1);
    if target == "-" {
        std::io::stdin()
            .take(taken)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
    } else {
        let file = std::fs::File::open(Path::new(target)).map_err(read_err)?;
        // Sized once from the file's length: growing by doubling touched twice the pages.
        let size = file.metadata().map_or(0, |m| m.len()).min(taken);
        bytes.reserve_exact(usize::try_from(size).unwrap_or(0).saturating_add(1));
        file.take(taken).read_to_end(&mut bytes).map_err(read_err)?;
    }
    if bytes.len() > limit {
        return Err(ScrapeError::TooLarge {
            origin: target.to_string(),
            limit,
        });
    }
    Ok(bytes)
}

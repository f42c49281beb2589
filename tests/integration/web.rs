//! The built-in web dashboard in a real browser: headless Chromium loads `up`'s page over a
//! simulated vLLM and a fixture target whose model is named like an HTML injection; every
//! row and chart shows data, the console has no errors or CSP violations, the numbers equal
//! what `/api/v1/overview` serves, the hostile name is text, and screenshots are written.
//! Skips without `chromium` (fails under `LLMWATCH_REQUIRE_EXTERNAL=1`). The page's routes,
//! headers and auth are checked without a browser too.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::up::{Up, eventually, get, start_up};
use crate::util::{Canned, external_program, fixture, http, serve, start_with};

const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// A vLLM capture whose model is named [`HOSTILE`], served as it is on every scrape.
fn hostile_target() -> String {
    let text = std::fs::read_to_string(fixture("reconstructed/vllm-0.33.txt"))
        .unwrap()
        .replace("meta-llama/Llama-3.1-8B-Instruct", HOSTILE);
    serve(HashMap::from([("/metrics", Canned::ok(text))])).base
}

/// `up` over a simulated vLLM that has served a few requests, and the hostile fixture.
fn dashboard() -> (Up, crate::util::Sim) {
    let sim = start_with(&["vllm"], &["--profile", "instant"]);
    let base = sim.urls[0].1.clone();
    let up = start_up(
        "[scrape]\ninterval = \"300ms\"\n",
        &[
            &format!("--target={base},name=sim-vllm,service=chat"),
            &format!("--target={},name=fixture,service=batch", hostile_target()),
        ],
    );
    let (rt, client) = http();
    rt.block_on(async {
        for i in 0..20 {
            let body = serde_json::json!({
                "messages": [{"role": "user", "content": format!("question {i}")}],
                "max_tokens": 5, "stream": true,
            });
            let _ = client
                .post(format!("{base}/v1/chat/completions"))
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .text()
                .await;
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    });
    // Rates need two scrapes after the traffic.
    eventually(10, || {
        let (_, body) = get(&format!("{}/api/v1/overview?window=1m", up.base));
        let v: Value = serde_json::from_str(&body).ok()?;
        let vllm = v["rows"]
            .as_array()?
            .iter()
            .find(|r| r["target"] == "sim-vllm")?;
        vllm["cells"][0][0]["now"]
            .as_f64()
            .filter(|r| *r > 0.0)
            .map(|_| ())
    });
    (up, sim)
}

/// Headless Chromium on `url`: the DOM after the page's script ran, and what the browser
/// logged (console messages and CSP reports included). Writes a screenshot to `png` too.
pub fn chromium(browser: &Path, url: &str, png: &Path) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--enable-logging=stderr",
                "--v=0",
                "--window-size=1500,1000",
                "--virtual-time-budget=6000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(extra)
            .arg(url)
            .output()
            .unwrap()
    };
    let dom = run(&["--dump-dom"]);
    let shot = run(&[&format!("--screenshot={}", png.display())]);
    assert!(
        shot.status.success(),
        "{}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let png_bytes = std::fs::read(png).unwrap();
    assert!(png_bytes.starts_with(b"\x89PNG") && png_bytes.len() > 10_000);
    let log =
        String::from_utf8_lossy(&dom.stderr).into_owned() + &String::from_utf8_lossy(&shot.stderr);
    (String::from_utf8_lossy(&dom.stdout).into_owned(), log)
}

/// Lines of the browser log that are the page's console or a blocked resource.
pub fn page_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains(":CONSOLE")
                || l.contains("Content Security Policy")
                || l.contains("Refused to")
        })
        .collect()
}

/// The text of the element carrying `marker` (an attribute) in `dom`, tags stripped.
fn text_after(dom: &str, marker: &str) -> String {
    let start = dom
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in the page"));
    let rest = &dom[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest[open..].find('<').unwrap();
    rest[open..open + close].to_string()
}

/// Where the README's screenshots go: docs/ with `LLMWATCH_BLESS=1`, else `dir`.
pub fn screenshot_path(dir: &Path, name: &str) -> std::path::PathBuf {
    if std::env::var("LLMWATCH_BLESS").is_ok_and(|v| v == "1") {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(name)
    } else {
        dir.join(name)
    }
}

#[test]
fn the_dashboard_in_a_real_browser_shows_every_row_and_chart_and_escapes_names() {
    let _exclusive = crate::util::exclusive();
    let Some(browser) = external_program("chromium") else {
        return;
    };
    let (up, _sim) = dashboard();
    let dir = tempfile::tempdir().unwrap();
    let (dom, log) = chromium(
        &browser,
        &format!("{}/?window=1m", up.base),
        &dir.path().join("overview.png"),
    );
    assert!(page_errors(&log).is_empty(), "{:?}", page_errors(&log));
    // A row per target and model, each with its health.
    assert!(
        dom.contains("data-target=\"sim-vllm\" data-model=\"sim-vllm\""),
        "{dom}"
    );
    assert!(dom.contains("data-target=\"fixture\""), "{dom}");
    // The hostile model name is text: escaped in the DOM, never an element.
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;"), "{dom}");
    assert!(!dom.contains("<img src=x"), "{dom}");
    // The numbers are the API's: the fixture's gauges do not move.
    let (_, body) = get(&format!("{}/api/v1/overview?window=1m", up.base));
    let api: Value = serde_json::from_str(&body).unwrap();
    let fixture_row = api["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target"] == "fixture")
        .unwrap();
    let running = fixture_row["cells"][6][0]["now"].as_f64().unwrap();
    let waiting = fixture_row["cells"][6][1]["now"].as_f64().unwrap();
    let kv = fixture_row["cells"][7][0]["now"].as_f64().unwrap();
    let row_start = dom.find("data-target=\"fixture\"").unwrap();
    let row = &dom[row_start..];
    assert_eq!(
        text_after(row, "data-line=\"running\""),
        format!("{running}")
    );
    assert_eq!(
        text_after(row, "data-line=\"waiting\""),
        format!("{waiting}")
    );
    assert_eq!(
        text_after(row, "data-line=\"used\""),
        format!("{:.0} %", kv * 100.0)
    );
    // The simulated engine's request rate is on the page.
    let vllm_row = &dom[dom.find("data-target=\"sim-vllm\"").unwrap()..];
    assert_ne!(
        text_after(vllm_row, "data-line=\"req/s\""),
        "–",
        "{vllm_row}"
    );

    // The detail page: every chart, and the coverage table from the signal table.
    let (dom, log) = chromium(
        &browser,
        &format!("{}/?target=sim-vllm&model=sim-vllm&window=1m", up.base),
        &dir.path().join("detail.png"),
    );
    assert!(page_errors(&log).is_empty(), "{:?}", page_errors(&log));
    assert_eq!(
        dom.matches("class=\"chart\"").count(),
        llmwatch::catalog::panels::DETAIL.len(),
        "{dom}"
    );
    for panel in [
        "requests", "tokens", "outcomes", "ttft", "itl", "e2e", "load",
    ] {
        let chart = &dom[dom.find(&format!("data-panel=\"{panel}\"")).unwrap()..];
        let end = chart[1..]
            .find("class=\"chart\"")
            .unwrap_or(chart.len() - 1);
        assert!(
            chart[..end].contains("<path"),
            "{panel} has no line: {}",
            &chart[..end]
        );
    }
    assert!(dom.contains("data-signal=\"llm_requests_finished_total\""));
    assert!(dom.contains("src-native"), "coverage says what is native");
}

#[test]
fn the_page_has_a_strict_policy_and_the_same_auth_as_the_api() {
    let up = start_up(
        "[auth]\nbearer_token = \"s3cret\"\n",
        &["--target=http://127.0.0.1:9"],
    );
    let (rt, client) = http();
    rt.block_on(async {
        for path in [
            "/",
            "/assets/app.js",
            "/api/v1/overview",
            "/api/v1/detail?target=x",
        ] {
            let denied = client
                .get(format!("{}{path}", up.base))
                .send()
                .await
                .unwrap();
            assert_eq!(denied.status(), 401, "{path}");
        }
        let page = client
            .get(format!("{}/", up.base))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        let detail = client
            .get(format!("{}/api/v1/detail?target=nope", up.base))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap();
        assert_eq!(detail.status(), 404);
        let overview = client
            .get(format!("{}/api/v1/overview", up.base))
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let overview: Value = serde_json::from_str(&overview).unwrap();
        // A target that never answered is a row that says so, not a blank.
        let row = &overview["rows"][0];
        assert_eq!(row["model"], Value::Null);
        assert!(
            row["health"] == "down" || row["health"] == "unknown",
            "{row}"
        );
    });
}

/// A target whose `/metrics` body can be swapped, or withdrawn (then it answers 503).
pub struct Changing {
    server: crate::util::CannedServer,
    pub base: String,
}

impl Changing {
    pub fn start(body: String) -> Changing {
        let server = serve(HashMap::from([("/metrics", Canned::ok(body))]));
        Changing {
            base: server.base.clone(),
            server,
        }
    }

    pub fn set(&self, body: Option<String>) {
        let canned = body.map_or(
            Canned {
                status: 503,
                content_type: "text/plain",
                body: Vec::new(),
            },
            Canned::ok,
        );
        self.server.set("/metrics", canned);
    }
}

fn overview_rows(up: &Up) -> Vec<Value> {
    let (_, body) = get(&format!("{}/api/v1/overview?window=1m", up.base));
    let v: Value = serde_json::from_str(&body).unwrap();
    v["rows"].as_array().unwrap().clone()
}

#[test]
fn the_overview_follows_a_late_model_a_new_version_and_a_target_that_goes_away() {
    let capture =
        |name: &str| std::fs::read_to_string(fixture(&format!("reconstructed/{name}"))).unwrap();
    let target = Changing::start(capture("vllm-0.33.txt"));
    let up = start_up(
        "[scrape]\ninterval = \"200ms\"\n",
        &[&format!("--target={},name=engine", target.base)],
    );
    eventually(10, || {
        let rows = overview_rows(&up);
        (rows.len() == 1 && rows[0]["health"] == "up").then_some(())
    });
    // A second model appears (the same engine serving two): a row of its own.
    target.set(Some(capture("vllm-0.33-multi-model.txt")));
    let rows = eventually(10, || {
        let rows = overview_rows(&up);
        rows.iter()
            .any(|r| r["model"] == "Qwen/Qwen3-8B")
            .then_some(rows)
    });
    assert_eq!(rows.len(), 2, "{rows:?}");
    // The engine is upgraded from 0.8 names to 0.33: the version follows, the rows stay.
    target.set(Some(capture("vllm-0.8-v1.txt")));
    let rows = eventually(10, || {
        let rows = overview_rows(&up);
        rows.iter()
            .all(|r| r["version"].as_str().is_some_and(|v| !v.contains("0.33")))
            .then_some(rows)
    });
    assert!(rows.iter().all(|r| r["health"] == "up"), "{rows:?}");
    // It goes away: down, with why, and its last numbers kept rather than blanked.
    target.set(None);
    let rows = eventually(10, || {
        let rows = overview_rows(&up);
        rows.iter().all(|r| r["health"] == "down").then_some(rows)
    });
    let row = &rows[0];
    assert_eq!(row["error"]["reason"], "http_status", "{row}");
    assert!(!row["model"].is_null(), "the history's model stays: {row}");
    assert!(
        row["cells"][6][0]["now"].as_f64().is_some(),
        "running still shown: {row}"
    );
}

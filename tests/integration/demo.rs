//! `llmwatch demo`: it starts everything, prints the dashboard's address first, its scripted
//! incident shows in the engine's metrics at its time, its client load goes through the proxy,
//! and Ctrl-C stops it at once. With `LLMWATCH_BLESS=1` it also writes the README's
//! screenshots, two minutes into the incident.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::up::{eventually, get, sample};

#[test]
fn the_demo_runs_its_incident_through_the_proxy_and_stops_on_ctrl_c() {
    let _exclusive = crate::util::exclusive();
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmwatch"))
        .args(["demo", "--listen", "127.0.0.1:0", "--incident-at", "3s"])
        .env("LLMWATCH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Killed if the test fails before Ctrl-C.
    let mut demo = crate::util::KillOnDrop(child);
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("llmwatch demo: open the dashboard at http://"),
        "{first}"
    );
    let up = first
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let (status, page) = get(&format!("{up}/"));
    assert_eq!(status, 200);
    assert!(page.contains("/assets/app.js"));
    // The incident: vLLM's cache shrinks at 3 s and the client load meets it.
    let preempted = eventually(60, || {
        let (_, m) = get(&format!("{up}/metrics"));
        sample(&m, "llm_preemptions_total{engine=\"vllm\"").filter(|p| *p > 0.0)
    });
    assert!(preempted > 0.0);
    // The load goes through the proxy: the client-side series are there for every model.
    let (_, m) = get(&format!("{up}/metrics"));
    for model in ["sim-vllm", "sim-tgi", "sim-llamacpp", "sim-sglang"] {
        assert!(
            m.contains(&format!("gen_ai_request_model=\"{model}\"")),
            "{model} through the proxy"
        );
    }
    bless_screenshots(&up);
    // Ctrl-C stops every part of it within a second or two.
    let stopped = Instant::now();
    Command::new("kill")
        .args(["-INT", &demo.0.id().to_string()])
        .status()
        .unwrap();
    loop {
        if let Some(status) = demo.0.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(3),
            "still running 3 s after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing of it is left listening.
    let addr = up.trim_start_matches("http://");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "{addr} still answers"
    );
}

/// With `LLMWATCH_BLESS=1` and Chromium: the README's screenshots, two minutes into the
/// incident, of the overview and of vLLM's detail.
fn bless_screenshots(up: &str) {
    if !std::env::var("LLMWATCH_BLESS").is_ok_and(|v| v == "1") {
        return;
    }
    let Some(browser) = crate::util::external_program("chromium") else {
        return;
    };
    std::thread::sleep(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    for (url, name) in [
        (format!("{up}/?window=5m"), "dashboard-overview.png"),
        (
            format!("{up}/?target=sim-vllm&model=sim-vllm&window=5m"),
            "dashboard-detail.png",
        ),
    ] {
        let png = crate::web::screenshot_path(dir.path(), name);
        let (_, log) = crate::web::chromium(&browser, &url, &png);
        assert!(
            crate::web::page_errors(&log).is_empty(),
            "{:?}",
            crate::web::page_errors(&log)
        );
    }
}

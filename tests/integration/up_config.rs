//! `llmwatch up` configuration: bad files exit 2 naming the place, targets reload from
//! file_sd files and on SIGHUP, and auth guards everything but health.

use std::process::Command;

use serde_json::Value;

use crate::up::{eventually, get, start_up};
use crate::util::start;

fn up_with_config(text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    Command::new(env!("CARGO_BIN_EXE_llmwatch"))
        .arg("up")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn a_bad_config_exits_2_naming_file_line_and_field() {
    let out = up_with_config("listen = \"127.0.0.1:0\"\n\n[scrape]\ninterval = 5\n");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.toml:4:"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let out = up_with_config("[[target]]\nurl = \"http://a:1\"\nlabels = { instance = \"x\" }\n");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("target[0]: label \"instance\""), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_llmwatch"))
        .args([
            "up",
            "--listen",
            "127.0.0.1:0",
            "--target",
            "http://a:1,engine=x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn target_names(base: &str) -> Vec<String> {
    let (_, body) = get(&format!("{base}/api/v1/targets"));
    let v: Value = serde_json::from_str(&body).unwrap();
    v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn file_sd_changes_and_sighup_reload_the_targets() {
    let sim = start(&["vllm", "sglang"]);
    let addr = |i: usize| sim.urls[i].1.trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("targets.json");
    std::fs::write(
        &sd,
        format!(
            r#"[{{"targets": ["{}"], "labels": {{"service": "a"}}}}]"#,
            addr(0)
        ),
    )
    .unwrap();
    let config = format!(
        "file_sd = [{:?}]\nfile_sd_refresh = \"100ms\"\n[scrape]\ninterval = \"200ms\"\n",
        sd.display().to_string()
    );
    let up = start_up(&config, &[]);
    assert_eq!(target_names(&up.base), [addr(0)]);
    std::fs::write(
        &sd,
        format!(r#"[{{"targets": ["{}", "{}"]}}]"#, addr(0), addr(1)),
    )
    .unwrap();
    eventually(10, || (target_names(&up.base).len() == 2).then_some(()));
    // A broken file keeps the previous targets.
    std::fs::write(&sd, "[{").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(target_names(&up.base).len(), 2);
    let (_, metrics) = get(&format!("{}/metrics", up.base));
    assert!(
        metrics.contains("llmwatch_reloads_total{result=\"error\"}"),
        "{metrics}"
    );
    // SIGHUP re-reads the configuration file itself.
    let path = up.dir.path().join("llmwatch.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\n[[target]]\nurl = \"{}\"\nname = \"only\"\n",
            sim.urls[1].1
        ),
    )
    .unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &up.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually(10, || (target_names(&up.base) == ["only"]).then_some(()));
}

#[test]
fn auth_guards_everything_but_health() {
    let up = start_up("[auth]\nbearer_token = \"t0ken\"\n", &[]);
    assert_eq!(get(&format!("{}/metrics", up.base)).0, 401);
    assert_eq!(get(&format!("{}/api/v1/targets", up.base)).0, 401);
    assert_eq!(get(&format!("{}/healthz", up.base)).0, 200);
    let (rt, client) = crate::util::http();
    let status = rt.block_on(async {
        client
            .get(format!("{}/metrics", up.base))
            .bearer_auth("t0ken")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 200);
}

#[test]
fn demo_shows_every_dialect_in_one_schema_and_stops_on_ctrl_c() {
    let _exclusive = crate::util::exclusive();
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmwatch"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env("LLMWATCH_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let base = lines
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("llmwatch demo: open the dashboard at ")
                .map(|u| u.trim_end_matches('/').to_string())
        })
        .expect("the demo prints the dashboard's URL");
    let metrics = eventually(20, || {
        let (_, m) = get(&format!("{base}/metrics"));
        (m.matches("llm_engine_info{").count() == 4 && m.contains("llm_generation_tokens_total"))
            .then_some(m)
    });
    for engine in ["vllm", "tgi", "llamacpp", "sglang"] {
        assert!(
            metrics.contains(&format!("llm_engine_info{{engine=\"{engine}\"")),
            "{metrics}"
        );
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = eventually(10, || child.try_wait().unwrap());
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn with_no_target_up_finds_engines_on_their_well_known_ports() {
    // SGLang's default port; skip when something else holds it.
    if std::net::TcpListener::bind("127.0.0.1:30000").is_err() {
        eprintln!("skipping: 127.0.0.1:30000 is in use");
        return;
    }
    let mut sim = Command::new(env!("CARGO_BIN_EXE_llmwatch"))
        .args(["sim", "--engine", "sglang:30000"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(sim.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    let _sim = crate::util::KillOnDrop(sim);
    let up = start_up("", &[]);
    let names = eventually(10, || {
        let names = target_names(&up.base);
        (!names.is_empty()).then_some(names)
    });
    assert!(names.contains(&"127.0.0.1:30000".to_string()), "{names:?}");
}

#[test]
fn demo_keeps_running_when_its_standard_output_closes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llmwatch"))
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Nobody reads: the banner hits a closed pipe (as with `llmwatch demo | head -1`).
    drop(child.stdout.take());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let still_running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(still_running, "the demo stopped when its output closed");
}

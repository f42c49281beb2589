//! Helpers: run the binary, and a tiny HTTP server with canned answers on a free port.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The path of a fixture under tests/fixtures.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// `llmwatch` with the given arguments.
pub fn llmwatch() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("llmwatch").unwrap();
    cmd.env_remove("LLMWATCH_BEARER_TOKEN");
    cmd
}

/// Runs `llmwatch args…`, expects success, returns stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = llmwatch().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "llmwatch {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `llmwatch args…`, expects exit code 1, returns stderr.
pub fn run_err(args: &[&str]) -> String {
    let out = llmwatch().args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "llmwatch {args:?} should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    stderr
}

/// One canned HTTP answer.
#[derive(Clone)]
pub struct Canned {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Canned {
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Canned {
            status: 200,
            content_type: "text/plain; version=0.0.4",
            body: body.into(),
        }
    }
}

/// A server on 127.0.0.1:0 answering `routes[path]` (404 otherwise). Records the
/// `Authorization` header of each request.
pub struct CannedServer {
    pub base: String,
    pub auth_headers: Arc<Mutex<Vec<Option<String>>>>,
    routes: Arc<Mutex<HashMap<&'static str, Canned>>>,
}

impl CannedServer {
    /// Answers `path` with `canned` from now on.
    pub fn set(&self, path: &'static str, canned: Canned) {
        self.routes.lock().unwrap().insert(path, canned);
    }
}

pub fn serve(routes: HashMap<&'static str, Canned>) -> CannedServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let auth_headers = Arc::new(Mutex::new(Vec::new()));
    let seen = auth_headers.clone();
    let routes = Arc::new(Mutex::new(routes));
    let serving = routes.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_string();
            let mut auth = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("authorization")
                {
                    auth = Some(v.trim().to_string());
                }
            }
            seen.lock().unwrap().push(auth);
            let canned = serving
                .lock()
                .unwrap()
                .get(path.as_str())
                .cloned()
                .unwrap_or(Canned {
                    status: 404,
                    content_type: "text/plain",
                    body: b"not found".to_vec(),
                });
            let head = format!(
                "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                canned.status,
                canned.content_type,
                canned.body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&canned.body);
        }
    });
    CannedServer {
        base,
        auth_headers,
        routes,
    }
}

/// Whether tests that need external programs must fail rather than skip.
pub fn require_external() -> bool {
    std::env::var("LLMWATCH_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

/// A current-thread runtime and an HTTP client for talking to the simulator.
pub fn http() -> (tokio::runtime::Runtime, reqwest::Client) {
    llmwatch::collect::fetch::install_tls_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (rt, reqwest::Client::new())
}

/// A running `llmwatch sim`, killed on drop.
pub struct Sim {
    child: Child,
    /// `(dialect, base URL)` per engine, in the order asked.
    pub urls: Vec<(String, String)>,
}

impl Sim {
    /// The simulator's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `llmwatch sim` with one engine per dialect, each on a free port.
pub fn start(engines: &[&str]) -> Sim {
    start_with(engines, &[])
}

/// Like [`start`], with extra arguments.
pub fn start_with(engines: &[&str], extra: &[&str]) -> Sim {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmwatch"));
    cmd.arg("sim").args(extra);
    for engine in engines {
        cmd.args(["--engine", &format!("{engine}:0")]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut urls = Vec::new();
    for _ in engines {
        let line = lines.next().unwrap().unwrap();
        // "sim: vllm on http://127.0.0.1:PORT"
        let parts: Vec<&str> = line.split_whitespace().collect();
        urls.push((parts[1].to_string(), parts[3].to_string()));
    }
    Sim { child, urls }
}

/// An external program on `PATH`, or `None` with a message saying the test is skipped.
/// Under `LLMWATCH_REQUIRE_EXTERNAL=1` a missing program fails the test instead.
pub fn external_program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            !require_external(),
            "LLMWATCH_REQUIRE_EXTERNAL=1 but `{name}` is not on PATH"
        );
        eprintln!("skipping: `{name}` is not on PATH");
    }
    found
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One plain HTTP/1.0 GET of `url` (`http://host:port/path`) with a 2 s timeout: the status
/// and body, or `None` when nothing answered. For polling a server that may not be up yet.
pub fn try_get(url: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr: std::net::SocketAddr = host.parse().ok()?;
    let timeout = std::time::Duration::from_secs(2);
    let mut socket = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    socket.set_read_timeout(Some(timeout)).ok()?;
    write!(socket, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut reply = Vec::new();
    socket.read_to_end(&mut reply).ok()?;
    let reply = String::from_utf8_lossy(&reply);
    let status = reply.split(' ').nth(1)?.parse().ok()?;
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((status, body.to_string()))
}

/// A child process killed and reaped on drop.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The simulator's ground truth at `base`: one JSON record per finished request.
pub fn sim_truth(base: &str) -> Vec<serde_json::Value> {
    let (_, body) = crate::up::get(&format!("{base}/sim/requests"));
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Each record's time to first token (first token − arrival at the engine), seconds.
pub fn truth_ttfts(records: &[serde_json::Value]) -> Vec<f64> {
    records
        .iter()
        .map(|r| r["first_token"].as_f64().unwrap() - r["arrival"].as_f64().unwrap())
        .collect()
}

/// Every gap between consecutive tokens of every record, seconds.
pub fn truth_itls(records: &[serde_json::Value]) -> Vec<f64> {
    records
        .iter()
        .flat_map(|r| {
            let t: Vec<f64> = r["token_times"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            t.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
        })
        .collect()
}

/// Spawns `cmd` (logs quiet, standard output read here), reads its output until each of
/// `markers` has appeared on a line, in order, and returns the child and the `http://ADDR`
/// printed on each of those lines.
pub fn spawn_serving(mut cmd: Command, markers: &[&str]) -> (Child, Vec<String>) {
    let mut child = cmd
        .env("LLMWATCH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let bases = markers
        .iter()
        .map(|marker| {
            let line = lines
                .find_map(|l| l.ok().filter(|l| l.contains(marker)))
                .unwrap_or_else(|| panic!("{cmd:?} printed no {marker:?}"));
            let rest = line.split("http://").nth(1).unwrap();
            format!("http://{}", rest.split('/').next().unwrap())
        })
        .collect();
    (child, bases)
}

/// `llmwatch up` with a configuration file holding `config` (a `[proxy]` section included),
/// scraping `target`: the running process and the collector's and the proxy's base URLs.
/// The file goes with its folder on return: `up` has read it before printing its addresses.
pub fn start_up_with_proxy(config: &str, target: &str) -> (KillOnDrop, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("llmwatch.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_llmwatch"));
    cmd.args(["up", "--config"])
        .arg(&path)
        .args(["--target", target]);
    let (child, mut bases) = spawn_serving(cmd, &["serving http://", "proxy serving http://"]);
    let proxy = bases.remove(1);
    (KillOnDrop(child), bases.remove(0), proxy)
}

/// Starts `prometheus` on a free loopback port with `config`, storing under `data`; returns the
/// process and its base URL once it reports ready.
pub fn start_prometheus(
    prometheus: &std::path::Path,
    config: &std::path::Path,
    data: &std::path::Path,
) -> (KillOnDrop, String) {
    let port = free_port();
    let child = KillOnDrop(
        Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    crate::up::eventually(60, || {
        let (rt, client) = http();
        rt.block_on(async {
            let resp = client.get(format!("{base}/-/ready")).send().await.ok()?;
            resp.status().is_success().then_some(())
        })
    });
    (child, base)
}

/// Held by the tests that time things to the millisecond and by the heaviest ones (a browser,
/// the whole demo, a terminal session), so the two kinds never share the machine's two cores:
/// a timing test then measures its subject, not the browser beside it.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a timing-agreement test, and once more when a first run's timings are off. Each run
/// asserts its counts itself and returns `Err` saying how its timings differ when they are
/// further apart than its slack. The suite's other tests can stall a process on the
/// machine's two cores for longer than the slack, while a wrong measure is off on both runs.
pub fn timings_agree_within_two_runs(run: impl Fn() -> Result<(), String>) {
    if let Err(why) = run() {
        eprintln!("timings off on a first run ({why}); measuring again");
        if let Err(why) = run() {
            panic!("{why}");
        }
    }
}

/// A Python that can `import module`: the one named by `env_var`, else `python3`; `None`
/// (the test skips, saying why) when there is none, a failure under
/// `LLMWATCH_REQUIRE_EXTERNAL=1`. `package` names what to install.
pub fn python_with(env_var: &str, module: &str, package: &str) -> Option<String> {
    let candidates = std::env::var(env_var)
        .ok()
        .into_iter()
        .chain(["python3".to_string()]);
    for python in candidates {
        let works = Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if works {
            return Some(python);
        }
    }
    assert!(
        !require_external(),
        "LLMWATCH_REQUIRE_EXTERNAL=1 but no Python with {package} (set {env_var})"
    );
    eprintln!("skipping: no Python with {package} (set {env_var})");
    None
}

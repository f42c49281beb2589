//! The cost of reading local engines' processes from `/proc` (`llm_process_*`): starts 16
//! listening processes, each with a child (as vLLM's API server has its engine core), then
//! reads all 16 as `up` does every scrape interval (one shared walk of `/proc` finds every
//! listener).
//!
//! `cargo run --release --example proc_read -- 16 200`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use llmwatch::gpu::procfs::{ListenerScan, ProcessReader};

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--listen") {
        // One engine: listen, start a child, and end both when the parent closes stdin.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        println!("{}", listener.local_addr().unwrap().port());
        let mut child = Command::new("sleep").arg("600").spawn().unwrap();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
        let _ = child.kill();
        let _ = child.wait();
        return;
    }
    let engines: usize = first.map_or(16, |a| a.parse().unwrap());
    let rounds: usize = args.next().map_or(200, |a| a.parse().unwrap());
    let me = std::env::current_exe().unwrap();
    let mut children: Vec<(Child, u16)> = (0..engines)
        .map(|_| {
            let mut child = Command::new(&me)
                .arg("--listen")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.take().unwrap()),
                &mut line,
            )
            .unwrap();
            (child, line.trim().parse().unwrap())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // One walk of /proc shared by every reader, as `up` shares it between its targets.
    let listeners = std::sync::Arc::new(ListenerScan::new("/proc"));
    let mut readers: Vec<ProcessReader> = children
        .iter()
        .map(|(_, port)| ProcessReader::sharing(listeners.clone(), *port))
        .collect();
    let start = Instant::now();
    let processes: usize = readers
        .iter_mut()
        .map(|r| r.read().unwrap().processes)
        .sum();
    let first = start.elapsed();
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for reader in &mut readers {
                reader.read().unwrap();
            }
            start.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = times[times.len() / 2];
    println!(
        "{engines} engines, {processes} processes: first read (finding each listener) {:.2} ms; \
         a round after that: median {:.3} ms, worst {:.3} ms; every 5 s: {:.4} % of a core",
        ms(first),
        ms(median),
        ms(times[times.len() - 1]),
        median.as_secs_f64() / 5.0 * 100.0
    );
    for (child, _) in &mut children {
        drop(child.stdin.take());
        let _ = child.wait();
    }
}

//! `top`'s frame time against a running `up`: what one refresh costs `top` — fetching the
//! rows that fit a WIDTH×HEIGHT terminal from `/api/v1/overview`, parsing them, and drawing
//! the screen (table, then with the detail pane open) into ratatui's test backend — REPEAT
//! times, with the median and worst of each part.
//!
//!   cargo run --release --example top_frame -- http://127.0.0.1:9464 [WIDTH HEIGHT REPEAT]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use llmwatch::ui::top::render;
use llmwatch::ui::top::view::View;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn summary(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: median {:.2} ms, worst {:.2} ms",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or("http://127.0.0.1:9464".into());
    let number = |i: usize, default: u16| args.get(i).map_or(default, |a| a.parse().unwrap());
    let (width, height, repeat) = (number(2, 200), number(3, 60), number(4, 20));
    llmwatch::collect::fetch::install_tls_provider();
    let client = reqwest::Client::new();
    let mut view = View {
        page: usize::from(height - 4),
        ..View::default()
    };
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    let (mut fetches, mut tables, mut details) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..repeat {
        let start = Instant::now();
        let body = client
            .get(format!("{url}/api/v1/overview?{}", view.query()))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        view.overview = Some(serde_json::from_slice(&body).unwrap());
        fetches.push(start.elapsed());
        view.detail = false;
        let start = Instant::now();
        terminal
            .draw(|f| render::draw(f, &view, &url, true))
            .unwrap();
        tables.push(start.elapsed());
        view.detail = true;
        let start = Instant::now();
        terminal
            .draw(|f| render::draw(f, &view, &url, true))
            .unwrap();
        details.push(start.elapsed());
    }
    println!(
        "top at {width}x{height}: {} rows on screen of {}",
        view.rows().len(),
        view.matching()
    );
    summary("fetch and parse the rows on screen", fetches);
    summary("draw the table", tables);
    summary("draw the table and the detail pane", details);
}

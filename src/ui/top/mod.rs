//! `llmwatch top`: the overview in a terminal. It reads `/api/v1/overview` from a running `up`
//! (`--url`), or, given targets, starts a collector of its own in the process and reads that,
//! so it works with nothing else running. Keys change a [`view::View`]; [`render`] draws it.
//! The terminal is restored on `q`, Ctrl-C, SIGTERM and panic. Written to something that is
//! not a terminal, it prints the overview once as plain text.

pub mod render;
pub mod view;

use std::io::IsTerminal;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyCode, KeyEventKind, KeyModifiers};
use futures_util::StreamExt;

use view::{Action, View};

/// How often the overview is fetched again.
const REFRESH: Duration = Duration::from_secs(2);

/// Where `top` reads from.
#[derive(Debug, Clone)]
pub struct TopOptions {
    /// A running `up`'s base URL.
    pub url: String,
    /// Targets to scrape itself instead (`--target` syntax of `up`).
    pub targets: Vec<String>,
    /// Bearer token for an `up` with `[auth]`.
    pub bearer_token: Option<String>,
}

/// Runs `top` until `q`, Ctrl-C or SIGTERM.
pub async fn run(options: TopOptions) -> anyhow::Result<()> {
    // With targets, a collector of its own, on a free loopback port.
    let (url, _collector) = if options.targets.is_empty() {
        (options.url.trim_end_matches('/').to_string(), None)
    } else {
        let sources = crate::up::Sources {
            target_args: options.targets.clone(),
            listen: Some("127.0.0.1:0".into()),
            ..crate::up::Sources::default()
        };
        let config = sources.config()?;
        let targets = sources.targets(&config)?;
        let running = crate::up::start(sources, config, targets).await?;
        (format!("http://{}", running.addr), Some(running))
    };
    let label = if options.targets.is_empty() {
        url.clone()
    } else {
        match options.targets.len() {
            1 => "1 target scraped here".to_string(),
            n => format!("{n} targets scraped here"),
        }
    };
    let client = reqwest::Client::new();
    let mut view = View::default();
    fetch(&client, &url, &options, &mut view).await;
    let colour = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    if !std::io::stdout().is_terminal() {
        // A plain snapshot: no colour, no terminal modes.
        if view.overview.is_none() {
            fetch_until_ready(&client, &url, &options, &mut view).await;
        }
        let mut stdout = std::io::stdout().lock();
        std::io::Write::write_all(&mut stdout, snapshot(&view, &label, 160).as_bytes())?;
        return Ok(());
    }
    let mut terminal = ratatui::init();
    let result = event_loop(
        &mut terminal,
        &client,
        (&url, &label),
        &options,
        &mut view,
        colour,
    )
    .await;
    ratatui::restore();
    result
}

async fn fetch_until_ready(
    client: &reqwest::Client,
    url: &str,
    options: &TopOptions,
    view: &mut View,
) {
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        fetch(client, url, options, view).await;
        let rows = view
            .overview
            .as_ref()
            .map_or(0, |o| o["rows"].as_array().map_or(0, Vec::len));
        if rows > 0 {
            return;
        }
    }
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    client: &reqwest::Client,
    (url, label): (&str, &str),
    options: &TopOptions,
    view: &mut View,
    colour: bool,
) -> anyhow::Result<()> {
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(REFRESH);
    let mut terminate = terminate_signal()?;
    loop {
        // Ask the server for the rows the screen holds (the table's height less its header).
        let rows = usize::from(terminal.size()?.height.saturating_sub(4)).max(1);
        let rows = if view.detail { rows * 45 / 100 } else { rows }.max(1);
        if view.page != rows {
            view.page = rows;
            view.selected = view.selected.min(rows - 1);
            fetch(client, url, options, view).await;
        }
        terminal.draw(|frame| render::draw(frame, view, label, colour))?;
        tokio::select! {
            _ = tick.tick() => fetch(client, url, options, view).await,
            _ = terminate.recv() => return Ok(()),
            event = events.next() => {
                let Some(Ok(Event::Key(key))) = event else { continue };
                if key.kind != KeyEventKind::Press {
                    continue;
                }
                if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
                    return Ok(());
                }
                let name = match key.code {
                    KeyCode::Char(c) => c.to_string(),
                    KeyCode::Up => "Up".into(),
                    KeyCode::Down => "Down".into(),
                    KeyCode::Enter => "Enter".into(),
                    KeyCode::Esc => "Esc".into(),
                    KeyCode::Backspace => "Backspace".into(),
                    _ => continue,
                };
                match view.key(&name) {
                    Action::Quit => return Ok(()),
                    Action::Refresh => fetch(client, url, options, view).await,
                    Action::None => {}
                }
            }
        }
    }
}

#[cfg(unix)]
fn terminate_signal() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
}

/// Fetches the overview for the view's window; a failure is shown and the last good document
/// kept.
/// Fetches the overview for the view's window, and the alerts; a failure is shown and the
/// last good document kept.
async fn fetch(client: &reqwest::Client, url: &str, options: &TopOptions, view: &mut View) {
    let overview = format!("{url}/api/v1/overview?{}", view.query());
    match get_json(client, &overview, options).await {
        Ok(overview) => {
            view.overview = Some(overview);
            view.error = None;
            let rows = view.rows().len();
            view.selected = view.selected.min(rows.saturating_sub(1));
        }
        Err(error) => view.error = Some(error),
    }
    // Alerts are extra: an up without them (or an older one) leaves the count out.
    view.alerts = get_json(client, &format!("{url}/api/v1/alerts"), options)
        .await
        .ok();
}

/// A JSON document from `url`, or why not.
async fn get_json(
    client: &reqwest::Client,
    url: &str,
    options: &TopOptions,
) -> Result<serde_json::Value, String> {
    let mut request = client.get(url).timeout(Duration::from_secs(5));
    if let Some(token) = &options.bearer_token {
        request = request.bearer_auth(token);
    }
    match request.send().await {
        Ok(response) if response.status() == 401 => {
            Err("up asks for credentials: give --bearer-token".to_string())
        }
        Ok(response) if !response.status().is_success() => {
            Err(format!("{url}: HTTP {}", response.status().as_u16()))
        }
        Ok(response) => response
            .bytes()
            .await
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{url}: not JSON: {e}"))),
        Err(e) => Err(format!(
            "{url}: {}",
            crate::collect::fetch::flatten_error(&e)
        )),
    }
}

/// The screen as plain text, `width` columns wide.
pub fn snapshot(view: &View, source: &str, width: u16) -> String {
    let rows = view.rows().len() as u16;
    let height = if view.detail { rows + 30 } else { rows + 4 };
    let mut terminal =
        match ratatui::Terminal::new(ratatui::backend::TestBackend::new(width, height)) {
            Ok(t) => t,
            Err(_) => return String::new(),
        };
    if terminal
        .draw(|frame| render::draw(frame, view, source, false))
        .is_err()
    {
        return String::new();
    }
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buffer.area.height {
        let line: String = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol().to_string())
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;

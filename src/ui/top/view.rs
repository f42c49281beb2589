//! What `top` shows and how the keys change it, apart from any terminal: the overview document
//! (the same `/api/v1/overview` the web page draws: filtered, sorted and sliced by the server,
//! so 1,000 targets cost `top` only the rows on screen), the selected row, sort, filter,
//! window, and whether the detail pane is open. Rendering reads this; the event loop changes
//! it and fetches what [`View::query`] asks for.

use serde_json::Value as Json;

/// The windows the number keys pick.
pub const WINDOWS: [&str; 3] = ["5m", "15m", "1h"];

/// Everything on screen.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// The latest overview document, when one came.
    pub overview: Option<Json>,
    /// Why the latest fetch failed, if it did (the last good document stays).
    pub error: Option<String>,
    /// Index into the rows on screen.
    pub selected: usize,
    /// The column sorted on (an index into `columns`), descending; `None`: by target.
    pub sort: Option<usize>,
    /// The filter being typed or applied.
    pub filter: String,
    /// Typing a filter.
    pub typing: bool,
    /// Index into [`WINDOWS`].
    pub window: usize,
    /// The detail pane is open.
    pub detail: bool,
    /// The help is shown.
    pub help: bool,
    /// Rows above the first on screen (in the server's order).
    pub offset: usize,
    /// Rows that fit on screen, asked of the server (0: its default).
    pub page: usize,
    /// The latest `/api/v1/alerts` document, when `up` serves one.
    pub alerts: Option<Json>,
}

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do.
    None,
    /// Fetch now (the window changed).
    Refresh,
    /// Leave.
    Quit,
}

impl View {
    /// The window's name, e.g. `5m`.
    pub fn window(&self) -> &'static str {
        WINDOWS[self.window.min(WINDOWS.len() - 1)]
    }

    /// The columns of the overview.
    pub fn columns(&self) -> Vec<&Json> {
        self.overview
            .as_ref()
            .and_then(|o| o["columns"].as_array())
            .map(|c| c.iter().collect())
            .unwrap_or_default()
    }

    /// The rows on screen, in the server's order.
    pub fn rows(&self) -> Vec<&Json> {
        self.overview
            .as_ref()
            .and_then(|o| o["rows"].as_array())
            .map(|r| r.iter().collect())
            .unwrap_or_default()
    }

    /// The pending and firing alerts.
    pub fn alerts(&self) -> Vec<&Json> {
        self.alerts
            .as_ref()
            .and_then(|a| a["data"]["alerts"].as_array())
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }

    /// Rows that pass the filter, on screen or not.
    pub fn matching(&self) -> usize {
        self.overview
            .as_ref()
            .and_then(|o| o["matching"].as_u64())
            .map_or_else(|| self.rows().len(), |n| n as usize)
    }

    /// The query of the next fetch: window, sort, filter and the rows on screen.
    pub fn query(&self) -> String {
        let sort = self
            .sort
            .and_then(|c| self.columns().get(c).and_then(|c| c["id"].as_str()))
            .unwrap_or("target");
        let mut query = format!(
            "window={}&points=30&sort={sort}&offset={}",
            self.window(),
            self.offset
        );
        if self.page > 0 {
            query.push_str(&format!("&limit={}", self.page));
        }
        if !self.filter.is_empty() {
            query.push_str("&filter=");
            query.push_str(&crate::ui::url_escape(&self.filter));
        }
        query
    }

    /// The selected row, if any.
    pub fn selected_row(&self) -> Option<&Json> {
        self.rows().get(self.selected).copied()
    }

    /// Applies a key (its character, or a name for the others: `Up`, `Down`, `Enter`, `Esc`,
    /// `Backspace`).
    pub fn key(&mut self, key: &str) -> Action {
        if self.typing {
            match key {
                "Enter" | "Esc" => self.typing = false,
                "Backspace" => {
                    self.filter.pop();
                }
                k if k.chars().count() == 1 => self.filter.push_str(k),
                _ => return Action::None,
            }
            self.selected = 0;
            self.offset = 0;
            return Action::Refresh;
        }
        let rows = self.rows().len();
        match key {
            "q" => return Action::Quit,
            "?" => self.help = !self.help,
            "/" => self.typing = true,
            "j" | "Down" if self.selected + 1 < rows => self.selected += 1,
            "j" | "Down" if self.offset + rows < self.matching() => {
                // At the bottom of the screen: the server's next row.
                self.offset += 1;
                return Action::Refresh;
            }
            "k" | "Up" if self.selected > 0 => self.selected -= 1,
            "k" | "Up" if self.offset > 0 => {
                self.offset -= 1;
                return Action::Refresh;
            }
            "Enter" => self.detail = rows > 0,
            "Esc" => {
                self.detail = false;
                self.help = false;
                if !self.filter.is_empty() {
                    self.filter.clear();
                    self.selected = 0;
                    self.offset = 0;
                    return Action::Refresh;
                }
            }
            "s" => {
                // Next sortable column, then back to by-target.
                let columns = self.columns().len();
                self.sort = match self.sort {
                    None if columns > 0 => Some(0),
                    Some(c) if c + 1 < columns => Some(c + 1),
                    _ => None,
                };
                self.offset = 0;
                self.selected = 0;
                return Action::Refresh;
            }
            "1" | "2" | "3" => {
                self.window = key.parse::<usize>().map_or(0, |n| n - 1);
                return Action::Refresh;
            }
            _ => {}
        }
        Action::None
    }
}

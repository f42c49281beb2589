//! What `top` shows and how the keys change it, apart from any terminal: the overview document
//! (the same `/api/v1/overview` the web page draws), the selected row, sort, filter, window,
//! and whether the detail pane is open. Rendering reads this; the event loop changes it.

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
    /// Index into the visible rows.
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

    /// The rows that pass the filter, in the chosen order.
    pub fn rows(&self) -> Vec<&Json> {
        let Some(all) = self.overview.as_ref().and_then(|o| o["rows"].as_array()) else {
            return Vec::new();
        };
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&Json> = all.iter().filter(|r| matches(r, &needle)).collect();
        match self.sort {
            None => rows.sort_by_key(|r| (text(&r["target"]), text(&r["model"]))),
            Some(column) => rows.sort_by(|a, b| {
                let key = |r: &Json| first_value(r, column).unwrap_or(f64::NEG_INFINITY);
                key(b).total_cmp(&key(a))
            }),
        }
        rows
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
                _ => {}
            }
            self.selected = 0;
            return Action::None;
        }
        let rows = self.rows().len();
        match key {
            "q" => return Action::Quit,
            "?" => self.help = !self.help,
            "/" => self.typing = true,
            "j" | "Down" => self.selected = (self.selected + 1).min(rows.saturating_sub(1)),
            "k" | "Up" => self.selected = self.selected.saturating_sub(1),
            "Enter" => self.detail = rows > 0,
            "Esc" => {
                self.detail = false;
                self.help = false;
                if !self.filter.is_empty() {
                    self.filter.clear();
                    self.selected = 0;
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

fn text(v: &Json) -> String {
    v.as_str().unwrap_or("").to_string()
}

/// A row's first value in `column`: a number, or a quantile's bound.
pub fn first_value(row: &Json, column: usize) -> Option<f64> {
    let now = &row["cells"][column][0]["now"];
    now.as_f64()
        .or_else(|| now["at_most"].as_f64())
        .or_else(|| now["above"].as_f64())
}

fn matches(row: &Json, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let labels = row["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    [
        text(&row["target"]),
        text(&row["model"]),
        text(&row["engine"]),
        text(&row["version"]),
        labels,
    ]
    .iter()
    .any(|h| h.to_lowercase().contains(needle))
}

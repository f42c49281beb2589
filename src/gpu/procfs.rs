//! The engine processes on `up`'s own machine, read from `/proc`: the process listening on a
//! target's port and its descendants (vLLM's API server forks the engine core, which forks the
//! GPU workers), with their CPU time and resident memory. llama.cpp on CPU has no other
//! saturation signal. Linux only; elsewhere, and where `/proc` cannot be read, it says so.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the processes could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProcError {
    /// A file of `/proc` that every Linux has could not be read.
    #[error("{path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// No process listens on the port (or it belongs to another user, whose descriptors
    /// cannot be read).
    #[error("no process of this user listens on port {port}")]
    NoListener {
        /// The port.
        port: u16,
    },
}

/// CPU time and resident memory of an engine's processes, summed.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// The process listening on the port.
    pub pid: u32,
    /// It and the descendants read, sorted: the PIDs NVML's per-process memory is matched
    /// against.
    pub pids: Vec<u32>,
    /// Processes counted: it and its descendants.
    pub processes: usize,
    /// User plus system CPU seconds since each started.
    pub cpu_seconds: f64,
    /// Resident memory in bytes.
    pub resident_bytes: f64,
}

/// The listening socket found for a port, kept so the next read checks it instead of
/// scanning every process's descriptors again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    pid: u32,
    /// `/proc/PID/fd/N` of the socket, and its `socket:[inode]` link.
    fd: PathBuf,
    link: String,
}

impl Found {
    /// Whether the descriptor still holds the socket (the process has not closed it or
    /// exited).
    fn holds(&self) -> bool {
        std::fs::read_link(&self.fd).is_ok_and(|l| l.to_string_lossy() == self.link)
    }
}

/// Every listening socket of the machine and the process holding it, from one walk of
/// `/proc`, shared by the readers of all targets. A walk reads every process's descriptors
/// (milliseconds on a busy machine, and `/proc/net/tcp` costs the kernel time per socket):
/// a thousand local targets each walking on its own cost seconds of CPU at start, so a walk
/// younger than [`SCAN_FRESH`] answers for every port.
#[derive(Debug)]
pub struct ListenerScan {
    root: PathBuf,
    last: std::sync::Mutex<Option<Walk>>,
    /// Walks made.
    walks: std::sync::atomic::AtomicU64,
}

/// One walk: when, and the listener found for each port.
#[derive(Debug)]
struct Walk {
    at: std::time::Instant,
    by_port: HashMap<u16, Found>,
}

/// How long a walk answers for every port.
pub const SCAN_FRESH: std::time::Duration = std::time::Duration::from_secs(5);

impl ListenerScan {
    /// Walks under `root` (`/proc`).
    pub fn new(root: impl Into<PathBuf>) -> ListenerScan {
        ListenerScan {
            root: root.into(),
            last: std::sync::Mutex::new(None),
            walks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The listener on `port`: from the last walk while it is fresh and its answer still
    /// holds, from a new walk otherwise.
    fn find(&self, port: u16) -> Result<Found, ProcError> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(walk) = last.as_ref().filter(|w| w.at.elapsed() < SCAN_FRESH) {
            match walk.by_port.get(&port) {
                Some(found) if found.holds() => return Ok(found.clone()),
                // Gone since the walk: walk again.
                Some(_) => {}
                None => return Err(ProcError::NoListener { port }),
            }
        }
        let walk = self.walk()?;
        let found = walk.by_port.get(&port).cloned();
        *last = Some(walk);
        found.ok_or(ProcError::NoListener { port })
    }

    /// Reads the socket tables, then every process's descriptors once.
    fn walk(&self) -> Result<Walk, ProcError> {
        self.walks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut port_of = HashMap::new();
        for table in ["net/tcp", "net/tcp6"] {
            let path = self.root.join(table);
            match std::fs::read_to_string(&path) {
                Ok(text) => port_of.extend(listening_sockets(&text)),
                // An IPv4-only or IPv6-only kernel lacks one of the two.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(unreadable(&path, &e)),
            }
        }
        let mut by_port = HashMap::new();
        let at = std::time::Instant::now();
        if port_of.is_empty() {
            return Ok(Walk { at, by_port });
        }
        let entries = std::fs::read_dir(&self.root).map_err(|e| unreadable(&self.root, &e))?;
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // Another user's descriptors cannot be read: skipped.
            let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(link) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let link = link.to_string_lossy().into_owned();
                let inode = link
                    .strip_prefix("socket:[")
                    .and_then(|l| l.strip_suffix(']'))
                    .and_then(|i| i.parse::<u64>().ok());
                if let Some(port) = inode.and_then(|i| port_of.get(&i)) {
                    by_port.entry(*port).or_insert(Found {
                        pid,
                        fd: fd.path(),
                        link,
                    });
                }
            }
        }
        Ok(Walk { at, by_port })
    }
}

/// Reads one engine's processes, remembering its listener between reads.
#[derive(Debug, Clone)]
pub struct ProcessReader {
    port: u16,
    listeners: Arc<ListenerScan>,
    found: Option<Found>,
    /// The listener's process tree as last listed, and when: processes come and go far
    /// more rarely than scrapes, and listing reads every thread's `children` file.
    tree: Option<(std::time::Instant, Vec<u32>)>,
    /// When a scan last found nothing, and why: a port nobody of this user listens on is
    /// looked for again only after [`RESCAN_AFTER`], not at every scrape.
    failed: Option<(std::time::Instant, ProcError)>,
}

/// How long a listed process tree stands before it is listed again.
pub const TREE_FRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a failed scan stands before the next.
pub const RESCAN_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

fn unreadable(path: &Path, e: &std::io::Error) -> ProcError {
    ProcError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl ProcessReader {
    /// A reader for the process listening on `port`, under `root` (`/proc`), with a walk of
    /// its own.
    pub fn new(root: impl Into<PathBuf>, port: u16) -> ProcessReader {
        let listeners = Arc::new(ListenerScan::new(root));
        ProcessReader::sharing(listeners, port)
    }

    /// A reader for the process listening on `port`, finding it through `listeners`, which
    /// other readers share.
    pub fn sharing(listeners: Arc<ListenerScan>, port: u16) -> ProcessReader {
        ProcessReader {
            port,
            listeners,
            found: None,
            tree: None,
            failed: None,
        }
    }

    /// The engine's usage now. While the listed process tree is fresh, the listener is not
    /// checked for its socket at every read (a `readlink` in a process with thousands of
    /// descriptors costs the kernel a lookup): a restart ends the process, which reading it
    /// notices, and the check comes back with the next listing.
    pub fn read(&mut self) -> Result<Usage, ProcError> {
        let fresh = self.found.is_some()
            && self
                .tree
                .as_ref()
                .is_some_and(|(at, _)| at.elapsed() < TREE_FRESH);
        if !fresh {
            self.locate()?;
        }
        if let Some(usage) = self.read_tree() {
            return Ok(usage);
        }
        // The listener's process is gone: look for the port's listener again.
        self.found = None;
        self.tree = None;
        self.locate()?;
        self.read_tree()
            .ok_or(ProcError::NoListener { port: self.port })
    }

    /// Makes sure `found` is the port's listener: the one remembered if it still holds the
    /// socket, else a scan's (at most once per [`RESCAN_AFTER`] while none is found).
    fn locate(&mut self) -> Result<(), ProcError> {
        if self.found.as_ref().is_some_and(Found::holds) {
            return Ok(());
        }
        self.found = None;
        if let Some((at, why)) = &self.failed
            && at.elapsed() < RESCAN_AFTER
        {
            return Err(why.clone());
        }
        match self.listeners.find(self.port) {
            Ok(found) => {
                self.failed = None;
                self.found = Some(found);
                Ok(())
            }
            Err(why) => {
                self.failed = Some((std::time::Instant::now(), why.clone()));
                Err(why)
            }
        }
    }

    /// The listener's process and its descendants, summed; `None` when the listener's own
    /// process cannot be read (it is gone).
    fn read_tree(&mut self) -> Option<Usage> {
        let pid = self.found.as_ref()?.pid;
        let listed = match &self.tree {
            Some((at, pids)) if at.elapsed() < TREE_FRESH && pids.first() == Some(&pid) => {
                pids.clone()
            }
            _ => descendants(&self.listeners.root, pid),
        };
        let (mut cpu_seconds, mut resident_bytes) = (0.0, 0.0);
        let mut read = Vec::with_capacity(listed.len());
        for &pid in &listed {
            // A process that exits between listing and reading is simply not counted.
            if let Some((cpu, resident)) = read_process(&self.listeners.root, pid) {
                cpu_seconds += cpu;
                resident_bytes += resident;
                read.push(pid);
            }
        }
        if read.first() != Some(&pid) {
            return None;
        }
        // One gone: the tree is listed again at the next read.
        let whole = read.len() == listed.len();
        self.tree = match self.tree.take() {
            Some((at, _)) if whole && at.elapsed() < TREE_FRESH => Some((at, listed)),
            _ if whole => Some((std::time::Instant::now(), listed)),
            _ => None,
        };
        read.sort_unstable();
        Some(Usage {
            pid,
            processes: read.len(),
            pids: read,
            cpu_seconds,
            resident_bytes,
        })
    }

    /// Walks of `/proc` made so far by this reader's [`ListenerScan`] (for every reader
    /// sharing it).
    pub fn scans(&self) -> u64 {
        self.listeners
            .walks
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The listening sockets in a `/proc/net/tcp` table: inode and port.
fn listening_sockets(table: &str) -> Vec<(u64, u16)> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if state != LISTEN {
                return None;
            }
            let (_, hex_port) = local.rsplit_once(':')?;
            let port = u16::from_str_radix(hex_port, 16).ok()?;
            let inode = fields.nth(5)?.parse().ok()?;
            Some((inode, port))
        })
        .collect()
}

/// `pid` and every process below it, through each task's `children` file.
fn descendants(root: &Path, pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut next = 0;
    // Bounded: a fork bomb under the engine must not hold the scraper.
    while next < out.len() && out.len() < 4096 {
        let parent = out[next];
        next += 1;
        let Ok(tasks) = std::fs::read_dir(root.join(parent.to_string()).join("task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                if !out.contains(&child) {
                    out.push(child);
                }
            }
        }
    }
    out
}

/// Clock ticks per second and bytes per page, which `/proc` counts in.
fn units() -> (f64, f64) {
    #[cfg(target_os = "linux")]
    {
        (
            rustix::param::clock_ticks_per_second() as f64,
            rustix::param::page_size() as f64,
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        (100.0, 4096.0)
    }
}

/// One process's CPU seconds and resident bytes; `None` when it is gone or unreadable.
fn read_process(root: &Path, pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(root.join(pid.to_string()).join("stat")).ok()?;
    parse_process(&stat, units())
}

/// CPU seconds (utime and stime, fields 14 and 15) and resident bytes (rss, field 24, in
/// pages: what `statm` says too, one file fewer to read) from `stat`, counted after the
/// command name, which may hold spaces and parentheses.
fn parse_process(stat: &str, (ticks, page): (f64, f64)) -> Option<(f64, f64)> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace();
    // After the name: state is field 3, so utime (14), stime (15) and rss (24) sit at 11,
    // 12 and 21.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    let resident: f64 = fields.nth(8)?.parse().ok()?;
    Some(((utime + stime) / ticks, resident * page))
}

#[cfg(test)]
mod tests;

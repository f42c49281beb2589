//! The engine processes on `up`'s own machine, read from `/proc`: the process listening on a
//! target's port and its descendants (vLLM's API server forks the engine core, which forks the
//! GPU workers), with their CPU time and resident memory. llama.cpp on CPU has no other
//! saturation signal. Linux only; elsewhere, and where `/proc` cannot be read, it says so.

use std::path::{Path, PathBuf};

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

/// Reads one engine's processes, remembering its listener between reads.
#[derive(Debug, Clone)]
pub struct ProcessReader {
    root: PathBuf,
    port: u16,
    found: Option<Found>,
    /// When a scan last found nothing, and why: scanning every process's descriptors costs
    /// about 15 ms, so a port nobody of this user listens on is scanned again only after
    /// [`RESCAN_AFTER`], not at every scrape.
    failed: Option<(std::time::Instant, ProcError)>,
    /// Scans made (each one reads every process's descriptors).
    scans: u64,
}

/// How long a failed scan stands before the next.
pub const RESCAN_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

fn unreadable(path: &Path, e: &std::io::Error) -> ProcError {
    ProcError::Unreadable {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl ProcessReader {
    /// A reader for the process listening on `port`, under `root` (`/proc`).
    pub fn new(root: impl Into<PathBuf>, port: u16) -> ProcessReader {
        ProcessReader {
            root: root.into(),
            port,
            found: None,
            failed: None,
            scans: 0,
        }
    }

    /// The engine's usage now.
    pub fn read(&mut self) -> Result<Usage, ProcError> {
        let still = self.found.as_ref().is_some_and(|found| {
            std::fs::read_link(&found.fd).is_ok_and(|l| l.to_string_lossy() == found.link)
        });
        if !still {
            self.found = None;
            if let Some((at, why)) = &self.failed
                && at.elapsed() < RESCAN_AFTER
            {
                return Err(why.clone());
            }
            self.scans += 1;
            match self.find() {
                Ok(found) => {
                    self.failed = None;
                    self.found = Some(found);
                }
                Err(why) => {
                    self.failed = Some((std::time::Instant::now(), why.clone()));
                    return Err(why);
                }
            }
        }
        let pid = self.found.as_ref().map_or(0, |f| f.pid);
        let pids = descendants(&self.root, pid);
        let (mut cpu_seconds, mut resident_bytes) = (0.0, 0.0);
        let mut read = Vec::with_capacity(pids.len());
        for pid in pids {
            // A process that exits between listing and reading is simply not counted.
            if let Some((cpu, resident)) = read_process(&self.root, pid) {
                cpu_seconds += cpu;
                resident_bytes += resident;
                read.push(pid);
            }
        }
        read.sort_unstable();
        Ok(Usage {
            pid,
            processes: read.len(),
            pids: read,
            cpu_seconds,
            resident_bytes,
        })
    }

    /// Scans made so far.
    pub fn scans(&self) -> u64 {
        self.scans
    }

    /// Scans for the listening socket of the port and the process holding it.
    fn find(&self) -> Result<Found, ProcError> {
        let mut inodes = Vec::new();
        for table in ["net/tcp", "net/tcp6"] {
            let path = self.root.join(table);
            match std::fs::read_to_string(&path) {
                Ok(text) => inodes.extend(listening_inodes(&text, self.port)),
                // An IPv4-only or IPv6-only kernel lacks one of the two.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(unreadable(&path, &e)),
            }
        }
        if inodes.is_empty() {
            return Err(ProcError::NoListener { port: self.port });
        }
        let links: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
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
                if links.contains(&link) {
                    return Ok(Found {
                        pid,
                        fd: fd.path(),
                        link,
                    });
                }
            }
        }
        Err(ProcError::NoListener { port: self.port })
    }
}

/// The inodes of sockets listening on `port` in a `/proc/net/tcp` table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let (_, hex_port) = local.rsplit_once(':')?;
            let listening = *state == LISTEN && u16::from_str_radix(hex_port, 16).ok()? == port;
            listening.then(|| fields.get(9)?.parse().ok()).flatten()
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
    let dir = root.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let statm = std::fs::read_to_string(dir.join("statm")).ok()?;
    parse_process(&stat, &statm, units())
}

/// CPU seconds from `stat` (utime and stime, fields 14 and 15, counted after the command
/// name, which may hold spaces and parentheses) and resident bytes from `statm`.
fn parse_process(stat: &str, statm: &str, (ticks, page): (f64, f64)) -> Option<(f64, f64)> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) sit at 11 and 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let resident: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(((utime + stime) / ticks, resident * page))
}

#[cfg(test)]
mod tests;

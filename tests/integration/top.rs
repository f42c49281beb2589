//! `llmwatch top` driven in a real terminal (tmux): it shows the engines it scrapes, opens the
//! detail on Enter, redraws on resize, and on `q` leaves the terminal as it found it. Skips
//! without tmux (fails under `LLMWATCH_REQUIRE_EXTERNAL=1`).

use std::process::Command;

use crate::up::eventually;
use crate::util::{external_program, start_with};

struct Session(String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screen(session: &str) -> String {
    tmux(&["capture-pane", "-p", "-t", session])
}

#[test]
fn top_in_a_real_terminal_shows_opens_resizes_and_restores() {
    let _exclusive = crate::util::exclusive();
    if external_program("tmux").is_none() {
        return;
    }
    let sim = start_with(&["vllm", "tgi"], &["--load", "3"]);
    let name = format!("llmwatch-top-{}", std::process::id());
    let command = format!(
        "{} top --target {},service=a --target {},service=b; echo TOP-EXITED $?; sleep 60",
        env!("CARGO_BIN_EXE_llmwatch"),
        sim.urls[0].1,
        sim.urls[1].1
    );
    let status = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "110",
            "-y",
            "30",
            &command,
        ])
        .env_remove("NO_COLOR")
        .status()
        .unwrap();
    assert!(status.success());
    let _session = Session(name.clone());
    let first = eventually(30, || {
        let s = screen(&name);
        (s.contains("sim-vllm") && s.contains("sim-tgi") && s.contains(" up ")).then_some(s)
    });
    assert!(first.contains("2 targets scraped here"), "{first}");
    tmux(&["send-keys", "-t", &name, "Enter"]);
    // A detail pane in a box, with a line per overview column.
    let detail = eventually(10, || {
        let s = screen(&name);
        s.contains('┌').then_some(s)
    });
    assert!(
        detail.contains("KV cache") && detail.contains("TTFT p50"),
        "{detail}"
    );
    tmux(&["resize-window", "-t", &name, "-x", "80", "-y", "24"]);
    let narrow = eventually(10, || {
        let s = screen(&name);
        (s.lines().count() <= 24 && s.contains("target · model")).then_some(s)
    });
    assert!(narrow.lines().all(|l| l.chars().count() <= 80), "{narrow}");
    tmux(&["send-keys", "-t", &name, "q"]);
    let after = eventually(10, || {
        let s = screen(&name);
        s.contains("TOP-EXITED").then_some(s)
    });
    assert!(after.contains("TOP-EXITED 0"), "{after}");
    // The alternate screen is gone: nothing of the table is left on the terminal.
    assert!(!after.contains("target · model"), "{after}");
}

use super::*;

const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 777 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:1F40 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 888 1 0000000000000000 20 4 30 10 -1\n\
   2: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 999 1 0000000000000000 100 0 0 10 0\n";

#[test]
fn listening_sockets_are_found_by_state_with_their_port() {
    // 0x1F40 = 8000, 0x0BB8 = 3000: the LISTEN lines only, not the established connection.
    assert_eq!(listening_sockets(TABLE), [(777, 8000), (999, 3000)]);
    assert!(listening_sockets("garbage\nmore garbage").is_empty());
}

#[test]
fn cpu_and_memory_are_read_after_a_command_name_with_spaces_and_parentheses() {
    let stat = "4242 (vllm (engine) 0) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 99 1000 300 1 1";
    assert_eq!(
        parse_process(stat, (100.0, 4096.0)),
        Some((3.0, 300.0 * 4096.0))
    );
    assert_eq!(parse_process("4242 (x", (100.0, 4096.0)), None);
    assert_eq!(parse_process("4242 (x) S 1 2 3", (100.0, 4096.0)), None);
}

/// A `/proc` with a listener on port 8000 held by 100, whose children are 101 and 102 (gone
/// before it is read), and 101's child 103.
fn fake_proc() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let p = root.path();
    std::fs::create_dir_all(p.join("net")).unwrap();
    std::fs::write(p.join("net/tcp"), TABLE).unwrap();
    let stat = |utime: u32, rss: u32| {
        format!("1 (python3) S 1 1 1 0 -1 0 0 0 0 0 {utime} 0 0 0 20 0 1 0 1 1 {rss}")
    };
    for (pid, children, utime, rss) in [
        (100, "101 102", 100, 1000),
        (101, "103", 200, 2000),
        (103, "", 300, 3000),
    ] {
        let dir = p.join(pid.to_string());
        std::fs::create_dir_all(dir.join(format!("task/{pid}"))).unwrap();
        std::fs::create_dir_all(dir.join("fd")).unwrap();
        std::fs::write(dir.join(format!("task/{pid}/children")), children).unwrap();
        std::fs::write(dir.join("stat"), stat(utime, rss)).unwrap();
    }
    std::os::unix::fs::symlink("socket:[777]", p.join("100/fd/5")).unwrap();
    std::os::unix::fs::symlink("/dev/null", p.join("101/fd/0")).unwrap();
    root
}

#[test]
fn the_listener_and_its_descendants_are_summed_and_a_vanished_child_is_skipped() {
    let root = fake_proc();
    let mut reader = ProcessReader::new(root.path(), 8000);
    let usage = reader.read().unwrap();
    let (ticks, page) = units();
    assert_eq!(usage.pid, 100);
    assert_eq!(usage.processes, 3);
    assert!((usage.cpu_seconds - 600.0 / ticks).abs() < 1e-9);
    assert!((usage.resident_bytes - 6000.0 * page).abs() < 1e-6);
    assert_eq!(reader.read().unwrap().pid, 100);
    assert_eq!(
        reader.scans(),
        1,
        "the second read checks the remembered socket"
    );
    // The engine restarts elsewhere: its socket is gone, so the port has no listener.
    std::fs::remove_file(root.path().join("100/fd/5")).unwrap();
    assert_eq!(reader.read(), Err(ProcError::NoListener { port: 8000 }));
    // The failure stands for a while: the next scrapes do not scan every process again.
    assert_eq!(reader.read(), Err(ProcError::NoListener { port: 8000 }));
    assert_eq!(reader.scans(), 2);
    assert_eq!(
        ProcessReader::new(root.path(), 3000).read(),
        Err(ProcError::NoListener { port: 3000 })
    );
}

#[test]
fn an_unreadable_proc_is_an_error_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("net/tcp")).unwrap();
    let err = ProcessReader::new(root.path(), 8000).read().unwrap_err();
    let ProcError::Unreadable { path, .. } = &err else {
        panic!("{err:?}");
    };
    assert!(path.ends_with("net/tcp"), "{path}");
    // No /proc at all: nothing listens.
    let empty = tempfile::tempdir().unwrap();
    assert!(
        ProcessReader::new(empty.path().join("none"), 8000)
            .read()
            .is_err()
    );
}

#[cfg(target_os = "linux")]
#[test]
fn this_process_is_found_through_its_own_listening_socket() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut reader = ProcessReader::new("/proc", port);
    let usage = reader.read().unwrap();
    assert_eq!(usage.pid, std::process::id());
    assert!(usage.processes >= 1);
    assert!(usage.resident_bytes > 1_000_000.0, "{usage:?}");
    // The second read checks the remembered socket instead of scanning.
    assert_eq!(reader.read().unwrap().pid, std::process::id());
    drop(listener);
}

#[test]
fn readers_of_many_ports_share_one_walk_of_proc() {
    let root = fake_proc();
    std::os::unix::fs::symlink("socket:[999]", root.path().join("103/fd/7")).unwrap();
    let listeners = Arc::new(ListenerScan::new(root.path()));
    let mut engine = ProcessReader::sharing(listeners.clone(), 8000);
    let mut other = ProcessReader::sharing(listeners.clone(), 3000);
    let mut nobody = ProcessReader::sharing(listeners, 9);
    assert_eq!(engine.read().unwrap().pid, 100);
    assert_eq!(other.read().unwrap().pid, 103);
    assert_eq!(nobody.read(), Err(ProcError::NoListener { port: 9 }));
    assert_eq!(engine.scans(), 1, "one walk answered all three ports");
    // A listener gone since the walk (its process exited) is looked for in a new walk, not
    // taken from the old.
    std::fs::remove_dir_all(root.path().join("103")).unwrap();
    assert_eq!(other.read(), Err(ProcError::NoListener { port: 3000 }));
    assert_eq!(other.scans(), 2);
}

#[test]
fn the_process_tree_is_listed_again_when_one_of_it_is_gone() {
    let root = fake_proc();
    let p = root.path();
    std::fs::write(p.join("100/task/100/children"), "101").unwrap();
    let mut reader = ProcessReader::new(p, 8000);
    assert_eq!(reader.read().unwrap().pids, [100, 101, 103]);
    // A new child is not looked for at every read: the listed tree stands a while.
    std::fs::write(p.join("101/task/101/children"), "103 104").unwrap();
    std::fs::create_dir_all(p.join("104")).unwrap();
    std::fs::write(
        p.join("104/stat"),
        std::fs::read(p.join("103/stat")).unwrap(),
    )
    .unwrap();
    assert_eq!(reader.read().unwrap().pids, [100, 101, 103]);
    // One of it exits: that read counts the rest, and the next lists the tree again.
    std::fs::remove_dir_all(p.join("103")).unwrap();
    assert_eq!(reader.read().unwrap().pids, [100, 101]);
    assert_eq!(reader.read().unwrap().pids, [100, 101, 104]);
}

#[test]
fn an_engine_restarted_on_its_port_is_read_at_once_under_its_new_pid() {
    let root = fake_proc();
    let p = root.path();
    let mut reader = ProcessReader::new(p, 8000);
    assert_eq!(reader.read().unwrap().pid, 100);
    std::fs::create_dir_all(p.join("200/fd")).unwrap();
    std::fs::create_dir_all(p.join("200/task/200")).unwrap();
    std::fs::write(p.join("200/task/200/children"), "").unwrap();
    std::fs::write(
        p.join("200/stat"),
        std::fs::read(p.join("100/stat")).unwrap(),
    )
    .unwrap();
    std::fs::remove_dir_all(p.join("100")).unwrap();
    std::os::unix::fs::symlink("socket:[777]", p.join("200/fd/3")).unwrap();
    let usage = reader.read().unwrap();
    assert_eq!((usage.pid, usage.pids), (200, vec![200]));
}

//! The server goes with its test process: at a normal exit (with its
//! directory), and when the process is killed (its directory removed by the
//! next start). Each case runs this test binary again as the test process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use muninn_sync_test_postgres::cluster;

/// Tells the ignored `child` test what to do once its cluster runs.
const CHILD_VARIABLE: &str = "MUNINN_SYNC_TEST_PG_LIFETIME_CHILD";

/// The test process of the cases below: starts its cluster, says where it
/// is, then exits or waits to be killed.
#[test]
#[ignore = "run by the other tests of this file, as a process of its own"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_VARIABLE) else {
        return;
    };
    let cluster = cluster();
    let _database = cluster.create_database("child");
    println!(
        "server_pid={} run_dir={}",
        cluster.server_pid(),
        cluster.run_dir().display()
    );
    if mode == "wait" {
        std::thread::sleep(Duration::from_secs(120));
    }
}

#[test]
fn an_exiting_test_process_stops_its_server_and_removes_its_directory() {
    let mut child = start_child("exit");
    let (server, run_dir) = read_where(&mut child);
    let status = child.wait().unwrap();
    assert!(status.success(), "the child test failed: {status}");
    assert!(
        !alive(server),
        "server {server} still runs after its test process exited"
    );
    assert!(!run_dir.exists(), "{} is left", run_dir.display());
}

#[test]
fn a_killed_test_process_takes_its_server_along() {
    let mut child = start_child("wait");
    let (server, run_dir) = read_where(&mut child);
    assert!(alive(server));
    child.kill().unwrap();
    child.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(server) {
        assert!(
            Instant::now() < deadline,
            "server {server} outlived its killed test process"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The killed process could not clean up; this process's start does.
    assert!(run_dir.exists());
    cluster();
    assert!(!run_dir.exists(), "{} was not removed", run_dir.display());
}

fn start_child(mode: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VARIABLE, mode)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The server's pid and the run directory, from the child's line.
fn read_where(child: &mut Child) -> (u32, PathBuf) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        // libtest has already written "test child ... " on the line.
        if let Some((_, rest)) = line.split_once("server_pid=") {
            let (pid, dir) = rest.split_once(" run_dir=").unwrap();
            // The child's last lines still need a reader: a closed pipe
            // would fail it.
            std::thread::spawn(move || lines.for_each(drop));
            return (pid.parse().unwrap(), PathBuf::from(dir));
        }
    }
    panic!("the child test said nothing of its cluster");
}

/// Whether process `pid` runs (a zombie waiting for its new parent does not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next();
            !matches!(state, Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

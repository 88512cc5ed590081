//! Running the real binaries as child processes.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for this test's turn to run processes. Each test here starts
/// several server processes and drives them flat out; two at once on a
/// small machine measure the machine (a starved process misses its
/// deadlines), not the code.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    TURN.lock().await
}

/// A free loopback port (bound and released; the child binds it next),
/// never the same one twice in this test run: tests run side by side, and
/// a port released by one could otherwise be handed to another before the
/// first one's child binds it.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// A binary of this workspace, next to the gateway's own.
pub fn binary(name: &str) -> PathBuf {
    let gateway = PathBuf::from(env!("CARGO_BIN_EXE_ws-gateway"));
    let path = gateway.with_file_name(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo test --workspace`",
        path.display()
    );
    path
}

/// Starts `program` with `env`, its stderr written to `log`; it is
/// killed when dropped.
pub fn start_logged(program: PathBuf, env: &[(&str, String)], log: &std::path::Path) -> Child {
    let file = std::fs::File::create(log).unwrap();
    spawn(Command::new(program), env, Stdio::from(file))
}

/// Like [`start_logged`], with every file the child writes kept under
/// `bytes` (`RLIMIT_FSIZE`), as on a full disk: a write past it fails
/// with `EFBIG` (`SIGXFSZ`, which would kill the process, is ignored).
/// [`lift_file_limit`] takes the limit away.
pub fn start_logged_file_limited(
    program: PathBuf,
    env: &[(&str, String)],
    log: &std::path::Path,
    bytes: u64,
) -> Child {
    let file = std::fs::File::create(log).unwrap();
    let script = format!("trap '' XFSZ; ulimit -S -f {}; exec \"$0\"", bytes / 1024);
    let mut command = Command::new("bash");
    command.args(["-c", &script]).arg(program);
    spawn(command, env, Stdio::from(file))
}

/// Lets a child started by [`start_logged_file_limited`] write files of
/// any size again, as when space is freed.
pub fn lift_file_limit(child: &Child) {
    let pid = child.id().expect("the child is running");
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--fsize=unlimited"])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Sends SIGTERM to a child.
pub fn terminate(child: &Child) {
    signal(child, "TERM");
}

/// Sends the signal `name` (`TERM`, `STOP`, `CONT`) to a child.
pub fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("the child is running");
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn spawn(mut command: Command, env: &[(&str, String)], stderr: Stdio) -> Child {
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn");
    for (key, value) in env {
        command.env(key, value);
    }
    command
        .stdout(Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Polls `/readyz` until it answers 200 (a child process cannot hand us
/// its bound socket, so asking is the way to know it listens).
pub async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} never became ready");
}

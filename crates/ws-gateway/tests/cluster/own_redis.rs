//! A `redis-server` of a test's own, on a free port: a test that kills
//! Redis, or cuts its connections, must not cut those of the tests
//! running beside it on the shared one.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::processes::free_port;

/// A `redis-server` of this test's own.
pub struct OwnRedis {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl OwnRedis {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    /// Starts on `port`, which clients may already be knocking on.
    pub async fn start_on(port: u16) -> Self {
        let mut redis = Self {
            port,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        redis.restart().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        for _ in 0..100 {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start");
    }

    /// Sends the signal `name` (`STOP`, `CONT`) to the server.
    pub fn signal(&self, name: &str) {
        crate::processes::signal(self.child.as_ref().expect("redis-server runs"), name);
    }

    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

//! A TCP proxy in front of PostgreSQL that a test can cut or stall. Cut, it
//! drops every connection and refuses new ones, as a dead database host
//! would. Stalled, it keeps every connection open and passes no byte
//! either way until it is resumed, then passes what waited: a database
//! that stopped answering (a frozen host, a network partition that heals
//! within TCP's retransmissions), which no error ever announces.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

pub struct CuttableProxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    links: watch::Sender<u64>,
    stalled: watch::Sender<bool>,
}

impl CuttableProxy {
    /// A proxy to the server of the database at `url`, and the URL of the
    /// same database through the proxy.
    pub async fn to(url: &str) -> (Self, String) {
        let (at, slash) = (url.rfind('@').unwrap(), url.rfind('/').unwrap());
        let proxy = Self::start(url[at + 1..slash].to_owned()).await;
        let proxied = format!("{}127.0.0.1:{}{}", &url[..=at], proxy.port, &url[slash..]);
        (proxy, proxied)
    }

    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let (links, _) = watch::channel(0u64);
        let (stalled, _) = watch::channel(false);
        let (flag, generation, stall) = (cut.clone(), links.clone(), stalled.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if flag.load(Ordering::Acquire) {
                    continue; // dropped: the client sees the connection close
                }
                let upstream = upstream.clone();
                let mut severed = generation.subscribe();
                let (up, down) = (stall.subscribe(), stall.subscribe());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::select! {
                        () = pass(client_read, server_write, up) => {}
                        () = pass(server_read, client_write, down) => {}
                        _ = severed.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            cut,
            links,
            stalled,
        }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.links.send_modify(|n| *n += 1);
    }

    pub fn mend(&self) {
        self.cut.store(false, Ordering::Release);
    }

    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }
}

/// Copies `from` to `to` until either ends; bytes read during a stall wait
/// for its end (reading stops meanwhile, so the sender's buffers fill as
/// they would on a silent link).
async fn pass(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut stalled: watch::Receiver<bool>) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|stalled| !stalled).await.is_err()
            || to.write_all(&buffer[..n]).await.is_err()
        {
            return;
        }
    }
}

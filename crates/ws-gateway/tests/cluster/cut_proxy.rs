//! A TCP proxy in front of PostgreSQL that a test can cut: cut, it drops
//! every connection and refuses new ones, as a dead database host would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct CuttableProxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    links: tokio::sync::watch::Sender<u64>,
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
        let (links, _) = tokio::sync::watch::channel(0u64);
        let (flag, generation) = (cut.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if flag.load(Ordering::Acquire) {
                    continue; // dropped: the client sees the connection close
                }
                let upstream = upstream.clone();
                let mut severed = generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = severed.changed() => {}
                    }
                });
            }
        });
        Self { port, cut, links }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::Release);
        self.links.send_modify(|n| *n += 1);
    }

    pub fn mend(&self) {
        self.cut.store(false, Ordering::Release);
    }
}

//! Settings of the WebSocket gateway.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use ops::settings::parse_duration;

#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// Where the WebSocket gateway listens.
    #[arg(long, env = "TIDINGS_WS_ADDR", default_value = "0.0.0.0:5000")]
    pub ws_addr: SocketAddr,

    /// Largest client frame, in bytes; a larger one closes the socket with 1009.
    #[arg(long, env = "TIDINGS_MAX_FRAME_BYTES", default_value_t = 64 * 1024)]
    pub max_frame_bytes: usize,

    /// Events queued for one socket before it counts as a slow consumer (closed with 4008).
    #[arg(long, env = "TIDINGS_OUTBOUND_QUEUE", default_value_t = 4096)]
    pub outbound_queue: usize,

    /// Messages one socket may publish per second (sustained).
    #[arg(long, env = "TIDINGS_PUBLISH_RATE", default_value_t = 1000)]
    pub publish_rate: u32,

    /// Messages one socket may publish in a burst above the rate.
    #[arg(long, env = "TIDINGS_PUBLISH_BURST", default_value_t = 2000)]
    pub publish_burst: u32,

    /// How often the server pings each socket.
    #[arg(long, env = "TIDINGS_PING_INTERVAL", default_value = "25s", value_parser = parse_duration)]
    pub ping_interval: Duration,

    /// A socket silent this long is dropped.
    #[arg(long, env = "TIDINGS_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Per-socket read buffer, in bytes (1 KiB of an idle socket's 7 KB).
    #[arg(long, env = "TIDINGS_WS_READ_BUFFER", default_value_t = 1024)]
    pub read_buffer_bytes: usize,

    /// Frames fed to a socket are written once this many bytes are buffered
    /// (or at the end of a burst): larger means fewer syscalls under load,
    /// and this much memory held by each busy socket (let go after a quiet
    /// timer period).
    #[arg(long, env = "TIDINGS_WS_WRITE_BUFFER", default_value_t = 16 * 1024)]
    pub write_buffer_bytes: usize,

    /// Memory for the last messages of the topics this process delivers,
    /// in bytes: sessions that fell behind catch up from it instead of
    /// the store (messages up to 30 s old; 0 turns it off).
    #[arg(long, env = "TIDINGS_WS_RECENT_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub recent_bytes: usize,

    /// After SIGTERM, how long sockets get to read what was written to
    /// them, their acks and their 1001, and to answer it. A client far
    /// behind needs seconds to read its buffers; one that reads nothing
    /// holds the exit this long. Keep it under the supervisor's grace.
    #[arg(long, env = "TIDINGS_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// The most sockets one user may have open on this process (0: no
    /// limit); one more is refused with 429.
    #[arg(long, env = "TIDINGS_MAX_SOCKETS_PER_USER", default_value_t = 0)]
    pub max_sockets_per_user: usize,
}

/// What sessions need of the settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub max_frame_bytes: usize,
    pub outbound_queue: usize,
    pub publish_rate: u32,
    pub publish_burst: u32,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub read_buffer_bytes: usize,
    pub write_buffer_bytes: usize,
    pub recent_bytes: usize,
    pub shutdown_timeout: Duration,
    pub max_sockets_per_user: usize,
    /// The common `--header-timeout`, for [`serve`](crate::serve).
    pub header_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            outbound_queue: 4096,
            publish_rate: 1000,
            publish_burst: 2000,
            ping_interval: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            read_buffer_bytes: 1024,
            write_buffer_bytes: 16 * 1024,
            recent_bytes: 64 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(10),
            max_sockets_per_user: 0,
            header_timeout: Duration::from_secs(10),
        }
    }
}

impl From<&GatewayArgs> for GatewayConfig {
    fn from(a: &GatewayArgs) -> Self {
        Self {
            max_frame_bytes: a.max_frame_bytes,
            outbound_queue: a.outbound_queue,
            publish_rate: a.publish_rate,
            publish_burst: a.publish_burst,
            ping_interval: a.ping_interval,
            idle_timeout: a.idle_timeout,
            read_buffer_bytes: a.read_buffer_bytes,
            write_buffer_bytes: a.write_buffer_bytes,
            recent_bytes: a.recent_bytes,
            shutdown_timeout: a.shutdown_timeout,
            max_sockets_per_user: a.max_sockets_per_user,
            header_timeout: GatewayConfig::default().header_timeout,
        }
    }
}

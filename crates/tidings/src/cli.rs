//! The command line: `serve` (the default), `migrate`, `user add`, `token`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ops::settings::{CommonArgs, parse_duration};
use tidings_api::ApiArgs;
use tidings_gateway::GatewayArgs;

/// Tidings: real-time messaging and notifications in one process.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API and the WebSocket gateway (the default).
    Serve,
    /// Apply pending migrations to the store, then exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Print an access token for an existing user.
    Token(TokenArgs),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from stdin when piped, else generated and printed.
    Add {
        name: String,
        /// Make the user an admin.
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    pub name: String,
    /// How long the token lives (e.g. 15m, 1h, 1d).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub ttl: Duration,
}

impl Cli {
    /// Parses the command line; the all-in-one listens on loopback by
    /// default, unlike the separate `api` and `ws-gateway` binaries.
    pub fn parse_args() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let command = Self::command()
            .mut_arg("api_addr", |a| a.default_value("127.0.0.1:8000"))
            .mut_arg("ws_addr", |a| a.default_value("127.0.0.1:5000"));
        let matches = command.get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }
}

/// The file of a `sqlite://PATH` URL, if it is one.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::sqlite_path;
    use std::path::PathBuf;

    #[test]
    fn finds_the_sqlite_file() {
        assert_eq!(
            sqlite_path("sqlite://tidings.db"),
            Some(PathBuf::from("tidings.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///var/lib/t.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/t.db"))
        );
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }
}

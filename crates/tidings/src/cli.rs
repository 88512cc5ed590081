//! The command line: `serve` (the default), `migrate`, `user add`, `token`.

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
    /// Print the REST API's OpenAPI document (as served at /api/openapi.json).
    Openapi,
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
    /// Set a user's password (the way back in when an admin's is lost); read
    /// from stdin when piped, else generated and printed. Every token the
    /// user had stops working.
    Passwd { name: String },
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

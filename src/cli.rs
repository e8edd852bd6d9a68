//! The command line: `run`, `check`, `token`, and `purge` and `revoke`
//! for a fleet.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};

use crate::auth::denylist::DenyKind;
use crate::auth::mint::{MintSpec, mint};
use crate::config::Config;
use crate::fleet::command::Action;
use crate::run::{ProcessOptions, build};

#[derive(Debug, Parser)]
#[command(
    name = "cdn-node",
    version,
    about = "Caching CDN edge node for token-protected video"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node.
    Run {
        /// The configuration file.
        #[arg(short = 'c', long = "conf")]
        conf: PathBuf,
        /// Run in the background (Pingora daemon mode).
        #[arg(short, long)]
        daemon: bool,
        /// Take over the listeners of a running node (graceful upgrade).
        #[arg(short, long)]
        upgrade: bool,
    },
    /// Validate a configuration file: lists every problem, exits 1 if any.
    Check {
        #[arg(short = 'c', long = "conf")]
        conf: PathBuf,
    },
    /// Mint a token for testing, printed on stdout.
    Token(TokenArgs),
    /// Purge across the fleet: writes a purge rule to the etcd of the
    /// configuration's `fleet` section; every node applies it.
    Purge(PurgeArgs),
    /// Revoke a token's `jti` or `sub` across the fleet (see `purge`).
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// A node's configuration file (only its `fleet` section is read).
    #[arg(short = 'c', long = "conf")]
    pub conf: PathBuf,
    /// One object: its path, with its query if the query selects it.
    #[arg(long, conflicts_with = "prefix", required_unless_present = "prefix")]
    pub path: Option<String>,
    /// Every object whose path starts with this.
    #[arg(long)]
    pub prefix: Option<String>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    #[arg(short = 'c', long = "conf")]
    pub conf: PathBuf,
    /// The token's `jti`.
    #[arg(long, conflicts_with = "sub", required_unless_present = "sub")]
    pub jti: Option<String>,
    /// The token's subject: every token of that user.
    #[arg(long)]
    pub sub: Option<String>,
    /// The token's `exp` (Unix seconds): the revocation is kept until then.
    #[arg(long)]
    pub exp: Option<u64>,
    /// Take the revocation back instead.
    #[arg(long, conflicts_with = "exp")]
    pub undo: bool,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// HMAC secret file (HS*) or PEM private key (RS*, PS*, ES*, EdDSA).
    #[arg(long)]
    pub key_file: PathBuf,
    /// Algorithm: HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA.
    #[arg(long, default_value = "HS256")]
    pub alg: String,
    /// Key id put in the header.
    #[arg(long)]
    pub kid: Option<String>,
    /// Subject (`sub`).
    #[arg(long)]
    pub sub: Option<String>,
    /// Lifetime in seconds (`exp` = now + ttl).
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    /// Issuer (`iss`).
    #[arg(long)]
    pub iss: Option<String>,
    /// Audience (`aud`).
    #[arg(long)]
    pub aud: Option<String>,
    /// Extra claim NAME=VALUE (VALUE parsed as JSON when it is JSON); repeatable.
    #[arg(long = "claim")]
    pub claims: Vec<String>,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn load(conf: &Path) -> Result<Config, ExitCode> {
    Config::load(conf).map_err(|problems| {
        eprintln!(
            "{}: {} problem{}:",
            conf.display(),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        for p in &problems {
            eprintln!("  {p}");
        }
        ExitCode::FAILURE
    })
}

/// Runs `purge` or `revoke`.
fn fleet_command(conf: &Path, action: Result<Action, &str>) -> ExitCode {
    let action = match action {
        Ok(a) => a,
        Err(msg) => {
            eprint!("cdn-node: {msg}");
            return ExitCode::FAILURE;
        }
    };
    let config = match crate::fleet::command::load(conf) {
        Ok(c) => c,
        Err(problems) => {
            eprintln!("{}:", conf.display());
            for p in &problems {
                eprintln!("  {p}");
            }
            return ExitCode::FAILURE;
        }
    };
    match crate::fleet::command::run(config, action) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cdn-node: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Purge(args) => {
            let action = crate::admin::purge_target(args.path.as_deref(), args.prefix.as_deref())
                .map(|r| Action::Purge(r.scope()));
            fleet_command(&args.conf, action)
        }
        Command::Revoke(args) => {
            let (kind, value) = match (args.jti, args.sub) {
                (Some(v), _) => (DenyKind::Jti, v),
                (None, Some(v)) => (DenyKind::Sub, v),
                (None, None) => return ExitCode::FAILURE,
            };
            let action = if args.undo {
                Action::Unrevoke { kind, value }
            } else {
                Action::Revoke {
                    kind,
                    value,
                    exp: args.exp,
                }
            };
            fleet_command(&args.conf, Ok(action))
        }
        Command::Check { conf } => match load(&conf) {
            Ok(_) => {
                println!("{}: ok", conf.display());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run {
            conf,
            daemon,
            upgrade,
        } => {
            init_tracing();
            let config = match load(&conf) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match build(config, ProcessOptions { daemon, upgrade }) {
                Ok(node) => {
                    node.run();
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cdn-node: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Token(args) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let spec = MintSpec {
                key_file: args.key_file,
                algorithm: args.alg,
                kid: args.kid,
                subject: args.sub,
                ttl_seconds: args.ttl,
                issuer: args.iss,
                audience: args.aud,
                extra_claims: args.claims,
                now_unix: now,
            };
            match mint(&spec) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cdn-node token: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

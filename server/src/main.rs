//! `wasmwiz-server`: `serve` (the default), `admin create-key`, and
//! `config defaults` / `config reference`.

use std::{
    io::{ErrorKind, IsTerminal},
    net::SocketAddr,
    path::PathBuf,
};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use wasmwiz_server::{server, Config};

/// mimalloc: a request allocates and frees many small buffers across
/// threads (h2 frames, protobuf messages, tasks); it measured faster than
/// glibc's allocator for that in the load benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wasmwiz-server",
    version,
    about = "Runs untrusted WebAssembly for many tenants over gRPC",
    after_help = "Every setting is also a key of the TOML file (--config); \
                  `wasmwiz-server config defaults` prints them all."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML configuration file (layered: defaults < file < environment < flags).
    #[arg(long, env = "WASMWIZ_CONFIG", global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC, grpc-web and the playground (the default).
    Serve,
    /// Operator commands that work with or without a running server.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an API key (and its user if needed); prints the key on the last line.
    CreateKey {
        #[arg(long)]
        email: String,
        /// The user's tier (set on the user, created if new).
        #[arg(long, default_value = "free")]
        tier: String,
        /// Admin keys may call AdminService.
        #[arg(long)]
        admin: bool,
        #[arg(long, default_value = "")]
        label: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the complete default configuration (tiers included) as TOML.
    Defaults,
    /// Print the reference table of every setting (README's, as Markdown).
    Reference,
}

/// Parses the command line, and layers the configuration: defaults, the
/// TOML file, then the environment and flags (clap gives flags precedence
/// over the environment, and reports only settings that were given).
fn parse() -> anyhow::Result<(Option<Command>, Config)> {
    let matches = Config::augment_args(Cli::command()).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let mut config = match &cli.config {
        Some(path) => Config::from_toml(&std::fs::read_to_string(path)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        None => Config::default(),
    };
    config
        .update_from_arg_matches(&matches)
        .unwrap_or_else(|e| e.exit());
    Ok((cli.command, config))
}

/// Logs to stderr (JSON in production), and spans to the OTLP collector
/// when `traces` is given.
fn init_logging(json: bool, traces: Option<&opentelemetry_sdk::trace::SdkTracerProvider>) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: a log file or a pipe
        // to a collector would otherwise be full of `\x1b[` sequences.
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(traces.map(wasmwiz_server::telemetry::layer));
    if json {
        registry.with(fmt.json()).init();
    } else {
        registry.with(fmt).init();
    }
}

/// Binds the listen address; a taken port names the address and how to pick
/// another, since that is the usual first-run failure (a second server, or
/// another program on 8080).
async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| match err.kind() {
            ErrorKind::AddrInUse => anyhow::anyhow!(
                "cannot listen on {addr}: the address is already in use (is another \
                 wasmwiz-server running?). Choose another address with --listen HOST:PORT \
                 or WASMWIZ_LISTEN=HOST:PORT; with cargo run, pass it after `--`: \
                 cargo run -p wasmwiz-server -- --listen 127.0.0.1:8081"
            ),
            _ => anyhow::anyhow!("cannot listen on {addr}: {err}"),
        })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Serves until SIGTERM/SIGINT. On an empty database it first mints an
/// admin key and prints it (once); on existing data it says how to make one.
async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = bind(config.listen).await?;
    let store = server::open_store(&config).await?;
    if store.has_no_keys().await? {
        let auth = server::authenticator(&config, &store)?;
        let user = store
            .ensure_user("admin@localhost", "unlimited", true)
            .await?;
        let minted = auth.mint(&user.id, true, "first start", None).await?;
        println!("First start: created an admin API key (shown once, keep it safe):");
        println!("{}", minted.key);
    } else {
        println!(
            "Existing data: to make a new admin key, run \
             `wasmwiz-server admin create-key --email you@example.com --tier unlimited --admin` \
             with the same --data-dir or --database-url"
        );
    }
    store.close().await;
    server::serve(listener, config, shutdown_signal()).await
}

async fn create_key(
    config: Config,
    email: String,
    tier: String,
    admin: bool,
    label: String,
) -> anyhow::Result<()> {
    if config.tier(&tier).is_none() {
        let known: Vec<_> = config.tiers.keys().cloned().collect();
        anyhow::bail!("unknown tier `{tier}`; known: {}", known.join(", "));
    }
    let store = server::open_store(&config).await?;
    let auth = server::authenticator(&config, &store)?;
    let user = store.ensure_user(&email, &tier, true).await?;
    let minted = auth.mint(&user.id, admin, &label, None).await?;
    println!(
        "Created {} key {} for {email} (tier {tier}):",
        if admin { "an admin" } else { "a" },
        minted.key_id
    );
    println!("{}", minted.key);
    store.close().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let (command, config) = parse()?;
    let command = command.unwrap_or(Command::Serve);
    if let Command::Config { command } = command {
        match command {
            ConfigCommand::Defaults => print!("{}", Config::defaults_toml()),
            ConfigCommand::Reference => {
                print!("{}", wasmwiz_server::config_reference::reference_table())
            }
        }
        return Ok(());
    }
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Guests' first slices run inline; give them the worker pool's stack.
        .thread_stack_size(8 * 1024 * 1024)
        .build()?;
    // The OTLP client lives on the runtime, so it is built inside it.
    let traces = match &config.otlp_endpoint {
        Some(endpoint) => {
            Some(runtime.block_on(async { wasmwiz_server::telemetry::otlp_provider(endpoint) })?)
        }
        None => None,
    };
    init_logging(config.production, traces.as_ref());
    wasmwiz_server::transport::raise_fd_limit();
    let result = runtime.block_on(async move {
        match command {
            Command::Serve => serve(config).await,
            Command::Admin {
                command:
                    AdminCommand::CreateKey {
                        email,
                        tier,
                        admin,
                        label,
                    },
            } => create_key(config, email, tier, admin, label).await,
            Command::Config { .. } => unreachable!("handled before the runtime starts"),
        }
    });
    // Sends the spans still buffered.
    if let Some(traces) = traces {
        if let Err(error) = traces.shutdown() {
            eprintln!("exporting the last traces: {error}");
        }
    }
    result
}

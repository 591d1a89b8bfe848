//! `wasmwiz-server`: `serve` (the default) and `admin create-key`.

use std::{
    io::{ErrorKind, IsTerminal},
    net::SocketAddr,
    path::PathBuf,
};

use clap::{Args, Parser, Subcommand};
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
    about = "Runs untrusted WebAssembly for many tenants over gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    common: Common,
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

#[derive(Args)]
struct Common {
    /// Address to listen on.
    #[arg(long, env = "WASMWIZ_LISTEN", global = true)]
    listen: Option<SocketAddr>,
    /// Data directory (SQLite file, key pepper).
    #[arg(long, env = "WASMWIZ_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// sqlite://… or postgres://…
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Redis for rate limits shared by replicas.
    #[arg(long, env = "REDIS_URL", global = true)]
    redis_url: Option<String>,
    /// TOML configuration file.
    #[arg(long, env = "WASMWIZ_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Secret for hashing API keys.
    #[arg(long, env = "WASMWIZ_PEPPER", global = true, hide_env_values = true)]
    pepper: Option<String>,
}

impl Common {
    fn load(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_toml(&std::fs::read_to_string(path)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            None => Config::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(url) = &self.database_url {
            config.database_url = Some(url.clone());
        }
        if let Some(url) = &self.redis_url {
            config.redis_url = Some(url.clone());
        }
        if let Some(pepper) = &self.pepper {
            config.pepper = Some(pepper.clone());
        }
        Ok(config)
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: a log file or a pipe
        // to a collector would otherwise be full of `\x1b[` sequences.
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
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
    let cli = Cli::parse();
    let config = cli.common.load()?;
    init_logging(config.production);
    wasmwiz_server::transport::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Guests' first slices run inline; give them the worker pool's stack.
        .thread_stack_size(8 * 1024 * 1024)
        .build()?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => {
                config.validate()?;
                let listener = bind(config.listen).await?;
                server::run(listener, config, shutdown_signal()).await
            }
            Command::Admin {
                command:
                    AdminCommand::CreateKey {
                        email,
                        tier,
                        admin,
                        label,
                    },
            } => create_key(config, email, tier, admin, label).await,
        }
    })
}

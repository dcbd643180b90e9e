//! The `peercam` command: parses arguments, sets up logging and hands over to the service.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use peercam::config::{Config, DEFAULT_PATH};
use peercam::service::Device;

/// A LAN camera you open in a browser: nextRTC signaling plus the camera as a WebRTC peer.
#[derive(Parser, Debug)]
#[command(name = "peercam", version, about)]
struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the camera: HTTP page, WebSocket signaling and the camera peer (the default).
    Serve(ServeArgs),
}

#[derive(clap::Args, Debug, Clone, Default)]
struct ServeArgs {
    /// Address and port for the page and the WebSocket [default: 0.0.0.0:8080, or the config's].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Configuration file [default: /etc/peercam/peercam.toml when it exists].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// The camera's standing conversation id (also its member id) [default: camera].
    #[arg(long, value_name = "ID")]
    conversation: Option<String>,
}

fn load_config(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None if std::path::Path::new(DEFAULT_PATH).exists() => {
            Config::load(std::path::Path::new(DEFAULT_PATH))?
        }
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(conv) = &args.conversation {
        config.camera.conversation = conv.clone();
    }
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    let config = load_config(&args)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let device = Device::new(&config);
    log::info!(
        "peercam {} serving http://{}/ (signaling at /signaling, camera conversation {:?})",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr()?,
        config.camera.conversation
    );
    device
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")
}

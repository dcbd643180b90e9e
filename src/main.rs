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
    /// Show the cameras and encoders found, what would be used, and why.
    Check(ServeArgs),
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
    /// Video source: `auto` (first camera, else the test pattern), `test`, `libcamera`,
    /// `v4l2-raw`, `v4l2-mjpeg`, or any name in the pipelines directory's sources/.
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
    /// H.264 encoder: `auto` (hardware if usable, else x264, else openh264), `v4l2h264`,
    /// `x264`, `openh264`, or any name in the pipelines directory's encoders/.
    #[arg(long, value_name = "NAME")]
    encoder: Option<String>,
    /// Address to offer ICE host candidates on (repeatable) [default: every LAN address].
    #[arg(long = "ice-address", value_name = "ADDR")]
    ice_address: Vec<std::net::IpAddr>,
    /// Run signaling only, without the camera peer.
    #[arg(long)]
    no_camera: bool,
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
    if let Some(source) = &args.source {
        config.camera.source = source.clone();
    }
    if let Some(encoder) = &args.encoder {
        config.camera.encoder = encoder.clone();
    }
    if !args.ice_address.is_empty() {
        config.camera.ice_addresses = args.ice_address.clone();
    }
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = match cli.command {
        Some(Command::Check(args)) => {
            let config = load_config(&args)?;
            print!("{}", peercam::media::check::report(&config));
            return Ok(());
        }
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    let config = load_config(&args)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(config, !args.no_camera))
}

async fn serve(config: Config, with_camera: bool) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("binding {}", config.server.listen))?;
    let mut device = Device::new(&config);
    if with_camera {
        let selection = peercam::media::select::capture_pipeline(&config.camera)
            .context("choosing the camera pipeline")?;
        log::info!("camera: {selection}");
        device
            .start_camera(&config, selection.launch.clone())
            .context("starting the camera")?;
    }
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

//! The `peercam` command: parses arguments, reads the configuration, sets up logging and
//! hands over to the service (or to one of the small commands).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use peercam::config::{Config, Overrides};

/// A LAN camera you open in a browser: nextRTC signaling plus the camera as a WebRTC peer,
/// on one HTTP port.
///
/// Settings come from the configuration file (`peercam config --default` prints one with
/// every key explained); the flags below override it.
#[derive(Parser, Debug)]
#[command(
    name = "peercam",
    version,
    about,
    long_about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Settings,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the camera: HTTP page, WebSocket signaling, the camera peer and its mDNS
    /// advertisement (the default). Under systemd it reports readiness and pings the
    /// watchdog; SIGTERM or SIGINT stops it cleanly within 2 s, a second one at once.
    Serve(Settings),
    /// Show the cameras and encoders found, what would be used, and why.
    Check(Settings),
    /// List the peercam cameras (and other nextRTC devices) advertised on the LAN.
    Discover(DiscoverArgs),
    /// Print the link that opens the camera, with its access token (made now if the camera
    /// has not started yet); `--rotate` replaces the token first, ending every session made
    /// with the old one.
    Token(TokenArgs),
    /// Print the configuration in effect (the file with the flags applied), or with
    /// `--default` a commented default file to start /etc/peercam/peercam.toml from.
    Config(ConfigArgs),
}

/// Where the settings come from and the flags that override the file.
#[derive(clap::Args, Debug, Clone, Default)]
struct Settings {
    /// Configuration file; it must exist [default: /etc/peercam/peercam.toml when it exists,
    /// else the built-in defaults].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address and port for the page and the WebSocket (port 0: any free port)
    /// [file: server.listen, default 0.0.0.0:8080].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Device name shown on the page and advertised on the LAN [file: server.name].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The camera's standing conversation id, also its member id [file: camera.conversation,
    /// default camera].
    #[arg(long, value_name = "ID")]
    conversation: Option<String>,
    /// Video source: `auto` (first camera, else the test pattern), `test`, `libcamera`,
    /// `v4l2-raw`, `v4l2-mjpeg`, or any name in the pipelines directory's sources/
    /// [file: camera.source].
    #[arg(long, value_name = "NAME")]
    source: Option<String>,
    /// H.264 encoder: `auto` (hardware if usable, else x264, else openh264), `v4l2h264`,
    /// `x264`, `openh264`, or any name in the pipelines directory's encoders/
    /// [file: camera.encoder].
    #[arg(long, value_name = "NAME")]
    encoder: Option<String>,
    /// Sound source: `auto` (first microphone, else none), `test` (a tone), `none`, `alsa`,
    /// or any name in the pipelines directory's audio/ [file: audio.source].
    #[arg(long, value_name = "NAME")]
    audio: Option<String>,
    /// Address to offer ICE host candidates on; repeat for several [file:
    /// camera.ice_addresses, default every LAN address].
    #[arg(long = "ice-address", value_name = "ADDR")]
    ice_address: Vec<IpAddr>,
    /// Directory holding the sources/ and encoders/ descriptions [file:
    /// camera.pipelines_dir].
    #[arg(long, value_name = "DIR")]
    pipelines_dir: Option<PathBuf>,
    /// Do not advertise the camera over mDNS [file: discovery.enabled = false].
    #[arg(long)]
    no_discovery: bool,
    /// Serve plain http only, without https and wss [file: tls.enabled = false].
    #[arg(long)]
    no_tls: bool,
    /// Run signaling (and the page) only, without the camera peer [file: camera.enabled =
    /// false].
    #[arg(long)]
    no_camera: bool,
}

#[derive(clap::Args, Debug, Clone)]
struct DiscoverArgs {
    /// How long to listen for answers, in seconds.
    #[arg(long, value_name = "SECONDS", default_value = "3", value_parser = parse_timeout)]
    timeout: Duration,
    /// Print JSON (name, host, addresses, port, TXT entries, URLs and certificate
    /// fingerprint per camera) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug, Clone)]
struct TokenArgs {
    /// Replace the token with a new one: links, bookmarks' cookies and open sessions made
    /// with the old one stop working (a running camera notices within a second or two).
    #[arg(long)]
    rotate: bool,
    /// Also print the link as a QR code, for a phone's camera to read off the screen.
    #[arg(long)]
    qr: bool,
    /// Directory holding the token [default: server.state_dir, else $STATE_DIRECTORY, else
    /// /var/lib/peercam when it exists (the packaged service's), else
    /// ~/.local/state/peercam].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(clap::Args, Debug, Clone)]
struct ConfigArgs {
    /// Print the built-in defaults, every key with its explanation, ignoring any file and
    /// flags.
    #[arg(long)]
    default: bool,
    /// Print the configuration in effect as one line of JSON, for scripts (it is what
    /// `peercam check` hands to the media program).
    #[arg(long, conflicts_with = "default")]
    json: bool,
    #[command(flatten)]
    settings: Settings,
}

/// A browse timeout: seconds, fractions allowed, up to a minute.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 60.0) {
        return Err("must be more than 0 and at most 60 seconds".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

impl Settings {
    fn resolve(&self) -> anyhow::Result<Config> {
        let overrides = Overrides {
            listen: self.listen,
            name: self.name.clone(),
            conversation: self.conversation.clone(),
            source: self.source.clone(),
            encoder: self.encoder.clone(),
            audio: self.audio.clone(),
            ice_addresses: self.ice_address.clone(),
            pipelines_dir: self.pipelines_dir.clone(),
            no_discovery: self.no_discovery,
            no_camera: self.no_camera,
            no_tls: self.no_tls,
        };
        let (config, _) = Config::resolve(self.config.as_deref(), &overrides)?;
        Ok(config)
    }
}

fn main() -> ExitCode {
    peercam::memory::tune_allocator();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Before logging is set up (a bad config) there is no logger: the message goes
            // to stderr, which systemd sends to the journal too.
            if log::log_enabled!(log::Level::Error) {
                log::error!("{e:#}");
            } else {
                eprintln!("peercam: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = match cli.command {
        None => cli.serve,
        Some(Command::Serve(settings)) => settings,
        Some(Command::Check(settings)) => {
            let config = settings.resolve()?;
            return check(&config);
        }
        Some(Command::Discover(args)) => return discover(&args),
        Some(Command::Token(args)) => {
            let config = args.settings.resolve()?;
            let dir = args
                .state_dir
                .clone()
                .or_else(|| peercam::access::command_state_dir(&config));
            let outcome = peercam::access::command::token(&config, dir.as_deref(), args.rotate)?;
            if let Some(note) = &outcome.note {
                eprintln!("peercam: {note}");
            }
            if !outcome.by_address.is_empty() {
                eprintln!(
                    "peercam: or by address (for phones that do not resolve .local names): {}",
                    outcome.by_address.join(" ")
                );
            }
            println!("{}", outcome.link);
            if args.qr {
                match peercam::share::qr_text(&outcome.link) {
                    Some(code) => println!("{code}"),
                    None => eprintln!("peercam: the link is too long for a QR code"),
                }
            }
            return Ok(());
        }
        Some(Command::Config(args)) => {
            if args.default {
                print!("{}", Config::default_file());
            } else if args.json {
                println!("{}", serde_json::to_string(&args.settings.resolve()?)?);
            } else {
                print!("{}", args.settings.resolve()?.to_commented_toml());
            }
            return Ok(());
        }
    };
    let config = settings.resolve()?;
    peercam::logging::init(&config.log.level);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = runtime.block_on(peercam::service::run(config));
    // Tasks still parked on idle connections are not waited for: the service has already
    // said goodbye to everyone it had to.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(result?)
}

/// `check` runs in the media program, where GStreamer is: `peercam config --json |
/// peercam-media check`.
fn check(config: &Config) -> anyhow::Result<()> {
    use std::io::Write;
    let program = peercam::install::this_media_program()?;
    let mut child = std::process::Command::new(&program)
        .arg("check")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", program.display()))?;
    // The media program has no use for the access token or the publish token: it gets
    // neither.
    let mut shared = config.clone();
    shared.auth.token = None;
    shared.publish.token = None;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(serde_json::to_string(&shared)?.as_bytes())
            .with_context(|| format!("writing to {}", program.display()))?;
    }
    let status = child.wait()?;
    if !status.success() {
        anyhow::bail!("{} check: {status}", program.display());
    }
    println!("\n{}", peercam::publish::check(config));
    let dir = peercam::access::command_state_dir(config);
    match peercam::access::command::token(config, dir.as_deref(), false) {
        Ok(outcome) if outcome.by_address.is_empty() => {
            println!("\nOpen {} to watch.", outcome.link)
        }
        Ok(outcome) => println!(
            "\nOpen {} to watch, or by address: {}.",
            outcome.link,
            outcome.by_address.join(", ")
        ),
        Err(e) => println!("\nThe link to open is unknown: {e}"),
    }
    Ok(())
}

fn discover(args: &DiscoverArgs) -> anyhow::Result<()> {
    peercam::logging::init("warn");
    let found = peercam::discovery::browse(args.timeout).context("browsing the LAN")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        print!("{}", peercam::discovery::format_table(&found));
    }
    Ok(())
}

//! The `carbonwatch` command: parses arguments and calls the library.

mod import;
mod loadgen;
mod manual;

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "carbonwatch",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("CARBONWATCH_COMMIT"), ")"),
    about = "A Graphite-protocol streaming proxy with inline alerting"
)]
struct Cli {
    /// Log lines as text (coloured on a terminal, journald-friendly under
    /// systemd) or as one JSON object a line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The config file and the language it is written in.
#[derive(clap::Args)]
struct ConfigArgs {
    /// The config file.
    #[arg(long, short)]
    config: PathBuf,
    /// Its language; by default `.toml` files are TOML and any other is
    /// carbon-c-relay's.
    #[arg(long, value_enum)]
    format: Option<carbonwatch::config::ConfigFormat>,
}

impl ConfigArgs {
    fn format(&self) -> carbonwatch::config::ConfigFormat {
        self.format
            .unwrap_or_else(|| carbonwatch::config::ConfigFormat::of(&self.config))
    }

    fn load(&self) -> Result<carbonwatch::config::Config, carbonwatch::config::ConfigError> {
        carbonwatch::config::Config::load_as(&self.config, self.format())
    }
}

/// What `convert` reads.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ConvertFrom {
    /// A carbon-c-relay config file: printed as a whole carbonwatch config.
    CarbonCRelay,
    /// Python carbon-aggregator's aggregation-rules.conf: printed as
    /// `[[aggregate]]` tables to add to a config.
    CarbonAggregator,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Validate a config file and report every problem with file, line and key.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Read metric names (or whole carbon lines) on stdin and print where each would go.
    Route {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Print a carbon-c-relay config file as carbonwatch TOML, with a
    /// comment wherever a construct is read but not applied; or
    /// carbon-aggregator's rules as `[[aggregate]]` tables.
    Convert {
        /// The language of the file.
        #[arg(long, value_enum, default_value_t = ConvertFrom::CarbonCRelay)]
        from: ConvertFrom,
        /// With carbon-aggregator rules: its MAX_AGGREGATION_INTERVALS,
        /// how many intervals a rule's buckets take late points.
        #[arg(long, default_value_t = carbonwatch::config::aggrules::DEFAULT_MAX_AGGREGATION_INTERVALS)]
        max_aggregation_intervals: u64,
        /// The file to convert.
        file: PathBuf,
    },
    /// Write the man pages: carbonwatch(1), one per subcommand, and
    /// carbonwatch.toml(5).
    Man {
        /// The directory to write them to.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Copy checks from another alerter into a running carbonwatch.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
    /// Send a generated load through a relay and count what reaches the sinks.
    Bench {
        /// The relay's plaintext TCP address.
        #[arg(long)]
        target: SocketAddr,
        /// An address the relay forwards to; give it once per destination.
        #[arg(long, required = true)]
        sink: Vec<SocketAddr>,
        /// Client connections.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Lines to send in total.
        #[arg(long, default_value_t = 10_000_000)]
        lines: u64,
        /// Distinct metric names per connection.
        #[arg(long, default_value_t = 10_000)]
        names: usize,
        /// Seconds without progress before declaring the rest lost.
        #[arg(long, default_value_t = 3)]
        settle_secs: u64,
        /// Report this process's peak resident memory.
        #[arg(long)]
        watch_pid: Option<u32>,
        /// The timestamp of every line (`-1`: the relay's arrival time).
        #[arg(long, default_value = "1700000000", allow_hyphen_values = true)]
        timestamp: String,
    },
    /// Time breaching lines to their webhooks while a background load flows.
    BenchLatency {
        /// The relay's plaintext TCP address.
        #[arg(long)]
        target: SocketAddr,
        /// The address the relay forwards to.
        #[arg(long)]
        sink: SocketAddr,
        /// The address the relay's HTTP subscription posts to.
        #[arg(long)]
        hook: SocketAddr,
        /// Background lines per second.
        #[arg(long, default_value_t = 1_000_000)]
        rate: u64,
        /// Probe lines to time.
        #[arg(long, default_value_t = 1000)]
        probes: usize,
        /// Milliseconds between probes.
        #[arg(long, default_value_t = 10)]
        interval_ms: u64,
    },
    /// Compare the throughput of running relays in short alternating segments.
    BenchCompare {
        /// A relay: LABEL=TARGET,SINK[+SINK...][,PID], with a SINK per
        /// destination. The first is the baseline.
        #[arg(long = "side", required = true, value_parser = parse_side)]
        sides: Vec<loadgen::Side>,
        /// Client connections to each relay.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Distinct metric names per connection.
        #[arg(long, default_value_t = 10_000)]
        names: usize,
        /// Passes over the names, each in a new order (1: the same order
        /// every pass).
        #[arg(long, default_value_t = 1)]
        passes: usize,
        /// With N > 0, one name in N is replaced by a new one each pass
        /// (60: 10% new names a minute at a 10 s interval); the order is
        /// kept and `passes` ignored.
        #[arg(long, default_value_t = 0)]
        churn_every: usize,
        /// Lines per segment.
        #[arg(long, default_value_t = 2_000_000)]
        lines: u64,
        /// Rounds (one segment per relay each).
        #[arg(long, default_value_t = 40)]
        rounds: usize,
        /// Seconds without progress before a segment's missing lines are lost.
        #[arg(long, default_value_t = 3)]
        settle_secs: u64,
        /// Ratio to the baseline that the summary counts rounds against.
        #[arg(long, default_value_t = 0.9)]
        threshold: f64,
        /// The timestamp of every line: `-1` is the relay's arrival time
        /// (for aggregation rules); churned names keep the fixed one.
        #[arg(long, default_value = "1700000000", allow_hyphen_values = true)]
        timestamp: String,
    },
}

#[derive(Subcommand)]
enum ImportSource {
    /// Every check of a running Seyren, with its subscriptions and ids,
    /// through both REST APIs; a second run changes nothing.
    Seyren {
        /// Seyren's API base, e.g. http://seyren:8080/seyren/api.
        #[arg(long)]
        from: String,
        /// carbonwatch's API base (its token, if any, from
        /// CARBONWATCH_API_TOKEN).
        #[arg(long, default_value = "http://127.0.0.1:8080/api")]
        to: String,
        /// Report what would be created; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `LABEL=TARGET,SINK[,PID]`.
fn parse_side(s: &str) -> Result<loadgen::Side, String> {
    let (label, rest) = s
        .split_once('=')
        .ok_or("expected LABEL=TARGET,SINK[+SINK...][,PID]")?;
    let mut parts = rest.split(',');
    let mut addr = |what: &str| -> Result<SocketAddr, String> {
        let v = parts.next().ok_or(format!("{what} missing"))?;
        v.parse().map_err(|e| format!("{what} {v:?}: {e}"))
    };
    let target = addr("TARGET")?;
    let sinks = parts
        .next()
        .ok_or("SINK missing")?
        .split('+')
        .map(|v| v.parse().map_err(|e| format!("SINK {v:?}: {e}")))
        .collect::<Result<_, String>>()?;
    let pid = parts
        .next()
        .map(|p| p.parse().map_err(|e| format!("PID {p:?}: {e}")))
        .transpose()?;
    Ok(loadgen::Side {
        label: label.to_string(),
        target,
        sinks,
        pid,
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    carbonwatch::service::init_logging(match cli.log_format {
        LogFormat::Text => carbonwatch::service::LogFormat::Text,
        LogFormat::Json => carbonwatch::service::LogFormat::Json,
    });
    match cli.command {
        Command::Man { out } => {
            use clap::CommandFactory;
            for page in manual::write_pages(Cli::command(), &out)? {
                println!("{}", out.join(page).display());
            }
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            manual::completions(&mut Cli::command(), shell)
        }
        Command::CheckConfig { config } => {
            config.load()?;
            println!("{}: ok", config.config.display());
            Ok(())
        }
        Command::Convert {
            from,
            max_aggregation_intervals,
            file,
        } => {
            use carbonwatch::config::{aggrules, crelay};
            match from {
                ConvertFrom::CarbonCRelay => {
                    let converted = crelay::convert(&file, crelay::DEFAULT_PORT)?;
                    print!("{}", crelay::document(&file, &converted));
                }
                ConvertFrom::CarbonAggregator => {
                    let tables = aggrules::convert(&file, max_aggregation_intervals)?;
                    println!(
                        "# carbon-aggregator's {} as [[aggregate]] tables: add them\n\
                         # to a carbonwatch config, before the [[route]] tables.",
                        file.display()
                    );
                    print!("{tables}");
                }
            }
            Ok(())
        }
        Command::Route { config } => {
            let config = config.load()?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let mut fields = line.split_whitespace();
                let Some(name) = fields.next() else {
                    continue;
                };
                let data = fields.collect::<Vec<_>>().join(" ");
                writeln!(out, "{}", config.router.explain(name, &data))?;
            }
            Ok(())
        }
        Command::Import {
            source: ImportSource::Seyren { from, to, dry_run },
        } => {
            let opts = import::ImportOptions {
                from,
                to,
                token: std::env::var("CARBONWATCH_API_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty()),
                dry_run,
            };
            let rt = tokio::runtime::Runtime::new()?;
            let report = rt.block_on(import::import_seyren(&opts))?;
            let verb = if dry_run { "would create" } else { "created" };
            for (id, name) in &report.created {
                println!("{verb} {id} {name:?}");
            }
            for p in &report.problems {
                println!("not carried over: {p}");
            }
            for n in &report.notes {
                println!("note: {n}");
            }
            println!(
                "{} {verb}, {} unchanged, {} not carried over",
                report.created.len(),
                report.unchanged,
                report.problems.len()
            );
            Ok(())
        }
        Command::Run { config } => {
            let rt = tokio::runtime::Runtime::new()?;
            let report = rt.block_on(carbonwatch::app::run(&config.config, config.format()))?;
            if report.undelivered > 0 {
                anyhow::bail!(
                    "{} metrics could not be delivered before shutdown",
                    report.undelivered
                );
            }
            Ok(())
        }
        Command::BenchLatency {
            target,
            sink,
            hook,
            rate,
            probes,
            interval_ms,
        } => {
            let rt = tokio::runtime::Runtime::new()?;
            let opts = loadgen::LatencyOptions {
                target,
                sink,
                hook,
                rate,
                probes,
                probe_interval: Duration::from_millis(interval_ms),
            };
            let report = rt
                .block_on(loadgen::latency(opts))
                .context("benchmark failed")?;
            println!("{report}");
            Ok(())
        }
        Command::BenchCompare {
            sides,
            connections,
            names,
            passes,
            churn_every,
            lines,
            rounds,
            settle_secs,
            threshold,
            timestamp,
        } => {
            let _ = loadgen::TIMESTAMP.set(timestamp);
            let rt = tokio::runtime::Runtime::new()?;
            let opts = loadgen::CompareOptions {
                sides,
                connections,
                names,
                passes,
                churn_every,
                lines,
                rounds: rounds.max(1),
                settle: Duration::from_secs(settle_secs),
                threshold,
            };
            let report = rt
                .block_on(loadgen::compare(opts))
                .context("benchmark failed")?;
            print!("{report}");
            if report.lost() > 0 {
                anyhow::bail!("{} lines were lost", report.lost());
            }
            Ok(())
        }
        Command::Bench {
            target,
            sink,
            connections,
            lines,
            names,
            settle_secs,
            watch_pid,
            timestamp,
        } => {
            let _ = loadgen::TIMESTAMP.set(timestamp);
            let rt = tokio::runtime::Runtime::new()?;
            let opts = loadgen::BenchOptions {
                target,
                sinks: sink,
                connections: connections.max(1),
                lines,
                names: names.max(1),
                settle: Duration::from_secs(settle_secs),
                watch_pid,
            };
            let report = rt
                .block_on(loadgen::run(opts))
                .context("benchmark failed")?;
            println!("{report}");
            Ok(())
        }
    }
}

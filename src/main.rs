//! `recall`: thin entry point; the commands live in `recall::cli`.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = recall::cli::Cli::parse();
    // The server logs structured JSON at info by default; the CLI stays quiet.
    let serving = matches!(cli.command, recall::cli::Command::Serve { .. });
    let filter = EnvFilter::try_from_env("RECALL_LOG")
        .unwrap_or_else(|_| EnvFilter::new(if serving { "info" } else { "warn" }));
    // `[server] log_json` (default true) decides for the server; a config that does not
    // load is reported by the command itself, so it only falls back to the default here.
    let server_json = serving
        && recall::config::Config::load(cli.config.as_deref())
            .map(|c| c.server.log_json)
            .unwrap_or(true);
    if cli.log_json || server_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("recall: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(recall::cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("recall: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

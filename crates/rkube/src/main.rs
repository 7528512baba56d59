//! The `rkube` binary: one executable for every role.
//!
//! `main` stays thin: parse the command line, set up logging, and hand over to the
//! subcommand. Each subcommand owns its own start and drain sequence.

mod agent;
mod cert;
mod cli;
mod cluster;
mod image;
mod server;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // A container shim is this same binary re-launched by the node agent; it must take over
    // before anything else starts (no runtime, no logging), so it is dispatched first.
    if std::env::args_os().nth(1).as_deref() == Some(std::ffi::OsStr::new(rkube_agent::runtime::SHIM_ARG)) {
        rkube_agent::runtime::shim_main();
    }
    let cli = cli::Cli::parse();
    init_tracing();
    // Every TLS user in the process (API server, clients) uses ring; pick it once, first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rkube: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            cli::Command::Server(args) => server::run(args).await,
            cli::Command::Agent(args) => agent::run(args).await,
            cli::Command::Up(args) => cluster::up(args).await,
            cli::Command::Down(args) => cluster::down(args).await,
            cli::Command::Node(command) => cluster::node(command).await,
            cli::Command::Outside(args) => cluster::outside(args).await,
            cli::Command::Image(command) => image::run(command).await,
            cli::Command::Cert(args) => cert::run(args),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rkube: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RKUBE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

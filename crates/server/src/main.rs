//! `orderly`: parses the command line and hands over to the library. Nothing else lives here.

use clap::Parser;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let cli = orderly::cli::Cli::parse();
    match orderly::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // Before telemetry is up (bad configuration) only stderr can tell the operator.
            eprintln!("orderly: {error:#}");
            tracing::error!(error = format!("{error:#}"), "orderly stopped with an error");
            std::process::ExitCode::FAILURE
        }
    }
}

//! The command line (README.md#run-it): `orderly [serve]`, `orderly migrate`, `orderly openapi`,
//! `orderly users create-admin --email E`. Configuration comes from `ORDERLY_*` variables,
//! not flags, so the same settings drive every subcommand.

use std::io::IsTerminal;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use orderly_domain::services::users::AdminBootstrap;
use orderly_domain::user::{Email, Password, Role, UserName};
use secrecy::{ExposeSecret, SecretString};

use crate::config::Config;
use crate::startup::{Application, build_services, connect_and_migrate};

#[derive(Debug, Parser)]
#[command(
    name = "orderly",
    version,
    about = "Orderly: an order-management REST service",
    after_help = "Configuration is read from ORDERLY_* environment variables; see the README's table."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default when no subcommand is given). Applies migrations first.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI 3.1 document to standard output.
    Openapi,
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create an admin account if none has this email. The password is read from
    /// ORDERLY_ADMIN_PASSWORD, or prompted for on a terminal.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        name: String,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            // The document this deployment serves: only the currency is configurable in it, so
            // only the currency is read (the rest need not be valid on a build machine).
            let currency = Config::currency_from_env()?;
            let document = serde_json::to_string_pretty(&orderly_http::openapi_for_currency(currency.as_str()))?;
            println!("{document}");
            Ok(())
        }
        command => {
            let config = Config::from_env()?;
            crate::telemetry::init(&config.log_filter, config.log_format);
            match command {
                Command::Serve | Command::Openapi => Application::build(config).await?.run_until_stopped().await?,
                Command::Migrate => {
                    connect_and_migrate(&config).await?;
                    println!("migrations applied: the database at {} is up to date", config.database_url);
                }
                Command::Users { command: UsersCommand::CreateAdmin { email, name } } => {
                    create_admin(config, &email, &name).await?;
                }
            }
            Ok(())
        }
    }
}

async fn create_admin(config: Config, email: &str, name: &str) -> anyhow::Result<()> {
    let email = Email::parse(email).map_err(|v| anyhow::anyhow!("--email {}", v.message))?;
    let name = UserName::parse(name).map_err(|v| anyhow::anyhow!("--name {}", v.message))?;
    let password = match config.admin_password.clone() {
        Some(password) => password,
        None => prompt_password()?,
    };
    let password = Password::parse(password.expose_secret()).map_err(|v| anyhow::anyhow!("password {}", v.message))?;

    let database = connect_and_migrate(&config).await?;
    let outcome = actix_web::rt::task::spawn_blocking(move || -> anyhow::Result<AdminBootstrap> {
        // Built off the async thread, like the server does (the payment client is blocking).
        let services = build_services(&config, database)?;
        services.users.bootstrap_admin(email, name, password).context("cannot create the admin")
    })
    .await
    .context("admin creation task failed")??;
    match outcome {
        AdminBootstrap::Created(user) => println!("admin {} created with id {}", user.email.as_str(), user.id),
        AdminBootstrap::AlreadyExists(user) if user.role == Role::Admin => {
            println!("admin {} already exists (id {}); nothing changed", user.email.as_str(), user.id)
        }
        AdminBootstrap::AlreadyExists(user) => bail!(
            "{} already belongs to a {} account (id {}); it was not changed. An admin can promote it with PATCH /v1/users/{}",
            user.email.as_str(),
            user.role.as_str(),
            user.id,
            user.id
        ),
    }
    Ok(())
}

fn prompt_password() -> anyhow::Result<SecretString> {
    if !std::io::stdin().is_terminal() {
        bail!("set ORDERLY_ADMIN_PASSWORD, or run this on a terminal to be prompted for the password");
    }
    let first = rpassword::prompt_password("Password for the admin (12–128 characters): ")?;
    let second = rpassword::prompt_password("Repeat the password: ")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(SecretString::from(first))
}

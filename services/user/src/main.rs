//! The `user-service` binary: `user-service` serves; `user-service --seed FILE` creates
//! and migrates the database, inserts the missing seed users and exits.

use anyhow::Context;
use user_service::config::Settings;
use user_service::password::PasswordHashing;
use user_service::seed::{seed, SeedFile};
use user_service::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::init_tracing();
    let settings = Settings::from_env()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {
            let app = Application::build(settings).await?;
            app.run_until_stopped().await?;
        }
        [flag, file] if flag == "--seed" => {
            let text = std::fs::read_to_string(file).with_context(|| format!("read {file}"))?;
            let parsed: SeedFile =
                serde_json::from_str(&text).with_context(|| format!("parse {file}"))?;
            let pool = user_service::db::connect_and_migrate(&settings.database).await?;
            let passwords = PasswordHashing::new(settings.hash_cost)?;
            let report = seed(&pool, &passwords, parsed).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        _ => {
            eprintln!("usage: user-service [--seed FILE]");
            std::process::exit(2);
        }
    }
    Ok(())
}

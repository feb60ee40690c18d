//! TLS to PostgreSQL (the Debian cluster the service script starts has `ssl = on` with a
//! self-signed certificate): `require` encrypts, `disable` does not, `verify-full` refuses a
//! certificate no configured CA vouches for.

mod common;

use common::{Target, env};
use sluice_connector_sql::config::{TlsConfig, TlsMode};
use sluice_connector_sql::db::Db;

async fn ssl_in_use(url: &str, mode: TlsMode) -> Result<bool, String> {
    let tls = TlsConfig {
        mode,
        ca_file: None,
    };
    let db = Db::connect(url, Some(&tls), std::path::Path::new("."), 1)
        .await
        .map_err(|e| e.message)?;
    let rows = db
        .fetch_text(
            "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    db.close().await;
    Ok(rows[0][0].as_deref() == Some("true"))
}

#[tokio::test]
async fn postgres_tls_modes_are_applied() {
    let env = env(Target::Postgres);
    assert!(ssl_in_use(&env.url, TlsMode::Require).await.unwrap());
    assert!(!ssl_in_use(&env.url, TlsMode::Disable).await.unwrap());
    let err = ssl_in_use(&env.url, TlsMode::VerifyFull).await.unwrap_err();
    assert!(!err.is_empty());
}

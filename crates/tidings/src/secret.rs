//! The all-in-one's signing secret: `JWT_SECRET` when given; otherwise one
//! generated on first start and kept beside the SQLite file (mode 0600), so
//! tokens survive a restart.

use std::path::{Path, PathBuf};

use anyhow::Context;
use domain::auth::random_secret;
use domain::store::sqlite_file;
use ops::settings::{CommonArgs, Secret};

pub fn resolve(common: &CommonArgs) -> anyhow::Result<Secret> {
    if let Some(secret) = &common.jwt_secret {
        return Ok(secret.clone());
    }
    let db = sqlite_file(&common.database_url).context(
        "JWT_SECRET is required unless the store is a SQLite file (the secret is kept beside it)",
    )?;
    let path = secret_path(&db);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Secret::new(text.trim())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let secret = random_secret(48);
            write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a JWT secret");
            Ok(Secret::new(secret))
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

fn secret_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".secret");
    db.with_file_name(name)
}

fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, secret.as_bytes())
}

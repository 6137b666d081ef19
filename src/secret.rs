//! Keys that must never be printed: a wrapper whose Debug/Display redact, and
//! loading from an environment variable or a file (warning on loose permissions).

use std::fmt;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{0} is set but empty: give it the key, or unset it")]
    EmptyEnv(String),
    #[error("key file {0} is empty: put the key on its first line")]
    EmptyFile(String),
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the key given with --key is empty")]
    EmptyFlag,
}

/// A key or signature. Printing it shows `***`; `expose` is the only way out.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Reads a key from the environment variable `name`; unset is `None`, empty is an error.
pub fn from_env(name: &str) -> Result<Option<Secret>, SecretError> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Err(SecretError::EmptyEnv(name.to_string())),
        Ok(v) => Ok(Some(Secret(v.trim().to_string()))),
        Err(_) => Ok(None),
    }
}

/// Reads a key from the first line of a file. Warns (through tracing) when the
/// file is readable by group or others.
pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
        path: path.display().to_string(),
        source,
    })?;
    if let Some(mode) = loose_mode(path) {
        tracing::warn!(
            "key file {} is readable by group or others (mode {:o}): run chmod 600 {}",
            path.display(),
            mode,
            path.display()
        );
    }
    let key = text.lines().next().unwrap_or("").trim();
    if key.is_empty() {
        return Err(SecretError::EmptyFile(path.display().to_string()));
    }
    Ok(Secret(key.to_string()))
}

#[cfg(unix)]
fn loose_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn loose_mode(_path: &Path) -> Option<u32> {
    None
}

/// A key given on the command line: allowed, with a warning that argv is public.
pub fn from_flag(value: &str) -> Result<Secret, SecretError> {
    tracing::warn!(
        "--key puts the key in argv, where other users of this machine can read it: prefer PUSHPROBE_KEY or --key-file"
    );
    if value.trim().is_empty() {
        return Err(SecretError::EmptyFlag);
    }
    Ok(Secret(value.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn file_key_first_line_and_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "  abc \nsecond\n").unwrap();
        assert_eq!(from_file(&p).unwrap().expose(), "abc");
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(from_file(&p), Err(SecretError::EmptyFile(_))));
        assert!(matches!(
            from_file(&dir.path().join("missing")),
            Err(SecretError::Read { .. })
        ));
    }
}

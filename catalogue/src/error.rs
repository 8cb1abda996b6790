//! Errors that tell the host whether a run can go on.

use std::fmt;

/// Why a catalogue operation failed.
#[derive(Debug)]
pub enum CatalogueError {
    /// This product cannot be stored as given (invalid, a duplicate, a value
    /// of the wrong type). None of its values were written (a namespace
    /// table or column it introduced may remain, empty); the catalogue and
    /// the rest of the run are fine.
    Product(String),
    /// The catalogue itself failed (I/O, disk full, read-only, corrupt,
    /// locked). The run must stop; the open batch is lost.
    Storage(anyhow::Error),
}

pub type Result<T> = std::result::Result<T, CatalogueError>;

impl CatalogueError {
    pub fn product(message: impl Into<String>) -> CatalogueError {
        CatalogueError::Product(message.into())
    }

    /// Whether the run can go on after this error.
    pub fn is_product_error(&self) -> bool {
        matches!(self, CatalogueError::Product(_))
    }
}

impl fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogueError::Product(message) => f.write_str(message),
            CatalogueError::Storage(error) => write!(f, "{error:#}"),
        }
    }
}

impl std::error::Error for CatalogueError {}

impl From<rusqlite::Error> for CatalogueError {
    /// A constraint violation is the product's fault; anything else is the
    /// storage's.
    fn from(error: rusqlite::Error) -> Self {
        match &error {
            rusqlite::Error::SqliteFailure(e, _)
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                CatalogueError::Product(describe_constraint(&error))
            }
            _ => CatalogueError::Storage(explain(error)),
        }
    }
}

/// What an operator should know about a storage failure, in front of
/// SQLite's own words.
fn explain(error: rusqlite::Error) -> anyhow::Error {
    use rusqlite::ErrorCode;
    let hint = match error.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => Some(
            "the disk holding the catalogue is full: free some space and run again",
        ),
        Some(ErrorCode::SystemIoFailure) => Some(
            "the catalogue's disk failed a write (full, failing, or the file too large for its file system)",
        ),
        Some(ErrorCode::ReadOnly) => Some(
            "the catalogue is read-only (check the permissions of its file and directory, and that its file system is mounted read-write)",
        ),
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => Some(
            "another process held the catalogue's write lock for over a minute (a long dry run, or another tool writing to it)",
        ),
        Some(ErrorCode::CannotOpen) => Some(
            "SQLite cannot create its journal beside the catalogue (is the catalogue's directory writable?)",
        ),
        _ => None,
    };
    match hint {
        Some(hint) => anyhow::Error::new(error).context(hint),
        None => anyhow::Error::new(error),
    }
}

impl From<anyhow::Error> for CatalogueError {
    fn from(error: anyhow::Error) -> Self {
        CatalogueError::Storage(error)
    }
}

fn describe_constraint(error: &rusqlite::Error) -> String {
    let text = error.to_string();
    if text.contains("UNIQUE") && text.ends_with(".uuid") {
        "a product with this uuid already exists".into()
    } else if text.contains("product_type") && text.contains("product_name") {
        "a product with this product_type and product_name already exists".into()
    } else if text.contains("archive_path") && text.contains("physical_name") {
        "a product with this archive_path and physical_name already exists".into()
    } else {
        format!("constraint violated: {text}")
    }
}

//! A log's identity: a random id, stored once in a small file in the log directory, that names
//! the log outside the machine (the shipper derives each message's deduplication id from it).

use std::io::{self, Write};
use std::path::Path;

use crate::{Error, Result};

/// The file in a log directory that holds the log's identity: 32 lowercase hex digits (16
/// random bytes) and a newline.
pub const LOG_ID_FILE: &str = "log-id";

const ID_LEN: usize = 32;

/// The identity of the log in `dir`: 32 lowercase hex digits, the same for the life of the
/// log. A [`Writer`](crate::Writer) creates it with the log; a log made before identities
/// existed gets one on the first call or the first writer's open,
/// durably and once: concurrent first calls, in any processes, all return the same id.
///
/// # Errors
/// [`Error::Io`] when the directory cannot be read or written, or when the file exists but
/// does not hold an id (`InvalidData`).
///
/// # Example
/// ```
/// # fn main() -> applog::Result<()> {
/// # let tmp = tempfile::tempdir().unwrap();
/// # let (dir, copy) = (tmp.path().join("log"), tmp.path().join("copy"));
/// let writer = applog::Writer::open(&dir, applog::Options::default())?; // creates the id
/// let id = applog::log_id(&dir)?;
/// assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
/// drop(writer);
/// assert_eq!(applog::log_id(&dir)?, id); // the same for the life of the log
///
/// applog::copy(&dir, &copy)?;
/// assert_ne!(applog::log_id(&copy)?, id); // a copy is another log
/// # Ok(()) }
/// ```
pub fn log_id(dir: impl AsRef<Path>) -> Result<String> {
    let dir = dir.as_ref();
    let path = dir.join(LOG_ID_FILE);
    match read_id(&path) {
        Ok(id) => return Ok(id),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("could not read log id", &path, e)),
    }
    if !dir.is_dir() {
        return Err(Error::io(
            "could not open log",
            dir,
            io::Error::from(io::ErrorKind::NotFound),
        ));
    }
    // Written whole and synced under a name of its own, then linked into place: the link
    // fails if another process got there first, and then its id is the log's.
    let id = new_id();
    let tmp = dir.join(format!(".{LOG_ID_FILE}.{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(format!("{id}\n").as_bytes())?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("could not write log id", &tmp, e));
    }
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io("could not create log id", &path, e)),
    }
    crate::dir::open_dir(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("could not sync log directory", dir, e))?;
    read_id(&path).map_err(|e| Error::io("could not read log id", &path, e))
}

/// The identity of the log in `dir` if it has one yet, without creating it (for tools that
/// only look).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read or does not hold an id (`InvalidData`).
pub fn existing_log_id(dir: impl AsRef<Path>) -> Result<Option<String>> {
    let path = dir.as_ref().join(LOG_ID_FILE);
    match read_id(&path) {
        Ok(id) => Ok(Some(id)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("could not read log id", &path, e)),
    }
}

fn read_id(path: &Path) -> io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let id = text.trim_end_matches('\n');
    if id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(id.to_owned())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a log id (32 lowercase hex digits)",
        ))
    }
}

fn new_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; ID_LEN / 2];
    let got = rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty());
    if !matches!(got, Ok(n) if n == buf.len()) {
        // No getrandom: the time and the process id are unique enough for one machine.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mixed = nanos ^ (u128::from(std::process::id()) << 96);
        buf = mixed.to_le_bytes();
    }
    let mut id = String::with_capacity(ID_LEN);
    for b in buf {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 15)]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_and_stable() {
        let d = tempfile::tempdir().unwrap();
        let a = log_id(d.path()).unwrap();
        let b = log_id(d.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), ID_LEN);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(a, log_id(other.path()).unwrap());
        std::fs::write(d.path().join(LOG_ID_FILE), "nope\n").unwrap();
        assert!(log_id(d.path()).is_err());
    }
}

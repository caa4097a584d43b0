//! Just enough of the Redis protocol (RESP2, over the standard library) to see and delete the
//! keys that a test's instances wrote under their `ORDERLY_REDIS_KEY_PREFIX`.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

pub struct Redis {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Redis {
    /// Connects to `redis://[[user]:password@]host[:port][/db]`.
    pub fn connect(url: &str) -> io::Result<Redis> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{what}: {url}"));
        let rest = url.strip_prefix("redis://").ok_or_else(|| invalid("only redis:// URLs are supported"))?;
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, host) = match authority.rsplit_once('@') {
            Some((credentials, host)) => (Some(credentials), host),
            None => (None, authority),
        };
        let host = if host.contains(':') { host.to_owned() } else { format!("{host}:6379") };
        let writer = TcpStream::connect(&host)?;
        writer.set_read_timeout(Some(Duration::from_secs(10)))?;
        writer.set_write_timeout(Some(Duration::from_secs(10)))?;
        let mut redis = Redis { reader: BufReader::new(writer.try_clone()?), writer };
        if let Some(credentials) = credentials {
            let reply = match credentials.split_once(':') {
                Some(("", password)) => redis.command(&["AUTH", password])?,
                Some((user, password)) => redis.command(&["AUTH", user, password])?,
                None => redis.command(&["AUTH", credentials])?,
            };
            if let Reply::Error(message) = reply {
                return Err(io::Error::other(format!("AUTH failed: {message}")));
            }
        }
        let database = database.split('?').next().unwrap_or_default();
        if !database.is_empty()
            && let Reply::Error(message) = redis.command(&["SELECT", database])?
        {
            return Err(io::Error::other(format!("SELECT {database} failed: {message}")));
        }
        Ok(redis)
    }

    pub fn command(&mut self, args: &[&str]) -> io::Result<Reply> {
        let mut message = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            message.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            message.extend_from_slice(arg.as_bytes());
            message.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&message)?;
        self.read_reply()
    }

    fn read_reply(&mut self) -> io::Result<Reply> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let line = line.trim_end_matches("\r\n");
        let malformed = || io::Error::new(io::ErrorKind::InvalidData, format!("not a RESP reply: {line:?}"));
        let (kind, rest) = line.split_at_checked(1).ok_or_else(malformed)?;
        match kind {
            "+" => Ok(Reply::Simple(rest.to_owned())),
            "-" => Ok(Reply::Error(rest.to_owned())),
            ":" => rest.parse().map(Reply::Integer).map_err(|_| malformed()),
            "$" => {
                let length: i64 = rest.parse().map_err(|_| malformed())?;
                let Ok(length) = usize::try_from(length) else { return Ok(Reply::Bulk(None)) };
                let mut data = vec![0; length + 2];
                io::Read::read_exact(&mut self.reader, &mut data)?;
                data.truncate(length);
                Ok(Reply::Bulk(Some(data)))
            }
            "*" => {
                let count: i64 = rest.parse().map_err(|_| malformed())?;
                let Ok(count) = usize::try_from(count) else { return Ok(Reply::Array(None)) };
                let items = (0..count).map(|_| self.read_reply()).collect::<io::Result<Vec<_>>>()?;
                Ok(Reply::Array(Some(items)))
            }
            _ => Err(malformed()),
        }
    }

    /// Every key that starts with `prefix` (`SCAN ... MATCH`, so the server is never blocked).
    pub fn keys_with_prefix(&mut self, prefix: &str) -> io::Result<Vec<String>> {
        let pattern = format!("{}*", escape_glob(prefix));
        let mut cursor = "0".to_owned();
        let mut keys = Vec::new();
        loop {
            let reply = self.command(&["SCAN", &cursor, "MATCH", &pattern, "COUNT", "1000"])?;
            let Reply::Array(Some(parts)) = reply else {
                return Err(io::Error::other(format!("unexpected SCAN reply: {reply:?}")));
            };
            let [Reply::Bulk(Some(next)), Reply::Array(Some(found))] = parts.as_slice() else {
                return Err(io::Error::other(format!("unexpected SCAN reply: {parts:?}")));
            };
            keys.extend(found.iter().filter_map(|key| match key {
                Reply::Bulk(Some(key)) => Some(String::from_utf8_lossy(key).into_owned()),
                _ => None,
            }));
            cursor = String::from_utf8_lossy(next).into_owned();
            if cursor == "0" {
                return Ok(keys);
            }
        }
    }

    /// Deletes every key that starts with `prefix`; returns how many there were.
    pub fn delete_keys_with_prefix(&mut self, prefix: &str) -> io::Result<usize> {
        let keys = self.keys_with_prefix(prefix)?;
        for key in &keys {
            self.command(&["DEL", key])?;
        }
        Ok(keys.len())
    }
}

/// `prefix` as a literal in a `MATCH` glob.
fn escape_glob(prefix: &str) -> String {
    prefix.chars().fold(String::new(), |mut out, c| {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

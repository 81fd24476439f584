//! The embedded store: one SQLite database (WAL) holding the append-only
//! log and the Decision Cards.
//!
//! The log is an RFC 9162 tree over SHA-256 (the hash of C2SP checkpoints).
//! Each append is one transaction that writes the entry and every perfect
//! subtree it completes (`log_nodes`), so a killed process leaves either the
//! whole append or none of it, and the tree head is always
//! `O(log n)` stored nodes away. Decision Cards are stored and logged in the
//! same transaction.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::hash::{Algorithm, Digest};
use crate::merkle::{self, leaf_hash, node_hash, MerkleError, NodeSource};
use crate::note::Checkpoint;
use crate::sign::KeyPair;

pub const DB_FILE: &str = "maestro.db";
pub const SCHEMA_VERSION: i64 = 1;
/// The log's tree hash.
pub const LOG_ALG: Algorithm = Algorithm::Sha256;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store: {0}")]
    Corrupt(String),
    #[error("{what} {key:?} not found")]
    NotFound { what: &'static str, key: String },
    #[error(transparent)]
    Merkle(#[from] MerkleError),
    #[error("store: {0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, StoreError>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log_entries (
    idx INTEGER PRIMARY KEY, kind TEXT NOT NULL, body BLOB NOT NULL,
    leaf_hash BLOB NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log_nodes (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cards (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL,
    created TEXT NOT NULL, body TEXT NOT NULL, log_index INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS cards_kind ON cards(kind, created);
";

/// An open store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// A logged entry.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub index: u64,
    pub kind: String,
    pub body: Vec<u8>,
    pub leaf_hash: Digest,
    pub created: String,
}

/// A stored Decision Card (body is its canonical JSON).
#[derive(Debug, Clone)]
pub struct CardRow {
    pub id: String,
    pub kind: String,
    pub subject: String,
    pub created: String,
    pub body: String,
    pub log_index: u64,
}

fn now() -> String {
    // RFC 3339 UTC with seconds, from the system clock without extra crates.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(secs)
}

/// Civil-from-days (Howard Hinnant's algorithm) to format UTC timestamps.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn digest_of(v: Vec<u8>, what: &str) -> Result<Digest> {
    v.as_slice()
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what}: stored hash has {} bytes", v.len())))
}

impl Store {
    /// Open (creating if needed) the store in folder `home`.
    pub fn open(home: &Path) -> Result<Self> {
        std::fs::create_dir_all(home).map_err(|e| StoreError::Open {
            path: home.to_path_buf(),
            reason: e.to_string(),
        })?;
        let path = home.join(DB_FILE);
        let conn = Connection::open(&path).map_err(|e| StoreError::Open {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                reason: format!("not a maestro store ({e})"),
            })?;
        // FULL: an acknowledged append survives power loss, not only a kill.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA).map_err(|e| StoreError::Open {
            path: path.clone(),
            reason: format!("not a maestro store ({e})"),
        })?;
        let v: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key='schema'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match v {
            None => {
                conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(s) if s == SCHEMA_VERSION.to_string() => {}
            Some(s) => {
                return Err(StoreError::Open {
                    path,
                    reason: format!("schema version {s}, this build reads {SCHEMA_VERSION}"),
                })
            }
        }
        Ok(Store { conn, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn log_size(&self) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries",
            [],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// Append entries in one transaction; returns their indices.
    pub fn log_append(&mut self, items: &[(&str, &[u8])]) -> Result<Vec<u64>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let idx = append_in(&tx, items)?;
        tx.commit()?;
        Ok(idx)
    }

    pub fn log_entry(&self, index: u64) -> Result<LogEntry> {
        self.conn
            .query_row(
                "SELECT idx, kind, body, leaf_hash, created FROM log_entries WHERE idx = ?1",
                [index as i64],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()?
            .ok_or(StoreError::NotFound {
                what: "log entry",
                key: index.to_string(),
            })
            .and_then(|(i, kind, body, lh, created)| {
                Ok(LogEntry {
                    index: i as u64,
                    kind,
                    body,
                    leaf_hash: digest_of(lh, "leaf")?,
                    created,
                })
            })
    }

    /// Index of the first entry with this leaf hash.
    pub fn log_find(&self, leaf: &Digest) -> Result<Option<u64>> {
        Ok(self
            .conn
            .query_row(
                "SELECT MIN(idx) FROM log_entries WHERE leaf_hash = ?1",
                [leaf.as_slice()],
                |r| r.get::<_, Option<i64>>(0),
            )?
            .map(|i| i as u64))
    }

    fn view(&self) -> Result<LogView<'_>> {
        Ok(LogView {
            conn: &self.conn,
            size: self.log_size()?,
        })
    }

    pub fn log_root(&self, size: Option<u64>) -> Result<(u64, Digest)> {
        let v = self.view()?;
        let n = size.unwrap_or(v.size);
        Ok((n, merkle::root_at(&v, n)?))
    }

    pub fn log_inclusion(&self, index: u64, size: u64) -> Result<Vec<Digest>> {
        Ok(merkle::inclusion_proof(&self.view()?, index, size)?)
    }

    pub fn log_consistency(&self, old: u64, new: u64) -> Result<Vec<Digest>> {
        Ok(merkle::consistency_proof(&self.view()?, old, new)?)
    }

    /// Sign a checkpoint of the current tree head and keep it.
    pub fn log_checkpoint(&mut self, key: &KeyPair) -> Result<String> {
        let (size, root) = self.log_root(None)?;
        let cp = Checkpoint {
            origin: key.name.clone(),
            size,
            root,
            extensions: vec![],
        };
        let note = cp
            .sign(key)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.conn.execute(
            "INSERT OR REPLACE INTO checkpoints(size, root, note, created) VALUES (?1, ?2, ?3, ?4)",
            params![size as i64, root.as_slice(), note, now()],
        )?;
        Ok(note)
    }

    pub fn checkpoints(&self) -> Result<Vec<(u64, String)>> {
        let mut st = self
            .conn
            .prepare("SELECT size, note FROM checkpoints ORDER BY size")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Recompute every leaf hash and stored node from the entries and
    /// compare. Returns the size checked.
    pub fn log_verify(&self) -> Result<u64> {
        let mut tree = merkle::Tree::new(LOG_ALG);
        let mut st = self
            .conn
            .prepare("SELECT idx, body, leaf_hash FROM log_entries ORDER BY idx")?;
        let mut rows = st.query([])?;
        let mut expect = 0u64;
        while let Some(r) = rows.next()? {
            let idx = r.get::<_, i64>(0)? as u64;
            if idx != expect {
                return Err(StoreError::Corrupt(format!(
                    "log entry {expect} is missing"
                )));
            }
            let body: Vec<u8> = r.get(1)?;
            let lh = digest_of(r.get(2)?, "leaf")?;
            if leaf_hash(LOG_ALG, &body) != lh {
                return Err(StoreError::Corrupt(format!(
                    "log entry {idx}: leaf hash does not match its body"
                )));
            }
            tree.push_leaf_hash(lh);
            expect += 1;
        }
        let mut st = self
            .conn
            .prepare("SELECT level, idx, hash FROM log_nodes")?;
        let mut rows = st.query([])?;
        let mut count = 0u64;
        while let Some(r) = rows.next()? {
            let (level, idx): (i64, i64) = (r.get(0)?, r.get(1)?);
            let h = digest_of(r.get(2)?, "node")?;
            let want = tree.perfect(level as u32, idx as u64).map_err(|_| {
                StoreError::Corrupt(format!("stray node at level {level}, index {idx}"))
            })?;
            if want != h {
                return Err(StoreError::Corrupt(format!(
                    "node at level {level}, index {idx} does not match the entries"
                )));
            }
            count += 1;
        }
        // Every perfect subtree of n leaves: sum over levels of n >> l.
        let n = tree.len();
        let want: u64 = (0..64).map(|l| n >> l).sum();
        if count != want {
            return Err(StoreError::Corrupt(format!(
                "{count} stored nodes, a log of {n} entries has {want}"
            )));
        }
        for (size, note) in self.checkpoints()? {
            let root: Vec<u8> = self.conn.query_row(
                "SELECT root FROM checkpoints WHERE size = ?1",
                [size as i64],
                |r| r.get(0),
            )?;
            if size > n || tree.root_at(size)?.as_slice() != root.as_slice() {
                return Err(StoreError::Corrupt(format!(
                    "checkpoint of size {size} does not match the log ({})",
                    note.lines().next().unwrap_or("")
                )));
            }
        }
        Ok(n)
    }

    /// Store a card and log it, in one transaction. `log_body` is the
    /// canonical log entry naming the card.
    pub fn put_card(&mut self, card: &CardRow, log_body: &[u8]) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT log_index FROM cards WHERE id = ?1",
                [&card.id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(i) = existing {
            return Ok(i as u64);
        }
        let idx = append_in(&tx, &[("decision.card", log_body)])?[0];
        tx.execute(
            "INSERT INTO cards(id, kind, subject, created, body, log_index) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![card.id, card.kind, card.subject, card.created, card.body, idx as i64],
        )?;
        tx.commit()?;
        Ok(idx)
    }

    pub fn card(&self, id: &str) -> Result<CardRow> {
        let mut st = self.conn.prepare(
            "SELECT id, kind, subject, created, body, log_index FROM cards WHERE id = ?1 OR id LIKE ?2 ORDER BY id LIMIT 2",
        )?;
        let rows: Vec<CardRow> = st
            .query_map(params![id, format!("{id}%")], row_card)?
            .collect::<std::result::Result<_, _>>()?;
        match rows.len() {
            0 => Err(StoreError::NotFound {
                what: "decision card",
                key: id.to_string(),
            }),
            1 => Ok(rows.into_iter().next().ok_or(StoreError::NotFound {
                what: "decision card",
                key: id.to_string(),
            })?),
            _ if rows[0].id == id => Ok(rows[0].clone()),
            _ => Err(StoreError::Invalid(format!(
                "decision card id prefix {id:?} is ambiguous"
            ))),
        }
    }

    pub fn cards(&self, kind: Option<&str>, limit: u64) -> Result<Vec<CardRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, kind, subject, created, body, log_index FROM cards
             WHERE (?1 IS NULL OR kind = ?1) ORDER BY log_index DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![kind, limit as i64], row_card)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}

fn row_card(r: &rusqlite::Row<'_>) -> rusqlite::Result<CardRow> {
    Ok(CardRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        subject: r.get(2)?,
        created: r.get(3)?,
        body: r.get(4)?,
        log_index: r.get::<_, i64>(5)? as u64,
    })
}

/// Append inside an open transaction: entry rows plus completed nodes.
fn append_in(tx: &Connection, items: &[(&str, &[u8])]) -> Result<Vec<u64>> {
    let mut n: u64 = tx.query_row(
        "SELECT COALESCE(MAX(idx) + 1, 0) FROM log_entries",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64;
    let mut ins_e = tx.prepare_cached(
        "INSERT INTO log_entries(idx, kind, body, leaf_hash, created) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut ins_n =
        tx.prepare_cached("INSERT INTO log_nodes(level, idx, hash) VALUES (?1, ?2, ?3)")?;
    let mut get_n =
        tx.prepare_cached("SELECT hash FROM log_nodes WHERE level = ?1 AND idx = ?2")?;
    let ts = now();
    let mut out = Vec::with_capacity(items.len());
    for (kind, body) in items {
        if kind.is_empty() {
            return Err(StoreError::Invalid("log entry kind is empty".into()));
        }
        let lh = leaf_hash(LOG_ALG, body);
        ins_e.execute(params![n as i64, kind, body, lh.as_slice(), ts])?;
        ins_n.execute(params![0i64, n as i64, lh.as_slice()])?;
        let (mut level, mut i, mut h) = (0i64, n, lh);
        while i & 1 == 1 {
            let sib: Vec<u8> = get_n.query_row(params![level, (i - 1) as i64], |r| r.get(0))?;
            h = node_hash(LOG_ALG, &digest_of(sib, "node")?, &h);
            level += 1;
            i >>= 1;
            ins_n.execute(params![level, i as i64, h.as_slice()])?;
        }
        out.push(n);
        n += 1;
    }
    Ok(out)
}

struct LogView<'a> {
    conn: &'a Connection,
    size: u64,
}

impl NodeSource for LogView<'_> {
    fn algorithm(&self) -> Algorithm {
        LOG_ALG
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn perfect(&self, level: u32, index: u64) -> std::result::Result<Digest, MerkleError> {
        let v: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT hash FROM log_nodes WHERE level = ?1 AND idx = ?2")
            .and_then(|mut st| {
                st.query_row(params![level as i64, index as i64], |r| r.get(0))
                    .optional()
            })
            .map_err(|e| MerkleError::Storage(e.to_string()))?;
        let v = v.ok_or(MerkleError::MissingNode { level, index })?;
        v.as_slice()
            .try_into()
            .map_err(|_| MerkleError::Storage(format!("node ({level}, {index}) is not 32 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_prove_verify() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(d.path()).unwrap();
        let mut mem = merkle::Tree::new(LOG_ALG);
        for i in 0..37u32 {
            let body = format!("entry {i}");
            s.log_append(&[("test", body.as_bytes())]).unwrap();
            mem.push(body.as_bytes());
            assert_eq!(s.log_root(None).unwrap().1, mem.root());
        }
        assert_eq!(s.log_verify().unwrap(), 37);
        let (_, root) = s.log_root(None).unwrap();
        let p = s.log_inclusion(5, 37).unwrap();
        merkle::verify_inclusion(LOG_ALG, 5, 37, &mem.leaf_hashes()[5], &p, &root).unwrap();
        let c = s.log_consistency(10, 37).unwrap();
        merkle::verify_consistency(LOG_ALG, 10, 37, &mem.root_at(10).unwrap(), &root, &c).unwrap();
        let k = KeyPair::generate("test.log").unwrap();
        let note = s.log_checkpoint(&k).unwrap();
        let cp = Checkpoint::verify(&note, &k.public()).unwrap();
        assert_eq!((cp.size, cp.root), (37, root));
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}

//! The Prompt Genome registry and the dueling-bandit tournaments, in the
//! same SQLite store as the log and the Decision Cards (schema version 2).
//!
//! * `genomes`: one row per content-addressed genome (its canonical JSON
//!   body, the operator that produced it, its token cost); `genome_parents`
//!   holds the lineage edges, indexed both ways so ancestors and
//!   descendants are recursive-CTE queries.
//! * `tournaments`: the configuration and the serialised
//!   [`crate::duel::Duel`] state; `duels`: one row per recorded duel.
//!   [`Store::duel_record`] writes the duel row and the new state in one
//!   transaction, guarded by the expected duel count (optimistic
//!   concurrency) and by a unique vote id, so a killed runner never loses
//!   a duel and a replayed vote is never counted twice.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use crate::store::{Store, StoreError};

type Result<T> = std::result::Result<T, StoreError>;

/// Tables added by schema version 2.
pub(crate) const SCHEMA_V2: &str = "
CREATE TABLE IF NOT EXISTS genomes (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, body TEXT NOT NULL,
    operator TEXT NOT NULL, op_params TEXT NOT NULL, cost_tokens INTEGER NOT NULL,
    tokenizer TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS genome_parents (
    child TEXT NOT NULL, pos INTEGER NOT NULL, parent TEXT NOT NULL,
    PRIMARY KEY (child, pos)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS genome_parents_parent ON genome_parents(parent, child);
CREATE TABLE IF NOT EXISTS tournaments (
    id TEXT PRIMARY KEY, config TEXT NOT NULL, state TEXT NOT NULL,
    duels INTEGER NOT NULL, status TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS duels (
    tournament TEXT NOT NULL, seq INTEGER NOT NULL, winner INTEGER NOT NULL,
    loser INTEGER NOT NULL, source TEXT NOT NULL, vote_id TEXT, detail TEXT NOT NULL,
    created TEXT NOT NULL, PRIMARY KEY (tournament, seq)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS duels_vote ON duels(tournament, vote_id)
    WHERE vote_id IS NOT NULL;
";

/// A genome row (the body is its canonical JSON).
#[derive(Debug, Clone)]
pub struct GenomeRow {
    pub id: String,
    pub body: String,
    pub operator: String,
    pub op_params: String,
    pub parents: Vec<String>,
    pub cost_tokens: u64,
    pub tokenizer: String,
    pub created: String,
}

/// A lineage edge: `child` was made from `parent` (its `pos`-th parent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub child: String,
    pub parent: String,
    pub pos: u32,
}

/// A genome reached by a lineage query.
#[derive(Debug, Clone)]
pub struct LineageNode {
    pub id: String,
    /// Generations from the queried genome.
    pub depth: u32,
    pub operator: String,
    pub cost_tokens: u64,
}

/// A tournament row.
#[derive(Debug, Clone)]
pub struct TournamentRow {
    pub id: String,
    pub config: String,
    pub state: String,
    pub duels: u64,
    pub status: String,
    pub created: String,
    pub updated: String,
}

/// One recorded duel.
#[derive(Debug, Clone)]
pub struct DuelRow {
    pub seq: u64,
    pub winner: u32,
    pub loser: u32,
    pub source: String,
    pub vote_id: Option<String>,
    pub detail: String,
    pub created: String,
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    crate::store::rfc3339(secs)
}

fn not_found(what: &'static str, key: &str) -> StoreError {
    StoreError::NotFound {
        what,
        key: key.to_string(),
    }
}

impl Store {
    /// Register genomes in one transaction. A genome already present keeps
    /// its first lineage (ids are content addresses, so the body is the
    /// same). Every parent must be registered (earlier in `rows`, or
    /// before). Returns how many rows were new.
    pub fn genome_put(&mut self, rows: &[GenomeRow]) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut added = 0u64;
        {
            let mut seq: i64 =
                tx.query_row("SELECT COALESCE(MAX(seq) + 1, 0) FROM genomes", [], |r| {
                    r.get(0)
                })?;
            let mut exists = tx.prepare_cached("SELECT 1 FROM genomes WHERE id = ?1")?;
            let mut ins = tx.prepare_cached(
                "INSERT INTO genomes(id, seq, body, operator, op_params, cost_tokens, tokenizer, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut ins_p = tx.prepare_cached(
                "INSERT INTO genome_parents(child, pos, parent) VALUES (?1, ?2, ?3)",
            )?;
            for g in rows {
                if g.id.is_empty() || g.body.is_empty() {
                    return Err(StoreError::Invalid("genome id or body is empty".into()));
                }
                if exists.exists([&g.id])? {
                    continue;
                }
                for p in &g.parents {
                    if p == &g.id {
                        return Err(StoreError::Invalid(format!(
                            "genome {}: a genome cannot be its own parent",
                            g.id
                        )));
                    }
                    if !exists.exists([p])? {
                        return Err(StoreError::NotFound {
                            what: "parent genome",
                            key: p.clone(),
                        });
                    }
                }
                ins.execute(params![
                    g.id,
                    seq,
                    g.body,
                    g.operator,
                    g.op_params,
                    g.cost_tokens as i64,
                    g.tokenizer,
                    if g.created.is_empty() {
                        now()
                    } else {
                        g.created.clone()
                    }
                ])?;
                for (i, p) in g.parents.iter().enumerate() {
                    ins_p.execute(params![g.id, i as i64, p])?;
                }
                seq += 1;
                added += 1;
            }
        }
        tx.commit()?;
        Ok(added)
    }

    /// Full id of a genome from its id or a unique prefix.
    pub fn genome_resolve(&self, id: &str) -> Result<String> {
        if id.is_empty() {
            return Err(StoreError::Invalid("empty genome id".into()));
        }
        let mut st = self.conn.prepare_cached(
            "SELECT id FROM genomes WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 2",
        )?;
        // Every id starting with `id` sorts in [id, id + U+10FFFF).
        let hi = format!("{id}\u{10FFFF}");
        let ids: Vec<String> = st
            .query_map(params![id, hi], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        match ids.as_slice() {
            [] => Err(not_found("genome", id)),
            [one] => Ok(one.clone()),
            [first, ..] if first == id => Ok(first.clone()),
            _ => Err(StoreError::Invalid(format!(
                "genome id prefix {id:?} is ambiguous"
            ))),
        }
    }

    fn parents_of(&self, id: &str) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT parent FROM genome_parents WHERE child = ?1 ORDER BY pos")?;
        let v = st
            .query_map([id], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        Ok(v)
    }

    /// A genome by id or unique prefix.
    pub fn genome(&self, id: &str) -> Result<GenomeRow> {
        let id = self.genome_resolve(id)?;
        let mut row = self
            .conn
            .query_row(
                "SELECT id, body, operator, op_params, cost_tokens, tokenizer, created FROM genomes WHERE id = ?1",
                [&id],
                row_genome,
            )
            .optional()?
            .ok_or_else(|| not_found("genome", &id))?;
        row.parents = self.parents_of(&id)?;
        Ok(row)
    }

    /// Genomes in registration order (newest first), at most `limit`.
    pub fn genomes(&self, limit: u64) -> Result<Vec<GenomeRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, body, operator, op_params, cost_tokens, tokenizer, created FROM genomes
             ORDER BY seq DESC LIMIT ?1",
        )?;
        let rows: Vec<GenomeRow> = st
            .query_map([limit.min(i64::MAX as u64) as i64], row_genome)?
            .collect::<std::result::Result<_, _>>()?;
        rows.into_iter()
            .map(|mut g| {
                g.parents = self.parents_of(&g.id)?;
                Ok(g)
            })
            .collect()
    }

    pub fn genome_count(&self) -> Result<u64> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM genomes", [], |r| r.get::<_, i64>(0))?
            as u64)
    }

    /// The lineage of `id`: its ancestors (`descendants = false`) or its
    /// descendants, up to `max_depth` generations, as the ids reached (with
    /// their distance) and the edges between them. One recursive query.
    pub fn genome_lineage(
        &self,
        id: &str,
        descendants: bool,
        max_depth: u32,
    ) -> Result<(Vec<LineageNode>, Vec<Edge>)> {
        let id = self.genome_resolve(id)?;
        let (step, next) = if descendants {
            ("p.parent = l.id", "p.child")
        } else {
            ("p.child = l.id", "p.parent")
        };
        // The reachable set first (UNION over ids only: linear in the
        // lineage even when many paths lead to the same genome), then the
        // edges out of it (driven by the set: one primary-key search per
        // genome; CROSS JOIN keeps SQLite from scanning the table instead;
        // edges leaving the set are dropped below), then generation
        // depths by BFS in memory.
        let cte = format!(
            "WITH RECURSIVE l(id) AS (SELECT ?1 UNION SELECT {next} FROM genome_parents p JOIN l ON {step})"
        );
        let mut st = self.conn.prepare_cached(&format!(
            "{cte} SELECT g.id, g.operator, g.cost_tokens FROM l CROSS JOIN genomes g ON g.id = l.id"
        ))?;
        let mut nodes: Vec<LineageNode> = st
            .query_map(params![id], |r| {
                Ok(LineageNode {
                    id: r.get(0)?,
                    depth: u32::MAX,
                    operator: r.get(1)?,
                    cost_tokens: r.get::<_, i64>(2)? as u64,
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        let mut est = self.conn.prepare_cached(&format!(
            "{cte} SELECT p.child, p.pos, p.parent FROM l CROSS JOIN genome_parents p ON p.child = l.id"
        ))?;
        let edges: Vec<Edge> = est
            .query_map(params![id], |r| {
                Ok(Edge {
                    child: r.get(0)?,
                    pos: r.get::<_, i64>(1)? as u32,
                    parent: r.get(2)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        let index: std::collections::HashMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        for e in &edges {
            let (from, to) = if descendants {
                (&e.parent, &e.child)
            } else {
                (&e.child, &e.parent)
            };
            if let (Some(&f), Some(&t)) = (index.get(from.as_str()), index.get(to.as_str())) {
                adj[f].push(t);
            }
        }
        let mut depth = vec![u32::MAX; nodes.len()];
        let mut queue = std::collections::VecDeque::new();
        if let Some(&r) = index.get(id.as_str()) {
            depth[r] = 0;
            queue.push_back(r);
        }
        while let Some(u) = queue.pop_front() {
            for &v in &adj[u] {
                if depth[v] == u32::MAX {
                    depth[v] = depth[u] + 1;
                    queue.push_back(v);
                }
            }
        }
        drop(index);
        for (n, d) in nodes.iter_mut().zip(&depth) {
            n.depth = *d;
        }
        nodes.retain(|n| n.depth <= max_depth);
        nodes.sort_by(|a, b| (a.depth, &a.id).cmp(&(b.depth, &b.id)));
        let keep: std::collections::HashSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        let edges = edges
            .into_iter()
            .filter(|e| keep.contains(e.child.as_str()) && keep.contains(e.parent.as_str()))
            .collect();
        Ok((nodes, edges))
    }

    // ------------------------------------------------------------ tournaments

    pub fn tournament_create(&mut self, id: &str, config: &str, state: &str) -> Result<()> {
        if id.is_empty() {
            return Err(StoreError::Invalid("empty tournament id".into()));
        }
        let ts = now();
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO tournaments(id, config, state, duels, status, created, updated)
             VALUES (?1, ?2, ?3, 0, 'running', ?4, ?4)",
            params![id, config, state, ts],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "tournament {id:?} already exists"
            )));
        }
        Ok(())
    }

    pub fn tournament(&self, id: &str) -> Result<TournamentRow> {
        self.conn
            .query_row(
                "SELECT id, config, state, duels, status, created, updated FROM tournaments WHERE id = ?1",
                [id],
                row_tournament,
            )
            .optional()?
            .ok_or_else(|| not_found("tournament", id))
    }

    pub fn tournaments(&self) -> Result<Vec<TournamentRow>> {
        let mut st = self.conn.prepare(
            "SELECT id, config, state, duels, status, created, updated FROM tournaments ORDER BY created DESC, id",
        )?;
        let v = st
            .query_map([], row_tournament)?
            .collect::<std::result::Result<_, _>>()?;
        Ok(v)
    }

    /// Record one duel and the tournament's new state in one transaction.
    /// `expected` is the duel count the caller's state was built on: a
    /// mismatch means another writer recorded in between
    /// ([`StoreError::Conflict`]). A `vote_id` already recorded for this
    /// tournament is skipped (`Ok(None)`): replaying a votes file never
    /// counts a vote twice. Returns the duel's sequence number.
    #[allow(clippy::too_many_arguments)]
    pub fn duel_record(
        &mut self,
        tournament: &str,
        expected: u64,
        winner: u32,
        loser: u32,
        source: &str,
        vote_id: Option<&str>,
        detail: &str,
        state: &str,
    ) -> Result<Option<u64>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let duels: i64 = tx
            .query_row(
                "SELECT duels FROM tournaments WHERE id = ?1",
                [tournament],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| not_found("tournament", tournament))?;
        if let Some(v) = vote_id {
            let seen = tx
                .prepare_cached("SELECT 1 FROM duels WHERE tournament = ?1 AND vote_id = ?2")?
                .exists(params![tournament, v])?;
            if seen {
                return Ok(None);
            }
        }
        if duels as u64 != expected {
            return Err(StoreError::Conflict(format!(
                "tournament {tournament:?} has {duels} duels, the caller expected {expected} \
                 (another process recorded a duel; reload and retry)"
            )));
        }
        let ts = now();
        tx.execute(
            "INSERT INTO duels(tournament, seq, winner, loser, source, vote_id, detail, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                tournament,
                duels,
                winner as i64,
                loser as i64,
                source,
                vote_id,
                detail,
                ts
            ],
        )?;
        tx.execute(
            "UPDATE tournaments SET state = ?2, duels = ?3, updated = ?4 WHERE id = ?1",
            params![tournament, state, duels + 1, ts],
        )?;
        tx.commit()?;
        Ok(Some(duels as u64))
    }

    /// Save a state without a duel (e.g. the pending pair after `select`),
    /// guarded like [`duel_record`](Self::duel_record).
    pub fn tournament_save(
        &mut self,
        tournament: &str,
        expected: u64,
        state: &str,
        status: Option<&str>,
    ) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE tournaments SET state = ?2, status = COALESCE(?4, status), updated = ?5
             WHERE id = ?1 AND duels = ?3",
            params![tournament, state, expected as i64, status, now()],
        )?;
        if n == 0 {
            self.tournament(tournament)?;
            return Err(StoreError::Conflict(format!(
                "tournament {tournament:?}: duel count is not {expected} (another process recorded a duel)"
            )));
        }
        Ok(())
    }

    pub fn duels(&self, tournament: &str) -> Result<Vec<DuelRow>> {
        self.tournament(tournament)?;
        let mut st = self.conn.prepare(
            "SELECT seq, winner, loser, source, vote_id, detail, created FROM duels
             WHERE tournament = ?1 ORDER BY seq",
        )?;
        let v = st
            .query_map([tournament], |r| {
                Ok(DuelRow {
                    seq: r.get::<_, i64>(0)? as u64,
                    winner: r.get::<_, i64>(1)? as u32,
                    loser: r.get::<_, i64>(2)? as u32,
                    source: r.get(3)?,
                    vote_id: r.get(4)?,
                    detail: r.get(5)?,
                    created: r.get(6)?,
                })
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(v)
    }
}

fn row_genome(r: &rusqlite::Row<'_>) -> rusqlite::Result<GenomeRow> {
    Ok(GenomeRow {
        id: r.get(0)?,
        body: r.get(1)?,
        operator: r.get(2)?,
        op_params: r.get(3)?,
        parents: Vec::new(),
        cost_tokens: r.get::<_, i64>(4)? as u64,
        tokenizer: r.get(5)?,
        created: r.get(6)?,
    })
}

fn row_tournament(r: &rusqlite::Row<'_>) -> rusqlite::Result<TournamentRow> {
    Ok(TournamentRow {
        id: r.get(0)?,
        config: r.get(1)?,
        state: r.get(2)?,
        duels: r.get::<_, i64>(3)? as u64,
        status: r.get(4)?,
        created: r.get(5)?,
        updated: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duel::{Algorithm, Duel};

    fn g(id: &str, parents: &[&str]) -> GenomeRow {
        GenomeRow {
            id: id.into(),
            body: format!("{{\"t\":\"{id}\"}}"),
            operator: if parents.is_empty() { "seed" } else { "mutate" }.into(),
            op_params: "{}".into(),
            parents: parents.iter().map(|s| s.to_string()).collect(),
            cost_tokens: 3,
            tokenizer: "test".into(),
            created: String::new(),
        }
    }

    #[test]
    fn lineage() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(d.path()).unwrap();
        s.genome_put(&[
            g("a", &[]),
            g("b", &["a"]),
            g("c", &["a"]),
            g("d", &["b", "c"]),
        ])
        .unwrap();
        assert_eq!(s.genome_put(&[g("d", &["b", "c"])]).unwrap(), 0);
        assert!(matches!(
            s.genome_put(&[g("e", &["zz"])]),
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(s.genome_count().unwrap(), 4);
        let (nodes, edges) = s.genome_lineage("d", false, 100).unwrap();
        let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["d", "b", "c", "a"]);
        assert_eq!(edges.len(), 4);
        let (nodes, _) = s.genome_lineage("a", true, 1).unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(s.genome("d").unwrap().parents, ["b", "c"]);
        assert!(s.genome("x").is_err());
    }

    #[test]
    fn duels_are_transactional() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::open(d.path()).unwrap();
        let mut duel = Duel::new(Algorithm::Dts, 3, 1, None, None).unwrap();
        s.tournament_create("t", "{}", &duel.to_json().unwrap())
            .unwrap();
        assert!(s.tournament_create("t", "{}", "{}").is_err());
        let (a, b) = duel.select().unwrap();
        duel.record(a, b).unwrap();
        let st = duel.to_json().unwrap();
        assert_eq!(
            s.duel_record("t", 0, a as u32, b as u32, "test", Some("v1"), "{}", &st)
                .unwrap(),
            Some(0)
        );
        // The same vote again is skipped, a stale writer is refused.
        assert_eq!(
            s.duel_record("t", 1, a as u32, b as u32, "test", Some("v1"), "{}", &st)
                .unwrap(),
            None
        );
        assert!(matches!(
            s.duel_record("t", 0, a as u32, b as u32, "test", None, "{}", &st),
            Err(StoreError::Conflict(_))
        ));
        let row = s.tournament("t").unwrap();
        assert_eq!(row.duels, 1);
        assert_eq!(Duel::from_json(&row.state).unwrap().steps(), 1);
        assert_eq!(s.duels("t").unwrap().len(), 1);
    }

    #[test]
    fn schema1_store_is_upgraded() {
        let d = tempfile::tempdir().unwrap();
        {
            let c = rusqlite::Connection::open(d.path().join(crate::store::DB_FILE)).unwrap();
            c.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO meta VALUES ('schema', '1');
                 CREATE TABLE log_entries (idx INTEGER PRIMARY KEY, kind TEXT NOT NULL, body BLOB NOT NULL,
                    leaf_hash BLOB NOT NULL, created TEXT NOT NULL);",
            )
            .unwrap();
        }
        let mut s = Store::open(d.path()).unwrap();
        s.genome_put(&[g("a", &[])]).unwrap();
        s.log_append(&[("k", b"x")]).unwrap();
        let v: String = s
            .conn
            .query_row("SELECT value FROM meta WHERE key='schema'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(v, "2");
        drop(s);
        let c = rusqlite::Connection::open(d.path().join(crate::store::DB_FILE)).unwrap();
        c.execute("UPDATE meta SET value='3' WHERE key='schema'", [])
            .unwrap();
        drop(c);
        assert!(Store::open(d.path()).is_err());
    }
}

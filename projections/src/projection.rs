//! What a projection is: tables, and the writes each event causes.

use bosun_eventstore::{Filter, RecordedEvent};
use tokio_postgres::types::ToSql;

/// A read model kept up to date from the log.
///
/// `apply` is pure: it turns one event into SQL statements, which the engine runs in order, in
/// one transaction with the checkpoint. A projection that needs what is already in its tables
/// says so in SQL (`INSERT … ON CONFLICT … DO UPDATE`, `UPDATE … FROM`), never by reading first.
pub trait Projection: Send + Sync + 'static {
    /// Unique and stable: the checkpoint's key.
    fn name(&self) -> &'static str;
    /// Bump when the tables' shape or the meaning of `apply` changes; the model is then rebuilt.
    fn version(&self) -> i32;
    /// The tables it owns, by their logical names.
    fn tables(&self) -> &'static [&'static str];
    /// The tables events of `category` write (time travel folds a stream of that category into
    /// copies of these, and reads the rest live: see `scratch`). Every table unless the
    /// projection says otherwise; one that leaves a table out must never write it for such an
    /// event (the fold refuses to).
    fn tables_of(&self, _category: &str) -> &'static [&'static str] {
        self.tables()
    }
    /// The events it wants; others only move its checkpoint.
    fn filter(&self) -> Filter {
        Filter::all()
    }
    /// DDL creating its tables (with their primary keys) under `tables`' names.
    fn create(&self, tables: &Tables) -> String;
    /// DDL creating its secondary indexes, which a rebuild builds once at the end rather than
    /// row by row. Indexes must be left unnamed (`CREATE INDEX ON …`) so a rebuild's tables can
    /// stand beside the live ones.
    fn indexes(&self, _tables: &Tables) -> String {
        String::new()
    }
    /// The writes `event` causes.
    fn apply(&self, event: &RecordedEvent, tables: &Tables, writes: &mut Writes);
}

/// Maps a projection's logical table names to physical ones: the live tables, or a rebuild's.
#[derive(Clone, Debug)]
pub struct Tables {
    suffix: &'static str,
}

impl Tables {
    pub const LIVE: Tables = Tables { suffix: "" };
    pub(crate) const REBUILD: Tables = Tables {
        suffix: "__rebuild",
    };

    pub fn name(&self, logical: &str) -> String {
        format!("{logical}{}", self.suffix)
    }
}

pub type Param = Box<dyn ToSql + Sync + Send>;

/// The statements a batch of events causes, in order.
#[derive(Default)]
pub struct Writes {
    pub(crate) statements: Vec<(String, Vec<Param>)>,
}

impl Writes {
    pub fn push(&mut self, sql: String, params: Vec<Param>) {
        self.statements.push((sql, params));
    }

    pub fn len(&self) -> usize {
        self.statements.len()
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

//! Importing a whole catalogue: rows cut into `pricebook/v1/importBatch` batches of at most
//! 1,000, each batch all-or-nothing and idempotent.
//!
//! A batch's idempotency key is derived from the source (a hash of the file the caller read),
//! the batch's position and size, and the rows it leaves out, so running the same import again
//! — after an interruption, or twice — replays the batches already done and carries on with the
//! rest. A batch with refused rows is sent again without them (under its own key); the refused
//! rows are reported with their problems, the others are imported.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use hestami_core::pricebook::import::{ImportRow, MAX_BATCH_ROWS, parse_batch};

use super::pricebook::{ImportBatch, ImportReport, PricebookCommand};
use super::{Caller, Request, Services, decode_output};
use crate::error::{FailureKind, StoreError};

/// One refused row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowRefusal {
    /// Its index in the rows given (0-based).
    pub row: usize,
    /// The column at fault.
    pub field: String,
    /// A stable code.
    pub code: String,
    /// A sentence for a person.
    pub message: String,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportTotals {
    /// New items.
    pub created: usize,
    /// Items given a new revision.
    pub updated: usize,
    /// Items already as given.
    pub unchanged: usize,
    /// Rows refused (each at least once in `refusals`).
    pub refused: usize,
    /// Batches whose outcome was already recorded by an earlier run.
    pub replayed_batches: usize,
    /// Every problem of every refused row.
    pub refusals: Vec<RowRefusal>,
}

/// The row a field path such as `rows[12].price` names, and the column.
fn row_of(field: &str) -> Option<(usize, String)> {
    let rest = field.strip_prefix("rows[")?;
    let (index, column) = rest.split_once(']')?;
    let column = column.strip_prefix('.').unwrap_or(column);
    Some((index.parse().ok()?, column.to_owned()))
}

fn batch_key(source: &str, start: usize, len: usize, left_out: &BTreeSet<usize>) -> Uuid {
    let mut hasher = Sha256::new();
    hasher.update(b"pricebook-import\0");
    hasher.update(source.as_bytes());
    hasher.update(format!("\0{start}\0{len}\0").as_bytes());
    for row in left_out {
        hasher.update(format!("{row},").as_bytes());
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

impl Services {
    /// Imports `rows` into the caller's pricebook in batches of `batch_size` (1 to 1,000), calling
    /// `progress` with the number of rows done after each batch. `source` identifies what the
    /// rows were read from (such as the SHA-256 of the file): the same source and rows give the
    /// same batches and keys, so a second run resumes instead of repeating.
    pub async fn pricebook_import(
        &self,
        caller: &Caller,
        source: &str,
        rows: Vec<ImportRow>,
        batch_size: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<ImportTotals, StoreError> {
        let batch_size = batch_size.clamp(1, MAX_BATCH_ROWS);
        let currency = self.org_get(caller).await?.currency;
        let mut totals = ImportTotals::default();
        let mut done = 0;
        for (b, chunk) in rows.chunks(batch_size).enumerate() {
            let start = b * batch_size;
            let mut left_out: BTreeSet<usize> = BTreeSet::new();
            // Each round leaves out the rows refused in the one before; a row is refused once.
            loop {
                let kept: Vec<(usize, &ImportRow)> = chunk
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !left_out.contains(i))
                    .collect();
                if kept.is_empty() {
                    break;
                }
                let problems = match parse_batch(
                    &kept.iter().map(|(_, r)| (*r).clone()).collect::<Vec<_>>(),
                    currency,
                ) {
                    Err(problems) => problems
                        .into_iter()
                        .map(|p| (p.field, p.code.to_owned(), p.message))
                        .collect(),
                    Ok(drafts) => {
                        let key = batch_key(source, start, chunk.len(), &left_out);
                        let request = Request {
                            idempotency_key: key,
                            fingerprint: key.to_string(),
                            trace_id: None,
                            command: PricebookCommand::ImportBatch(ImportBatch { rows: drafts }),
                        };
                        let completed = self.submit(caller, request).await?;
                        match completed.outcome {
                            Ok(text) => {
                                let report: ImportReport = decode_output(&text)?;
                                totals.created += report.created as usize;
                                totals.updated += report.updated as usize;
                                totals.unchanged += report.unchanged as usize;
                                totals.replayed_batches += usize::from(completed.replayed);
                                break;
                            }
                            Err(f) if f.kind == FailureKind::Validation => f
                                .field_errors
                                .into_iter()
                                .map(|e| (e.field, e.code, e.message))
                                .collect::<Vec<_>>(),
                            Err(f) => return Err(f.into()),
                        }
                    }
                };
                let mut refused_now = BTreeSet::new();
                for (field, code, message) in problems {
                    let Some((k, column)) = row_of(&field) else {
                        return Err(StoreError::Internal(format!(
                            "an import problem not tied to a row: {field}: {message}"
                        )));
                    };
                    let Some(&(i, _)) = kept.get(k) else {
                        return Err(StoreError::Internal(format!("no row {k} in the batch")));
                    };
                    refused_now.insert(i);
                    totals.refusals.push(RowRefusal {
                        row: start + i,
                        field: column,
                        code,
                        message,
                    });
                }
                if refused_now.is_empty() {
                    return Err(StoreError::Internal(
                        "an import batch was refused without a row at fault".into(),
                    ));
                }
                totals.refused += refused_now.len();
                left_out.extend(refused_now);
            }
            done += chunk.len();
            progress(done);
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_name_their_row_and_column() {
        assert_eq!(row_of("rows[12].price"), Some((12, "price".into())));
        assert_eq!(row_of("rows[3]"), Some((3, String::new())));
        assert_eq!(row_of("rows"), None);
        assert_eq!(row_of("rows[x].price"), None);
    }

    #[test]
    fn keys_depend_on_the_source_the_batch_and_the_rows_left_out() {
        let none = BTreeSet::new();
        let one: BTreeSet<usize> = [4].into_iter().collect();
        let a = batch_key("file-a", 0, 1000, &none);
        assert_eq!(a, batch_key("file-a", 0, 1000, &none));
        assert_ne!(a, batch_key("file-b", 0, 1000, &none));
        assert_ne!(a, batch_key("file-a", 1000, 1000, &none));
        assert_ne!(a, batch_key("file-a", 0, 1000, &one));
    }
}

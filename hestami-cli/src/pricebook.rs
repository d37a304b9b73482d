//! `hestami pricebook import FILE.csv`: reads the CSV and hands the rows to
//! `Services::pricebook_import`, which batches, keys and resumes.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

use hestami_core::ids::OrganizationId;
use hestami_core::pricebook::import::{COLUMNS, ImportRow, MAX_BATCH_ROWS};
use hestami_store::app::Caller;

use crate::DatabaseArgs;

/// The pricebook commands.
#[derive(Subcommand, Debug)]
pub enum PricebookCommand {
    /// Import a CSV catalogue into an organization's pricebook. The header names the columns
    /// (kind,name,description,category,sku,unit,cost,price,markupPercent,laborHours,trade,rates,
    /// overtimeMultiplier,afterHoursMultiplier; any subset in any order). Rows are matched to
    /// existing items by SKU (materials) or kind and name, and reported as created, updated,
    /// unchanged or refused. Running the same file again resumes: finished batches are not
    /// repeated.
    Import {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The organization id.
        #[arg(long)]
        org: uuid::Uuid,
        /// Rows per batch, 1 to 1000.
        #[arg(long, default_value_t = MAX_BATCH_ROWS)]
        batch_size: usize,
        /// Do not draw a progress bar.
        #[arg(long)]
        quiet: bool,
        /// The CSV file.
        file: PathBuf,
    },
}

/// Runs a pricebook command.
pub async fn run(command: PricebookCommand) -> Result<()> {
    let PricebookCommand::Import {
        db,
        org,
        batch_size,
        quiet,
        file,
    } = command;
    if !(1..=MAX_BATCH_ROWS).contains(&batch_size) {
        bail!("--batch-size is 1 to {MAX_BATCH_ROWS}");
    }
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let Read {
        rows,
        lines,
        unreadable,
    } = read_rows(&bytes).with_context(|| format!("parsing {}", file.display()))?;
    let source = format!("{:x}", Sha256::digest(&bytes));

    let services = crate::admin_services(&db, "import").await?;
    let caller = Caller {
        organization_id: OrganizationId::from_uuid(org),
        user_id: None,
        scope: Default::default(),
    };

    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(rows.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} rows {elapsed_precise} eta {eta}")
            .context("progress bar template")?,
    );
    let started = Instant::now();
    let total_rows = rows.len() + unreadable.len();
    let totals = services
        .pricebook_import(&caller, &source, rows, batch_size, |done| {
            bar.set_position(done as u64)
        })
        .await?;
    bar.finish_and_clear();
    let elapsed = started.elapsed();

    let mut refused: Vec<(u64, String)> = unreadable;
    for r in &totals.refusals {
        refused.push((
            lines.get(r.row).copied().unwrap_or(0),
            format!(
                "{}: {} ({})",
                if r.field.is_empty() { "row" } else { &r.field },
                r.code,
                r.message
            ),
        ));
    }
    refused.sort();
    for (line, problem) in &refused {
        eprintln!("line {line}: {problem}");
    }
    println!(
        "{total_rows} rows in {:.1} s ({:.0} rows/s): {} created, {} updated, {} unchanged, {} refused{}",
        elapsed.as_secs_f64(),
        total_rows as f64 / elapsed.as_secs_f64().max(1e-9),
        totals.created,
        totals.updated,
        totals.unchanged,
        refused.len(),
        if totals.replayed_batches > 0 {
            format!(
                " ({} batches already imported by an earlier run)",
                totals.replayed_batches
            )
        } else {
            String::new()
        }
    );
    if !refused.is_empty() {
        // The summary is printed; the exit status tells a script the file was not all taken.
        bail!("{} rows refused", refused.len());
    }
    Ok(())
}

/// What a CSV file holds: the rows that read, each with its line, and the lines that did not
/// (a ragged line, a cell that is not text), each refused on its own.
#[derive(Debug)]
struct Read {
    rows: Vec<ImportRow>,
    /// The line of each row (1-based, the header being line 1).
    lines: Vec<u64>,
    unreadable: Vec<(u64, String)>,
}

/// The rows of a CSV file with a header of known column names; empty cells are absent. A line
/// that cannot be read is refused as its own row; only a bad header stops the file.
fn read_rows(bytes: &[u8]) -> Result<Read> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader.headers()?.clone();
    for h in &headers {
        if !COLUMNS.contains(&h) {
            bail!(
                "unknown column {h:?}; the columns are {}",
                COLUMNS.join(", ")
            );
        }
    }
    let mut read = Read {
        rows: Vec::new(),
        lines: Vec::new(),
        unreadable: Vec::new(),
    };
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => match record.deserialize::<ImportRow>(Some(&headers)) {
                Ok(row) => {
                    read.rows.push(row);
                    read.lines.push(line);
                }
                Err(e) => read
                    .unreadable
                    .push((line, format!("row: unreadable ({e})"))),
            },
            Err(e) => {
                let line = e.position().map_or(line, csv::Position::line);
                let problem = match e.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("row: ragged ({len} cells where the header has {expected_len})"),
                    _ => format!("row: unreadable ({e})"),
                };
                read.unreadable.push((line, problem));
            }
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_read_with_empty_cells_absent() {
        let csv = "kind,name,sku,unit,cost,price\nmaterial, Copper pipe ,CU-1,ft,1.10,\nservice,Drain clean,,,,189\n";
        let read = read_rows(csv.as_bytes()).expect("valid");
        let rows = read.rows;
        assert_eq!(rows.len(), 2);
        assert_eq!(read.lines, [2, 3]);
        assert_eq!(rows[0].name.as_deref(), Some("Copper pipe"));
        assert_eq!(rows[0].price, None);
        assert_eq!(rows[1].sku, None);
        assert_eq!(rows[1].price.as_deref(), Some("189"));
    }

    #[test]
    fn a_ragged_line_is_refused_alone() {
        let csv = "kind,name,price,trade\nservice,A,10,plumbing\nservice,B\nservice,C,12,plumbing,extra\nservice,D,14,plumbing\n";
        let read = read_rows(csv.as_bytes()).expect("the file reads");
        let names: Vec<_> = read
            .rows
            .iter()
            .map(|r| r.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(names, ["A", "D"]);
        assert_eq!(read.lines, [2, 5]);
        let lines: Vec<u64> = read.unreadable.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [3, 4]);
        assert!(
            read.unreadable[0]
                .1
                .contains("ragged (2 cells where the header has 4)"),
            "{:?}",
            read.unreadable
        );
    }

    #[test]
    fn unknown_columns_are_refused_by_name() {
        let err = read_rows(b"kind,name,colour\nservice,x,red\n").expect_err("refused");
        assert!(err.to_string().contains("\"colour\""), "{err}");
    }
}

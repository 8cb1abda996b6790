//! `muninn-sync ARCHIVE SYNCHRONIZER --adopt`: a one-off that makes a
//! synchronizer the owner of the products of its types that nobody owns.
//!
//! A synchronizer's removals and prunes touch only its own products (see
//! `model::Ownership`). Products that Python muninn, another tool or a
//! muninn-sync older than owner records made belong to nobody; an operator
//! who knows which synchronizer they came from hands them over here once,
//! instead of setting `adopt = true` for good.

use crate::backend::{self, OpenCatalogue};
use crate::cli::Args;
use crate::config::{self, ArchiveConfig, SynchronizerConfig, CONFIG_PATH_VARIABLE};
use crate::run::{hostname, take_lock};
use anyhow::{anyhow, bail, Result};
use std::io::Write;

/// Runs `--adopt` (with `--dry-run`: counts only) and prints, per product
/// type, how many products it adopted.
pub fn run(args: &Args) -> Result<()> {
    let search_path = std::env::var(CONFIG_PATH_VARIABLE).ok();
    let path = config::locate(args.archive(), search_path.as_deref())?;
    let config = ArchiveConfig::read(&path)?;
    let section = config.synchronizer(args.synchronizer())?;
    let product_types = product_types(args, &config, &section)?;
    if args.dry_run && !backend::may_exist(&config) {
        println!(
            "the {} does not exist yet: nothing to adopt",
            backend::describe(&config)
        );
        return Ok(());
    }
    // No run of the synchronizer may change owners meanwhile.
    let lock = if args.dry_run {
        None
    } else {
        Some(take_lock(&config, &section, args, &hostname())?)
    };
    let mut opened = OpenCatalogue::open(&config, args.dry_run)?;
    let catalogue = opened.catalogue();
    let storage =
        |e: muninn_sync_catalogue::CatalogueError| anyhow!("{}: {e}", backend::describe(&config));
    let mut lines = Vec::new();
    let mut total = 0;
    for product_type in &product_types {
        let types = std::slice::from_ref(product_type);
        let count = if args.dry_run {
            catalogue.unowned(types).map_err(storage)?
        } else {
            catalogue
                .adopt_unowned(&section.name, types)
                .map_err(storage)?
        };
        total += count;
        lines.push(format!("  {product_type}: {count}"));
    }
    if args.dry_run {
        catalogue.rollback().map_err(storage)?;
    } else {
        catalogue.commit().map_err(storage)?;
    }
    if let Some(lock) = lock {
        lock.release();
    }
    let verb = if args.dry_run {
        "would adopt"
    } else {
        "adopted"
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "synchronizer \"{}\" {verb} {total} product(s) that nobody owned:\n{}",
        section.name,
        lines.join("\n")
    )?;
    tracing::info!(
        synchronizer = %section.name,
        dry_run = args.dry_run,
        "{verb} {total} unowned product(s)"
    );
    Ok(())
}

/// The product types to adopt: `-p`'s, else those the section names in
/// `product_types` (jsonl, odata and most plugins) or as the keys of its
/// `collections` table (stac). The host cannot ask a plugin which types
/// it syncs, so without either it asks for `-p`.
fn product_types(
    args: &Args,
    config: &ArchiveConfig,
    section: &SynchronizerConfig,
) -> Result<Vec<String>> {
    if let Some(types) = &args.product_types {
        if types.is_empty() {
            bail!("--adopt -p names no product type: nothing to adopt");
        }
        return Ok(types.clone());
    }
    let listed = match section.options.get("product_types") {
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(String::from))
            .collect::<Option<Vec<_>>>(),
        Some(toml::Value::String(one)) => Some(one.split_whitespace().map(String::from).collect()),
        _ => None,
    };
    let from_collections = || match section.options.get("collections") {
        Some(toml::Value::Table(table)) => Some(table.keys().cloned().collect::<Vec<_>>()),
        _ => None,
    };
    match listed.or_else(from_collections) {
        Some(types) if !types.is_empty() => Ok(types),
        _ => bail!(
            "--adopt needs the product types whose unowned products synchronizer \"{}\" takes over: \
             name them with -p (its section in \"{}\" has neither product_types nor collections)",
            section.name,
            config.path.display()
        ),
    }
}

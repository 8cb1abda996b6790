//! The ABI adapter: the plugin's calls through [`FfiArchive`], turned
//! from their ABI form into the batch state's calls and back.

use super::batch::Shared;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use muninn_sync_catalogue::{CatalogueError, Namespaces, ScanQuery, WalkQuery};
use muninn_sync_model::{page_size, to_micros, Uuid, MAX_SCAN_PAGE, MAX_WALK_PAGE};
use muninn_sync_plugin_api::convert::{
    bound_from_ffi, position_from_ffi, product_from_ffi, product_to_ffi, update_from_ffi,
    value_to_ffi,
};
use muninn_sync_plugin_api::ffi::{
    FfiArchive, FfiProduct, FfiScan, FfiScanRow, FfiUpdate, FfiUuid, FfiValue, FfiWalk,
};
use muninn_sync_plugin_api::notice::{
    encode_deletions, encode_product_types, encode_property_types, Notice,
};

/// The archive handle of one run, as the plugin holds it.
pub struct ArchiveHandle<'s, 'c> {
    shared: &'s Shared<'c>,
}

impl<'c> Shared<'c> {
    /// The handle to pass to the plugin.
    pub fn handle(&self) -> ArchiveHandle<'_, 'c> {
        ArchiveHandle { shared: self }
    }
}

fn namespaces(names: RSlice<'_, RString>) -> Namespaces {
    Namespaces::from_names(names.as_slice())
}

fn bad_request(message: String) -> CatalogueError {
    CatalogueError::Product(message)
}

impl FfiArchive for ArchiveHandle<'_, '_> {
    fn find_by_name(
        &self,
        product_type: RStr<'_>,
        product_names: RSlice<'_, RString>,
        names: RSlice<'_, RString>,
    ) -> RResult<RVec<ROption<FfiProduct>>, RString> {
        self.shared.call("look-up by name", |state| {
            let product_names: Vec<&str> = product_names.iter().map(RString::as_str).collect();
            let found = state.catalogue().products_by_name(
                product_type.as_str(),
                &product_names,
                &namespaces(names),
            )?;
            Ok(found
                .iter()
                .map(|p| p.as_ref().map(product_to_ffi).into())
                .collect())
        })
    }

    fn find_by_uuid(
        &self,
        uuids: RSlice<'_, FfiUuid>,
        names: RSlice<'_, RString>,
    ) -> RResult<RVec<ROption<FfiProduct>>, RString> {
        self.shared.call("look-up by uuid", |state| {
            let uuids: Vec<Uuid> = uuids.iter().map(|u| Uuid::from(*u)).collect();
            let found = state
                .catalogue()
                .products_by_uuid(&uuids, &namespaces(names))?;
            Ok(found
                .iter()
                .map(|p| p.as_ref().map(product_to_ffi).into())
                .collect())
        })
    }

    fn walk(
        &self,
        walk: &FfiWalk,
        names: RSlice<'_, RString>,
    ) -> RResult<RVec<FfiProduct>, RString> {
        self.shared.call("walk over the catalogue", |state| {
            let after = position_from_ffi(walk.after, "walk position").map_err(bad_request)?;
            let query = WalkQuery {
                product_type: walk.product_type.to_string(),
                property: walk.property.to_string(),
                start: bound_from_ffi(walk.start, "walk start").map_err(bad_request)?,
                end: bound_from_ffi(walk.end, "walk end").map_err(bad_request)?,
                after,
                limit: page_size(walk.limit, MAX_WALK_PAGE),
            };
            let found = state.catalogue().walk(&query, &namespaces(names))?;
            Ok(found.iter().map(product_to_ffi).collect())
        })
    }

    fn scan(&mut self, scan: &FfiScan) -> RResult<RVec<FfiScanRow>, RString> {
        self.shared.call("scan of a namespace", |state| {
            let after = position_from_ffi(scan.after, "scan position").map_err(bad_request)?;
            let query = ScanQuery {
                namespace: scan.namespace.to_string(),
                order_by: scan.order_by.to_string(),
                properties: scan.properties.iter().map(|p| p.to_string()).collect(),
                start: bound_from_ffi(scan.start, "scan start").map_err(bad_request)?,
                end: bound_from_ffi(scan.end, "scan end").map_err(bad_request)?,
                after,
                limit: page_size(scan.limit, MAX_SCAN_PAGE),
            };
            let rows = state.catalogue().scan(&query)?;
            Ok(rows
                .iter()
                .map(|row| FfiScanRow {
                    uuid: row.uuid.into(),
                    time: to_micros(&row.time),
                    values: row
                        .values
                        .iter()
                        .map(|v| v.as_ref().map_or(FfiValue::Null, value_to_ffi))
                        .collect(),
                })
                .collect())
        })
    }

    fn create(&mut self, product: FfiProduct) -> RResult<(), RString> {
        self.shared.call("create", |state| {
            let product = product_from_ffi(&product)
                .map_err(|e| bad_request(format!("invalid product: {e}")))?;
            state.create(&product)
        })
    }

    fn update(&mut self, update: FfiUpdate) -> RResult<(), RString> {
        self.shared.call("update", |state| {
            let update = update_from_ffi(&update)
                .map_err(|e| bad_request(format!("invalid update: {e}")))?;
            state.update(&update)
        })
    }

    fn remove(&mut self, uuid: FfiUuid) -> RResult<bool, RString> {
        self.shared
            .call("remove", |state| state.remove(Uuid::from(uuid)))
    }

    fn notify(&mut self, kind: RStr<'_>, payload: RStr<'_>) -> RResult<RString, RString> {
        let notice = match Notice::decode(kind.as_str(), payload.as_str()) {
            Ok(notice) => notice,
            Err(error) => return RResult::RErr(error.to_string().into()),
        };
        match notice {
            Notice::ProductFailed {
                product,
                message,
                product_type,
            } => self.shared.call("report of a failed product", |state| {
                state.product_failed(product, message, product_type.as_deref())?;
                Ok(RString::new())
            }),
            Notice::Unchanged { count } => {
                self.shared.call("report of unchanged products", |state| {
                    state.unchanged(count);
                    Ok(RString::new())
                })
            }
            Notice::Watermark { product_type, time } => self.shared.call("watermark", |state| {
                state.raise_watermark(&product_type, time);
                Ok(RString::new())
            }),
            Notice::Idle => self.shared.call("commit before the plugin waits", |state| {
                state.commit_batch()?;
                Ok(RString::new())
            }),
            Notice::ProductTypes => self.shared.call("list of product types", |state| {
                let summaries = state.product_types()?;
                Ok(encode_product_types(&summaries).into())
            }),
            Notice::Deletion(deletion) => self.shared.call("record of a deletion", |state| {
                state.record_deletion(&deletion)?;
                Ok(RString::new())
            }),
            Notice::PropertyTypes { namespaces } => {
                self.shared.call("look-up of property types", |state| {
                    let types = state.catalogue().property_types(&namespaces)?;
                    Ok(encode_property_types(&types).into())
                })
            }
            Notice::Expected {
                product_type,
                count,
            } => self.shared.call("expected products", |state| {
                state.expect(&product_type, count);
                Ok(RString::new())
            }),
            Notice::Deletions {
                product_type,
                product_names,
            } => self.shared.call("look-up of deletions", |state| {
                let names: Vec<&str> = product_names.iter().map(String::as_str).collect();
                let times = state.deletions(&product_type, &names)?;
                Ok(encode_deletions(&times).into())
            }),
        }
    }
}

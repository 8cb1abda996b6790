//! Reading one product type's window from the server, page by page.

use crate::search::{next_request, RepeatGuard, SearchRequest};
use anyhow::{anyhow, Context, Result};
use muninn_sync_plugin_api::http::{HttpClient, Method};
use serde_json::Value as Json;

/// Fetches one page and checks it is JSON.
pub fn fetch(client: &HttpClient, request: &SearchRequest) -> Result<Json> {
    let method = match request.method.as_str() {
        "POST" => Method::POST,
        _ => Method::GET,
    };
    let response = client.send(method, &request.url, |mut builder| {
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        builder
    })?;
    let shown = client.redact(&request.url);
    serde_json::from_slice(response.bytes()).with_context(|| {
        let start = String::from_utf8_lossy(&response.bytes()[..response.bytes().len().min(200)])
            .into_owned();
        format!(
            "{} {shown}: the answer is not JSON (it starts with {:?})",
            request.method,
            client.redact(&start)
        )
    })
}

/// Calls `each_page` with the features of every page of a search, following
/// next links until the end; a repeated page is an error. `each_page` runs
/// before the next request is sent.
pub fn pages(
    client: &HttpClient,
    first: SearchRequest,
    mut each_page: impl FnMut(&[Json]) -> Result<()>,
) -> Result<usize> {
    let mut guard = RepeatGuard::default();
    let mut request = Some(first);
    let mut count = 0;
    while let Some(current) = request {
        guard
            .request(&current)
            .map_err(|e| anyhow!(client.redact(&e.to_string())))?;
        let page = fetch(client, &current)?;
        guard.page(&page)?;
        let features = page
            .get("features")
            .and_then(Json::as_array)
            .ok_or_else(|| {
                anyhow!(
                    "{} {}: the answer is not a FeatureCollection (no \"features\" list)",
                    current.method,
                    client.redact(&current.url)
                )
            })?;
        each_page(features)?;
        count += 1;
        request = next_request(&current, &page)?;
    }
    Ok(count)
}

/// Every feature of a search, with the number of pages it took.
pub fn all_features(client: &HttpClient, first: SearchRequest) -> Result<(usize, Vec<Json>)> {
    let mut features = Vec::new();
    let pages = pages(client, first, |page| {
        features.extend_from_slice(page);
        Ok(())
    })?;
    Ok((pages, features))
}

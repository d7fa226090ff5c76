//! Discovering applications: SAE `ListApplications` (paged, by namespace, name and tags) and EDAS
//! `ListApplication` (by logical region). Signed and budgeted like every other call.
//!
//! Filters are sent to the cloud and applied again here: the name pattern is a glob the cloud
//! does not understand (its `AppName` is a fuzzy match at best), and a gateway that ignores a
//! filter must not make the set watch applications it should not.

use std::collections::BTreeMap;

use reqwest::{Method, Url};
use serde_json::Value;

use super::credentials::Credentials;
use super::error::{CloudError, ErrorKind};
use super::http::{ApiCall, Transport};
use super::json;
use super::model::Provider;
use super::sign::Scheme;

pub const OP_SAE_LIST_APPS: &str = "ListApplications";
pub const PATH_SAE_LIST_APPS: &str = "/pop/v1/sam/app/listApplications";
pub const OP_EDAS_LIST_APPS: &str = "ListApplication";
pub const PATH_EDAS_LIST_APPS: &str = "/pop/v5/app/app_list";

/// Which applications to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppQuery {
    Sae {
        namespace_id: String,
        name_pattern: Option<String>,
        tags: BTreeMap<String, String>,
    },
    Edas {
        logical_region_id: String,
        name_pattern: Option<String>,
        cluster_id: Option<String>,
    },
}

/// One application found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundApp {
    pub app_id: String,
    pub app_name: Option<String>,
    /// SAE tags (key: value); empty for EDAS.
    pub tags: BTreeMap<String, String>,
}

/// Every application the query selects, in the cloud's order, each id once. Stops with an
/// error (never a partial list) when a page fails, so a caller never mistakes a failed page for
/// applications that are gone.
pub(crate) async fn list_apps(
    tr: &Transport,
    base: &Url,
    query: &AppQuery,
    creds: &Credentials,
    scheme: Scheme,
) -> Result<Vec<FoundApp>, CloudError> {
    let cfg = tr.config();
    let page_size = cfg.sae_page_size.max(1);
    let mut out: Vec<FoundApp> = Vec::new();
    for page_no in 1..=cfg.max_pages {
        let (call, parse): (ApiCall, ParsePage) = match query {
            AppQuery::Sae {
                namespace_id, tags, ..
            } => {
                let mut q = vec![
                    ("NamespaceId".to_string(), namespace_id.clone()),
                    ("CurrentPage".to_string(), page_no.to_string()),
                    ("PageSize".to_string(), page_size.to_string()),
                ];
                if !tags.is_empty() {
                    q.push(("Tags".into(), sae_tags(tags)));
                }
                (
                    call(
                        Provider::Sae,
                        OP_SAE_LIST_APPS,
                        Method::GET,
                        PATH_SAE_LIST_APPS,
                        q,
                    ),
                    parse_sae_page,
                )
            }
            AppQuery::Edas {
                logical_region_id,
                cluster_id,
                ..
            } => {
                let mut q = vec![
                    ("LogicalRegionId".to_string(), logical_region_id.clone()),
                    ("CurrentPage".to_string(), page_no.to_string()),
                    ("PageSize".to_string(), page_size.to_string()),
                ];
                if let Some(c) = cluster_id {
                    q.push(("ClusterId".into(), c.clone()));
                }
                (
                    call(
                        Provider::Edas,
                        OP_EDAS_LIST_APPS,
                        Method::POST,
                        PATH_EDAS_LIST_APPS,
                        q,
                    ),
                    parse_edas_page,
                )
            }
        };
        let v = tr.call(base, &call, creds, scheme).await?;
        let page = parse(&v)?;
        let mut new = 0usize;
        for app in page.apps.iter().cloned() {
            if !out.iter().any(|a| a.app_id == app.app_id) {
                out.push(app);
                new += 1;
            }
        }
        let got = i64::try_from(page.items).unwrap_or(i64::MAX);
        let size = i64::from(page_size);
        let done = page.items == 0
            || new == 0
            || match page.total {
                Some(total) => i64::from(page_no).saturating_mul(size) >= total,
                None => got < size,
            };
        if done {
            return Ok(filter(out, query));
        }
    }
    // A fleet larger than the page limit: refusing beats a partial list, which would delete the
    // watches of every application past the limit.
    Err(CloudError::new(
        ErrorKind::TooLarge,
        format!(
            "more than {} pages of applications ({} per page): raise the page limit or narrow the generator",
            cfg.max_pages, page_size
        ),
    ))
}

/// The reply parser of one product's list call.
type ParsePage = fn(&Value) -> Result<AppPage, CloudError>;

fn call(
    provider: Provider,
    operation: &'static str,
    method: Method,
    path: &str,
    query: Vec<(String, String)>,
) -> ApiCall {
    ApiCall {
        provider,
        operation,
        version: match provider {
            Provider::Edas => super::edas::VERSION,
            _ => super::sae::VERSION,
        },
        method,
        path: path.into(),
        query,
        // A bare 404 on a list means the namespace or region is not there.
        not_found: ErrorKind::AppNotFound,
    }
}

/// SAE's `Tags` parameter: a JSON array of `{Key, Value}`.
pub fn sae_tags(tags: &BTreeMap<String, String>) -> String {
    let list: Vec<Value> = tags
        .iter()
        .map(|(k, v)| serde_json::json!({"Key": k, "Value": v}))
        .collect();
    Value::Array(list).to_string()
}

/// One page of applications.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppPage {
    pub apps: Vec<FoundApp>,
    /// Items on the page, including ones without an id.
    pub items: usize,
    pub total: Option<i64>,
}

/// A `ListApplications` reply: `Data.Applications[]`, `Data.TotalSize`.
pub fn parse_sae_page(v: &Value) -> Result<AppPage, CloudError> {
    let data = json::field(v, &["Data"])
        .filter(|d| d.is_object())
        .ok_or_else(|| CloudError::bad_reply(format!("{OP_SAE_LIST_APPS} reply has no Data object")))?;
    let items = json::list(data, &["Applications"]);
    let mut page = AppPage {
        items: items.len(),
        total: json::int(data, &["TotalSize"]),
        ..AppPage::default()
    };
    for item in items {
        let Some(app_id) = json::string(item, &["AppId"]) else {
            continue;
        };
        let tags: BTreeMap<String, String> = json::list(item, &["Tags"])
            .iter()
            .filter_map(|t| {
                Some((
                    json::string(t, &["Key"])?,
                    json::string(t, &["Value"]).unwrap_or_default(),
                ))
            })
            .collect();
        page.apps.push(FoundApp {
            app_id,
            app_name: json::string(item, &["AppName"]),
            tags,
        });
    }
    Ok(page)
}

/// A `ListApplication` reply: `ApplicationList.Application[]` (XML-style wrapper, which may hold
/// one object or be missing when empty), `Code` 200 on success.
pub fn parse_edas_page(v: &Value) -> Result<AppPage, CloudError> {
    if !v.is_object() {
        return Err(CloudError::bad_reply(format!(
            "{OP_EDAS_LIST_APPS} reply is not an object"
        )));
    }
    let items = json::wrapped_list(v, &["ApplicationList"], &["Application"]);
    let mut page = AppPage {
        items: items.len(),
        total: json::int(v, &["TotalSize"]),
        ..AppPage::default()
    };
    for item in items {
        let Some(app_id) = json::string(item, &["AppId"]) else {
            continue;
        };
        page.apps.push(FoundApp {
            app_id,
            app_name: json::string(item, &["Name", "AppName"]),
            tags: BTreeMap::new(),
        });
    }
    Ok(page)
}

fn filter(apps: Vec<FoundApp>, query: &AppQuery) -> Vec<FoundApp> {
    let empty = BTreeMap::new();
    let (pattern, tags) = match query {
        AppQuery::Sae {
            name_pattern, tags, ..
        } => (name_pattern.as_deref(), tags),
        AppQuery::Edas { name_pattern, .. } => (name_pattern.as_deref(), &empty),
    };
    apps.into_iter()
        .filter(|a| pattern.is_none_or(|p| glob_match(p, a.app_name.as_deref().unwrap_or(""))))
        .filter(|a| tags.iter().all(|(k, v)| a.tags.get(k) == Some(v)))
        .collect()
}

/// `*` matches any run of characters, `?` exactly one; everything else itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("*", "", true),
            ("web-*", "web-shop", true),
            ("web-*", "api-web", false),
            ("*-prod", "shop-prod", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*b*b*", "abcbd", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn sae_page_and_tags() {
        let v = serde_json::json!({"Success": true, "Data": {"TotalSize": 3, "CurrentPage": 1, "PageSize": 2,
            "Applications": [{"AppId": "a1", "AppName": "web", "Tags": [{"Key": "team", "Value": "x"}]}, {"AppName": "no-id"}]}});
        let page = parse_sae_page(&v).unwrap();
        assert_eq!(page.items, 2);
        assert_eq!(page.total, Some(3));
        assert_eq!(page.apps.len(), 1);
        assert_eq!(
            (page.apps[0].app_id.as_str(), page.apps[0].app_name.as_deref()),
            ("a1", Some("web"))
        );
        assert_eq!(page.apps[0].tags["team"], "x");
        assert!(parse_sae_page(&serde_json::json!({"Success": true})).is_err());
        let tags = BTreeMap::from([("team".to_string(), "x".to_string())]);
        assert_eq!(sae_tags(&tags), r#"[{"Key":"team","Value":"x"}]"#);
    }

    #[test]
    fn edas_wrappers() {
        let one = serde_json::json!({"Code": 200, "ApplicationList": {"Application": {"AppId": "e1", "Name": "svc"}}});
        assert_eq!(parse_edas_page(&one).unwrap().apps.len(), 1);
        let none = serde_json::json!({"Code": 200});
        assert_eq!(parse_edas_page(&none).unwrap().items, 0);
    }
}

//! Which operation a request names, from its method and path, as each product's gateway routes.

use axum::http::Method;
use percent_encoding::percent_decode_str;

use changeorder_cloud::model::Provider;

pub const EDAS_VERSION: &str = "2017-08-01";
pub const SAE_VERSION: &str = "2019-05-06";

/// One served operation with the path parameters it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    EdasListRecent,
    EdasInfo,
    SaeList,
    SaeDescribe,
    SaeNamespaceList,
    SaePipeline,
    /// Application lists (`sim::discovery`).
    SaeListApps,
    EdasListApps,
    /// Write calls (see `sim::actions`).
    EdasContinuePipeline,
    EdasAbort,
    EdasAbortAndRollback,
    SaeConfirmBatch,
    SaeAbort,
    SaeAbortAndRollback,
    /// `org` is `None` on the region edition's paths.
    AppstackVersions {
        org: Option<String>,
        app: String,
    },
    AppstackGet {
        org: Option<String>,
        app: String,
        sn: String,
    },
    AppstackByOrigin {
        org: Option<String>,
    },
}

impl Op {
    pub fn provider(&self) -> Provider {
        match self {
            Op::EdasListRecent
            | Op::EdasInfo
            | Op::EdasListApps
            | Op::EdasContinuePipeline
            | Op::EdasAbort
            | Op::EdasAbortAndRollback => Provider::Edas,
            Op::SaeList
            | Op::SaeDescribe
            | Op::SaeNamespaceList
            | Op::SaePipeline
            | Op::SaeListApps
            | Op::SaeConfirmBatch
            | Op::SaeAbort
            | Op::SaeAbortAndRollback => Provider::Sae,
            Op::AppstackVersions { .. } | Op::AppstackGet { .. } | Op::AppstackByOrigin { .. } => {
                Provider::Appstack
            }
        }
    }

    /// The `x-acs-action` (EDAS/SAE) or the documented operation name (AppStack).
    pub fn action(&self) -> &'static str {
        match self {
            Op::EdasListRecent => "ListRecentChangeOrder",
            Op::EdasInfo => "GetChangeOrderInfo",
            Op::SaeList => "ListChangeOrders",
            Op::SaeDescribe => "DescribeChangeOrder",
            Op::SaeNamespaceList => "ListNamespaceChangeOrders",
            Op::SaePipeline => "DescribePipeline",
            Op::SaeListApps => "ListApplications",
            Op::EdasListApps => "ListApplication",
            Op::EdasContinuePipeline => "ContinuePipeline",
            Op::EdasAbort | Op::SaeAbort => "AbortChangeOrder",
            Op::SaeConfirmBatch => "ConfirmPipelineBatch",
            Op::SaeAbortAndRollback | Op::EdasAbortAndRollback => "AbortAndRollbackChangeOrder",
            Op::AppstackVersions { .. } => "ListChangeOrderVersions",
            Op::AppstackGet { .. } => "GetChangeOrder",
            Op::AppstackByOrigin { .. } => "ListChangeOrdersByOrigin",
        }
    }

    /// Whether the operation changes an order (and so needs a key with write permission).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Op::EdasContinuePipeline
                | Op::EdasAbort
                | Op::EdasAbortAndRollback
                | Op::SaeConfirmBatch
                | Op::SaeAbort
                | Op::SaeAbortAndRollback
        )
    }

    /// The product API version a signed request must carry in `x-acs-version`.
    pub fn version(&self) -> Option<&'static str> {
        match self.provider() {
            Provider::Edas => Some(EDAS_VERSION),
            Provider::Sae => Some(SAE_VERSION),
            Provider::Appstack => None,
        }
    }
}

/// Why no operation matched.
#[derive(Debug, PartialEq, Eq)]
pub enum NoRoute {
    /// An EDAS/SAE (`/pop/...`) path or method the gateway does not know.
    Pop,
    /// An AppStack path with the wrong method.
    AppstackMethod,
    /// Anything else.
    Unknown,
}

const EDAS_LIST: &str = "/pop/v5/changeorder/change_order_list";
const EDAS_INFO: &str = "/pop/v5/changeorder/change_order_info";
const EDAS_CONTINUE: &str = "/pop/v5/changeorder/pipeline_batch_confirm";
const EDAS_ABORT: &str = "/pop/v5/changeorder/change_order_abort";
const EDAS_ABORT_ROLLBACK: &str = "/pop/v5/changeorder/change_order_abort_and_rollback";
const EDAS_APP_LIST: &str = "/pop/v5/app/app_list";
const SAE_APP_LIST: &str = "/pop/v1/sam/app/listApplications";
const SAE_PREFIX: &str = "/pop/v1/sam/changeorder/";
const APPSTACK_PREFIX: &str = "/oapi/v1/appstack/";

pub fn route(method: &Method, path: &str) -> Result<Op, NoRoute> {
    let op = match path {
        EDAS_LIST => Some((Method::POST, Op::EdasListRecent)),
        EDAS_INFO => Some((Method::POST, Op::EdasInfo)),
        EDAS_APP_LIST => Some((Method::POST, Op::EdasListApps)),
        SAE_APP_LIST => Some((Method::GET, Op::SaeListApps)),
        EDAS_CONTINUE => Some((Method::GET, Op::EdasContinuePipeline)),
        EDAS_ABORT => Some((Method::PUT, Op::EdasAbort)),
        EDAS_ABORT_ROLLBACK => Some((Method::PUT, Op::EdasAbortAndRollback)),
        _ => match path.strip_prefix(SAE_PREFIX) {
            // Paths are case-sensitive: the namespace list really is lower-case `l`.
            Some("ListChangeOrders") => Some((Method::GET, Op::SaeList)),
            Some("DescribeChangeOrder") => Some((Method::GET, Op::SaeDescribe)),
            Some("listNamespaceChangeOrders") => Some((Method::GET, Op::SaeNamespaceList)),
            Some("DescribePipeline") => Some((Method::GET, Op::SaePipeline)),
            Some("ConfirmPipelineBatch") => Some((Method::GET, Op::SaeConfirmBatch)),
            Some("AbortChangeOrder") => Some((Method::PUT, Op::SaeAbort)),
            Some("AbortAndRollbackChangeOrder") => Some((Method::PUT, Op::SaeAbortAndRollback)),
            _ => None,
        },
    };
    if let Some((want, op)) = op {
        return if *method == want {
            Ok(op)
        } else {
            Err(NoRoute::Pop)
        };
    }
    if path.starts_with("/pop/") {
        return Err(NoRoute::Pop);
    }
    let Some(rest) = path.strip_prefix(APPSTACK_PREFIX) else {
        return Err(NoRoute::Unknown);
    };
    let segs: Vec<String> = rest
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (org, tail) = match segs.as_slice() {
        ["organizations", org, tail @ ..] if !org.is_empty() => (Some(org.to_string()), tail),
        tail => (None, tail),
    };
    let op = match tail {
        ["apps", app, "changeOrders", "versions"] if !app.is_empty() => Op::AppstackVersions {
            org,
            app: app.to_string(),
        },
        ["apps", app, "changeOrders", sn] if !app.is_empty() && !sn.is_empty() => Op::AppstackGet {
            org,
            app: app.to_string(),
            sn: sn.to_string(),
        },
        ["changeOrders:byOrigin"] => Op::AppstackByOrigin { org },
        _ => return Err(NoRoute::Unknown),
    };
    if *method == Method::GET {
        Ok(op)
    } else {
        Err(NoRoute::AppstackMethod)
    }
}

/// Decoded query parameters in the order received. `+` means a space, as the SDKs' form-style
/// encoding sends it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Params {
        let Some(raw) = raw else {
            return Params::default();
        };
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Params(
            raw.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
        )
    }

    /// The first value of a parameter, if present and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a list parameter, whether repeated or comma-separated.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// A positive integer parameter: `Ok(None)` when absent, `Err` when not a positive number.
    pub fn positive(&self, name: &str) -> Result<Option<u64>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(format!("{name} must be a positive integer, got {v:?}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params() {
        let p = Params::parse(Some(
            "AppId=a%2Fb&Key=two+words&envNames=dev,test&envNames=prod&flag&PageSize=0",
        ));
        assert_eq!(p.get("AppId"), Some("a/b"));
        assert_eq!(p.get("Key"), Some("two words"));
        assert_eq!(p.list("envNames"), ["dev", "test", "prod"]);
        assert_eq!(p.get("flag"), None);
        assert_eq!(p.0[4], ("flag".to_string(), String::new()));
        assert!(p.positive("PageSize").is_err());
        assert_eq!(p.positive("CurrentPage"), Ok(None));
    }

    #[test]
    fn routes() {
        assert_eq!(route(&Method::POST, EDAS_LIST), Ok(Op::EdasListRecent));
        assert_eq!(route(&Method::GET, EDAS_LIST), Err(NoRoute::Pop));
        assert_eq!(
            route(&Method::GET, "/pop/v1/sam/changeorder/listNamespaceChangeOrders"),
            Ok(Op::SaeNamespaceList)
        );
        assert_eq!(
            route(&Method::GET, "/pop/v1/sam/changeorder/ListNamespaceChangeOrders"),
            Err(NoRoute::Pop)
        );
        assert_eq!(
            route(&Method::GET, "/pop/v5/changeorder/ListChangeOrders"),
            Err(NoRoute::Pop)
        );
        assert_eq!(
            route(
                &Method::GET,
                "/oapi/v1/appstack/organizations/o/apps/my%20app/changeOrders/versions"
            ),
            Ok(Op::AppstackVersions {
                org: Some("o".into()),
                app: "my app".into()
            })
        );
        assert_eq!(
            route(&Method::GET, "/oapi/v1/appstack/apps/a/changeOrders/sn1"),
            Ok(Op::AppstackGet {
                org: None,
                app: "a".into(),
                sn: "sn1".into()
            })
        );
        assert_eq!(
            route(
                &Method::GET,
                "/oapi/v1/appstack/organizations/o/changeOrders:byOrigin"
            ),
            Ok(Op::AppstackByOrigin {
                org: Some("o".into())
            })
        );
        assert_eq!(
            route(&Method::GET, "/oapi/v1/appstack/changeOrders:byOrigin"),
            Ok(Op::AppstackByOrigin { org: None })
        );
        assert_eq!(
            route(&Method::POST, "/oapi/v1/appstack/apps/a/changeOrders/versions"),
            Err(NoRoute::AppstackMethod)
        );
        assert_eq!(route(&Method::GET, "/"), Err(NoRoute::Unknown));
        assert_eq!(route(&Method::GET, EDAS_CONTINUE), Ok(Op::EdasContinuePipeline));
        assert_eq!(route(&Method::PUT, EDAS_ABORT), Ok(Op::EdasAbort));
        assert_eq!(route(&Method::GET, EDAS_ABORT), Err(NoRoute::Pop));
        assert_eq!(
            route(&Method::PUT, EDAS_ABORT_ROLLBACK),
            Ok(Op::EdasAbortAndRollback)
        );
        assert_eq!(route(&Method::POST, EDAS_ABORT_ROLLBACK), Err(NoRoute::Pop));
        assert!(Op::EdasAbortAndRollback.is_write());
        assert_eq!(Op::EdasAbortAndRollback.action(), "AbortAndRollbackChangeOrder");
        assert_eq!(Op::EdasAbortAndRollback.provider(), Provider::Edas);
        assert_eq!(
            route(
                &Method::PUT,
                "/pop/v1/sam/changeorder/AbortAndRollbackChangeOrder"
            ),
            Ok(Op::SaeAbortAndRollback)
        );
        assert!(Op::SaeConfirmBatch.is_write() && !Op::SaeDescribe.is_write());
    }
}

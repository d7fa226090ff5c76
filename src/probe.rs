//! `changeorder-operator probe -f WATCH.yaml [--credentials FILE]`: poll the cloud once for one
//! `ChangeOrderWatch` and print, as a YAML stream, the `ChangeOrder` objects the controller would
//! write. No cluster needed. On any error: one line on stderr naming the cause, non-zero exit,
//! never a secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use serde_yaml::Value;

use crate::controller::fetch::{Detail, Listing, fetch};
use crate::controller::identity::{
    Identities, IdentityError, KeylessSettings, Source, SourceError, source_of,
};
use crate::controller::metrics::Metrics;
use crate::crd::ChangeOrderWatch;
use changeorder_cloud::chain::{ChainConfig, OperatorChain};
use changeorder_cloud::client::merge;
use changeorder_cloud::credentials::CredentialsError;
use changeorder_cloud::error::CloudError;
use changeorder_cloud::model::{CloudOrder, Provider};
use changeorder_cloud::sts::{OidcConfig, OidcProvider};
use changeorder_cloud::target::TargetError;
use changeorder_cloud::{ClientConfig, CloudClient, Credentials};

/// Why `probe` printed no orders: the one line it prints on stderr. Never a secret.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{}: {source}", .file.display())]
    Target { file: PathBuf, source: TargetError },
    #[error("{}: {source}", .file.display())]
    CredentialSource { file: PathBuf, source: SourceError },
    /// The operator's own identity could not be set up from the environment.
    #[error(transparent)]
    OperatorIdentity(CloudError),
    /// `what` describes the identity (e.g. the ECS role).
    #[error("{what}: {source}")]
    OperatorCredentials { what: String, source: CloudError },
    #[error("{0}; pass --credentials FILE or set the variable")]
    NoCredentials(CredentialsError),
    /// The RRSA variables are unusable.
    #[error(transparent)]
    Oidc(changeorder_cloud::sts::OidcConfigError),
    #[error(transparent)]
    OidcProvider(CloudError),
    #[error("RRSA: {0}")]
    Rrsa(CloudError),
    #[error(transparent)]
    ServiceAccount(#[from] ServiceAccountError),
    #[error(transparent)]
    Client(CloudError),
    /// The list, or the first describe that failed.
    #[error(transparent)]
    Fetch(CloudError),
    #[error("cannot render ChangeOrder {id}: {source}")]
    Render { id: String, source: serde_yaml::Error },
}

/// A watch or credentials file probe cannot use; every message starts with the file's name.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: {source}", .file.display())]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{}: not YAML: {source}", .file.display())]
    NotYaml {
        file: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("{}: no ChangeOrderWatch in the file", .file.display())]
    NoWatch { file: PathBuf },
    #[error("{}: {count} ChangeOrderWatch documents; probe takes one", .file.display())]
    SeveralWatches { file: PathBuf, count: usize },
    #[error("{}: {source}", .file.display())]
    Reserialize {
        file: PathBuf,
        source: serde_yaml::Error,
    },
    /// `message` is serde's, naming the field, without its line number (see `read_watch`).
    #[error("{}: {message}", .file.display())]
    InvalidWatch { file: PathBuf, message: String },
    #[error("{}: metadata.name is required", .file.display())]
    NoName { file: PathBuf },
    /// Only the line: serde_yaml's own message quotes the text, which may be a secret.
    #[error("{}: not a YAML or JSON map{}", .file.display(), at_line(.line))]
    NotYamlMap { file: PathBuf, line: Option<usize> },
    #[error("{}: {source}", .file.display())]
    Credentials {
        file: PathBuf,
        source: CredentialsFileError,
    },
    #[error("{}: {source}", .file.display())]
    CredentialsKeys { file: PathBuf, source: CredentialsError },
}

fn at_line(line: &Option<usize>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}

/// A credentials file whose content is not a map of the Secret's keys. Names keys, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsFileError {
    #[error("not a map of credentials keys")]
    NotAMap,
    #[error("data.{key} is not valid base64")]
    NotBase64 { key: String },
    #[error("data.{key} is not UTF-8 text")]
    NotUtf8 { key: String },
}

/// Why a watch's ServiceAccount gave no credentials to probe.
#[derive(Debug, thiserror::Error)]
pub enum ServiceAccountError {
    #[error("{}: {source}", .path.display())]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("spec.serviceAccountRef needs a cluster: {0}")]
    NoCluster(kube::config::InferConfigError),
    #[error(transparent)]
    Client(kube::Error),
    #[error("ServiceAccount {namespace}/{name}: {source}")]
    Identity {
        namespace: String,
        name: String,
        source: IdentityError,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct ProbeArgs {
    /// The ChangeOrderWatch manifest to poll for (YAML or JSON).
    #[arg(
        short = 'f',
        long = "file",
        env = "CHANGEORDER_PROBE_FILE",
        value_name = "WATCH.yaml"
    )]
    pub file: PathBuf,

    /// Credentials: a YAML/JSON map with the Secret's keys (accessKeyId, accessKeySecret,
    /// securityToken; or token for appstack), or a Secret manifest (data or stringData).
    /// Without it, ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET,
    /// ALIBABA_CLOUD_SECURITY_TOKEN or YUNXIAO_ACCESS_TOKEN are read, or for edas/sae the RRSA
    /// variables (ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN,
    /// ALIBABA_CLOUD_OIDC_TOKEN_FILE) to exchange the pod's OIDC token at STS.
    #[arg(long, env = "CHANGEORDER_PROBE_CREDENTIALS", value_name = "FILE")]
    pub credentials: Option<PathBuf>,

    /// Describe at most this many orders (each is one API call; SAE allows 60 calls a minute
    /// per account). Orders not described are printed from the list alone.
    #[arg(long, env = "CHANGEORDER_PROBE_MAX_DESCRIBE", default_value_t = 50)]
    pub max_describe: usize,

    /// Print what the list operation returns, without describing any order.
    #[arg(long, env = "CHANGEORDER_PROBE_LIST_ONLY")]
    pub list_only: bool,

    /// Seconds before one HTTP request gives up.
    #[arg(long, env = "CHANGEORDER_PROBE_TIMEOUT", default_value_t = 30)]
    pub timeout: u64,

    /// For a watch with spec.serviceAccountRef: the kubeconfig whose user may create tokens
    /// for that ServiceAccount (unset: the usual in-cluster / ~/.kube/config inference).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// For a watch with spec.serviceAccountRef: the namespace of the ServiceAccount (default:
    /// the watch's metadata.namespace, else `default`).
    #[arg(long, short = 'n', env = "CHANGEORDER_PROBE_NAMESPACE")]
    pub namespace: Option<String>,

    /// STS endpoint for keyless sources (unset: ALIBABA_CLOUD_STS_ENDPOINT and the other
    /// official variables, else https://sts.aliyuncs.com).
    #[arg(long, env = "CHANGEORDER_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,

    /// ECS metadata service, for `spec.credentials.source: OperatorIdentity` on an ECS node.
    #[arg(long, env = "CHANGEORDER_ECS_METADATA_ENDPOINT", default_value = changeorder_cloud::imds::DEFAULT_METADATA_ENDPOINT)]
    pub ecs_metadata_endpoint: String,
}

/// Entry point from the CLI.
pub fn main(args: ProbeArgs) -> ExitCode {
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args, |k| std::env::var(k).ok())) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// Logs only when `RUST_LOG` asks for them, so stderr stays one line on error by default.
fn init_tracing() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Poll once and render the YAML stream. `env` looks up environment variables.
pub async fn run(args: &ProbeArgs, env: impl Fn(&str) -> Option<String>) -> Result<String, ProbeError> {
    let watch = read_watch(&args.file)?;
    let target = watch.spec.target().map_err(|source| ProbeError::Target {
        file: args.file.clone(),
        source,
    })?;
    let cfg = ClientConfig {
        request_timeout: std::time::Duration::from_secs(args.timeout.max(1)),
        read_timeout: std::time::Duration::from_secs(args.timeout.max(1)),
        ..ClientConfig::default()
    };
    let source = source_of(&watch.spec).map_err(|source| ProbeError::CredentialSource {
        file: args.file.clone(),
        source,
    })?;
    let creds = match (&args.credentials, source) {
        (Some(path), _) => read_credentials(path, target.provider)?,
        (None, Source::ServiceAccount(r)) => service_account_credentials(args, &watch, &r, &env).await?,
        (None, Source::OperatorIdentity) => {
            let chain =
                ChainConfig::from_env_with(&env, args.sts_endpoint.as_deref(), &args.ecs_metadata_endpoint);
            let chain = OperatorChain::new(chain, &cfg).map_err(ProbeError::OperatorIdentity)?;
            let what = chain.config().describe();
            chain
                .credentials(changeorder_cloud::sts::REFRESH_MARGIN)
                .await
                .map_err(|source| ProbeError::OperatorCredentials { what, source })?
        }
        (None, Source::Secret(_)) => match Credentials::from_env_with(target.provider, &env) {
            Ok(c) => c,
            // Keyless (RRSA) when the pod's OIDC variables are there and no AccessKey is.
            Err(e) => match (target.provider, OidcConfig::from_env_with(&env)) {
                (Provider::Edas | Provider::Sae, Some(oidc)) => {
                    let oidc = oidc.map_err(ProbeError::Oidc)?;
                    let provider = OidcProvider::new(oidc, &cfg).map_err(ProbeError::OidcProvider)?;
                    provider.credentials().await.map_err(ProbeError::Rrsa)?
                }
                _ => return Err(ProbeError::NoCredentials(e)),
            },
        },
    };
    let client = CloudClient::try_new(cfg).map_err(ProbeError::Client)?;
    let max = if args.list_only { 0 } else { args.max_describe };
    let fetched = fetch(
        &client,
        &target,
        &creds,
        Listing::Cloud,
        |listed| choose(listed, max),
        &|| false,
    )
    .await
    .map_err(ProbeError::Fetch)?;
    if let Some(e) = fetched.first_failure() {
        return Err(ProbeError::Fetch(e.clone()));
    }
    // Probe has no stored objects: each order is the list's view merged with its describe.
    let orders: Vec<CloudOrder> = fetched
        .listed
        .iter()
        .map(|o| match fetched.details.get(&o.id) {
            Some(Detail::Found(d)) => merge(o, (**d).clone()),
            _ => o.clone(),
        })
        .collect();
    let now = jiff::Timestamp::now();
    let mut out = String::new();
    for order in &orders {
        let obj = crate::mapping::desired_object(&watch, &target.app, order, None, now);
        let yaml = serde_yaml::to_string(&obj).map_err(|source| ProbeError::Render {
            id: order.id.clone(),
            source,
        })?;
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    Ok(out)
}

/// Mint a token of the watch's ServiceAccount with the user's kubeconfig and exchange it at
/// STS, as the controller does.
async fn service_account_credentials(
    args: &ProbeArgs,
    watch: &ChangeOrderWatch,
    r: &crate::crd::ServiceAccountRef,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Credentials, ServiceAccountError> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let config = match &args.kubeconfig {
        Some(path) => {
            let in_file = |source| ServiceAccountError::Kubeconfig {
                path: path.clone(),
                source,
            };
            let kc = Kubeconfig::read_from(path).map_err(in_file)?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(in_file)?
        }
        None => kube::Config::infer()
            .await
            .map_err(ServiceAccountError::NoCluster)?,
    };
    let client = kube::Client::try_from(config).map_err(ServiceAccountError::Client)?;
    let ns = args
        .namespace
        .clone()
        .or_else(|| watch.metadata.namespace.clone())
        .unwrap_or_else(|| "default".into());
    let sts_endpoint = args
        .sts_endpoint
        .clone()
        .unwrap_or_else(|| changeorder_cloud::chain::sts_endpoint_from_env(env));
    let identities = Identities::new(KeylessSettings {
        sts_endpoint,
        ..KeylessSettings::default()
    });
    // probe runs with the user's own rights; the operator's endpoint policy is not its to apply.
    identities
        .service_account(&client, &ns, r, &Metrics::new())
        .await
        .map_err(|source| ServiceAccountError::Identity {
            namespace: ns,
            name: r.name.clone(),
            source,
        })
}

/// Which listed orders probe describes: in-flight ones first (they matter most when the
/// limit is reached), at most `max`.
fn choose(listed: &[CloudOrder], max: usize) -> Vec<String> {
    let mut ids: Vec<&CloudOrder> = listed.iter().collect();
    ids.sort_by_key(|o| is_terminal(o));
    if ids.len() > max && max > 0 {
        tracing::warn!(listed = ids.len(), described = max, "describe limit reached");
    }
    ids.into_iter().take(max).map(|o| o.id.clone()).collect()
}

fn is_terminal(o: &CloudOrder) -> bool {
    crate::mapping::classify(o.provider, &o.status).0.is_terminal()
}

/// The one `ChangeOrderWatch` in the file (other documents, e.g. its Secret, are skipped).
pub fn read_watch(path: &Path) -> Result<ChangeOrderWatch, FileError> {
    let file = || path.to_path_buf();
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read { file: file(), source })?;
    let mut watches = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = <Value as serde::Deserialize>::deserialize(doc)
            .map_err(|source| FileError::NotYaml { file: file(), source })?;
        if value.is_null() {
            continue;
        }
        match value.get("kind").and_then(Value::as_str) {
            Some("ChangeOrderWatch") | None => watches.push(value),
            Some(_) => {}
        }
    }
    let value = match watches.len() {
        0 => return Err(FileError::NoWatch { file: file() }),
        1 => watches.remove(0),
        count => return Err(FileError::SeveralWatches { file: file(), count }),
    };
    // Deserialising from text (not from the Value) makes serde_yaml name the field's path
    // (`spec.provider: unknown variant ...`); its line numbers would be those of the
    // re-serialised document, so they are cut.
    let doc =
        serde_yaml::to_string(&value).map_err(|source| FileError::Reserialize { file: file(), source })?;
    let watch: ChangeOrderWatch = serde_yaml::from_str(&doc).map_err(|e| {
        let text = e.to_string();
        let text = text
            .rfind(" at line ")
            .map_or(text.as_str(), |i| &text[..i])
            .to_string();
        FileError::InvalidWatch {
            file: file(),
            message: text,
        }
    })?;
    if watch.metadata.name.as_deref().is_none_or(str::is_empty) {
        return Err(FileError::NoName { file: file() });
    }
    Ok(watch)
}

/// Credentials from a file: a flat map of the Secret's keys, or a Secret manifest whose
/// `data` (base64) and `stringData` (plain, wins) hold them.
pub fn read_credentials(path: &Path, provider: Provider) -> Result<Credentials, FileError> {
    let file = || path.to_path_buf();
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read { file: file(), source })?;
    // Parse errors from serde_yaml quote the offending text, which here may be a secret.
    let value: Value = serde_yaml::from_str(&text).map_err(|e| FileError::NotYamlMap {
        file: file(),
        line: e.location().map(|l| l.line()),
    })?;
    let map = credentials_map(&value).map_err(|source| FileError::Credentials { file: file(), source })?;
    Credentials::for_provider(provider, &map)
        .map_err(|source| FileError::CredentialsKeys { file: file(), source })
}

fn credentials_map(value: &Value) -> Result<BTreeMap<String, String>, CredentialsFileError> {
    let Some(top) = value.as_mapping() else {
        return Err(CredentialsFileError::NotAMap);
    };
    let is_secret = value.get("kind").and_then(Value::as_str) == Some("Secret")
        || top.contains_key("data")
        || top.contains_key("stringData");
    let mut out = BTreeMap::new();
    if !is_secret {
        for (k, v) in top {
            if let (Some(k), Some(v)) = (k.as_str(), scalar(v)) {
                out.insert(k.to_string(), v);
            }
        }
        return Ok(out);
    }
    if let Some(data) = value.get("data").and_then(Value::as_mapping) {
        for (k, v) in data {
            let Some(k) = k.as_str() else { continue };
            let Some(encoded) = v.as_str() else { continue };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| CredentialsFileError::NotBase64 { key: k.to_string() })?;
            let text =
                String::from_utf8(bytes).map_err(|_| CredentialsFileError::NotUtf8 { key: k.to_string() })?;
            out.insert(k.to_string(), text);
        }
    }
    if let Some(data) = value.get("stringData").and_then(Value::as_mapping) {
        for (k, v) in data {
            if let (Some(k), Some(v)) = (k.as_str(), scalar(v)) {
                out.insert(k.to_string(), v);
            }
        }
    }
    Ok(out)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt as _;
    use std::io::Write as _;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn credentials_flat_map_and_secret() {
        let flat = file("accessKeyId: LTAIexample\naccessKeySecret: 's3cr3t'\n");
        let c = read_credentials(flat.path(), Provider::Sae).unwrap();
        assert_eq!(c.access_key_id(), Some("LTAIexample"));
        let json = file(r#"{"token": "pt-abc"}"#);
        assert_eq!(
            read_credentials(json.path(), Provider::Appstack).unwrap(),
            Credentials::Token("pt-abc".into())
        );
        // Secret with data (base64 of "id\n" and "sec") and stringData overriding nothing else.
        let secret = file(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: c}\ndata:\n  accessKeyId: aWQK\n  accessKeySecret: c2Vj\nstringData:\n  securityToken: sts\n",
        );
        assert_eq!(
            read_credentials(secret.path(), Provider::Edas).unwrap(),
            Credentials::AccessKey {
                access_key_id: "id".into(),
                access_key_secret: "sec".into(),
                security_token: Some("sts".into()),
            }
        );
        let bad = file("kind: Secret\ndata:\n  accessKeySecret: '!!notbase64'\n");
        let e = read_credentials(bad.path(), Provider::Edas)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("data.accessKeySecret is not valid base64"), "{e}");
        assert!(!e.contains("notbase64"));
        let missing = file("accessKeyId: x\n");
        let e = read_credentials(missing.path(), Provider::Sae)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing credentials key accessKeySecret"), "{e}");
        let broken = file("accessKeySecret: [unclosed TopSecret\n");
        let e = read_credentials(broken.path(), Provider::Sae)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("TopSecret"), "{e}");
        let e = read_credentials(Path::new("/nonexistent/creds.yaml"), Provider::Sae)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/creds.yaml: "), "{e}");
    }

    const WATCH: &str = "apiVersion: changeorder.io/v1alpha1\nkind: ChangeOrderWatch\nmetadata: {name: w, namespace: ns}\nspec:\n  provider: sae\n  region: cn-hangzhou\n  appId: app\n  credentialsSecretRef: {name: s}\n";

    #[test]
    fn watch_file() {
        let w = read_watch(file(WATCH).path()).unwrap();
        assert_eq!(w.name_any(), "w");
        let multi = format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\n---\n{WATCH}");
        assert_eq!(read_watch(file(&multi).path()).unwrap().name_any(), "w");
        let two = format!("{WATCH}---\n{WATCH}");
        assert!(
            read_watch(file(&two).path())
                .unwrap_err()
                .to_string()
                .contains("2 ChangeOrderWatch documents")
        );
        let none = file("kind: Secret\n");
        assert!(
            read_watch(none.path())
                .unwrap_err()
                .to_string()
                .contains("no ChangeOrderWatch")
        );
        let noname = file(
            "kind: ChangeOrderWatch\nmetadata: {}\nspec: {provider: sae, appId: a, region: r, credentialsSecretRef: {name: s}}\n",
        );
        assert!(
            read_watch(noname.path())
                .unwrap_err()
                .to_string()
                .contains("metadata.name is required")
        );
        let badspec = file("kind: ChangeOrderWatch\nmetadata: {name: x}\nspec: {provider: nope}\n");
        let e = read_watch(badspec.path()).unwrap_err().to_string();
        assert!(
            e.ends_with(": spec.provider: unknown variant `nope`, expected one of `edas`, `sae`, `appstack`"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn spec_errors_name_file_and_field() {
        let f = file(
            "kind: ChangeOrderWatch\nmetadata: {name: x}\nspec: {provider: edas, region: r, credentialsSecretRef: {name: s}}\n",
        );
        let args = ProbeArgs {
            file: f.path().to_path_buf(),
            credentials: None,
            max_describe: 1,
            list_only: false,
            timeout: 1,
            kubeconfig: None,
            namespace: None,
            sts_endpoint: None,
            ecs_metadata_endpoint: changeorder_cloud::imds::DEFAULT_METADATA_ENDPOINT.into(),
        };
        let e = run(&args, |_| None).await.unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: spec.appId is required when spec.provider is edas or sae",
                f.path().display()
            )
        );
        let ok = file(WATCH);
        let args = ProbeArgs {
            file: ok.path().to_path_buf(),
            ..args
        };
        let e = run(&args, |_| None).await.unwrap_err().to_string();
        assert!(
            e.starts_with("environment variable ALIBABA_CLOUD_ACCESS_KEY_ID is not set"),
            "{e}"
        );
    }

    #[test]
    fn an_unparsable_credentials_file_names_only_the_line() {
        let at = |line| FileError::NotYamlMap {
            file: "/c.yaml".into(),
            line,
        };
        assert_eq!(
            at(Some(3)).to_string(),
            "/c.yaml: not a YAML or JSON map at line 3"
        );
        assert_eq!(at(None).to_string(), "/c.yaml: not a YAML or JSON map");
    }

    #[test]
    fn one_line_flattens() {
        assert_eq!(one_line("a\n b\r\n\nc"), "a b c");
    }
}

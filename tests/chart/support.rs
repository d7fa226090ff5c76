//! Helpers for the chart tests: find `helm`, render the chart, pick objects out of the output.

#![allow(dead_code)] // each test crate uses a different part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml::Value;

pub const RELEASE: &str = "co";
pub const NAMESPACE: &str = "changeorder-system";

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart_dir() -> PathBuf {
    root().join("charts/changeorder-operator")
}

/// A values file of the chart's `ci/` profiles (`namespaced`, `ha`, `full`).
pub fn profile(name: &str) -> String {
    chart_dir()
        .join(format!("ci/{name}-values.yaml"))
        .display()
        .to_string()
}

/// Where the project's control-plane binaries are: `CONTROLPLANE_BIN_DIR` (set by tests/run.sh),
/// else the build cache of tests/tools/controlplane-bins.sh.
pub fn controlplane_bin(name: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CONTROLPLANE_BIN_DIR") {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?
        .join("changeorder-operator/controlplane");
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin").join(name)))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// A linter built by tests/tools/lint-bins.sh (`promtool`, `actionlint`): in `LINT_BIN_DIR`
/// (set by tests/run.sh), else in that script's cache; `None` after printing why the caller
/// skips. In CI a missing linter is a failure.
pub fn lint_bin(name: &str) -> Option<PathBuf> {
    let in_env = std::env::var_os("LINT_BIN_DIR").map(|d| PathBuf::from(d).join(name));
    let found = in_env.filter(|p| p.is_file()).or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?
            .join("changeorder-operator/lint");
        let mut found: Vec<PathBuf> = std::fs::read_dir(cache)
            .ok()?
            .filter_map(|e| Some(e.ok()?.path().join("bin").join(name)))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        found.pop()
    });
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{name} not found: CI builds it with tests/tools/lint-bins.sh");
        }
        eprintln!("SKIPPED: {name} not found (run tests/tools/lint-bins.sh and set LINT_BIN_DIR)");
    }
    found
}

/// `helm`, or `None` after printing why the caller skips. In CI a missing helm is a failure.
pub fn helm() -> Option<PathBuf> {
    let found = controlplane_bin("helm").or_else(|| which("helm"));
    if found.is_none() {
        missing_tool("helm");
    }
    found
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub fn missing_tool(name: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{name} not found: CI builds it with tests/tools/controlplane-bins.sh");
    }
    eprintln!(
        "SKIPPED: {name} not found (run tests/tools/controlplane-bins.sh and set CONTROLPLANE_BIN_DIR)"
    );
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `helm template` of the chart with extra arguments (`-f file`, `--set k=v`); the manifest text
/// or helm's error output.
pub fn template(helm: &Path, args: &[&str]) -> Result<String, String> {
    template_release(helm, RELEASE, args)
}

/// [`template`] under another release name.
pub fn template_release(helm: &Path, release: &str, args: &[&str]) -> Result<String, String> {
    let out = run(Command::new(helm)
        .args(["template", release])
        .arg(chart_dir())
        .args(["--namespace", NAMESPACE])
        .args(args));
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("utf-8 manifest"))
    } else {
        Err(text(&out))
    }
}

/// Every object in a YAML stream (empty documents dropped).
pub fn objects(manifest: &str) -> Vec<Value> {
    strict_objects(manifest).unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}"))
}

/// Every object in a YAML stream, or the first parse error. Strict: a mapping with a key given
/// twice is an error (serde_yaml refuses it), as it is for kubectl's strict decoding, where a
/// lenient parser would silently keep one of the two.
pub fn strict_objects(manifest: &str) -> Result<Vec<Value>, String> {
    let mut objs = Vec::new();
    for d in serde_yaml::Deserializer::from_str(manifest) {
        let v = <Value as serde::Deserialize>::deserialize(d).map_err(|e| e.to_string())?;
        if !v.is_null() {
            objs.push(v);
        }
    }
    Ok(objs)
}

pub fn render(helm: &Path, args: &[&str]) -> Vec<Value> {
    objects(&template(helm, args).unwrap_or_else(|e| panic!("helm template {args:?} failed:\n{e}")))
}

pub fn of_kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"].as_str() == Some(kind)).collect()
}

pub fn one<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(objs, kind);
    assert_eq!(found.len(), 1, "exactly one {kind}, got {}", found.len());
    found[0]
}

pub fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

/// The operator container of the Deployment.
pub fn container(objs: &[Value]) -> &Value {
    let containers = &one(objs, "Deployment")["spec"]["template"]["spec"]["containers"];
    containers
        .as_sequence()
        .and_then(|c| c.iter().find(|c| c["name"].as_str() == Some("operator")))
        .expect("operator container")
}

/// The container's plain `env` values by name (downward-API entries map to `None`).
pub fn env(objs: &[Value]) -> Vec<(String, Option<String>)> {
    container(objs)["env"]
        .as_sequence()
        .expect("env list")
        .iter()
        .map(|e| {
            (
                str_of(&e["name"]).to_string(),
                e["value"].as_str().map(str::to_string),
            )
        })
        .collect()
}

pub fn env_value(objs: &[Value], name: &str) -> Option<String> {
    env(objs)
        .into_iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v)
}

/// Values documented as a whole in the README's values table, not key by key: free-form
/// Kubernetes objects whose keys are Kubernetes' own.
pub const DOCUMENTED_WHOLE: [&str; 5] = [
    "podSecurityContext",
    "securityContext",
    "resources",
    "livenessProbe",
    "readinessProbe",
];

/// The README's values table, generated from values.yaml the way helm-docs reads it: each row is
/// a value that is not a non-empty map (maps are walked into, except [`DOCUMENTED_WHOLE`]); its
/// description is the `# -- ` comment above the key (continued by the `#` lines under it, up to
/// the key), its default the value as JSON unless a `# @default -- text` line gives another.
/// Plain `#` comments are left out. Every row must have a description: `Err` lists those that
/// do not.
pub fn values_table(values_yaml: &str) -> Result<String, Vec<String>> {
    let tree: Value = serde_yaml::from_str(values_yaml).expect("values.yaml parses");
    // Comments by dotted key path.
    let mut docs: std::collections::HashMap<String, (String, Option<String>)> = Default::default();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let (mut desc, mut default): (Option<String>, Option<String>) = (None, None);
    for line in values_yaml.lines() {
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if let Some(rest) = t.strip_prefix("# --") {
            desc = Some(rest.trim().to_string());
        } else if let Some(rest) = t.strip_prefix("# @default --") {
            default = Some(rest.trim().to_string());
        } else if let Some(rest) = t.strip_prefix('#') {
            if let Some(d) = desc.as_mut() {
                d.push(' ');
                d.push_str(rest.trim());
            }
        } else if t.is_empty() || t.starts_with('-') {
            // A blank line ends a comment block; list items hold no documented keys.
            (desc, default) = (None, None);
        } else if let Some((key, _)) = t.split_once(':') {
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            stack.push((indent, key.to_string()));
            let path: Vec<&str> = stack.iter().map(|(_, k)| k.as_str()).collect();
            if let Some(d) = desc.take() {
                docs.insert(path.join("."), (d, default.take()));
            }
            default = None;
        }
    }
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
        match v {
            Value::Mapping(m) if !m.is_empty() && !DOCUMENTED_WHOLE.contains(&prefix) => {
                for (k, v) in m {
                    let key = str_of(k);
                    let path = if prefix.is_empty() {
                        key.to_string()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&path, v, out);
                }
            }
            _ => out.push((prefix.to_string(), v.clone())),
        }
    }
    let mut leaves = Vec::new();
    walk("", &tree, &mut leaves);
    let mut table = String::from("| key | default | description |\n|---|---|---|\n");
    let mut undocumented = Vec::new();
    for (path, value) in leaves {
        let Some((desc, default)) = docs.get(&path) else {
            undocumented.push(path);
            continue;
        };
        let default = default
            .clone()
            .unwrap_or_else(|| format!("`{}`", serde_json::to_string(&value).expect("JSON default")));
        let cell = |s: &str| s.replace('|', "\\|");
        table.push_str(&format!("| `{path}` | {} | {} |\n", cell(&default), cell(desc)));
    }
    if undocumented.is_empty() {
        Ok(table)
    } else {
        Err(undocumented)
    }
}

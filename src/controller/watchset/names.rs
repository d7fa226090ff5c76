//! Names of generated watches: `<set>-<app>`, DNS-safe, at most 63 characters (a watch's name
//! is a label value on its ChangeOrders), the same for the same set and apps on every run.
//!
//! The app part is the app's name (its id when it has none), lower-cased with every run of
//! other characters turned into one `-`. When that loses information (the name had capitals or
//! other characters), when the result is too long, or when two apps of the set end up with the
//! same name, an 8-hex-digit hash of the app's id is appended, so different apps never share a
//! watch.

use std::collections::BTreeMap;

use sha2::Digest;

/// Longest watch name: a label value.
pub const MAX_NAME: usize = 63;
const HASH_LEN: usize = 8;

/// An app the set watches: its id (unique in the set) and the name it is known by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AppKey {
    pub id: String,
    pub name: Option<String>,
}

impl AppKey {
    /// How the app is named in status and messages.
    pub fn label(&self) -> &str {
        self.name.as_deref().filter(|n| !n.is_empty()).unwrap_or(&self.id)
    }
}

/// Lower-case letters, digits and single inner hyphens.
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

fn hash8(id: &str) -> String {
    let d = sha2::Sha256::digest(format!("changeorder.io/watch-set/{id}").as_bytes());
    hex::encode(&d[..HASH_LEN / 2])
}

fn plain(set: &str, app: &AppKey) -> (String, bool) {
    let label = app.label();
    let part = sanitize(label);
    let lossy = part != label || part.is_empty();
    let name = if part.is_empty() {
        sanitize(set)
    } else {
        format!("{}-{part}", sanitize(set))
    };
    (name, lossy)
}

fn suffixed(base: &str, id: &str) -> String {
    let keep = MAX_NAME - HASH_LEN - 1;
    let head: String = base.chars().take(keep).collect();
    format!("{}-{}", head.trim_end_matches('-'), hash8(id))
}

/// The watch name of every app, in one pass so that collisions are seen.
pub fn watch_names(set: &str, apps: &[AppKey]) -> BTreeMap<String, AppKey> {
    let plains: Vec<(String, bool)> = apps.iter().map(|a| plain(set, a)).collect();
    let mut uses: BTreeMap<&str, usize> = BTreeMap::new();
    for (p, _) in &plains {
        *uses.entry(p.as_str()).or_default() += 1;
    }
    let mut out = BTreeMap::new();
    for (app, (p, lossy)) in apps.iter().zip(&plains) {
        let name = if *lossy || p.len() > MAX_NAME || uses.get(p.as_str()).copied().unwrap_or(0) > 1 {
            suffixed(p, &app.id)
        } else {
            p.clone()
        };
        out.insert(name, app.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, name: Option<&str>) -> AppKey {
        AppKey {
            id: id.into(),
            name: name.map(str::to_string),
        }
    }

    fn dns_label(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_NAME
            && !s.starts_with('-')
            && !s.ends_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    #[test]
    fn readable_names_stay_readable() {
        let names = watch_names("shop", &[app("a1", Some("web")), app("a2", Some("api-gw"))]);
        let got: Vec<&str> = names.keys().map(String::as_str).collect();
        assert_eq!(got, ["shop-api-gw", "shop-web"]);
        assert_eq!(names["shop-web"].id, "a1");
    }

    #[test]
    fn every_name_is_a_dns_label_and_deterministic() {
        let apps = vec![
            app("id-1", Some("Web_Shop")),
            app("id-2", Some("web.shop")),
            app("id-3", Some(&"x".repeat(100))),
            app("7c1f-UUID", None),
            app("id-5", Some("日本語")),
            app("id-6", Some("--")),
        ];
        let long_set = "s".repeat(70);
        for set in ["shop", long_set.as_str(), "a.b"] {
            let first = watch_names(set, &apps);
            assert_eq!(first.len(), apps.len(), "one watch per app: {first:?}");
            for name in first.keys() {
                assert!(dns_label(name), "{name:?}");
            }
            let mut reversed = apps.clone();
            reversed.reverse();
            assert_eq!(watch_names(set, &reversed), first, "order does not matter");
        }
    }

    #[test]
    fn lossy_or_colliding_names_get_the_id_hash() {
        let names = watch_names("s", &[app("id-1", Some("Web")), app("id-2", Some("web"))]);
        assert_eq!(names.len(), 2);
        assert!(
            names.contains_key(&format!("s-web-{}", hash8("id-1"))),
            "{names:?}"
        );
        // Two apps with the same name (EDAS apps of two clusters): both hashed, never shared.
        let names = watch_names("s", &[app("id-1", Some("web")), app("id-2", Some("web"))]);
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.keys().all(|n| n.starts_with("s-web-")));
        // Alone again, the plain name.
        let names = watch_names("s", &[app("id-2", Some("web"))]);
        assert_eq!(names.keys().next().map(String::as_str), Some("s-web"));
    }

    #[test]
    fn too_long_names_are_cut_and_hashed() {
        let names = watch_names(&"s".repeat(60), &[app("id-1", Some("web"))]);
        let name = names.keys().next().expect("a name");
        assert_eq!(name.len(), MAX_NAME);
        assert!(name.ends_with(&hash8("id-1")));
    }
}

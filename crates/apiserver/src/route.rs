//! Request paths and query strings, parsed into what the handlers need.

use crate::registry::{self, Resource, Subresource};

/// What a path names.
#[derive(Debug)]
pub enum Route {
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/<group>`
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`
    ResourceList {
        group: String,
        version: String,
    },
    /// A resource, a collection or one object, with an optional subresource.
    Resource(ResourceRoute),
    Version,
    Health(&'static str),
    OpenApiV3Root,
    OpenApiV3 {
        group: String,
        version: String,
    },
    OpenApiV2,
    Metrics,
}

#[derive(Debug)]
pub struct ResourceRoute {
    pub resource: &'static Resource,
    /// The namespace from the path (`/namespaces/<ns>/...`), if any.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<Subresource>,
}

/// Parses a path. `None` means nothing is served there (404).
pub fn parse(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["api"] => Some(Route::CoreVersions),
        ["apis"] => Some(Route::Groups),
        ["version"] => Some(Route::Version),
        ["healthz"] => Some(Route::Health("healthz")),
        ["livez"] => Some(Route::Health("livez")),
        ["readyz"] => Some(Route::Health("readyz")),
        ["metrics"] => Some(Route::Metrics),
        ["openapi", "v2"] => Some(Route::OpenApiV2),
        ["openapi", "v3"] => Some(Route::OpenApiV3Root),
        ["openapi", "v3", "api", v] => Some(Route::OpenApiV3 { group: String::new(), version: (*v).to_owned() }),
        ["openapi", "v3", "apis", g, v] => Some(Route::OpenApiV3 { group: (*g).to_owned(), version: (*v).to_owned() }),
        ["api", "v1"] => Some(Route::ResourceList { group: String::new(), version: "v1".into() }),
        ["apis", g] if registry::groups().contains(g) => Some(Route::Group((*g).to_owned())),
        ["apis", g, v] if registry::RESOURCES.iter().any(|r| r.group == *g && r.version == *v) => {
            Some(Route::ResourceList { group: (*g).to_owned(), version: (*v).to_owned() })
        }
        ["api", "v1", rest @ ..] => parse_resource("", "v1", rest),
        ["apis", g, v, rest @ ..] => parse_resource(g, v, rest),
        _ => None,
    }
}

fn parse_resource(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    let route = |resource: &str, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| {
        let resource = registry::find(group, version, resource)?;
        if namespace.is_some() && !resource.namespaced {
            return None;
        }
        let subresource = match sub {
            None => None,
            Some(s) => Some(resource.subresources.iter().copied().find(|x| x.name() == s)?),
        };
        Some(Route::Resource(ResourceRoute {
            resource,
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            subresource,
        }))
    };
    match rest {
        // `/namespaces/<name>/status` is the namespace's own subresource, not a resource
        // called "status" inside it.
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
            route("namespaces", None, Some(name), Some(sub))
        }
        ["namespaces", ns, resource] => route(resource, Some(ns), None, None),
        ["namespaces", ns, resource, name] => route(resource, Some(ns), Some(name), None),
        ["namespaces", ns, resource, name, sub] => route(resource, Some(ns), Some(name), Some(sub)),
        [resource] => route(resource, None, None, None),
        [resource, name] => route(resource, None, Some(name), None),
        [resource, name, sub] => route(resource, None, Some(name), Some(sub)),
        _ => None,
    }
}

/// The query string, decoded. Keys may repeat (`command=a&command=b`).
#[derive(Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        let Some(q) = query else { return Query::default() };
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "")) && self.0.iter().any(|(k, _)| k == key)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourceRoute {
        match parse(path) {
            Some(Route::Resource(r)) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn resource_paths() {
        let r = res("/api/v1/namespaces/default/pods/nginx/exec");
        assert_eq!(
            (r.resource.resource, r.namespace.as_deref(), r.name.as_deref(), r.subresource),
            ("pods", Some("default"), Some("nginx"), Some(Subresource::Exec))
        );
        let r = res("/apis/apps/v1/namespaces/default/deployments/my-nginx/scale");
        assert_eq!(r.subresource, Some(Subresource::Scale));
        let r = res("/api/v1/pods");
        assert!(r.namespace.is_none() && r.name.is_none());
        let r = res("/api/v1/namespaces/kube-system");
        assert_eq!((r.resource.resource, r.name.as_deref()), ("namespaces", Some("kube-system")));
        let r = res("/api/v1/namespaces/kube-system/status");
        assert_eq!(r.subresource, Some(Subresource::Status));
        let r = res("/api/v1/nodes/n1/status");
        assert_eq!(r.subresource, Some(Subresource::Status));
        assert!(parse("/api/v1/namespaces/default/nodes").is_none(), "nodes are not namespaced");
        assert!(parse("/api/v1/namespaces/default/pods/a/bogus").is_none());
        assert!(parse("/apis/nope/v1/things").is_none());
    }

    #[test]
    fn queries() {
        let q = Query::parse(Some("labelSelector=run%3Dmy-nginx&limit=500&command=a&command=b+c&watch"));
        assert_eq!(q.get("labelSelector"), Some("run=my-nginx"));
        assert_eq!(q.all("command"), vec!["a", "b c"]);
        assert!(q.flag("watch"));
        assert!(!q.flag("missing"));
        assert_eq!(Query::parse(Some("x=%zz%4")).get("x"), Some("%zz%4"));
    }
}

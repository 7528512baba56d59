//! Discovery: the documents under `/api` and `/apis` that tell clients which resources exist,
//! in both forms upstream serves, and the `Accept` negotiation that picks between them.
//!
//! - Legacy discovery: `APIVersions` (`/api`), `APIGroupList` (`/apis`), `APIGroup`
//!   (`/apis/<group>`) and one `APIResourceList` per group-version (`/api/v1`, `/apis/<g>/<v>`).
//! - Aggregated discovery: one `APIGroupDiscoveryList` (`apidiscovery.k8s.io/v2` or `v2beta1`)
//!   for `/api` and one for `/apis`, which spares clients the per-group-version requests.
//!
//! Everything is derived from [`registry::RESOURCES`], so a resource added there shows up here
//! without further changes. These are pure functions: the HTTP layer negotiates with
//! [`negotiate`], then serves the chosen document with the [`Negotiated`] content type.

use serde_json::{Map, Value, json};

use crate::registry::{self, RESOURCES, Resource, Subresource, VERBS};

/// The `Content-Type` of every legacy discovery document.
pub const LEGACY_CONTENT_TYPE: &str = "application/json";

/// The group, version and kind a client names in `Accept` to ask for aggregated discovery.
const AGGREGATED_GROUP: &str = "apidiscovery.k8s.io";
const AGGREGATED_KIND: &str = "APIGroupDiscoveryList";

/// A version of aggregated discovery (`apidiscovery.k8s.io`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregatedVersion {
    /// `apidiscovery.k8s.io/v2`, asked for by kubectl 1.30 and later.
    V2,
    /// `apidiscovery.k8s.io/v2beta1`, the only version kubectl 1.27 to 1.29 understand.
    V2Beta1,
}

impl AggregatedVersion {
    fn from_version(version: &str) -> Option<AggregatedVersion> {
        match version {
            "v2" => Some(AggregatedVersion::V2),
            "v2beta1" => Some(AggregatedVersion::V2Beta1),
            _ => None,
        }
    }

    /// `v2` or `v2beta1`.
    pub fn version(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => "v2",
            AggregatedVersion::V2Beta1 => "v2beta1",
        }
    }

    /// The `Content-Type` to answer with. Clients decide between the aggregated and the
    /// legacy decoder by these parameters alone, so they must name the version that was served.
    pub fn content_type(self) -> &'static str {
        match self {
            AggregatedVersion::V2 => "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
            AggregatedVersion::V2Beta1 => "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
        }
    }
}

/// What to answer a discovery request with, as chosen from its `Accept` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// `Some` to serve [`aggregated`] in this version; `None` to serve the legacy document.
    pub aggregated: Option<AggregatedVersion>,
    /// The `Content-Type` to answer with.
    pub content_type: &'static str,
    /// `false` when the client accepts nothing this server produces (say, only YAML or
    /// protobuf): upstream answers 406 NotAcceptable, with a JSON `Status`.
    pub acceptable: bool,
}

impl Negotiated {
    const LEGACY: Negotiated = Negotiated { aggregated: None, content_type: LEGACY_CONTENT_TYPE, acceptable: true };
    const NOT_ACCEPTABLE: Negotiated =
        Negotiated { aggregated: None, content_type: LEGACY_CONTENT_TYPE, acceptable: false };

    fn aggregated(version: AggregatedVersion) -> Negotiated {
        Negotiated { aggregated: Some(version), content_type: version.content_type(), acceptable: true }
    }
}

/// `GET /api`: the core group's versions.
///
/// `server_address` is the `host:port` clients reach this server at; clients that care use it
/// to pick an address by their own network, and every client here matches `0.0.0.0/0`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `GET /apis`: every named group with its versions, the preferred one first.
pub fn api_group_list() -> Value {
    let groups: Vec<Value> = registry::groups().into_iter().map(group_value).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /apis/<group>`, or `None` when no such group is served.
pub fn api_group(group: &str) -> Option<Value> {
    let name = registry::groups().into_iter().find(|g| *g == group)?;
    let mut value = group_value(name);
    let map = value.as_object_mut()?;
    map.insert("kind".into(), json!("APIGroup"));
    map.insert("apiVersion".into(), json!("v1"));
    Some(value)
}

/// `GET /api/v1` or `GET /apis/<group>/<version>`: the resources of one group-version, each
/// subresource as its own `<resource>/<subresource>` entry, or `None` when nothing is served
/// there.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources: Vec<&Resource> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    if resources.is_empty() {
        return None;
    }
    // Upstream lists a group-version's resources sorted by name, and `kubectl api-resources`
    // prints them in the order it receives them.
    resources.sort_by_key(|r| r.resource);
    let mut entries = Vec::new();
    for r in resources {
        entries.push(legacy_resource(r));
        let mut subresources = r.subresources.to_vec();
        subresources.sort_by_key(|s| s.name());
        entries.extend(subresources.into_iter().map(|s| legacy_subresource(r, s)));
    }
    let group_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    let mut list = Map::new();
    list.insert("kind".into(), json!("APIResourceList"));
    // Upstream's core list carries no `apiVersion`; the named groups' lists do.
    if !group.is_empty() {
        list.insert("apiVersion".into(), json!("v1"));
    }
    list.insert("groupVersion".into(), json!(group_version));
    list.insert("resources".into(), Value::Array(entries));
    Some(Value::Object(list))
}

/// The aggregated discovery document: for `/api` (`core`) one item for the core group, whose
/// name is empty, and for `/apis` one item per named group.
pub fn aggregated(core: bool, version: AggregatedVersion) -> Value {
    let items: Vec<Value> =
        if core { vec![aggregated_group("")] } else { registry::groups().into_iter().map(aggregated_group).collect() };
    json!({
        "kind": AGGREGATED_KIND,
        "apiVersion": format!("{AGGREGATED_GROUP}/{}", version.version()),
        "metadata": {},
        "items": items,
    })
}

/// The storage version hash upstream puts in legacy discovery: the first 8 bytes of the
/// SHA-256 of `group/version/kind`, in base64. Clients use it only to notice that a resource's
/// storage version changed, so any stable value works; this one matches upstream's.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    use base64::Engine as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{group}/{version}/{kind}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..8])
}

/// The versions a group serves, in registry order; the first is the preferred one.
fn group_versions(group: &str) -> Vec<&'static str> {
    let mut versions: Vec<&'static str> = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group) {
        if !versions.contains(&r.version) {
            versions.push(r.version);
        }
    }
    versions
}

/// One group as `/apis` lists it (and `/apis/<group>` shows it).
fn group_value(group: &str) -> Value {
    let versions: Vec<Value> = group_versions(group)
        .into_iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

/// (group, version, kind) of what a subresource returns.
pub(crate) fn subresource_kind(sub: Subresource, parent: &Resource) -> (&'static str, &'static str, &'static str) {
    match sub {
        // `Subresource::response_kind` answers PodExecOptions for attach as well; upstream
        // advertises `pods/attach` with its own options kind.
        Subresource::Attach => ("", "v1", "PodAttachOptions"),
        _ => sub.response_kind(parent),
    }
}

/// Inserts `key` only when the list has entries: upstream omits empty short names and categories.
fn insert_nonempty(map: &mut Map<String, Value>, key: &str, values: &[&str]) {
    if !values.is_empty() {
        map.insert(key.into(), json!(values));
    }
}

fn legacy_resource(r: &Resource) -> Value {
    let mut map = Map::new();
    map.insert("name".into(), json!(r.resource));
    map.insert("singularName".into(), json!(r.singular));
    map.insert("namespaced".into(), json!(r.namespaced));
    map.insert("kind".into(), json!(r.kind));
    map.insert("verbs".into(), json!(VERBS));
    insert_nonempty(&mut map, "shortNames", r.short_names);
    insert_nonempty(&mut map, "categories", r.categories);
    map.insert("storageVersionHash".into(), json!(storage_version_hash(r.group, r.version, r.kind)));
    Value::Object(map)
}

fn legacy_subresource(parent: &Resource, sub: Subresource) -> Value {
    let (group, version, kind) = subresource_kind(sub, parent);
    let mut map = Map::new();
    map.insert("name".into(), json!(format!("{}/{}", parent.resource, sub.name())));
    map.insert("singularName".into(), json!(""));
    map.insert("namespaced".into(), json!(parent.namespaced));
    // Upstream names the group and version only when they differ from the parent's, as for
    // `deployments/scale` (autoscaling/v1 Scale).
    if (group, version) != (parent.group, parent.version) {
        map.insert("group".into(), json!(group));
        map.insert("version".into(), json!(version));
    }
    map.insert("kind".into(), json!(kind));
    map.insert("verbs".into(), json!(sub.verbs()));
    Value::Object(map)
}

/// One `APIGroupDiscovery` item: the group's versions, the preferred one first.
fn aggregated_group(group: &str) -> Value {
    let versions: Vec<Value> = group_versions(group)
        .into_iter()
        .map(|version| {
            let mut resources: Vec<&Resource> =
                RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
            resources.sort_by_key(|r| r.resource);
            let resources: Vec<Value> = resources.into_iter().map(aggregated_resource).collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

fn aggregated_resource(r: &Resource) -> Value {
    let mut map = Map::new();
    map.insert("resource".into(), json!(r.resource));
    map.insert("responseKind".into(), json!({"group": r.group, "version": r.version, "kind": r.kind}));
    map.insert("scope".into(), json!(if r.namespaced { "Namespaced" } else { "Cluster" }));
    map.insert("singularResource".into(), json!(r.singular));
    map.insert("verbs".into(), json!(VERBS));
    insert_nonempty(&mut map, "shortNames", r.short_names);
    insert_nonempty(&mut map, "categories", r.categories);
    let mut subresources = r.subresources.to_vec();
    subresources.sort_by_key(|s| s.name());
    let subresources: Vec<Value> = subresources
        .into_iter()
        .map(|s| {
            let (group, version, kind) = subresource_kind(s, r);
            json!({
                "subresource": s.name(),
                "responseKind": {"group": group, "version": version, "kind": kind},
                "verbs": s.verbs(),
            })
        })
        .collect();
    if !subresources.is_empty() {
        map.insert("subresources".into(), Value::Array(subresources));
    }
    Value::Object(map)
}

// === Accept negotiation ===
//
// This follows upstream step by step, because kubectl relies on its exact behaviour: serving
// v2 to kubectl 1.29, which asked only for v2beta1, made it lose every resource.
//
// 1. `goautoneg.ParseAccept` splits the header into media ranges and sorts them by q-value
//    (with its own, not quite consistent, preference for non-wildcards).
// 2. `negotiation.NegotiateMediaTypeOptions` takes the first range, in that order, that names
//    a media type the server produces and whose parameters the endpoint allows. For `/api` and
//    `/apis` the aggregated handler allows only ranges whose `g`, `v` and `as` name
//    `apidiscovery.k8s.io` `v2`/`v2beta1` `APIGroupDiscoveryList`; a plain `application/json`
//    range is skipped there, so an aggregated range anywhere in the header wins.
// 3. Without such a range the legacy handler negotiates again, allowing only ranges that ask
//    for no conversion at all; if none is left the answer is 406.
//
// rkube produces JSON only, so ranges for YAML or protobuf never match.

/// One media range of an `Accept` header.
#[derive(Debug, Clone, PartialEq)]
struct MediaRange<'a> {
    kind: &'a str,
    subtype: &'a str,
    q: f64,
    params: Vec<(&'a str, &'a str)>,
}

impl MediaRange<'_> {
    /// How specifically this range names `application/json`: 2 exactly, 1 as `application/*`,
    /// 0 as `*/*`, and `None` not at all.
    fn json_specificity(&self) -> Option<u8> {
        match (self.kind, self.subtype) {
            ("application", "json") => Some(2),
            ("application", "*") => Some(1),
            ("*", "*") => Some(0),
            _ => None,
        }
    }
}

/// HTTP's optional whitespace, which goautoneg trims around every token.
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// goautoneg's `Less`: a higher q first, and a concrete type or subtype before a wildcard one,
/// even against a higher q. The second rule makes this no consistent ordering, so the result
/// depends on the sort algorithm; [`parse_accept`] uses the insertion sort Go uses for short
/// slices.
fn range_less(a: &MediaRange<'_>, b: &MediaRange<'_>) -> bool {
    a.q > b.q || (a.kind != "*" && b.kind == "*") || (a.subtype != "*" && b.subtype == "*")
}

/// `goautoneg.ParseAccept`: the media ranges of `header`, most preferred first.
fn parse_accept(header: &str) -> Vec<MediaRange<'_>> {
    let mut ranges = Vec::new();
    for part in header.split(',') {
        let mut pieces = trim_ows(part).split(';');
        let media_range = pieces.next().unwrap_or("");
        let mut type_parts = media_range.split('/');
        let kind = trim_ows(type_parts.next().unwrap_or(""));
        let subtype = match (type_parts.next(), type_parts.next()) {
            (None, _) if kind == "*" => "*",
            (Some(subtype), None) => trim_ows(subtype),
            _ => continue,
        };
        let mut range = MediaRange { kind, subtype, q: 1.0, params: Vec::new() };
        for param in pieces {
            let mut kv = param.split('=');
            let (Some(key), Some(value), None) = (kv.next(), kv.next(), kv.next()) else { continue };
            let key = trim_ows(key);
            if key == "q" {
                // Go parses q as a float32 and ignores the error, which leaves 0.
                range.q = value.parse::<f32>().map_or(0.0, f64::from);
            } else {
                range.params.push((key, trim_ows(value)));
            }
        }
        ranges.push(range);
    }
    for i in 1..ranges.len() {
        let mut j = i;
        while j > 0 && range_less(&ranges[j], &ranges[j - 1]) {
            ranges.swap(j, j - 1);
            j -= 1;
        }
    }
    ranges
}

/// What a media range asks the server to convert its answer to: its `g`, `v` and `as`.
#[derive(Debug, Default, PartialEq, Eq)]
struct Conversion<'a> {
    group: &'a str,
    version: &'a str,
    kind: &'a str,
}

/// The conversion a media range asks for, if any, or `Err` when its other parameters rule out
/// the JSON serializer.
fn conversion<'a>(range: &MediaRange<'a>) -> Result<Option<Conversion<'a>>, ()> {
    let mut convert: Option<Conversion<'a>> = None;
    for &(key, value) in &range.params {
        match key {
            "g" => convert.get_or_insert_with(Conversion::default).group = value,
            "v" => convert.get_or_insert_with(Conversion::default).version = value,
            "as" => convert.get_or_insert_with(Conversion::default).kind = value,
            // JSON has a streaming form for watches only.
            "stream" if !value.is_empty() && value != "watch" => return Err(()),
            // No endpoint here serves another version of its group.
            "sv" if !value.is_empty() => return Err(()),
            _ => {}
        }
    }
    Ok(convert)
}

/// Upstream's `NegotiateMediaTypeOptions` for a server that produces JSON only: the first
/// acceptable range that `allows` the conversion it asks for, and that conversion.
fn negotiate_json<'a>(
    ranges: &[MediaRange<'a>],
    allows: impl Fn(Option<&Conversion<'a>>) -> bool,
) -> Option<Option<Conversion<'a>>> {
    // JSON is refused outright when the most specific range naming it has q=0; among equally
    // specific ranges the earlier one, in sorted order, decides, as upstream's loop does.
    let mut best: Option<(u8, f64)> = None;
    for range in ranges {
        if let Some(spec) = range.json_specificity()
            && best.is_none_or(|(best_spec, _)| spec > best_spec)
        {
            best = Some((spec, range.q));
        }
    }
    if best.is_some_and(|(_, q)| q <= 0.0) {
        return None;
    }
    ranges
        .iter()
        .filter(|range| range.q > 0.0 && range.json_specificity().is_some())
        .filter_map(|range| conversion(range).ok())
        .find(|convert| allows(convert.as_ref()))
}

/// Negotiates a request for `/api` or `/apis`: aggregated discovery in the version the client
/// asked for, else the legacy document. A missing or empty `Accept` gets the legacy document.
pub fn negotiate(accept: Option<&str>) -> Negotiated {
    let header = accept.unwrap_or("");
    if header.is_empty() {
        return Negotiated::LEGACY;
    }
    let ranges = parse_accept(header);
    let aggregated = negotiate_json(&ranges, |convert| {
        convert.is_some_and(|c| {
            c.group == AGGREGATED_GROUP
                && c.kind == AGGREGATED_KIND
                && AggregatedVersion::from_version(c.version).is_some()
        })
    });
    if let Some(version) = aggregated.flatten().and_then(|c| AggregatedVersion::from_version(c.version)) {
        return Negotiated::aggregated(version);
    }
    legacy(&ranges)
}

/// Negotiates a request for a document that exists only in legacy form: `/apis/<group>`,
/// `/api/v1` and `/apis/<group>/<version>`.
pub fn negotiate_legacy(accept: Option<&str>) -> Negotiated {
    let header = accept.unwrap_or("");
    if header.is_empty() {
        return Negotiated::LEGACY;
    }
    legacy(&parse_accept(header))
}

fn legacy(ranges: &[MediaRange<'_>]) -> Negotiated {
    match negotiate_json(ranges, |convert| convert.is_none()) {
        Some(_) => Negotiated::LEGACY,
        None => Negotiated::NOT_ACCEPTABLE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What kubectl 1.27 to 1.29 send for `/api` and `/apis` (client-go `discovery_client.go`).
    const KUBECTL_1_27: &str =
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    /// What kubectl 1.30 to 1.33 send (the traces in shared/reference/kubectl-traces).
    const KUBECTL_1_33: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    /// What the Python client sends.
    const PYTHON: &str = "application/json";

    #[test]
    fn kubectl_and_python_accept_headers() {
        assert_eq!(negotiate(Some(KUBECTL_1_33)), Negotiated::aggregated(AggregatedVersion::V2));
        assert_eq!(negotiate(Some(KUBECTL_1_27)), Negotiated::aggregated(AggregatedVersion::V2Beta1));
        assert_eq!(negotiate(Some(PYTHON)), Negotiated::LEGACY);
        assert_eq!(negotiate(Some("application/json, */*")), Negotiated::LEGACY);
        assert_eq!(negotiate(None), Negotiated::LEGACY);
        assert_eq!(negotiate(Some("")), Negotiated::LEGACY);
        assert_eq!(
            negotiate(Some(KUBECTL_1_33)).content_type,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
        assert_eq!(
            negotiate(Some(KUBECTL_1_27)).content_type,
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        );
        assert_eq!(negotiate(Some(PYTHON)).content_type, "application/json");
        for accept in [KUBECTL_1_27, KUBECTL_1_33, PYTHON, "application/json, */*"] {
            assert_eq!(negotiate_legacy(Some(accept)), Negotiated::LEGACY, "{accept}");
        }
    }

    #[test]
    fn never_v2_to_a_v2beta1_client() {
        let only_beta = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
        assert_eq!(negotiate(Some(only_beta)), Negotiated::aggregated(AggregatedVersion::V2Beta1));
        // A version upstream does not serve is skipped, not answered with the closest one.
        let v3_then_json = "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(Some(v3_then_json)), Negotiated::LEGACY);
    }

    #[test]
    fn q_values_order_the_ranges() {
        let prefer_beta = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0.5,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
        assert_eq!(negotiate(Some(prefer_beta)), Negotiated::aggregated(AggregatedVersion::V2Beta1));
        // q=0 means "not this one".
        let refuse_v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0,application/json";
        assert_eq!(negotiate(Some(refuse_v2)), Negotiated::LEGACY);
        assert_eq!(negotiate(Some("application/json;q=0")), Negotiated::NOT_ACCEPTABLE);
        assert_eq!(negotiate(Some("application/json;q=0, */*")), Negotiated::NOT_ACCEPTABLE);
    }

    #[test]
    fn aggregated_ranges_win_over_plain_json_as_upstream() {
        // The aggregated handler skips ranges without a conversion, so order between an
        // aggregated range and plain JSON does not matter.
        let json_first = "application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
        assert_eq!(negotiate(Some(json_first)), Negotiated::aggregated(AggregatedVersion::V2));
        // Spaces around ranges and parameters are allowed.
        let spaced = "application/json; g=apidiscovery.k8s.io; v=v2beta1; as=APIGroupDiscoveryList, application/json";
        assert_eq!(negotiate(Some(spaced)), Negotiated::aggregated(AggregatedVersion::V2Beta1));
        // Protobuf is not produced, so its aggregated range is passed over.
        let protobuf =
            "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(Some(protobuf)), Negotiated::LEGACY);
    }

    #[test]
    fn unproducible_types_are_not_acceptable() {
        assert_eq!(negotiate(Some("application/yaml")), Negotiated::NOT_ACCEPTABLE);
        assert_eq!(negotiate(Some("application/vnd.kubernetes.protobuf")), Negotiated::NOT_ACCEPTABLE);
        assert_eq!(negotiate(Some("application/vnd.kubernetes.protobuf, application/json")), Negotiated::LEGACY);
        // A Table is no discovery document.
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io";
        assert_eq!(negotiate(Some(table)), Negotiated::NOT_ACCEPTABLE);
        assert_eq!(negotiate_legacy(Some(table)), Negotiated::NOT_ACCEPTABLE);
        assert_eq!(negotiate(Some("*/*")), Negotiated::LEGACY);
        assert_eq!(negotiate(Some("application/*")), Negotiated::LEGACY);
    }

    #[test]
    fn parse_accept_matches_goautoneg() {
        let ranges = parse_accept("text/html;q=0.5, application/json ;v=1 , */*;q=0.8, bogus, a/b/c");
        let names: Vec<(&str, &str, f64)> = ranges.iter().map(|r| (r.kind, r.subtype, r.q)).collect();
        assert_eq!(names, vec![("application", "json", 1.0), ("*", "*", 0.800000011920929), ("text", "html", 0.5)]);
        assert_eq!(ranges[0].params, vec![("v", "1")]);
        // A malformed q counts as 0.
        assert_eq!(parse_accept("application/json;q=high")[0].q, 0.0);
    }

    #[test]
    fn legacy_documents() {
        let versions = api_versions("127.0.0.1:6443");
        assert_eq!(versions["kind"], "APIVersions");
        assert_eq!(versions["versions"], json!(["v1"]));
        assert_eq!(versions["serverAddressByClientCIDRs"][0]["serverAddress"], "127.0.0.1:6443");

        let list = api_group_list();
        assert_eq!(list["kind"], "APIGroupList");
        let groups: Vec<&str> =
            list["groups"].as_array().into_iter().flatten().filter_map(|g| g["name"].as_str()).collect();
        assert_eq!(groups, registry::groups());
        let apps = &list["groups"][0];
        assert_eq!(apps["name"], "apps");
        assert_eq!(apps["preferredVersion"], json!({"groupVersion": "apps/v1", "version": "v1"}));
        assert_eq!(apps["versions"], json!([{"groupVersion": "apps/v1", "version": "v1"}]));

        let group = api_group("discovery.k8s.io").expect("served group");
        assert_eq!(group["kind"], "APIGroup");
        assert_eq!(group["name"], "discovery.k8s.io");
        assert!(api_group("batch").is_none());
        assert!(api_group("").is_none());
    }

    fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
        list["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == name))
            .unwrap_or_else(|| panic!("no {name} in {list}"))
    }

    #[test]
    fn resource_lists() {
        let core = api_resource_list("", "v1").expect("core/v1");
        assert_eq!(core["groupVersion"], "v1");
        assert!(core.get("apiVersion").is_none());
        let pods = entry(&core, "pods");
        assert_eq!(pods["singularName"], "pod");
        assert_eq!(pods["namespaced"], true);
        assert_eq!(pods["kind"], "Pod");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        assert_eq!(pods["storageVersionHash"], "xPOwRZ+Yhw8=");
        assert_eq!(pods["verbs"], json!(VERBS));
        assert_eq!(entry(&core, "pods/status")["kind"], "Pod");
        assert_eq!(entry(&core, "pods/status")["verbs"], json!(["get", "patch", "update"]));
        assert_eq!(entry(&core, "pods/binding")["kind"], "Binding");
        assert_eq!(entry(&core, "pods/exec")["kind"], "PodExecOptions");
        assert_eq!(entry(&core, "pods/attach")["kind"], "PodAttachOptions");
        assert_eq!(entry(&core, "pods/log")["kind"], "Pod");
        assert!(entry(&core, "pods/log").get("group").is_none());
        // Empty lists are left out, as upstream does.
        assert!(entry(&core, "secrets").get("shortNames").is_none());
        assert!(entry(&core, "secrets").get("categories").is_none());
        assert_eq!(entry(&core, "nodes")["namespaced"], false);

        let names: Vec<&str> =
            core["resources"].as_array().into_iter().flatten().filter_map(|r| r["name"].as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);

        let apps = api_resource_list("apps", "v1").expect("apps/v1");
        assert_eq!(apps["apiVersion"], "v1");
        assert_eq!(apps["groupVersion"], "apps/v1");
        let scale = entry(&apps, "deployments/scale");
        assert_eq!(
            (&scale["group"], &scale["version"], &scale["kind"]),
            (&json!("autoscaling"), &json!("v1"), &json!("Scale"))
        );
        assert_eq!(entry(&apps, "deployments")["storageVersionHash"], "8aSe+NMegvE=");

        assert!(api_resource_list("apps", "v1beta1").is_none());
        assert!(api_resource_list("batch", "v1").is_none());
    }

    #[test]
    fn every_served_resource_is_discoverable() {
        for r in RESOURCES {
            let list = api_resource_list(r.group, r.version).expect("served group-version");
            assert_eq!(entry(&list, r.resource)["kind"], r.kind);
            for s in r.subresources {
                entry(&list, &format!("{}/{}", r.resource, s.name()));
            }
        }
    }

    #[test]
    fn aggregated_documents() {
        let core = aggregated(true, AggregatedVersion::V2);
        assert_eq!(core["kind"], "APIGroupDiscoveryList");
        assert_eq!(core["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = core["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["name"], "");
        let v1 = &items[0]["versions"][0];
        assert_eq!(v1["version"], "v1");
        assert_eq!(v1["freshness"], "Current");
        let pods = v1["resources"].as_array().and_then(|rs| rs.iter().find(|r| r["resource"] == "pods")).expect("pods");
        assert_eq!(pods["responseKind"], json!({"group": "", "version": "v1", "kind": "Pod"}));
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["singularResource"], "pod");
        assert_eq!(pods["shortNames"], json!(["po"]));
        let subs: Vec<&str> =
            pods["subresources"].as_array().into_iter().flatten().filter_map(|s| s["subresource"].as_str()).collect();
        assert_eq!(subs, ["attach", "binding", "exec", "log", "status"]);
        let attach = &pods["subresources"][0];
        assert_eq!(attach["responseKind"], json!({"group": "", "version": "v1", "kind": "PodAttachOptions"}));
        assert_eq!(attach["verbs"], json!(["create", "get"]));

        let groups = aggregated(false, AggregatedVersion::V2Beta1);
        assert_eq!(groups["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        let names: Vec<&str> =
            groups["items"].as_array().into_iter().flatten().filter_map(|g| g["metadata"]["name"].as_str()).collect();
        assert_eq!(names, registry::groups());
        let deployments = &groups["items"][0]["versions"][0]["resources"][0];
        assert_eq!(deployments["resource"], "deployments");
        let scale = deployments["subresources"].as_array().and_then(|s| s.iter().find(|s| s["subresource"] == "scale"));
        assert_eq!(
            scale.map(|s| &s["responseKind"]),
            Some(&json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}))
        );
        let nodes = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["resource"] == "nodes"))
            .expect("nodes");
        assert_eq!(nodes["scope"], "Cluster");
        assert!(nodes.get("categories").is_none());
    }
}

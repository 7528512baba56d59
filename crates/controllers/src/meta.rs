//! Small helpers over object metadata shared by the controllers: keys, controller
//! references, selectors and timestamps.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference, Time};
use kube::{Resource, ResourceExt};
use rkube_apimachinery::selector;

/// `namespace/name` of a namespaced object, the unit of work of most controllers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Key {
        Key { namespace: namespace.into(), name: name.into() }
    }

    pub fn of<K: Resource>(obj: &K) -> Key {
        Key { namespace: obj.namespace().unwrap_or_default(), name: obj.name_any() }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The owner reference that marks the object's managing controller, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references.as_deref().unwrap_or_default().iter().find(|r| r.controller == Some(true))
}

/// A controller reference to `owner`, as upstream's `NewControllerRef`: controller and
/// blockOwnerDeletion both true.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `reference` names `owner` by kind, name and UID.
pub fn refers_to<K: Resource<DynamicType = ()>>(reference: &OwnerReference, owner: &K) -> bool {
    reference.kind == K::kind(&())
        && reference.name == owner.name_any()
        && Some(&reference.uid) == owner.meta().uid.as_ref()
}

/// The selector of a workload, converted for matching. A missing selector matches nothing,
/// as upstream's `LabelSelectorAsSelector(nil)`.
pub fn selector_of(selector: Option<&LabelSelector>) -> Result<selector::LabelSelector, crate::Error> {
    let json = serde_json::to_value(selector)?;
    selector::LabelSelector::from_label_selector_json(&json).map_err(|e| crate::Error::Invalid(e.to_string()))
}

/// The object's labels, or none.
pub fn labels(meta: &ObjectMeta) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    meta.labels.as_ref().unwrap_or(&EMPTY)
}

/// The time as a timestamp.
pub fn ts(t: &Time) -> jiff::Timestamp {
    t.0
}

/// Whether the object is being deleted.
pub fn deleting(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

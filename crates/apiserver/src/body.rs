//! Request bodies in, responses out: media types, decoding and the response body type.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

use crate::error::ApiError;
use crate::protobuf;

pub type Body = BoxBody<Bytes, Infallible>;

/// The largest request body accepted, as upstream's 3 MiB limit.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

pub const JSON: &str = "application/json";
pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    bytes_response(code, JSON, Bytes::from(serde_json::to_vec(value).unwrap_or_default()))
}

pub fn bytes_response(code: StatusCode, content_type: &str, bytes: Bytes) -> Response<Body> {
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code(), &e.to_status())
}

/// The media type of a request body, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| JSON.to_owned())
}

/// A decoded request body and the fields that the decoder could not place.
pub struct DecodedBody {
    pub object: Value,
    pub unknown_fields: Vec<String>,
}

/// Decodes an object body: JSON, YAML or Kubernetes protobuf.
/// `expect` is the (apiVersion, kind) the endpoint serves, used to fill in protobuf's envelope.
pub fn decode_object(headers: &HeaderMap, body: &[u8], expect: (&str, &str)) -> Result<DecodedBody, ApiError> {
    let ct = content_type(headers);
    let object = match ct.as_str() {
        "application/json" | "*/*" => decode_json(body)?,
        "application/yaml" | "application/apply-patch+yaml" => decode_yaml(body)?,
        protobuf::CONTENT_TYPE => {
            let decoded = protobuf::decode_expecting(body, expect.0, expect.1).map_err(|e| {
                if e.http_status() == 415 {
                    ApiError::UnsupportedMediaType { accepted: "application/json, application/yaml".into() }
                } else {
                    ApiError::bad_request(format!("failed to decode protobuf body: {e}"))
                }
            })?;
            return Ok(DecodedBody { object: decoded.object, unknown_fields: decoded.unknown_fields });
        }
        _ => {
            return Err(ApiError::UnsupportedMediaType {
                accepted: "application/json, application/yaml, application/vnd.kubernetes.protobuf".into(),
            });
        }
    };
    if !object.is_object() {
        return Err(ApiError::bad_request("Object 'Kind' is missing in the request body: not a JSON object"));
    }
    Ok(DecodedBody { object, unknown_fields: Vec::new() })
}

pub fn decode_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}")))
}

pub fn decode_yaml(body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the YAML body is not valid UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))
}

/// What the client accepts back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    Json,
    Table,
}

/// Picks the response format from `Accept`, in the client's order of preference.
/// Protobuf is never produced; a client that also accepts JSON gets JSON, as upstream allows.
pub fn negotiate(headers: &HeaderMap) -> Result<Accept, ApiError> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else { return Ok(Accept::Json) };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let param = |k: &str| params.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.as_str());
        match media.as_str() {
            "application/json" | "application/*" | "*/*" => {
                if param("as") == Some("Table") {
                    if param("g") == Some("meta.k8s.io") && matches!(param("v"), Some("v1" | "v1beta1")) {
                        return Ok(Accept::Table);
                    }
                    continue;
                }
                if param("as").is_some() {
                    continue;
                }
                return Ok(Accept::Json);
            }
            _ => continue,
        }
    }
    Err(ApiError::NotAcceptable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> Result<Accept, ApiError> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).expect("header"));
        negotiate(&h)
    }

    #[test]
    fn kubectl_table_accept() {
        let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(accept(table).ok(), Some(Accept::Table));
        assert_eq!(accept("application/vnd.kubernetes.protobuf,application/json").ok(), Some(Accept::Json));
        assert!(accept("application/vnd.kubernetes.protobuf").is_err());
        assert_eq!(accept("*/*").ok(), Some(Accept::Json));
    }

    #[test]
    fn yaml_and_json_bodies() {
        assert_eq!(decode_yaml(b"a: 1\nb: [x]\n").ok(), Some(serde_json::json!({"a": 1, "b": ["x"]})));
        assert!(decode_json(b"{bad").is_err());
    }
}

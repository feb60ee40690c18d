//! The OpenAPI 3.1 document of the API, served at `GET /openapi.json`. It is generated: each
//! route's `#[utoipa::path]` gives its parameters, bodies and statuses, the types it sends
//! give the schemas (`ToSchema`), and [`api::routes`](super::api::routes) registers each
//! handler together with its description, so a route cannot be served undocumented. What
//! every route shares is added here from the rules that enforce it: the 401, 403 and 415 of
//! [`guard`](super::guard), the bearer-token scheme, and the job name's pattern and length
//! from [`check_job_name`](sluice_core::job::check_job_name).

use sluice_core::job::MAX_JOB_NAME;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Required};

use super::guard;

/// The name of the bearer-token security scheme.
const BEARER: &str = "bearer";

/// A job name as a regular expression: letters, digits, `-`, `_`, `.`, not starting with `.`
/// (the length is `maxLength`). The rule is [`check_job_name`](sluice_core::job::check_job_name);
/// a test holds the two together.
pub const JOB_NAME_PATTERN: &str = "^[A-Za-z0-9_-][A-Za-z0-9._-]*$";

/// Operations whose body may be left out: `PUT /connector-plugins/{plugin}/config/validate`
/// reads no body as the empty config. (utoipa says a body is optional only by making it
/// nullable, and `null` is not a config.)
const OPTIONAL_BODIES: [(&str, &str); 1] = [("/connector-plugins/{plugin}/config/validate", "PUT")];

/// The document served, as JSON text.
pub struct Document {
    /// `GET /openapi.json`.
    pub json: String,
}

/// What the routes' annotations do not say: the title and the description.
pub fn base() -> OpenApi {
    OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("Sluice worker API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "REST API of `sluice worker`: jobs, their state, status and offsets, connector \
                     types, metrics and health. With `--token-file`, every request but /healthz and \
                     /readyz needs `Authorization: Bearer <token>` (401 without). Bodies are sent \
                     as `Content-Type: application/toml` or `application/json` (415 otherwise). \
                     A worker on a loopback address answers only to loopback host names, and \
                     refuses a request that changes something from another site (403). \
                     Generated from the worker's handlers and types.",
                ))
                .build(),
        )
        .build()
}

/// Complete the generated document: the rules every route shares, and the security this
/// worker enforces (required with a token, optional without).
pub fn finish(mut doc: OpenApi, has_token: bool) -> Document {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The token in the worker's `--token-file`"))
                .build(),
        ),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let methods = [
            ("GET", &mut item.get),
            ("PUT", &mut item.put),
            ("POST", &mut item.post),
            ("DELETE", &mut item.delete),
            ("PATCH", &mut item.patch),
        ];
        for (method, op) in methods {
            if let Some(op) = op {
                shared_rules(path, method, op, has_token);
                job_name_constraints(op);
                if OPTIONAL_BODIES.contains(&(path.as_str(), method))
                    && let Some(body) = &mut op.request_body
                {
                    body.required = Some(Required::False);
                }
            }
        }
    }
    let json = serde_json::to_value(&doc)
        .map(|mut doc| {
            link_created_jobs(&mut doc);
            doc
        })
        .and_then(|doc| serde_json::to_string_pretty(&doc))
        .unwrap_or_else(|e| format!(r#"{{"error": "internal", "message": "{e}"}}"#));
    Document { json }
}

/// An error the guard answers on `path`: Kafka Connect's shape on Connect's routes.
fn error_response(path: &str, description: &str) -> utoipa::openapi::Response {
    let schema = if guard::is_connect(path) {
        "ConnectErrorBody"
    } else {
        "Error"
    };
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .build(),
        )
        .build()
}

/// The statuses and security [`guard`] gives a route.
fn shared_rules(path: &str, method: &str, op: &mut Operation, has_token: bool) {
    if !guard::needs_token(path) {
        op.security = Some(Vec::new());
        return;
    }
    let responses = &mut op.responses.responses;
    responses.insert(
        "401".into(),
        RefOr::T(error_response(
            path,
            "The worker has a token (`--token-file`) and the request does not carry it",
        )),
    );
    responses.insert(
        "403".into(),
        RefOr::T(error_response(
            path,
            "A loopback worker asked by another host name, or a change from another site \
             (`Origin`, `Sec-Fetch-Site`)",
        )),
    );
    if guard::changes(method) {
        responses.insert(
            "415".into(),
            RefOr::T(error_response(
                path,
                "A body without `Content-Type: application/toml` or `application/json`",
            )),
        );
    }
    let bearer = SecurityRequirement::new(BEARER, Vec::<String>::new());
    op.security = Some(if has_token {
        vec![bearer]
    } else {
        // Without a token the worker ignores one: either is fine.
        vec![SecurityRequirement::default(), bearer]
    });
}

/// A created job (the 201 of `POST /jobs`, `PUT /jobs/{name}/config` and their Kafka Connect
/// twins) links to every operation on a job, native or Connect's, by its name: clients, and
/// schemathesis' stateful phase, can follow them.
/// Written into the JSON: utoipa 5 spells a link's fields in snake_case (`operation_id`), which
/// is not OpenAPI.
fn link_created_jobs(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    let on_a_job: Vec<serde_json::Value> = paths
        .iter()
        .filter(|(path, _)| {
            path.starts_with("/jobs/{name}") || path.starts_with("/connectors/{name}")
        })
        .flat_map(|(_, item)| item.as_object().into_iter().flat_map(|ops| ops.values()))
        .filter_map(|op| op.get("operationId").cloned())
        .collect();
    let links: serde_json::Map<String, serde_json::Value> = on_a_job
        .into_iter()
        .filter_map(|id| {
            let name = id.as_str()?.to_string();
            let link = serde_json::json!({
                "operationId": id,
                "parameters": { "name": "$response.body#/name" },
            });
            Some((name, link))
        })
        .collect();
    for item in paths.values_mut() {
        for method in ["post", "put"] {
            if let Some(created) = item.pointer_mut(&format!("/{method}/responses/201")) {
                created["links"] = serde_json::Value::Object(links.clone());
            }
        }
    }
}

/// The `name` path parameter is a job name: give it the rules of `check_job_name`.
fn job_name_constraints(op: &mut Operation) {
    for param in op.parameters.iter_mut().flatten() {
        if param.name == "name" && param.parameter_in == ParameterIn::Path {
            param.schema = Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(MAX_JOB_NAME))
                    .pattern(Some(JOB_NAME_PATTERN))
                    .into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::job::check_job_name;

    fn document(has_token: bool) -> serde_json::Value {
        let (_, doc) = super::super::api::routes().split_for_parts();
        serde_json::from_str(&finish(doc, has_token).json).unwrap()
    }

    #[test]
    fn every_route_but_the_probes_needs_the_token_when_there_is_one() {
        for has_token in [true, false] {
            let doc = document(has_token);
            for (path, item) in doc["paths"].as_object().unwrap() {
                for (method, op) in item.as_object().unwrap() {
                    let security = op["security"].as_array().unwrap();
                    let responses = op["responses"].as_object().unwrap();
                    if path == "/healthz" || path == "/readyz" {
                        assert!(security.is_empty(), "{method} {path}");
                        assert!(!responses.contains_key("401"), "{method} {path}");
                        continue;
                    }
                    assert!(responses.contains_key("401"), "{method} {path}: no 401");
                    assert!(responses.contains_key("403"), "{method} {path}: no 403");
                    let optional = security.iter().any(|s| s == &serde_json::json!({}));
                    assert_eq!(optional, !has_token, "{method} {path}: {security:?}");
                    assert!(
                        security.iter().any(|s| s.get(BEARER).is_some()),
                        "{method} {path}"
                    );
                    let changes = method != "get";
                    assert_eq!(responses.contains_key("415"), changes, "{method} {path}");
                }
            }
        }
    }

    #[test]
    fn the_validate_body_is_optional_and_not_null() {
        let doc = document(false);
        let body =
            &doc["paths"]["/connector-plugins/{plugin}/config/validate"]["put"]["requestBody"];
        assert_eq!(body["required"], false, "{body}");
        let json = &body["content"]["application/json"]["schema"];
        assert_eq!(json["type"], "object", "{body}");
        assert_eq!(
            doc["paths"]["/jobs"]["post"]["requestBody"]["required"],
            true
        );
    }

    #[test]
    fn every_reference_resolves() {
        fn refs(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(map) => {
                    if let Some(r) = map.get("$ref").and_then(|r| r.as_str()) {
                        out.push(r.to_string());
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let doc = document(false);
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let pointer = r.strip_prefix('#').expect("a local reference");
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }

    #[test]
    fn connect_routes_document_connect_errors() {
        let doc = document(true);
        let unauthorized = &doc["paths"]["/connectors"]["get"]["responses"]["401"];
        assert_eq!(
            unauthorized["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ConnectErrorBody"
        );
        let native = &doc["paths"]["/jobs"]["get"]["responses"]["401"];
        assert_eq!(
            native["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error"
        );
    }

    #[test]
    fn job_names_in_urls_are_constrained() {
        let doc = document(false);
        let param = &doc["paths"]["/jobs/{name}"]["get"]["parameters"][0];
        assert_eq!(param["name"], "name");
        assert_eq!(param["schema"]["maxLength"], MAX_JOB_NAME);
        assert_eq!(param["schema"]["pattern"], JOB_NAME_PATTERN);
    }

    #[test]
    fn a_created_job_links_to_the_operations_on_it() {
        let doc = document(false);
        for created in [
            "/paths/~1jobs/post",
            "/paths/~1jobs~1{name}~1config/put",
            "/paths/~1connectors/post",
            "/paths/~1connectors~1{name}~1config/put",
        ] {
            let links = &doc.pointer(created).unwrap()["responses"]["201"]["links"];
            assert_eq!(links["delete"]["operationId"], "delete", "{created}");
            assert_eq!(
                links["connector_status"]["operationId"], "connector_status",
                "{created}"
            );
            assert_eq!(
                links["status"]["parameters"]["name"], "$response.body#/name",
                "{created}"
            );
        }
    }

    #[test]
    fn job_name_pattern_and_length_are_check_job_name() {
        let pattern = regex::Regex::new(JOB_NAME_PATTERN).unwrap();
        let long = "a".repeat(MAX_JOB_NAME);
        let too_long = "a".repeat(MAX_JOB_NAME + 1);
        for name in [
            "demo", "a.b", "-x", "_", "A9", ".", "..", ".hidden", "", "a/b", "a b", "é", "x:y",
            &long, &too_long,
        ] {
            let documented = pattern.is_match(name) && name.len() <= MAX_JOB_NAME;
            assert_eq!(
                documented,
                check_job_name(name).is_ok(),
                "{name:?}: the document and check_job_name disagree"
            );
        }
    }
}

//! The OpenAPI 3 document, generated from the handlers' annotations and
//! served at `/api/openapi.json`.

use axum::Router;
use axum::routing::get;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::AppState;
use crate::routes::{audit, auth, direct, keys, notifications, subscriptions, tags, topics, users};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tidings",
        description = "Real-time messaging and notifications: the REST API. Every error is \
            `{\"error\": {\"code\", \"message\"}}`; the WebSocket protocol is in docs/protocol.md."
    ),
    servers((url = "http://localhost:8000", description = "Tidings on this machine (the default address)")),
    paths(
        auth::login, auth::refresh, auth::revoke, users::create, users::me, users::list, users::update,
        users::remove, users::change_password, users::reset_password, keys::create, keys::list, keys::remove,
        topics::create, topics::list, topics::show, topics::update, topics::remove, topics::members, topics::add_member,
        topics::remove_member, topics::history, topics::publish, direct::history,
        tags::create, tags::list, tags::remove, subscriptions::create, subscriptions::list, subscriptions::remove,
        notifications::create, notifications::inbox, notifications::update, notifications::read_all, audit::list,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    tags(
        (name = "auth", description = "Access and refresh tokens."),
        (name = "users", description = "Accounts."),
        (name = "keys", description = "API keys: long-lived credentials for servers."),
        (name = "topics", description = "Topics, their members and their messages."),
        (name = "direct", description = "Direct conversations between two users."),
        (name = "tags", description = "Tags: what notifications are sent to."),
        (name = "subscriptions", description = "Who receives a tag's notifications."),
        (name = "notifications", description = "Sending notifications, and each user's inbox."),
        (name = "audit", description = "Who changed what."),
    ),
    modifiers(&BearerAuth, &ErrorResponses),
)]
pub struct ApiDoc;

/// The body of every error response.
#[derive(ToSchema)]
#[schema(example = json!({"error": {"code": "not_found", "message": "topic not found"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: bad_request, unauthorized, forbidden,
    /// not_found, conflict, too_large, unsupported_media_type,
    /// invalid_field, invalid_name, rate_limited, unavailable, internal.
    pub code: String,
    /// For people; may change between versions.
    pub message: String,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Gives every operation the error responses any request can get, and
/// every error response the error body: in one place, so no operation
/// can miss them.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                let has_body = operation.request_body.is_some();
                let has_params = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let mut common = vec![("503", "the database is unavailable")];
                if secured {
                    common.push(("401", "missing, invalid or expired token"));
                }
                if has_body || has_params {
                    common.push(("422", "a field, parameter or name that breaks the rules"));
                }
                if has_body {
                    common.push(("400", "the body is not JSON"));
                    common.push(("413", "the body is over the size limit"));
                    common.push(("415", "the body is not application/json"));
                }
                let responses = &mut operation.responses.responses;
                for (status, description) in common {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| Response::new(description).into());
                }
                for (status, response) in responses.iter_mut() {
                    if status.starts_with(['4', '5'])
                        && let RefOr::T(response) = response
                    {
                        response.content.insert(
                            "application/json".to_owned(),
                            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                        );
                    }
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.patch,
        &mut item.delete,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The document as pretty JSON.
pub fn document() -> Result<String, serde_json::Error> {
    ApiDoc::openapi().to_pretty_json()
}

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { axum::Json(ApiDoc::openapi()) }),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use utoipa::OpenApi;

    fn document() -> Value {
        serde_json::to_value(super::ApiDoc::openapi()).unwrap()
    }

    fn operations(doc: &Value) -> Vec<(String, &Value)> {
        let mut all = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                all.push((format!("{method} {path}"), operation));
            }
        }
        all
    }

    #[test]
    fn operation_ids_are_unique_and_every_operation_has_a_summary() {
        let doc = document();
        let mut ids = std::collections::HashSet::new();
        for (name, operation) in operations(&doc) {
            let id = operation["operationId"].as_str().unwrap();
            assert!(
                ids.insert(id.to_owned()),
                "{name}: operationId {id} repeats"
            );
            let summary = operation["summary"].as_str().unwrap_or_default();
            assert!(
                !summary.is_empty() && !summary.ends_with('.'),
                "{name}: {summary:?}"
            );
        }
    }

    #[test]
    fn every_body_and_parameter_has_an_example() {
        let doc = document();
        for (name, operation) in operations(&doc) {
            if let Some(body) = operation.get("requestBody") {
                let json = &body["content"]["application/json"];
                assert!(json.get("example").is_some(), "{name}: request example");
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('2')
                    && let Some(json) = response.pointer("/content/application~1json")
                {
                    assert!(json.get("example").is_some(), "{name} {status}: example");
                }
            }
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                assert!(
                    parameter.get("example").is_some()
                        || parameter["schema"].get("example").is_some(),
                    "{name}: parameter {} has no example",
                    parameter["name"]
                );
            }
        }
    }

    #[test]
    fn every_error_response_has_the_error_schema() {
        let doc = document();
        for (name, operation) in operations(&doc) {
            let responses = operation["responses"].as_object().unwrap();
            assert!(responses.contains_key("503"), "{name}: 503");
            for (status, response) in responses {
                if status.starts_with(['4', '5']) {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{name} {status}"
                    );
                }
            }
        }
    }

    /// Only logging in, refreshing and (with open registration) signing
    /// up work without a token.
    #[test]
    fn every_other_operation_requires_the_bearer_token() {
        let doc = document();
        assert!(doc["servers"][0]["url"].is_string());
        for (name, operation) in operations(&doc) {
            let id = operation["operationId"].as_str().unwrap();
            let security = operation["security"].as_array().unwrap();
            let bearer = security.iter().any(|s| s.get("bearer").is_some());
            let optional = security.iter().any(|s| s.as_object().unwrap().is_empty());
            match id {
                "token_create" | "token_refresh" | "token_revoke" => assert!(!bearer, "{name}"),
                "users_create" => assert!(bearer && optional, "{name}"),
                _ => assert!(bearer && !optional, "{name}"),
            }
            if bearer {
                assert!(operation["responses"].get("401").is_some(), "{name}: 401");
            }
        }
    }
}

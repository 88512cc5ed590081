//! The OpenAPI 3 document, generated from the handlers' annotations and
//! served at `/api/openapi.json`.

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::routes::{audit, auth, direct, notifications, subscriptions, tags, topics, users};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tidings", description = "Real-time messaging and notifications: the REST API."),
    paths(
        auth::login, auth::refresh, users::create, users::me,
        topics::create, topics::list, topics::show, topics::remove, topics::members, topics::add_member,
        topics::remove_member, topics::history, topics::publish, direct::history,
        tags::create, tags::list, tags::remove, subscriptions::create, subscriptions::list, subscriptions::remove,
        notifications::create, notifications::inbox, notifications::update, notifications::read_all, audit::list,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

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

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { axum::Json(ApiDoc::openapi()) }),
    )
}

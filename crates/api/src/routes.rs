//! One module per feature, each owning its router, handlers and bodies.

pub mod audit;
pub mod auth;
pub mod direct;
pub mod keys;
pub mod notifications;
pub mod subscriptions;
pub mod tags;
pub mod topics;
pub mod users;

use serde::Deserialize;

/// `?page=&page_size=` on every long list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageParams {
    /// The page, from 1.
    #[param(example = 1, minimum = 1, maximum = 4294967295_i64)]
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(example = 20, minimum = 1, maximum = 100)]
    pub page_size: Option<i64>,
}

/// The default page size of REST lists.
pub const DEFAULT_PAGE_SIZE: u32 = 20;

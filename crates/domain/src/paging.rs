//! Paging for long lists: `?page=1&page_size=N`, with N capped.

use serde::{Deserialize, Serialize};

/// The largest `page_size` a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 100;

/// A validated page request; build it with [`PageRequest::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub page_size: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    #[error("page must be between 1 and {}", u32::MAX)]
    Page,
    #[error("page_size must be between 1 and {MAX_PAGE_SIZE}")]
    PageSize,
}

impl PageRequest {
    pub fn new(
        page: Option<i64>,
        page_size: Option<i64>,
        default_size: u32,
    ) -> Result<Self, PagingError> {
        let page = page.unwrap_or(1);
        let page_size = page_size.unwrap_or(i64::from(default_size));
        if page < 1 || page > i64::from(u32::MAX) {
            return Err(PagingError::Page);
        }
        if !(1..=i64::from(MAX_PAGE_SIZE)).contains(&page_size) {
            return Err(PagingError::PageSize);
        }
        Ok(Self {
            page: page as u32,
            page_size: page_size as u32,
        })
    }

    pub fn limit(&self) -> i64 {
        i64::from(self.page_size)
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.page_size)
    }
}

/// One page of a list, the shape every long list in the API shares.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Page<T> {
    pub count: i64,
    pub page: u32,
    pub page_size: u32,
    pub results: Vec<T>,
}

impl<T> Page<T> {
    pub fn new(request: PageRequest, count: i64, results: Vec<T>) -> Self {
        Self {
            count,
            page: request.page,
            page_size: request.page_size,
            results,
        }
    }

    /// How many pages the whole list spans (0 for an empty list).
    pub fn total_pages(&self) -> i64 {
        let size = i64::from(self.page_size.max(1));
        (self.count + size - 1) / size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_caps() {
        assert_eq!(
            PageRequest::new(None, None, 20),
            Ok(PageRequest {
                page: 1,
                page_size: 20
            })
        );
        assert_eq!(PageRequest::new(Some(0), None, 20), Err(PagingError::Page));
        assert_eq!(
            PageRequest::new(None, Some(101), 20),
            Err(PagingError::PageSize)
        );
        assert_eq!(
            PageRequest::new(Some(3), Some(10), 20).map(|p| p.offset()),
            Ok(20)
        );
    }

    #[test]
    fn total_pages_rounds_up() {
        let page = Page::<()>::new(
            PageRequest {
                page: 1,
                page_size: 5,
            },
            11,
            vec![],
        );
        assert_eq!(page.total_pages(), 3);
    }
}

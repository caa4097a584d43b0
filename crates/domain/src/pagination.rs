//! Keyset pagination, as the domain sees it: a bounded page size, an optional position to
//! continue after, and a page that says whether more rows follow. Encoding positions as
//! opaque, signed cursors is the HTTP adapter's business.

use crate::validation::InvalidValue;

/// Page size, 1–100 (docs/api.md#pagination). Default 20.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u16);

impl PageLimit {
    pub const MAX: u16 = 100;
    pub const DEFAULT: PageLimit = PageLimit(20);
    /// The largest page, 100.
    pub const MAX_PAGE: PageLimit = PageLimit(Self::MAX);

    pub fn new(limit: i64) -> Result<Self, InvalidValue> {
        if (1..=i64::from(Self::MAX)).contains(&limit) {
            Ok(Self(limit as u16))
        } else {
            Err(InvalidValue::new("out_of_range", "limit must be between 1 and 100"))
        }
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl Default for PageLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDirection {
    Ascending,
    Descending,
}

/// One page of a collection. `has_more` is decided by fetching one row beyond the limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

impl<T> Page<T> {
    /// Where the next page starts — the position of this page's last item, as `position_of`
    /// reads it — or `None` on the last page.
    pub fn next_after<P>(&self, position_of: impl FnOnce(&T) -> P) -> Option<P> {
        if self.has_more { self.items.last().map(position_of) } else { None }
    }

    /// Builds a page from up to `limit + 1` rows fetched in order.
    pub fn from_overfetched(mut rows: Vec<T>, limit: PageLimit) -> Self {
        let limit = usize::from(limit.get());
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        Self { items: rows, has_more }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_bounds() {
        assert!(PageLimit::new(0).is_err());
        assert!(PageLimit::new(101).is_err());
        assert_eq!(PageLimit::new(1).map(PageLimit::get), Ok(1));
        assert_eq!(PageLimit::new(100).map(PageLimit::get), Ok(100));
    }

    #[test]
    fn overfetched_rows_set_has_more_and_are_trimmed() {
        let limit = PageLimit::new(2).unwrap();
        let page = Page::from_overfetched(vec![1, 2, 3], limit);
        assert_eq!(page.items, vec![1, 2]);
        assert!(page.has_more);
        let last = Page::from_overfetched(vec![1, 2], limit);
        assert!(!last.has_more);
        assert_eq!(last.items.len(), 2);
    }
}

//! The order of a merged strategic-merge list, as Kubernetes computes it: items the patch
//! names take the patch's order (or `$setElementOrder`'s), items only the server has keep
//! theirs, and the two runs are interleaved by where the server had them.

use serde_json::Value;

use super::strategic::scalar_eq;

/// What identifies a list item when ordering: its merge key's value, or the item itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemId {
    /// Items are maps identified by this merge key.
    Key(&'static str),
    /// Items are scalars identified by value.
    Scalar,
}

impl ItemId {
    /// The identity of `item`, if it has one.
    pub fn get<'v>(&self, item: &'v Value) -> Option<&'v Value> {
        match self {
            Self::Key(key) => item.get(key),
            Self::Scalar => Some(item),
        }
    }

    /// Position of the first item of `list` with the same identity as `item`.
    fn index_in(&self, list: &[Value], item: &Value) -> Option<usize> {
        let wanted = self.get(item)?;
        list.iter()
            .position(|v| self.get(v).is_some_and(|id| scalar_eq(id, wanted)))
    }
}

/// Orders `merged`: items named in `wanted` sorted by their place there, the rest sorted by
/// their place in `server`, then both runs interleaved: a server-only item goes first while
/// the server had it before the next wanted item; a wanted item the server never had goes
/// before any remaining server-only items (Kubernetes' `mergeSortedSlice`).
pub fn reorder(merged: Vec<Value>, wanted: &[Value], server: &[Value], id: ItemId) -> Vec<Value> {
    let (mut named, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| id.index_in(wanted, item).is_some());
    // Stable sorts: equal identities keep their relative order.
    named.sort_by_key(|item| id.index_in(wanted, item).unwrap_or(usize::MAX));
    server_only.sort_by_key(|item| id.index_in(server, item).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = named.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (id.index_in(server, l), id.index_in(server, r)),
                (Some(li), Some(ri)) if li < ri
            ),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn names(v: &[Value]) -> Vec<&str> {
        v.iter()
            .map(|i| i["name"].as_str().unwrap_or("?"))
            .collect()
    }

    fn maps(names: &[&str]) -> Vec<Value> {
        names.iter().map(|n| json!({ "name": n })).collect()
    }

    #[test]
    fn interleaves_like_kubernetes() {
        let key = ItemId::Key("name");
        // (merged, wanted, server, expected)
        type Case<'a> = (&'a [&'a str], &'a [&'a str], &'a [&'a str], &'a [&'a str]);
        let cases: &[Case] = &[
            // A new item the server never had lands before server-only items.
            (
                &["a", "b", "c", "d"],
                &["d"],
                &["a", "b", "c"],
                &["d", "a", "b", "c"],
            ),
            // Patched b keeps its slot relative to a and c; new d follows b.
            (
                &["a", "b", "c", "d"],
                &["b", "d"],
                &["a", "b", "c"],
                &["a", "b", "d", "c"],
            ),
            // Wanted order overrides server order.
            (
                &["a", "b", "c"],
                &["c", "b", "a"],
                &["a", "b", "c"],
                &["c", "b", "a"],
            ),
            // Server-only 4 stays between 2 and the new 3.
            (
                &["2", "4", "3"],
                &["2", "3"],
                &["2", "4", "3"],
                &["2", "4", "3"],
            ),
            (
                &["4", "2", "3"],
                &["2", "3"],
                &["4", "2", "3"],
                &["4", "2", "3"],
            ),
        ];
        for (merged, wanted, server, want) in cases {
            let got = reorder(maps(merged), &maps(wanted), &maps(server), key);
            assert_eq!(names(&got), *want, "merged {merged:?} wanted {wanted:?}");
        }
    }

    #[test]
    fn scalars_order_by_value() {
        let got = reorder(
            vec![json!("x"), json!("y"), json!("z")],
            &[json!("z")],
            &[json!("x"), json!("y")],
            ItemId::Scalar,
        );
        assert_eq!(got, vec![json!("z"), json!("x"), json!("y")]);
    }
}

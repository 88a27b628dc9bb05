//! The order of a merged strategic-merge list, as Kubernetes computes it: items the patch
//! names take the patch's order (or `$setElementOrder`'s), items only the server has keep
//! theirs, and the two runs are interleaved by where the server had them.

use std::collections::HashMap;

use serde_json::Value;

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
}

/// Text equal for two identities exactly when they are equal, numbers compared by value
/// as Go's float64s compare (`80` equals `80.0`), so identities can be hashed.
pub fn canonical(v: &Value) -> String {
    match v {
        Value::String(s) => format!("s{s}"),
        Value::Number(n) => match n.as_f64() {
            // -0 and 0 are equal numbers.
            Some(0.0) => "n0".to_string(),
            Some(f) => format!("n{f:?}"),
            None => format!("n{n}"),
        },
        other => format!("v{other}"),
    }
}

/// First positions of the identities of a list's items.
struct Positions(HashMap<String, usize>);

impl Positions {
    fn of(list: &[Value], id: ItemId) -> Self {
        let mut map = HashMap::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            if let Some(k) = id.get(item) {
                map.entry(canonical(k)).or_insert(i);
            }
        }
        Self(map)
    }

    fn of_item(&self, item: &Value, id: ItemId) -> Option<usize> {
        self.0.get(&canonical(id.get(item)?)).copied()
    }
}

/// Orders `merged`: items named in `wanted` sorted by their place there, the rest sorted by
/// their place in `server`, then both runs interleaved: a server-only item goes first while
/// the server had it before the next wanted item; a wanted item the server never had goes
/// before any remaining server-only items (Kubernetes' `mergeSortedSlice`).
pub fn reorder(merged: Vec<Value>, wanted: &[Value], server: &[Value], id: ItemId) -> Vec<Value> {
    let wanted = Positions::of(wanted, id);
    let server = Positions::of(server, id);
    let (mut named, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|item| wanted.of_item(item, id).is_some());
    // Stable sorts: equal identities keep their relative order.
    named.sort_by_cached_key(|item| wanted.of_item(item, id).unwrap_or(usize::MAX));
    server_only.sort_by_cached_key(|item| server.of_item(item, id).unwrap_or(usize::MAX));

    let mut out = Vec::with_capacity(named.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = named.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => matches!(
                (server.of_item(l, id), server.of_item(r, id)),
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

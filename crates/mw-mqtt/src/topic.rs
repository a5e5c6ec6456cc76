//! Topic names and filters (MQTT 3.1.1 §4.7, 5.0 §4.7–4.8): validation, matching, shared
//! subscriptions (`$share/{group}/{filter}`) and ACL patterns with `%u` (username) and `%c`
//! (client id).

/// Longest filter or topic accepted, in levels (a defence against `a/a/a/…` abuse).
pub const MAX_LEVELS: usize = 64;

/// Whether `filter` is a valid subscription filter: `#` only as the whole last level, `+` only
/// as a whole level, not empty, no U+0000, at most [`MAX_LEVELS`] levels.
pub fn valid_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("empty topic filter".into());
    }
    if filter.contains('\0') {
        return Err(format!("topic filter {filter:?} contains U+0000"));
    }
    let levels: Vec<&str> = filter.split('/').collect();
    if levels.len() > MAX_LEVELS {
        return Err(format!(
            "topic filter has {} levels (at most {MAX_LEVELS})",
            levels.len()
        ));
    }
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "topic filter {filter:?}: '#' must be the whole last level"
            ));
        }
        if l.contains('+') && *l != "+" {
            return Err(format!(
                "topic filter {filter:?}: '+' must be a whole level"
            ));
        }
    }
    Ok(())
}

/// A parsed subscription filter: shared (`$share/{group}/…`) or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription<'a> {
    pub group: Option<&'a str>,
    pub filter: &'a str,
}

/// Parses and validates a SUBSCRIBE filter.
pub fn parse_subscription(raw: &str) -> Result<Subscription<'_>, String> {
    if let Some(rest) = raw.strip_prefix("$share/") {
        let Some((group, filter)) = rest.split_once('/') else {
            return Err(format!(
                "shared subscription {raw:?} has no filter after the group"
            ));
        };
        if group.is_empty() || group.contains(['+', '#']) {
            return Err(format!(
                "shared subscription {raw:?}: invalid group name {group:?}"
            ));
        }
        valid_filter(filter)?;
        return Ok(Subscription {
            group: Some(group),
            filter,
        });
    }
    valid_filter(raw)?;
    Ok(Subscription {
        group: None,
        filter: raw,
    })
}

/// Whether `topic` matches `filter` (both valid). Topics starting with `$` are not matched by a
/// filter starting with a wildcard (§4.7.2).
pub fn matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut t = topic.split('/');
    for f in filter.split('/') {
        if f == "#" {
            return true;
        }
        match t.next() {
            None => return false,
            Some(_) if f == "+" => {}
            Some(level) if level == f => {}
            Some(_) => return false,
        }
    }
    t.next().is_none()
}

/// Whether every topic that `filter` (a topic name or a filter) can match is matched by
/// `pattern`: `a/+` covers `a/b` and `a/+`, but not `a/#`; `#` covers everything.
pub fn covers(pattern: &str, filter: &str) -> bool {
    if filter.starts_with('$') && (pattern.starts_with('+') || pattern.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    for p in pattern.split('/') {
        if p == "#" {
            return true;
        }
        match f.next() {
            None | Some("#") => return false,
            Some(_) if p == "+" => {}
            Some("+") => return false,
            Some(level) if level == p => {}
            Some(_) => return false,
        }
    }
    f.next().is_none()
}

/// Whether an ACL `pattern`, after substituting `%u` and `%c`, [`covers`] `topic` (a topic
/// name to publish or a filter to subscribe). A pattern level
/// that is exactly `%u` or `%c` matches only that identity; when the identity is absent (an
/// anonymous client has no username) the pattern matches nothing.
pub fn acl_matches(pattern: &str, topic: &str, username: Option<&str>, client_id: &str) -> bool {
    if pattern.contains("%u") && username.is_none() {
        return false;
    }
    let mut expanded = String::with_capacity(pattern.len());
    for (i, level) in pattern.split('/').enumerate() {
        if i > 0 {
            expanded.push('/');
        }
        // an identity containing wildcards or '/' must not widen the pattern
        let sub = |s: &str| !s.contains(['+', '#', '/']);
        match level {
            "%u" => match username {
                Some(u) if sub(u) => expanded.push_str(u),
                _ => return false,
            },
            "%c" if sub(client_id) => expanded.push_str(client_id),
            "%c" => return false,
            other => expanded.push_str(other),
        }
    }
    covers(&expanded, topic)
}

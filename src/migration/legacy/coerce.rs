//! Reading the old bot's fields whatever BSON type they were written as.
//!
//! IDs may be strings, Int64, Int32 or Double (a Double above 2^53 lost digits and is an
//! error); times may be dates, milliseconds (Int64 or Double) or ISO-8601 strings; any
//! optional field may be missing, null or `""` (all three mean "not set").

use mongodb::bson::{Bson, DateTime, Document};

/// 2^53: above it a Double cannot hold every integer.
pub const MAX_SAFE_DOUBLE: f64 = 9_007_199_254_740_992.0;

/// A Discord id from `field`: `Ok(None)` when not set.
pub fn id(doc: &Document, field: &str) -> Result<Option<String>, String> {
    id_value(doc.get(field), field)
}

/// A Discord id from a value (see [`id`]).
pub fn id_value(value: Option<&Bson>, field: &str) -> Result<Option<String>, String> {
    match value {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else if s.bytes().all(|b| b.is_ascii_digit()) {
                Ok(Some(s.to_string()))
            } else {
                Err(format!("`{field}` is {s:?}, not a Discord id"))
            }
        }
        Some(Bson::Int64(i)) if *i > 0 => Ok(Some(i.to_string())),
        Some(Bson::Int32(i)) if *i > 0 => Ok(Some(i.to_string())),
        Some(Bson::Double(d)) => {
            if d.fract() != 0.0 || *d <= 0.0 {
                Err(format!("`{field}` is the Double {d}, not a Discord id"))
            } else if *d > MAX_SAFE_DOUBLE {
                Err(format!(
                    "`{field}` is a Double above 2^53 ({d:.0}): digits were lost when the old bot stored it, so the id cannot be trusted; fix the record in the old database or leave it out"
                ))
            } else {
                Ok(Some(format!("{}", *d as u64)))
            }
        }
        Some(other) => Err(format!(
            "`{field}` is {:?}, not a Discord id",
            other.element_type()
        )),
    }
}

/// A required Discord id.
pub fn required_id(doc: &Document, field: &str) -> Result<String, String> {
    id(doc, field)?.ok_or_else(|| format!("`{field}` is missing"))
}

/// A time from `field`: `Ok(None)` when not set.
pub fn date(doc: &Document, field: &str) -> Result<Option<DateTime>, String> {
    date_value(doc.get(field), field)
}

/// A time from a value (see [`date`]).
pub fn date_value(value: Option<&Bson>, field: &str) -> Result<Option<DateTime>, String> {
    match value {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::DateTime(d)) => Ok(Some(*d)),
        Some(Bson::Int64(ms)) => Ok(Some(DateTime::from_millis(*ms))),
        Some(Bson::Int32(ms)) => Ok(Some(DateTime::from_millis(i64::from(*ms)))),
        Some(Bson::Double(ms)) if ms.is_finite() => Ok(Some(DateTime::from_millis(*ms as i64))),
        Some(Bson::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Bson::String(s)) => {
            let s = s.trim();
            if let Ok(ms) = s.parse::<i64>() {
                return Ok(Some(DateTime::from_millis(ms)));
            }
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| Some(DateTime::from_millis(d.timestamp_millis())))
                .or_else(|_| {
                    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                        .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S"))
                        .map(|n| Some(DateTime::from_millis(n.and_utc().timestamp_millis())))
                })
                .map_err(|_| format!("`{field}` is {s:?}, not a date"))
        }
        Some(other) => Err(format!(
            "`{field}` is {:?}, not a date",
            other.element_type()
        )),
    }
}

/// A text field; `None` when missing, null or empty.
pub fn text(doc: &Document, field: &str) -> Option<String> {
    match doc.get(field) {
        Some(Bson::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Bson::Int32(i)) => Some(i.to_string()),
        Some(Bson::Int64(i)) => Some(i.to_string()),
        _ => None,
    }
}

/// A whole number (Int32, Int64, or an integral Double); `Ok(None)` when not set.
pub fn int(doc: &Document, field: &str) -> Result<Option<i64>, String> {
    match doc.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Int32(i)) => Ok(Some(i64::from(*i))),
        Some(Bson::Int64(i)) => Ok(Some(*i)),
        Some(Bson::Double(d)) if d.fract() == 0.0 && d.abs() <= MAX_SAFE_DOUBLE => {
            Ok(Some(*d as i64))
        }
        Some(Bson::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Bson::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("`{field}` is {s:?}, not a number")),
        Some(other) => Err(format!(
            "`{field}` is {:?}, not a number",
            other.element_type()
        )),
    }
}

/// A whole number that fits an Int32.
pub fn int32(doc: &Document, field: &str) -> Result<Option<i32>, String> {
    match int(doc, field)? {
        None => Ok(None),
        Some(v) => i32::try_from(v)
            .map(Some)
            .map_err(|_| format!("`{field}` is {v}, too large")),
    }
}

/// The values a guild filter must match in legacy `guildID` fields (string, Int64, Double).
pub fn guild_filter_values(guild: &str) -> Vec<Bson> {
    let mut v = vec![Bson::String(guild.to_string())];
    if let Ok(n) = guild.parse::<i64>() {
        v.push(Bson::Int64(n));
        v.push(Bson::Double(n as f64));
    }
    v
}

/// `field` as a time, else the legacy `_id`'s creation time, else `fallback`.
pub fn created_at(doc: &Document, field: &str, fallback: DateTime) -> Result<DateTime, String> {
    if let Some(d) = date(doc, field)? {
        return Ok(d);
    }
    Ok(match doc.get("_id") {
        Some(Bson::ObjectId(o)) => o.timestamp(),
        _ => fallback,
    })
}

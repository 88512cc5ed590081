//! Times are kept as Unix epoch milliseconds (one portable integer column
//! on both stores) and shown to clients as RFC 3339 UTC strings.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2026-11-24T09:30:00.123Z`.
pub fn rfc3339(millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Serde adapter: an `i64` of milliseconds written as an RFC 3339 string.
pub mod as_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(millis: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*millis))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| t.timestamp_millis())
            .map_err(serde::de::Error::custom)
    }
}

/// `Option<i64>` milliseconds as RFC 3339 text or `null`.
pub mod as_rfc3339_option {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(millis: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match millis {
            Some(millis) => s.serialize_str(&super::rfc3339(*millis)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_with_millis() {
        assert_eq!(
            super::rfc3339(1_795_512_600_123),
            "2026-11-24T09:30:00.123Z"
        );
    }
}

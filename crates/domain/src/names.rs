//! Usernames and topic names share one alphabet and one namespace.
//!
//! They are parsed once where they enter (a request body, a path, a frame)
//! so the rest of the code never has to wonder whether a `String` is valid.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest name accepted, in bytes (all characters are ASCII).
pub const MAX_NAME_LEN: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("names are 1 to 64 characters of A-Z, a-z, 0-9, '_', '.' or '-'")]
pub struct InvalidName;

fn check(raw: &str) -> Result<(), InvalidName> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if raw.is_empty() || raw.len() > MAX_NAME_LEN || !raw.chars().all(ok_char) {
        return Err(InvalidName);
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            /// Accepts `^[A-Za-z0-9_.-]{1,64}$`, case-sensitive.
            pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidName> {
                let raw = raw.into();
                check(&raw)?;
                Ok(Self(raw))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $ty {
            type Error = InvalidName;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(raw)
            }
        }

        impl From<$ty> for String {
            fn from(name: $ty) -> String {
                name.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A user's login name.
    Username
);
name_type!(
    /// A topic's name; unique across topics and users alike.
    TopicName
);

/// Where a `message` frame is going: `topic_name` may name a topic, a user,
/// or `@user` for a direct message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `@alice`: certainly a direct message.
    User(Username),
    /// A bare name: a topic if one exists, else a user.
    Name(String),
}

impl Target {
    pub fn parse(raw: &str) -> Result<Self, InvalidName> {
        match raw.strip_prefix('@') {
            Some(user) => Ok(Self::User(Username::parse(user)?)),
            None => {
                check(raw)?;
                Ok(Self::Name(raw.to_owned()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        assert!(Username::parse("alice_1.B-2").is_ok());
        assert!(TopicName::parse("a".repeat(64)).is_ok());
    }

    #[test]
    fn refuses_empty_long_and_foreign_characters() {
        for bad in ["", "with space", "slash/", "ünï", "@at", &"a".repeat(65)] {
            assert_eq!(Username::parse(bad), Err(InvalidName), "{bad:?}");
        }
    }

    #[test]
    fn target_tells_direct_from_bare_names() {
        assert_eq!(
            Target::parse("@bob"),
            Ok(Target::User(Username::parse("bob").unwrap()))
        );
        assert_eq!(Target::parse("news"), Ok(Target::Name("news".into())));
        assert!(Target::parse("@").is_err());
    }

    #[test]
    fn deserialization_validates() {
        assert!(serde_json::from_str::<Username>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<Username>("\"not ok\"").is_err());
    }
}

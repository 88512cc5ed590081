//! WebSocket frames: what clients send and what the server answers.
//!
//! Client frames are parsed by hand from a JSON object rather than by a
//! derived enum so that every mistake maps to the precise error code the
//! protocol promises (`missing_field` vs `invalid_field` vs
//! `unknown_action`) and `ref` is echoed whenever the frame carried one.
//! The one exception is the frame busy sockets send most, a publish with
//! exactly its own fields: it is read straight into them, and anything it
//! does not fit goes the general way.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{InboxItem, Message, Notification};
use crate::names::{Target, TopicName, Username};
use crate::paging::{Page, PageRequest};

/// The inbox page size over WebSocket when the client names none.
pub const DEFAULT_WS_PAGE_SIZE: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadJson,
    UnknownAction,
    MissingField,
    InvalidField,
    InvalidName,
    NotFound,
    Forbidden,
    NotSubscribed,
    TooLarge,
    RateLimited,
    Internal,
}

/// An action a client asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Subscribe {
        topic: TopicName,
        since: Option<i64>,
    },
    Unsubscribe {
        topic: TopicName,
    },
    Invite {
        topic: TopicName,
        username: Username,
    },
    Message {
        target: Target,
        content: String,
    },
    NotificationsList {
        page: PageRequest,
    },
    MarkRead {
        id: i64,
    },
    Delete {
        id: i64,
    },
    Disconnect,
}

/// A parsed client frame with the `ref` to echo.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub reference: Option<Value>,
    pub frame: ClientFrame,
}

/// Why a frame was refused; becomes an `error` frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
    pub reference: Option<Value>,
}

impl FrameError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            reference: None,
        }
    }
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Request, FrameError> {
    parse_publish(text).unwrap_or_else(|| parse_any(text))
}

/// A publish as clients send it: these fields and no others.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishFrame<'a> {
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    topic_name: Cow<'a, str>,
    #[serde(borrow)]
    content: Cow<'a, str>,
    #[serde(rename = "ref", default)]
    reference: Option<Value>,
}

/// The frame a busy socket sends most, read straight into its fields.
/// Read through a `Value` first, parsing took a seventh of a publishing
/// session's time. Anything else, or anything this does not take as it
/// is (another field, `type` for `action`, a `ref` that is not a string
/// or a number, a field twice), goes the general way, so errors and
/// their codes come from one place.
fn parse_publish(text: &str) -> Option<Result<Request, FrameError>> {
    // Every other action would fail the typed parse only after reading the
    // frame; without this word (unescaped) it cannot be a publish. One
    // spelled with escapes goes the general way, which reads it the same.
    if !text.contains("\"message\"") {
        return None;
    }
    let frame: PublishFrame<'_> = serde_json::from_str(text).ok()?;
    if frame.action != "message" {
        return None;
    }
    let reference = match frame.reference {
        None => None,
        Some(r @ (Value::String(_) | Value::Number(_))) => Some(r),
        Some(_) => return None,
    };
    Some(match Target::parse(&frame.topic_name) {
        Ok(target) => Ok(Request {
            reference,
            frame: ClientFrame::Message {
                target,
                content: frame.content.into_owned(),
            },
        }),
        Err(e) => Err(FrameError {
            reference,
            ..FrameError::new(ErrorCode::InvalidName, e.to_string())
        }),
    })
}

/// Any frame, through a JSON `Value`: every mistake gets its own code.
fn parse_any(text: &str) -> Result<Request, FrameError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| FrameError::new(ErrorCode::BadJson, format!("not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(FrameError::new(
            ErrorCode::BadJson,
            "a frame must be a JSON object",
        ));
    };
    let fields = Fields(&object);
    let reference = match object.get("ref") {
        None | Some(Value::Null) => None,
        Some(r @ (Value::String(_) | Value::Number(_))) => Some(r.clone()),
        Some(_) => {
            return Err(FrameError::new(
                ErrorCode::InvalidField,
                "ref must be a string or a number",
            ));
        }
    };
    let frame = parse_frame(&fields).map_err(|e| FrameError {
        reference: reference.clone(),
        ..e
    })?;
    Ok(Request { reference, frame })
}

fn parse_frame(f: &Fields<'_>) -> Result<ClientFrame, FrameError> {
    let action = match (f.0.get("action"), f.0.get("type")) {
        (Some(Value::String(a)), _) | (None, Some(Value::String(a))) => a.as_str(),
        (None, None) => {
            return Err(FrameError::new(
                ErrorCode::MissingField,
                "action is required",
            ));
        }
        _ => {
            return Err(FrameError::new(
                ErrorCode::InvalidField,
                "action must be a string",
            ));
        }
    };
    Ok(match action {
        "subscribe" | "suscribe" => ClientFrame::Subscribe {
            topic: f.topic()?,
            since: f.opt_int("since")?,
        },
        "unsubscribe" => ClientFrame::Unsubscribe { topic: f.topic()? },
        "invite" => ClientFrame::Invite {
            topic: f.topic()?,
            username: f.username()?,
        },
        "message" => {
            let raw = f.string("topic_name")?;
            let target = Target::parse(raw)
                .map_err(|e| FrameError::new(ErrorCode::InvalidName, e.to_string()))?;
            ClientFrame::Message {
                target,
                content: f.string("content")?.to_owned(),
            }
        }
        "notifications_list" => {
            let page = PageRequest::new(
                f.opt_int("page")?,
                f.opt_int("page_size")?,
                DEFAULT_WS_PAGE_SIZE,
            )
            .map_err(|e| FrameError::new(ErrorCode::InvalidField, e.to_string()))?;
            ClientFrame::NotificationsList { page }
        }
        "mark_read" | "read" => ClientFrame::MarkRead { id: f.int("id")? },
        "delete" | "deleted" => ClientFrame::Delete { id: f.int("id")? },
        "disconnect" => ClientFrame::Disconnect,
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(FrameError::new(
                ErrorCode::UnknownAction,
                format!("unknown action {shown:?}"),
            ));
        }
    })
}

/// Typed access to a frame's fields with protocol error codes.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn string(&self, name: &str) -> Result<&str, FrameError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Err(missing(name)),
            Some(Value::String(s)) => Ok(s),
            Some(_) => Err(FrameError::new(
                ErrorCode::InvalidField,
                format!("{name} must be a string"),
            )),
        }
    }

    fn opt_int(&self, name: &str) -> Result<Option<i64>, FrameError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
            Some(_) => Err(FrameError::new(
                ErrorCode::InvalidField,
                format!("{name} must be an integer"),
            )),
        }
    }

    fn int(&self, name: &str) -> Result<i64, FrameError> {
        self.opt_int(name)?.ok_or_else(|| missing(name))
    }

    fn topic(&self) -> Result<TopicName, FrameError> {
        TopicName::parse(self.string("topic_name")?)
            .map_err(|e| FrameError::new(ErrorCode::InvalidName, e.to_string()))
    }

    fn username(&self) -> Result<Username, FrameError> {
        let raw = self.string("username")?;
        Username::parse(raw.strip_prefix('@').unwrap_or(raw))
            .map_err(|e| FrameError::new(ErrorCode::InvalidName, e.to_string()))
    }
}

fn missing(name: &str) -> FrameError {
    FrameError::new(ErrorCode::MissingField, format!("{name} is required"))
}

/// Everything the server sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome {
        user: String,
        session: String,
    },
    Subscribed {
        topic: String,
        seq: i64,
    },
    Unsubscribed {
        topic: String,
    },
    Invited {
        topic: String,
        by: String,
    },
    Ok,
    Ack {
        id: i64,
        topic: String,
        seq: i64,
    },
    Message(Message),
    /// Messages `from..=to` of `topic` were removed by retention before
    /// this client got them; the next message is newer than `to`.
    Pruned {
        topic: String,
        from: i64,
        to: i64,
    },
    Notification {
        id: i64,
        notification: Notification,
        is_read: bool,
    },
    NotificationsList {
        count: i64,
        page: u32,
        page_size: u32,
        total_pages: i64,
        results: Vec<InboxItem>,
    },
    Read {
        id: i64,
    },
    Unread {
        id: i64,
    },
    Delete {
        id: i64,
    },
    /// Every inbox item with an id up to `up_to` is read now.
    ReadAll {
        up_to: i64,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

impl ServerFrame {
    pub fn notification(item: InboxItem) -> Self {
        Self::Notification {
            id: item.id,
            notification: item.notification,
            is_read: item.is_read,
        }
    }

    pub fn notifications_list(page: Page<InboxItem>) -> Self {
        Self::NotificationsList {
            count: page.count,
            page: page.page,
            page_size: page.page_size,
            total_pages: page.total_pages(),
            results: page.results,
        }
    }

    pub fn error(error: &FrameError) -> Self {
        Self::Error {
            code: error.code,
            message: error.message.clone(),
        }
    }

    /// The frame as JSON text, with `ref` echoed when given.
    pub fn to_json(&self, reference: Option<&Value>) -> String {
        #[derive(Serialize)]
        struct WithRef<'a> {
            #[serde(flatten)]
            frame: &'a ServerFrame,
            #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
            reference: Option<&'a Value>,
        }
        serde_json::to_string(&WithRef {
            frame: self,
            reference,
        })
        .unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"could not encode a frame"}"#.into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code_of(text: &str) -> (ErrorCode, Option<Value>) {
        let e = parse(text).unwrap_err();
        (e.code, e.reference)
    }

    #[test]
    fn parses_each_action_and_alias() {
        let sub = parse(r#"{"action":"suscribe","topic_name":"news","since":4,"ref":7}"#).unwrap();
        assert_eq!(sub.reference, Some(json!(7)));
        assert!(matches!(
            sub.frame,
            ClientFrame::Subscribe { since: Some(4), .. }
        ));
        let list = parse(r#"{"type":"notifications_list","page":2,"page_size":5}"#).unwrap();
        assert_eq!(
            list.frame,
            ClientFrame::NotificationsList {
                page: PageRequest {
                    page: 2,
                    page_size: 5
                }
            }
        );
        assert_eq!(
            parse(r#"{"type":"read","id":3}"#).unwrap().frame,
            ClientFrame::MarkRead { id: 3 }
        );
        assert_eq!(
            parse(r#"{"type":"deleted","id":3}"#).unwrap().frame,
            ClientFrame::Delete { id: 3 }
        );
        let dm = parse(r#"{"action":"message","topic_name":"@bob","content":"hi"}"#).unwrap();
        assert!(matches!(
            dm.frame,
            ClientFrame::Message {
                target: Target::User(_),
                ..
            }
        ));
    }

    /// The publish fast path answers exactly as the general parser does,
    /// error codes, messages and `ref` included, and steps aside for
    /// anything it does not take as it is.
    #[test]
    fn publishes_read_the_fast_way_parse_as_the_general_way_does() {
        let taken = [
            r#"{"action":"message","topic_name":"news","content":"hi"}"#,
            r#"{"action":"message","topic_name":"news","content":"hi","ref":7}"#,
            r#"{"action":"message","topic_name":"news","content":"hi","ref":"a7"}"#,
            r#"{"action":"message","topic_name":"news","content":"hi","ref":1.5}"#,
            r#"{"action":"message","topic_name":"news","content":"hi","ref":null}"#,
            r#"{"ref":3,"content":"esc\"aped \u00e9\n","topic_name":"@bob","action":"message"}"#,
            r#"{"action":"message","topic_name":"Not A Name","content":"hi","ref":9}"#,
            r#"{"action":"message","topic_name":"@","content":"hi"}"#,
            r#"{"action":"message","topic_name":"news","content":""}"#,
        ];
        let general_only = [
            r#"{"action":"message","topic_name":"news","content":"hi","ref":true}"#,
            r#"{"action":"message","topic_name":"news","content":"hi","ref":[1]}"#,
            r#"{"action":"message","topic_name":"news","content":5}"#,
            r#"{"action":"message","topic_name":"news"}"#,
            r#"{"action":"message","topic_name":"news","content":"a","content":"b"}"#,
            r#"{"type":"message","topic_name":"news","content":"hi"}"#,
            r#"{"action":"message","topic_name":"news","content":"hi","extra":1}"#,
            r#"{"action":"subscribe","topic_name":"news","content":"hi"}"#,
            r#"{"action":"message","topic_name":"news","content":"hi""#,
            r#"{"action":"mess\u0061ge","topic_name":"news","content":"hi"}"#,
            r#"{"action":"subscribe","topic_name":"news"}"#,
            r#"{"action":"mark_read","id":4,"ref":"m"}"#,
        ];
        for text in taken {
            let fast = parse_publish(text).unwrap_or_else(|| panic!("not taken: {text}"));
            assert_eq!(fast, parse_any(text), "{text}");
        }
        for text in general_only {
            assert!(parse_publish(text).is_none(), "taken: {text}");
            assert_eq!(parse(text), parse_any(text), "{text}");
        }
    }

    mod generated {
        use proptest::prelude::*;
        use proptest::strategy::ValueTree;

        use super::super::*;

        /// Any JSON value a client might put in a field, of the right
        /// kind or not: names valid and not, escapes, a lone surrogate,
        /// numbers out of range.
        fn any_value() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => prop::sample::select(vec![
                    r#""message""#,
                    r#""mess\u0061ge""#,
                    r#""subscribe""#,
                    r#""mark_read""#,
                    r#""news""#,
                    r#""@bob""#,
                    r#""@""#,
                    r#""Not A Name""#,
                    r#""""#,
                    r#""esc\"aped \u00e9\n""#,
                    r#""\ud800""#,
                    "7",
                    "-1",
                    "1.5",
                    "1e400",
                    "18446744073709551616",
                    "null",
                    "true",
                    "[1]",
                    "{}",
                ])
                .prop_map(str::to_owned),
                1 => string_value(),
                1 => any::<i64>().prop_map(|n| n.to_string()),
            ]
        }

        fn string_value() -> impl Strategy<Value = String> {
            "[a-zA-Z0-9@ _.-]{0,12}".prop_map(|s| format!("\"{s}\""))
        }

        /// A field, mostly as a publish has it, sometimes not.
        fn field(key: &'static str, usual: BoxedStrategy<String>) -> BoxedStrategy<Option<String>> {
            let key = prop_oneof![
                18 => Just(key),
                1 => Just("type"),
                1 => Just(r#"acti\u006fn"#),
            ];
            let value = prop_oneof![8 => usual, 1 => any_value().boxed()];
            prop::option::weighted(0.92, (key, value).prop_map(|(k, v)| format!("\"{k}\":{v}")))
                .boxed()
        }

        /// Publishes and their near misses: the fields of a publish in any
        /// order, one now and then missing, renamed, of the wrong kind or
        /// joined by a field twice or another field, sometimes cut short.
        fn frame_like() -> impl Strategy<Value = String> {
            let extra = (
                prop::sample::select(vec!["ref", "extra", "content", "since", "action"]),
                any_value(),
            )
                .prop_map(|(k, v)| format!("\"{k}\":{v}"));
            (
                field("action", Just(r#""message""#.to_owned()).boxed()),
                field("topic_name", string_value().boxed()),
                field("content", string_value().boxed()),
                prop::option::of(field("ref", any_value().boxed())),
                prop::collection::vec(extra, 0..3),
                prop::bool::weighted(0.6),
                prop::bool::weighted(0.9),
                any::<prop::sample::Index>(),
            )
                .prop_flat_map(
                    |(action, topic, content, reference, extras, plain, whole, cut)| {
                        let mut fields: Vec<String> = [action, topic, content, reference.flatten()]
                            .into_iter()
                            .flatten()
                            .collect();
                        if !plain {
                            fields.extend(extras);
                        }
                        (Just(fields).prop_shuffle(), Just(whole), Just(cut))
                    },
                )
                .prop_map(|(fields, whole, cut)| {
                    let text = format!("{{{}}}", fields.join(","));
                    // Every piece is ASCII, so any cut is a char boundary.
                    match whole {
                        true => text,
                        false => text[..cut.index(text.len())].to_owned(),
                    }
                })
        }

        /// A request, or an error with one of the codes a frame itself
        /// can earn (the rest come from acting on it).
        fn answers_as_the_general_parser(text: &str) -> Result<(), TestCaseError> {
            let parsed = parse(text);
            prop_assert_eq!(&parsed, &parse_any(text), "{}", text);
            if let Err(e) = parsed {
                prop_assert!(
                    matches!(
                        e.code,
                        ErrorCode::BadJson
                            | ErrorCode::UnknownAction
                            | ErrorCode::MissingField
                            | ErrorCode::InvalidField
                            | ErrorCode::InvalidName
                    ),
                    "{:?} for {}",
                    e.code,
                    text
                );
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(5000))]

            /// The publish fast path changes nothing a client sees: for
            /// any frame, `parse` answers what the general parser answers,
            /// codes, messages and `ref` included.
            #[test]
            fn publish_like_frames_parse_as_the_general_parser_does(text in frame_like()) {
                answers_as_the_general_parser(&text)?;
            }

            /// Any text at all gets an answer, never a panic.
            #[test]
            fn any_text_gets_a_request_or_a_frame_error(text in any::<String>()) {
                answers_as_the_general_parser(&text)?;
            }
        }

        /// The generator reaches the fast path often, so the property
        /// above tests it rather than the general parser against itself.
        #[test]
        fn the_generator_reaches_the_fast_path() {
            let mut runner = proptest::test_runner::TestRunner::deterministic();
            let strategy = frame_like();
            let taken = (0..5000)
                .filter_map(|_| strategy.new_tree(&mut runner).ok())
                .filter(|tree| parse_publish(&tree.current()).is_some())
                .count();
            assert!(
                taken >= 1000,
                "only {taken} of 5000 frames took the fast path"
            );
        }
    }

    #[test]
    fn every_mistake_has_its_code_and_keeps_ref() {
        assert_eq!(code_of("{nope").0, ErrorCode::BadJson);
        assert_eq!(code_of("[1]").0, ErrorCode::BadJson);
        assert_eq!(
            code_of(r#"{"action":"dance","ref":"a"}"#),
            (ErrorCode::UnknownAction, Some(json!("a")))
        );
        assert_eq!(
            code_of(r#"{"ref":1}"#),
            (ErrorCode::MissingField, Some(json!(1)))
        );
        assert_eq!(
            code_of(r#"{"action":"subscribe"}"#).0,
            ErrorCode::MissingField
        );
        assert_eq!(
            code_of(r#"{"action":"subscribe","topic_name":5}"#).0,
            ErrorCode::InvalidField
        );
        assert_eq!(
            code_of(r#"{"action":"subscribe","topic_name":"a b"}"#).0,
            ErrorCode::InvalidName
        );
        assert_eq!(
            code_of(r#"{"action":"mark_read","id":"x"}"#).0,
            ErrorCode::InvalidField
        );
        assert_eq!(
            code_of(r#"{"action":"notifications_list","page_size":1000}"#).0,
            ErrorCode::InvalidField
        );
        assert_eq!(
            code_of(r#"{"action":"message","topic_name":"t"}"#).0,
            ErrorCode::MissingField
        );
    }

    #[test]
    fn server_frames_have_the_documented_shape() {
        let ack = ServerFrame::Ack {
            id: 1,
            topic: "news".into(),
            seq: 2,
        }
        .to_json(Some(&json!("r1")));
        assert_eq!(
            serde_json::from_str::<Value>(&ack).unwrap(),
            json!({"type":"ack","id":1,"topic":"news","seq":2,"ref":"r1"})
        );
        let msg = ServerFrame::Message(Message {
            id: 1,
            topic: "@bob".into(),
            seq: 1,
            from: "bob".into(),
            content: "hi".into(),
            ts: 0,
        });
        assert_eq!(
            serde_json::from_str::<Value>(&msg.to_json(None)).unwrap(),
            json!({"type":"message","id":1,"topic":"@bob","seq":1,"from":"bob","content":"hi","ts":"1970-01-01T00:00:00.000Z"})
        );
        assert_eq!(ServerFrame::Ok.to_json(None), r#"{"type":"ok"}"#);
        let pruned = ServerFrame::Pruned {
            topic: "news".into(),
            from: 3,
            to: 40,
        };
        assert_eq!(
            serde_json::from_str::<Value>(&pruned.to_json(None)).unwrap(),
            json!({"type":"pruned","topic":"news","from":3,"to":40})
        );
    }
}

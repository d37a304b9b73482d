//! Forms: checklists an organization defines as data and technicians answer in the field.
//!
//! A template has versions. A version never changes once written: a device that downloaded
//! version 2 answers version 2 even after the office wrote version 3, and its answers are checked
//! against the questions it was shown. A template may be required before a job of its trade (or
//! every job, with no trade) is completed; completion is then refused with every required
//! question left unanswered ([`missing`]).
//!
//! Answers are append-only: answering a question again supersedes the earlier answer, so two
//! devices never conflict over a form.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::Invalid;
use crate::blob::Sha256Hex;
use crate::ids::FormTemplateId;
use crate::text::{Description, Name, Summary, TradeCode};

/// The most questions a template holds.
pub const MAX_QUESTIONS: usize = 100;
/// The most options a choice offers.
pub const MAX_OPTIONS: usize = 50;
/// The longest option, in characters.
pub const MAX_OPTION_CHARS: usize = 100;
/// The longest unit (`psi`, `°F`, `A`), in characters.
pub const MAX_UNIT_CHARS: usize = 20;
/// A question key: a lower-case letter, then lower-case letters, digits and underscores, at
/// most 40 characters in all.
pub const KEY_PATTERN: &str = "^[a-z][a-z0-9_]{0,39}$";

/// A question's key within its template (`gas_pressure`), stable across versions so that an
/// answer means the same thing in each.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QuestionKey(String);

impl QuestionKey {
    /// Accepts [`KEY_PATTERN`].
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let mut chars = raw.chars();
        let ok = raw.len() <= 40
            && chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(
                "invalid_key",
                "a question key is a lower-case letter, then lower-case letters, digits or underscores, at most 40 characters",
            ))
        }
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for QuestionKey {
    type Error = Invalid;
    fn try_from(raw: String) -> Result<Self, Invalid> {
        Self::parse(&raw)
    }
}

impl From<QuestionKey> for String {
    fn from(k: QuestionKey) -> String {
        k.0
    }
}

impl std::fmt::Display for QuestionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a question asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum QuestionKind {
    /// Yes or no.
    YesNo,
    /// A number, in a unit, within a range.
    Number {
        /// The unit shown beside it (`psi`).
        unit: Option<String>,
        /// The smallest value accepted.
        min: Option<Decimal>,
        /// The largest value accepted.
        max: Option<Decimal>,
    },
    /// Free text.
    Text,
    /// One of the options, or several when `multiple`.
    Choice {
        /// The options, in order.
        options: Vec<String>,
        /// Whether several may be chosen.
        multiple: bool,
    },
    /// A photo: the SHA-256 of an uploaded image.
    Photo,
}

/// One question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Question {
    /// Its key.
    pub key: QuestionKey,
    /// What the technician reads.
    pub label: Summary,
    /// What it asks for.
    pub kind: QuestionKind,
    /// Whether completion needs an answer (when the template is required).
    pub required: bool,
}

/// One version of a template.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormTemplate {
    /// The template (the same across versions).
    pub id: FormTemplateId,
    /// 1, then 2…: each definition is a new version.
    pub version: i64,
    /// Its name.
    pub name: Name,
    /// The trade whose jobs it is for; `None`: every job.
    pub trade: Option<TradeCode>,
    /// Whether a job it applies to may be completed only once its required questions are
    /// answered.
    pub required_before_completion: bool,
    /// The questions, in order.
    pub questions: Vec<Question>,
}

impl FormTemplate {
    /// Whether it applies to a job of `trade`.
    pub fn applies_to(&self, trade: &TradeCode) -> bool {
        self.trade.as_ref().is_none_or(|t| t == trade)
    }

    /// The question with `key`.
    pub fn question(&self, key: &QuestionKey) -> Option<&Question> {
        self.questions.iter().find(|q| &q.key == key)
    }
}

/// Every problem with a template's questions, each with the JSON path of the field
/// (`questions[2].options`).
pub fn check_questions(questions: &[Question]) -> Vec<(String, Invalid)> {
    let mut problems = Vec::new();
    if questions.is_empty() || questions.len() > MAX_QUESTIONS {
        problems.push((
            "questions".to_owned(),
            Invalid::new(
                "out_of_range",
                format!("a template has 1 to {MAX_QUESTIONS} questions"),
            ),
        ));
    }
    let mut keys = BTreeSet::new();
    for (i, q) in questions.iter().enumerate() {
        if !keys.insert(&q.key) {
            problems.push((
                format!("questions[{i}].key"),
                Invalid::new("duplicate", format!("the key {} is used twice", q.key)),
            ));
        }
        match &q.kind {
            QuestionKind::Number { unit, min, max } => {
                if let Some(unit) = unit
                    && (unit.trim().is_empty()
                        || unit.chars().count() > MAX_UNIT_CHARS
                        || unit.chars().any(char::is_control))
                {
                    problems.push((
                        format!("questions[{i}].kind.unit"),
                        Invalid::new(
                            "invalid_unit",
                            format!("a unit is 1 to {MAX_UNIT_CHARS} printable characters"),
                        ),
                    ));
                }
                if let (Some(min), Some(max)) = (min, max)
                    && min > max
                {
                    problems.push((
                        format!("questions[{i}].kind.max"),
                        Invalid::new("out_of_order", "max must not be below min"),
                    ));
                }
            }
            QuestionKind::Choice { options, .. } => {
                if options.is_empty() || options.len() > MAX_OPTIONS {
                    problems.push((
                        format!("questions[{i}].kind.options"),
                        Invalid::new(
                            "out_of_range",
                            format!("a choice offers 1 to {MAX_OPTIONS} options"),
                        ),
                    ));
                }
                let mut seen = BTreeSet::new();
                for (j, option) in options.iter().enumerate() {
                    if option.trim().is_empty()
                        || option.chars().count() > MAX_OPTION_CHARS
                        || option.chars().any(char::is_control)
                    {
                        problems.push((
                            format!("questions[{i}].kind.options[{j}]"),
                            Invalid::new(
                                "invalid_option",
                                format!(
                                    "an option is 1 to {MAX_OPTION_CHARS} printable characters"
                                ),
                            ),
                        ));
                    } else if !seen.insert(option.as_str()) {
                        problems.push((
                            format!("questions[{i}].kind.options[{j}]"),
                            Invalid::new("duplicate", format!("{option:?} is offered twice")),
                        ));
                    }
                }
            }
            QuestionKind::YesNo | QuestionKind::Text | QuestionKind::Photo => {}
        }
    }
    problems
}

/// An answer, parsed against its question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum AnswerValue {
    /// Yes (`true`) or no.
    YesNo(bool),
    /// A number within the question's range.
    Number(Decimal),
    /// Text.
    Text(Description),
    /// The options chosen (one unless the question allows several), in the question's order.
    Choice(Vec<String>),
    /// The SHA-256 of an uploaded image.
    Photo(Sha256Hex),
}

impl AnswerValue {
    /// The answer as it travels: a boolean, a decimal string, a string, a list of strings.
    pub fn to_json(&self, multiple: bool) -> serde_json::Value {
        match self {
            Self::YesNo(b) => serde_json::Value::Bool(*b),
            Self::Number(n) => serde_json::Value::String(n.normalize().to_string()),
            Self::Text(t) => serde_json::Value::String(t.as_str().to_owned()),
            Self::Photo(h) => serde_json::Value::String(h.to_string()),
            Self::Choice(chosen) if !multiple && chosen.len() == 1 => {
                serde_json::Value::String(chosen[0].clone())
            }
            Self::Choice(chosen) => serde_json::Value::Array(
                chosen
                    .iter()
                    .map(|c| serde_json::Value::String(c.clone()))
                    .collect(),
            ),
        }
    }
}

fn wrong_type(expected: &str) -> Invalid {
    Invalid::new("invalid_type", format!("the answer must be {expected}"))
}

/// Parses a raw answer (JSON) to `question`.
pub fn parse_answer(question: &Question, raw: &serde_json::Value) -> Result<AnswerValue, Invalid> {
    use serde_json::Value as V;
    match &question.kind {
        QuestionKind::YesNo => match raw {
            V::Bool(b) => Ok(AnswerValue::YesNo(*b)),
            _ => Err(wrong_type("true or false")),
        },
        QuestionKind::Number { min, max, .. } => {
            let text = match raw {
                V::String(s) => s.trim().to_owned(),
                V::Number(n) => n.to_string(),
                _ => return Err(wrong_type("a number (a decimal string or a JSON number)")),
            };
            let value: Decimal = text
                .parse()
                .or_else(|_| Decimal::from_scientific(&text))
                .map_err(|_| Invalid::new("invalid_number", "the answer is not a number"))?;
            let below = min.is_some_and(|m| value < m);
            let above = max.is_some_and(|m| value > m);
            if below || above {
                let bound = |b: &Option<Decimal>| b.map_or("-".to_owned(), |d| d.to_string());
                return Err(Invalid::new(
                    "out_of_range",
                    format!("the answer must be from {} to {}", bound(min), bound(max)),
                ));
            }
            Ok(AnswerValue::Number(value))
        }
        QuestionKind::Text => match raw {
            V::String(s) => Description::parse(s).map(AnswerValue::Text),
            _ => Err(wrong_type("text")),
        },
        QuestionKind::Choice { options, multiple } => {
            let chosen: Vec<&str> = match (raw, multiple) {
                (V::String(s), _) => vec![s.as_str()],
                (V::Array(items), true) => items
                    .iter()
                    .map(|i| i.as_str().ok_or_else(|| wrong_type("a list of options")))
                    .collect::<Result<_, _>>()?,
                _ => return Err(wrong_type("one of the options")),
            };
            if chosen.is_empty() {
                return Err(Invalid::new("required", "choose at least one option"));
            }
            if let Some(unknown) = chosen.iter().find(|c| !options.iter().any(|o| o == *c)) {
                return Err(Invalid::new(
                    "unknown_option",
                    format!("{unknown:?} is not one of the options"),
                ));
            }
            // In the question's order, once each.
            Ok(AnswerValue::Choice(
                options
                    .iter()
                    .filter(|o| chosen.contains(&o.as_str()))
                    .cloned()
                    .collect(),
            ))
        }
        QuestionKind::Photo => match raw {
            V::String(s) => Sha256Hex::parse(s).map(AnswerValue::Photo),
            _ => Err(wrong_type("the SHA-256 of an uploaded photo")),
        },
    }
}

/// The required questions of `template` that `answers` leave unanswered, in the template's
/// order.
pub fn missing<'t>(
    template: &'t FormTemplate,
    answers: &BTreeMap<QuestionKey, AnswerValue>,
) -> Vec<&'t Question> {
    template
        .questions
        .iter()
        .filter(|q| q.required && !answers.contains_key(&q.key))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn q(key: &str, kind: QuestionKind, required: bool) -> Question {
        Question {
            key: QuestionKey::parse(key).unwrap(),
            label: Summary::parse(key).unwrap(),
            kind,
            required,
        }
    }

    fn pressure() -> Question {
        q(
            "gas_pressure",
            QuestionKind::Number {
                unit: Some("psi".into()),
                min: Some(Decimal::ZERO),
                max: Some(Decimal::from(150)),
            },
            true,
        )
    }

    fn checklist() -> FormTemplate {
        FormTemplate {
            id: FormTemplateId::from_uuid(uuid::Uuid::from_u128(1)),
            version: 1,
            name: Name::parse("Water heater install").unwrap(),
            trade: Some(TradeCode::parse("plumbing").unwrap()),
            required_before_completion: true,
            questions: vec![
                q("vent_ok", QuestionKind::YesNo, true),
                pressure(),
                q(
                    "fuel",
                    QuestionKind::Choice {
                        options: vec!["gas".into(), "electric".into()],
                        multiple: false,
                    },
                    true,
                ),
                q("photo", QuestionKind::Photo, false),
                q("remarks", QuestionKind::Text, false),
            ],
        }
    }

    #[test]
    fn keys_are_short_lower_snake_case() {
        assert!(QuestionKey::parse("gas_pressure_2").is_ok());
        for bad in ["", "2x", "Gas", "a-b", &"a".repeat(41)] {
            assert_eq!(
                QuestionKey::parse(bad).map_err(|e| e.code),
                Err("invalid_key")
            );
        }
    }

    #[test]
    fn templates_refuse_every_bad_question_at_once() {
        let dup = vec![
            q("a", QuestionKind::YesNo, true),
            q("a", QuestionKind::Text, false),
            q(
                "n",
                QuestionKind::Number {
                    unit: Some(String::new()),
                    min: Some(Decimal::TEN),
                    max: Some(Decimal::ONE),
                },
                true,
            ),
            q(
                "c",
                QuestionKind::Choice {
                    options: vec!["x".into(), "x".into(), " ".into()],
                    multiple: true,
                },
                true,
            ),
        ];
        let paths: Vec<(String, &str)> = check_questions(&dup)
            .into_iter()
            .map(|(p, e)| (p, e.code))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("questions[1].key".into(), "duplicate"),
                ("questions[2].kind.unit".into(), "invalid_unit"),
                ("questions[2].kind.max".into(), "out_of_order"),
                ("questions[3].kind.options[1]".into(), "duplicate"),
                ("questions[3].kind.options[2]".into(), "invalid_option"),
            ]
        );
        assert_eq!(check_questions(&[])[0].1.code, "out_of_range");
        assert!(check_questions(&checklist().questions).is_empty());
    }

    #[test]
    fn answers_are_parsed_against_their_question() {
        let t = checklist();
        let by = |k: &str| t.question(&QuestionKey::parse(k).unwrap()).unwrap();
        assert_eq!(
            parse_answer(by("vent_ok"), &json!(true)),
            Ok(AnswerValue::YesNo(true))
        );
        assert_eq!(
            parse_answer(by("gas_pressure"), &json!("12.50")),
            Ok(AnswerValue::Number(Decimal::new(1250, 2)))
        );
        assert_eq!(
            parse_answer(by("gas_pressure"), &json!(151)).map_err(|e| e.code),
            Err("out_of_range")
        );
        assert_eq!(
            parse_answer(by("gas_pressure"), &json!("lots")).map_err(|e| e.code),
            Err("invalid_number")
        );
        assert_eq!(
            parse_answer(by("fuel"), &json!("oil")).map_err(|e| e.code),
            Err("unknown_option")
        );
        assert_eq!(
            parse_answer(by("fuel"), &json!(["gas"])).map_err(|e| e.code),
            Err("invalid_type")
        );
        assert_eq!(
            parse_answer(by("photo"), &json!("ab")).map_err(|e| e.code),
            Err("invalid_sha256")
        );
        assert_eq!(
            parse_answer(by("remarks"), &json!(" ")).map_err(|e| e.code),
            Err("required")
        );
    }

    #[test]
    fn completion_lists_every_required_question_left() {
        let t = checklist();
        let mut answers = BTreeMap::new();
        let keys = |m: Vec<&Question>| m.iter().map(|q| q.key.to_string()).collect::<Vec<_>>();
        assert_eq!(
            keys(missing(&t, &answers)),
            ["vent_ok", "gas_pressure", "fuel"]
        );
        answers.insert(
            QuestionKey::parse("fuel").unwrap(),
            AnswerValue::Choice(vec!["gas".into()]),
        );
        assert_eq!(keys(missing(&t, &answers)), ["vent_ok", "gas_pressure"]);
        assert!(t.applies_to(&TradeCode::parse("plumbing").unwrap()));
        assert!(!t.applies_to(&TradeCode::parse("hvac").unwrap()));
    }

    proptest! {
        /// A number is accepted exactly when it is within the range, and comes back as given.
        #[test]
        fn numbers_are_accepted_exactly_within_range(
            units in -100_000i64..100_000, scale in 0u32..4, lo in -500i64..500, span in 0i64..1000,
        ) {
            let (min, max) = (Decimal::from(lo), Decimal::from(lo + span));
            let question = q("n", QuestionKind::Number { unit: None, min: Some(min), max: Some(max) }, true);
            let value = Decimal::new(units, scale);
            let parsed = parse_answer(&question, &json!(value.to_string()));
            prop_assert_eq!(parsed.is_ok(), value >= min && value <= max);
            if let Ok(AnswerValue::Number(n)) = parsed {
                prop_assert_eq!(n, value);
            }
        }

        /// Whatever is answered, the missing questions and the answered required ones are the
        /// required questions, split in two.
        #[test]
        fn missing_and_answered_partition_the_required(mask in proptest::collection::vec(any::<bool>(), 5)) {
            let t = checklist();
            let answers: BTreeMap<QuestionKey, AnswerValue> = t
                .questions
                .iter()
                .zip(&mask)
                .filter(|(_, m)| **m)
                .map(|(q, _)| (q.key.clone(), AnswerValue::YesNo(true)))
                .collect();
            let left = missing(&t, &answers);
            for question in &t.questions {
                let is_missing = left.iter().any(|m| m.key == question.key);
                prop_assert_eq!(is_missing, question.required && !answers.contains_key(&question.key));
            }
        }

        /// No JSON value makes a parser panic; what is accepted re-renders to a value that parses
        /// to the same answer.
        #[test]
        fn any_json_is_parsed_or_refused_and_round_trips(raw in prop_oneof![
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[ -~]{0,20}".prop_map(serde_json::Value::String),
            proptest::collection::vec("[a-z]{0,8}", 0..3).prop_map(|v| json!(v)),
        ]) {
            for question in checklist().questions {
                let multiple = matches!(question.kind, QuestionKind::Choice { multiple: true, .. });
                if let Ok(answer) = parse_answer(&question, &raw) {
                    prop_assert_eq!(parse_answer(&question, &answer.to_json(multiple)), Ok(answer));
                }
            }
        }
    }
}

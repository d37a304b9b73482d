//! `form/v1`: checklist templates (versioned), answers from the field, and the forms on a job.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::form::{self, FormTemplate, Question, QuestionKey, QuestionKind};
use hestami_core::ids::{AppointmentId, FormTemplateId, JobId};
use hestami_core::text::{Name as TemplateName, Summary, TradeCode};
use hestami_store::app::forms::{
    FormAnswers, FormCommand, JobForm, RecordedAnswer, TemplateDefinition, is_multiple,
};

use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, Validator, mutation, mutation_async, query, validate};
use crate::v1::technician::{DeviceReportDto, FixDto};

/// What a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuestionTypeDto {
    /// Yes or no: answered `true` or `false`.
    YesNo,
    /// A number (a decimal string or a JSON number), within `min` and `max`, in `unit`.
    Number,
    /// Free text.
    Text,
    /// One of `options` (a string), or several when `multiple` (a list).
    Choice,
    /// A photo: the SHA-256 of an image uploaded to `/api/v1/blobs/{sha256}`.
    Photo,
}

/// A question, as defined and as shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuestionDto {
    /// Its key within the template (`gas_pressure`): a lower-case letter, then lower-case
    /// letters, digits or underscores, at most 40. Keep a key's meaning across versions.
    pub key: String,
    /// What the technician reads.
    pub label: String,
    /// What it asks for.
    #[serde(rename = "type")]
    pub kind: QuestionTypeDto,
    /// Whether completion needs an answer (when the template is required before completion).
    #[serde(default)]
    pub required: bool,
    /// `number`: the unit shown beside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// `number`: the smallest value accepted (a decimal string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<String>,
    /// `number`: the largest value accepted (a decimal string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
    /// `choice`: the options, in order (1 to 50, each 1 to 100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// `choice`: whether several options may be chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple: Option<bool>,
}

impl From<&Question> for QuestionDto {
    fn from(q: &Question) -> Self {
        let mut dto = QuestionDto {
            key: q.key.to_string(),
            label: q.label.as_str().to_owned(),
            kind: QuestionTypeDto::YesNo,
            required: q.required,
            unit: None,
            min: None,
            max: None,
            options: None,
            multiple: None,
        };
        match &q.kind {
            QuestionKind::YesNo => {}
            QuestionKind::Number { unit, min, max } => {
                dto.kind = QuestionTypeDto::Number;
                dto.unit = unit.clone();
                dto.min = min.map(|m| m.to_string());
                dto.max = max.map(|m| m.to_string());
            }
            QuestionKind::Text => dto.kind = QuestionTypeDto::Text,
            QuestionKind::Choice { options, multiple } => {
                dto.kind = QuestionTypeDto::Choice;
                dto.options = Some(options.clone());
                dto.multiple = Some(*multiple);
            }
            QuestionKind::Photo => dto.kind = QuestionTypeDto::Photo,
        }
        dto
    }
}

fn not_for(v: &mut Validator, at: &str, field: &str, kind: &str) {
    v.fail(
        &format!("{at}.{field}"),
        "not_allowed",
        &format!("{field} is only for {kind} questions"),
    );
}

fn parse_question(v: &mut Validator, at: &str, q: &QuestionDto) -> Option<Question> {
    let key = v.check(&format!("{at}.key"), QuestionKey::parse(&q.key));
    let label = v.check(&format!("{at}.label"), Summary::parse(&q.label));
    let decimal =
        |v: &mut Validator, field: &str, raw: &Option<String>| -> Option<Option<Decimal>> {
            match raw {
                None => Some(None),
                Some(raw) => v
                    .check(
                        &format!("{at}.{field}"),
                        hestami_core::money::parse_decimal(raw).ok_or_else(|| {
                            hestami_core::Invalid::new(
                                "invalid_decimal",
                                "a decimal string: digits with an optional minus and fraction",
                            )
                        }),
                    )
                    .map(Some),
            }
        };
    let number_only = q.unit.is_some() || q.min.is_some() || q.max.is_some();
    let choice_only = q.options.is_some() || q.multiple.is_some();
    let kind = match q.kind {
        QuestionTypeDto::Number => {
            let (min, max) = (decimal(v, "min", &q.min), decimal(v, "max", &q.max));
            if choice_only {
                not_for(v, at, "options", "choice");
            }
            QuestionKind::Number {
                unit: q.unit.as_ref().map(|u| u.trim().to_owned()),
                min: min?,
                max: max?,
            }
        }
        QuestionTypeDto::Choice => {
            if number_only {
                not_for(v, at, "unit", "number");
            }
            QuestionKind::Choice {
                options: q
                    .options
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|o| o.trim().to_owned())
                    .collect(),
                multiple: q.multiple.unwrap_or(false),
            }
        }
        other => {
            if number_only {
                not_for(v, at, "unit", "number");
            }
            if choice_only {
                not_for(v, at, "options", "choice");
            }
            match other {
                QuestionTypeDto::YesNo => QuestionKind::YesNo,
                QuestionTypeDto::Text => QuestionKind::Text,
                _ => QuestionKind::Photo,
            }
        }
    };
    Some(Question {
        key: key?,
        label: label?,
        kind,
        required: q.required,
    })
}

/// `form/v1/defineTemplate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefineTemplateInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// A template to give a new version; absent for a new template.
    pub template_id: Option<Uuid>,
    /// With `templateId`: refuse with `VERSION_CONFLICT` unless its latest version is this.
    pub expected_version: Option<i64>,
    /// Its name.
    pub name: String,
    /// The trade whose jobs it is for; absent: every job.
    pub trade: Option<String>,
    /// Whether a job it is for may be completed only with its required questions answered.
    #[serde(default)]
    pub required_before_completion: bool,
    /// The questions, in order (1 to 100, keys unique).
    pub questions: Vec<QuestionDto>,
}

/// `form/v1/answer`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnswerInput {
    /// Makes the call idempotent (a device queuing answers offline gives each call its own).
    pub idempotency_key: Uuid,
    /// The job.
    pub job_id: Uuid,
    /// The visit, when answered on one.
    pub appointment_id: Option<Uuid>,
    /// The template.
    pub template_id: Uuid,
    /// The version the device showed (answers are checked against it).
    pub template_version: i64,
    /// One or more answers; answering a question again supersedes the earlier answer.
    pub answers: Vec<AnswerItemInput>,
    /// When and where, by the device.
    pub device: Option<DeviceReportDto>,
}

/// One answer.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnswerItemInput {
    /// The question's key.
    pub key: String,
    /// `true`/`false` (yes/no), a decimal string or number (number), a string (text, one
    /// option, a photo's SHA-256) or a list of strings (several options).
    pub value: serde_json::Value,
}

mutating!(DefineTemplateInput, AnswerInput);

/// A template version.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateDto {
    /// The template (the same across versions).
    pub id: Uuid,
    /// Its version (1, 2, …); a version never changes.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// The trade whose jobs it is for; `null`: every job.
    pub trade: Option<String>,
    /// Whether completion waits for its required questions.
    pub required_before_completion: bool,
    /// The questions, in order.
    pub questions: Vec<QuestionDto>,
}

impl From<FormTemplate> for TemplateDto {
    fn from(t: FormTemplate) -> Self {
        Self {
            id: t.id.as_uuid(),
            version: t.version,
            name: t.name.as_str().to_owned(),
            trade: t.trade.map(|t| t.as_str().to_owned()),
            required_before_completion: t.required_before_completion,
            questions: t.questions.iter().map(QuestionDto::from).collect(),
        }
    }
}

/// One recorded answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnswerDto {
    /// The question.
    pub key: String,
    /// The answer, as it was given (a choice as the options chosen).
    pub value: serde_json::Value,
    /// The version it answered.
    pub template_version: i64,
    /// The visit, when answered on one.
    pub appointment_id: Option<Uuid>,
    /// Who answered.
    pub author_user_id: Option<Uuid>,
    /// When the device says it was answered.
    pub device_time: Option<DateTime<Utc>>,
    /// Where the device was.
    pub location: Option<FixDto>,
    /// When the server recorded it.
    pub answered_at: DateTime<Utc>,
}

/// A form on a job.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobFormDto {
    /// The template at the version in use on the job (the latest answered, else the latest).
    pub template: TemplateDto,
    /// Whether the job's completion waits for it.
    pub required_before_completion: bool,
    /// The latest answer to each question.
    pub answers: Vec<AnswerDto>,
    /// The keys of its required questions still unanswered.
    pub missing: Vec<String>,
}

fn answer_dto(template: &FormTemplate, a: RecordedAnswer) -> AnswerDto {
    let multiple = template.question(&a.key).is_some_and(is_multiple);
    AnswerDto {
        key: a.key.to_string(),
        value: a.value.to_json(multiple),
        template_version: a.template_version,
        appointment_id: a.appointment_id.map(|v| v.as_uuid()),
        author_user_id: a.author.map(|u| u.as_uuid()),
        device_time: a.device.map(|d| d.device_time),
        location: a.device.and_then(|d| d.location).map(Into::into),
        answered_at: a.answered_at,
    }
}

impl From<JobForm> for JobFormDto {
    fn from(f: JobForm) -> Self {
        let answers = f
            .answers
            .into_iter()
            .map(|a| answer_dto(&f.template, a))
            .collect();
        Self {
            required_before_completion: f.required_before_completion,
            answers,
            missing: f.missing.iter().map(ToString::to_string).collect(),
            template: f.template.into(),
        }
    }
}

fn convert_define(i: DefineTemplateInput) -> Result<FormCommand, ApiError> {
    validate(|v| {
        let name = v.check("name", TemplateName::parse(&i.name));
        let trade = v.optional("trade", i.trade.as_deref(), TradeCode::parse);
        let questions: Vec<Option<Question>> = i
            .questions
            .iter()
            .enumerate()
            .map(|(n, q)| parse_question(v, &format!("questions[{n}]"), q))
            .collect();
        let questions: Option<Vec<Question>> = questions.into_iter().collect();
        if let Some(questions) = &questions {
            // Core names the fields of a question's kind (`questions[2].kind.max`); on the wire
            // they sit on the question itself (`questions[2].max`).
            for (path, problem) in form::check_questions(questions) {
                v.check::<()>(&path.replace(".kind.", "."), Err(problem));
            }
        }
        if i.template_id.is_none() && i.expected_version.is_some() {
            v.fail(
                "expectedVersion",
                "not_allowed",
                "a new template has no version to expect",
            );
        }
        Some(FormCommand::DefineTemplate(TemplateDefinition {
            template_id: i.template_id.map(FormTemplateId::from_uuid),
            expected_version: i.expected_version,
            name: name?,
            trade: trade?,
            required_before_completion: i.required_before_completion,
            questions: questions?,
        }))
    })
}

/// Parses the answers against the version the device showed: a version never changes, so
/// reading it before the workflow is as good as reading it inside, and a refused answer is a
/// `400` that leaves the key unspent.
async fn convert_answer(ctx: Ctx, i: AnswerInput) -> Result<FormCommand, ApiError> {
    let template = ctx
        .services
        .form_template(
            ctx.caller()?,
            FormTemplateId::from_uuid(i.template_id),
            Some(i.template_version),
        )
        .await?;
    let command = validate(|v| {
        if i.answers.is_empty() {
            v.fail("answers", "required", "give at least one answer");
        }
        let device = DeviceReportDto::parse_optional(i.device.as_ref(), v, "device");
        let mut seen = BTreeSet::new();
        let mut parsed = Vec::with_capacity(i.answers.len());
        for (n, a) in i.answers.iter().enumerate() {
            let Some(key) = v.check(&format!("answers[{n}].key"), QuestionKey::parse(&a.key))
            else {
                continue;
            };
            if !seen.insert(key.clone()) {
                v.fail(
                    &format!("answers[{n}].key"),
                    "duplicate",
                    "a question is answered once a call",
                );
                continue;
            }
            let Some(question) = template.question(&key) else {
                v.fail(
                    &format!("answers[{n}].key"),
                    "unknown_question",
                    &format!(
                        "version {} of {} has no question {key}",
                        template.version, template.name
                    ),
                );
                continue;
            };
            if let Some(value) = v.check(
                &format!("answers[{n}].value"),
                form::parse_answer(question, &a.value),
            ) {
                parsed.push((key, value));
            }
        }
        Some(FormCommand::Answer(FormAnswers {
            job_id: JobId::from_uuid(i.job_id),
            appointment_id: i.appointment_id.map(AppointmentId::from_uuid),
            template_id: template.id,
            template_version: template.version,
            answers: parsed,
            device: device?,
        }))
    })?;
    // A photo answer names an uploaded image the caller may reach: checked here too (a blob
    // never changes once stored), so an answer sent before its photo was uploaded can be sent
    // again with the same key.
    if let FormCommand::Answer(a) = &command {
        for (_, value) in &a.answers {
            if let hestami_core::form::AnswerValue::Photo(sha) = value {
                ctx.services
                    .check_attachable(
                        ctx.caller()?,
                        sha,
                        hestami_core::blob::AttachmentKind::Photo,
                    )
                    .await?;
            }
        }
    }
    Ok(command)
}

fn render_define(t: FormTemplate) -> TemplateDto {
    t.into()
}

fn render_answer(f: JobForm) -> JobFormDto {
    f.into()
}

/// `form/v1/templates`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplatesInput {
    /// Only the templates for this trade's jobs (and those for every job).
    pub trade: Option<String>,
}

/// `form/v1/templates`' answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplatesOutput {
    /// The latest version of each template, by name.
    pub templates: Vec<TemplateDto>,
}

async fn templates(ctx: Ctx, i: TemplatesInput) -> Result<TemplatesOutput, ApiError> {
    let trade = validate(|v| v.optional("trade", i.trade.as_deref(), TradeCode::parse))?;
    let found = ctx.services.form_templates(ctx.caller()?, trade).await?;
    Ok(TemplatesOutput {
        templates: found.into_iter().map(Into::into).collect(),
    })
}

/// `form/v1/ofJob`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OfJobInput {
    /// The job.
    pub job_id: Uuid,
}

/// `form/v1/ofJob`'s answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobFormsOutput {
    /// The forms for the job's trade, and any other answered on it.
    pub forms: Vec<JobFormDto>,
}

async fn of_job(ctx: Ctx, i: OfJobInput) -> Result<JobFormsOutput, ApiError> {
    let forms = ctx
        .services
        .job_forms(ctx.caller()?, JobId::from_uuid(i.job_id))
        .await?;
    Ok(JobFormsOutput {
        forms: forms.into_iter().map(Into::into).collect(),
    })
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "form",
        version: "v1",
        name,
        summary,
        errors,
    }
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation(
            name(
                "defineTemplate",
                "Define a checklist template, or a new version of one (a version never changes)",
                &["FORM_TEMPLATE_NOT_FOUND", "VERSION_CONFLICT"],
            ),
            convert_define,
            render_define,
        ),
        query(
            name(
                "templates",
                "The latest version of each checklist template (of one trade's jobs)",
                &[],
            ),
            templates,
        ),
        mutation_async(
            name(
                "answer",
                "Answer questions of a form on a job, against the version the device showed",
                &[
                    "NOT_FOUND",
                    "FORM_TEMPLATE_NOT_FOUND",
                    "FORM_NOT_FOR_JOB",
                    "BLOB_NOT_FOUND",
                ],
            ),
            convert_answer,
            render_answer,
        ),
        query(
            name(
                "ofJob",
                "The forms on a job: each template in use, its latest answers and what is missing",
                &["NOT_FOUND"],
            ),
            of_job,
        ),
    ]
}

//! Forms (`form/v1`, workflow `form_v1`): versioned checklist templates defined by the office,
//! answered in the field, and required before a job is completed.
//!
//! A template version is written once and never changed, so answers can be checked against the
//! version the device was shown before the workflow starts (a refused answer does not spend the
//! idempotency key). Answers are append-only; the latest answer to a question counts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

use hestami_core::field::DeviceReport;
use hestami_core::form::{self, AnswerValue, FormTemplate, Question, QuestionKey, QuestionKind};
use hestami_core::ids::{AppointmentId, FormTemplateId, JobId, UserId};
use hestami_core::job::Job;
use hestami_core::text::{Name, TradeCode};

use super::{Caller, Command, Services, Subject};
use crate::db::{Row, args};
use crate::directory::parse_stored;
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// The workflow of the `form/v1` mutations.
pub const WORKFLOW: &str = "form_v1";

/// `form/v1/defineTemplate`: a new template, or a new version of one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateDefinition {
    /// The template to give a new version; `None` for a new template.
    pub template_id: Option<FormTemplateId>,
    /// With `template_id`: refuse with `VERSION_CONFLICT` unless its latest version is this.
    pub expected_version: Option<i64>,
    /// Its name.
    pub name: Name,
    /// The trade whose jobs it is for; `None`: every job.
    pub trade: Option<TradeCode>,
    /// Whether completion waits for its required questions.
    pub required_before_completion: bool,
    /// The questions (checked with [`form::check_questions`]).
    pub questions: Vec<Question>,
}

/// `form/v1/answer`: answers to one version of a template, on a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormAnswers {
    /// The job.
    pub job_id: JobId,
    /// The visit, when answered on one.
    pub appointment_id: Option<AppointmentId>,
    /// The template.
    pub template_id: FormTemplateId,
    /// The version the device showed.
    pub template_version: i64,
    /// The answers, parsed against that version.
    pub answers: Vec<(QuestionKey, AnswerValue)>,
    /// When and where, by the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceReport>,
}

/// The commands of `form_v1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum FormCommand {
    /// `form/v1/defineTemplate`.
    #[serde(rename = "form/v1/defineTemplate")]
    DefineTemplate(TemplateDefinition),
    /// `form/v1/answer`.
    #[serde(rename = "form/v1/answer")]
    Answer(FormAnswers),
}

impl Command for FormCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::DefineTemplate(_) => "form/v1/defineTemplate",
            Self::Answer(_) => "form/v1/answer",
        }
    }
    fn subject(&self) -> Option<Subject> {
        match self {
            Self::DefineTemplate(_) => None,
            Self::Answer(a) => Some(match a.appointment_id {
                Some(v) => Subject::Appointment(v),
                None => Subject::Job(a.job_id),
            }),
        }
    }
}

/// One answer as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedAnswer {
    /// The question.
    pub key: QuestionKey,
    /// The answer.
    pub value: AnswerValue,
    /// The version it answered.
    pub template_version: i64,
    /// The visit, when answered on one.
    pub appointment_id: Option<AppointmentId>,
    /// Who answered.
    pub author: Option<UserId>,
    /// When and where, by the device.
    pub device: Option<DeviceReport>,
    /// When the server recorded it.
    pub answered_at: DateTime<Utc>,
}

/// A form on a job: the template (at the version in use), the current answers, and what is
/// still missing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobForm {
    /// The template at the version in use on this job (the latest answered, else the latest).
    pub template: FormTemplate,
    /// Whether completion waits for it (the template's latest version says so, or the job's
    /// maintenance visit requires it).
    pub required_before_completion: bool,
    /// The latest answer to each of its questions.
    pub answers: Vec<RecordedAnswer>,
    /// Its required questions still unanswered.
    pub missing: Vec<QuestionKey>,
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: FormCommand,
) -> Result<serde_json::Value, StoreError> {
    Ok(match command {
        FormCommand::DefineTemplate(d) => serde_json::to_value(
            ctx.step("define_template", move |tx| Box::pin(define(tx, d)))
                .await?,
        )?,
        FormCommand::Answer(a) => serde_json::to_value(
            ctx.step("answer", move |tx| Box::pin(answer(tx, a)))
                .await?,
        )?,
    })
}

const TEMPLATE_COLUMNS: &str = "id, version, name, trade, required_before_completion, questions";

fn decode_template(row: &Row) -> Result<FormTemplate, StoreError> {
    Ok(FormTemplate {
        id: FormTemplateId::from_uuid(row.get("id")?),
        version: row.get("version")?,
        name: parse_stored(&row.get::<String>("name")?, Name::parse)?,
        trade: row
            .get::<Option<String>>("trade")?
            .map(|t| parse_stored(&t, TradeCode::parse))
            .transpose()?,
        required_before_completion: row.get("required_before_completion")?,
        questions: serde_json::from_str(&row.get::<String>("questions")?)?,
    })
}

fn template_not_found() -> Failure {
    Failure::new(
        FailureKind::NotFound,
        "FORM_TEMPLATE_NOT_FOUND",
        "no such form template (or version) in this organization",
    )
}

/// One version of a template; `None` for the latest.
pub(crate) async fn load_template(
    tx: &mut TenantTx,
    id: FormTemplateId,
    version: Option<i64>,
) -> Result<FormTemplate, StoreError> {
    let org = tx.org();
    let row = match version {
        Some(v) => {
            tx.fetch_optional(
                &format!(
                    "SELECT {TEMPLATE_COLUMNS} FROM form_templates WHERE organization_id = $1 \
                     AND id = $2 AND version = $3"
                ),
                args![org, id.as_uuid(), v],
            )
            .await?
        }
        None => {
            tx.fetch_optional(
                &format!(
                    "SELECT {TEMPLATE_COLUMNS} FROM form_templates WHERE organization_id = $1 \
                     AND id = $2 ORDER BY version DESC LIMIT 1"
                ),
                args![org, id.as_uuid()],
            )
            .await?
        }
    };
    row.as_ref()
        .map(decode_template)
        .transpose()?
        .ok_or_else(|| template_not_found().into())
}

/// The latest version of every template (of one trade's jobs, when given).
pub(crate) async fn latest_templates(
    tx: &mut TenantTx,
    trade: Option<&TradeCode>,
) -> Result<Vec<FormTemplate>, StoreError> {
    let org = tx.org();
    let all: Vec<FormTemplate> = tx
        .fetch_all(
            &format!(
                "SELECT {TEMPLATE_COLUMNS} FROM form_templates t WHERE organization_id = $1 \
                 AND version = (SELECT MAX(version) FROM form_templates l \
                 WHERE l.organization_id = t.organization_id AND l.id = t.id) ORDER BY name, id"
            ),
            args![org],
        )
        .await?
        .iter()
        .map(decode_template)
        .collect::<Result<_, _>>()?;
    Ok(all
        .into_iter()
        .filter(|t| trade.is_none_or(|trade| t.applies_to(trade)))
        .collect())
}

async fn define(tx: &mut TenantTx, d: TemplateDefinition) -> Result<FormTemplate, StoreError> {
    let (org, now, actor) = (tx.org(), tx.now(), tx.actor());
    let (id, version) = match d.template_id {
        Some(id) => {
            let current = load_template(tx, id, None).await?;
            super::check_version("form template", d.expected_version, current.version)?;
            (id, current.version + 1)
        }
        None => (FormTemplateId::from_uuid(new_id()), 1),
    };
    let template = FormTemplate {
        id,
        version,
        name: d.name,
        trade: d.trade,
        required_before_completion: d.required_before_completion,
        questions: d.questions,
    };
    tx.execute(
        "INSERT INTO form_templates (organization_id, id, version, name, trade, \
         required_before_completion, questions, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        args![
            org,
            id.as_uuid(),
            version,
            template.name.as_str(),
            template.trade.as_ref().map(|t| t.as_str().to_owned()),
            template.required_before_completion,
            serde_json::to_string(&template.questions)?,
            actor.map(|a| a.as_uuid()),
            now
        ],
    )
    .await?;
    let operation = if version == 1 {
        Operation::Created
    } else {
        Operation::Updated
    };
    tx.record_change("form_template", id.as_uuid(), version, operation)
        .await?;
    Ok(template)
}

async fn answer(tx: &mut TenantTx, a: FormAnswers) -> Result<JobForm, StoreError> {
    let (org, now, actor) = (tx.org(), tx.now(), tx.actor());
    let job = super::job::load(tx, a.job_id, false).await?;
    super::job::ensure_visible(tx, a.job_id).await?;
    if let Some(visit) = a.appointment_id {
        let of_job = tx
            .fetch_optional(
                "SELECT id FROM appointments WHERE organization_id = $1 AND id = $2 AND job_id = $3",
                args![org, visit.as_uuid(), a.job_id.as_uuid()],
            )
            .await?;
        if of_job.is_none() {
            return Err(Failure::not_found("appointment").into());
        }
    }
    let template = load_template(tx, a.template_id, Some(a.template_version)).await?;
    if !template.applies_to(&job.trade)
        && !super::maintenance::visit_forms(tx, job.id)
            .await?
            .contains(&template.id)
    {
        return Err(Failure::new(
            FailureKind::RuleViolation,
            "FORM_NOT_FOR_JOB",
            format!(
                "the form {} is for {} jobs, and this is a {} job",
                template.name,
                template.trade.as_ref().map_or("other", |t| t.as_str()),
                job.trade
            ),
        )
        .into());
    }
    for (key, value) in &a.answers {
        if let AnswerValue::Photo(sha) = value {
            let uploaded = tx
                .fetch_optional(
                    "SELECT media_type FROM blobs WHERE organization_id = $1 AND sha256 = $2",
                    args![org, sha.as_str()],
                )
                .await?;
            let is_image = uploaded
                .map(|r| r.get::<String>("media_type"))
                .transpose()?
                .and_then(|m| hestami_core::blob::MediaType::parse(&m))
                .is_some_and(|m| m.is_image());
            if !is_image {
                return Err(Failure::new(
                    FailureKind::NotFound,
                    "BLOB_NOT_FOUND",
                    format!(
                        "the photo answering {key} is not an image uploaded to the organization"
                    ),
                )
                .into());
            }
        }
    }
    for (key, value) in &a.answers {
        let id = new_id();
        tx.execute(
            "INSERT INTO form_answers (organization_id, id, job_id, appointment_id, template_id, \
             template_version, question_key, answer, device, author_user_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            args![
                org,
                id,
                a.job_id.as_uuid(),
                a.appointment_id.map(|v| v.as_uuid()),
                a.template_id.as_uuid(),
                a.template_version,
                key.as_str(),
                serde_json::to_string(value)?,
                a.device.map(|d| serde_json::to_string(&d)).transpose()?,
                actor.map(|u| u.as_uuid()),
                now
            ],
        )
        .await?;
        tx.record_change("form_answer", id, 1, Operation::Created)
            .await?;
    }
    let forms = of_job(tx, &job).await?;
    forms
        .into_iter()
        .find(|f| f.template.id == a.template_id)
        .ok_or_else(|| StoreError::Internal("the answered form is not on its job".into()))
}

/// Every form on a job: the templates that apply to its trade, those its maintenance visit
/// requires, and any other answered on it.
pub(crate) async fn of_job(tx: &mut TenantTx, job: &Job) -> Result<Vec<JobForm>, StoreError> {
    let org = tx.org();
    let latest = latest_templates(tx, None).await?;
    let visit_forms = super::maintenance::visit_forms(tx, job.id).await?;
    let rows = tx
        .fetch_all(
            "SELECT template_id, template_version, question_key, answer, appointment_id, device, \
             author_user_id, created_at FROM form_answers WHERE organization_id = $1 AND job_id = $2 \
             ORDER BY created_at, id",
            args![org, job.id.as_uuid()],
        )
        .await?;
    // Per template: the highest version answered, and the latest answer to each key.
    let mut answered: BTreeMap<Uuid, (i64, BTreeMap<QuestionKey, RecordedAnswer>)> =
        BTreeMap::new();
    for row in &rows {
        let template: Uuid = row.get("template_id")?;
        let recorded = RecordedAnswer {
            key: parse_stored(&row.get::<String>("question_key")?, QuestionKey::parse)?,
            value: serde_json::from_str(&row.get::<String>("answer")?)?,
            template_version: row.get("template_version")?,
            appointment_id: row
                .get::<Option<Uuid>>("appointment_id")?
                .map(AppointmentId::from_uuid),
            author: row
                .get::<Option<Uuid>>("author_user_id")?
                .map(UserId::from_uuid),
            device: row
                .get::<Option<String>>("device")?
                .map(|d| serde_json::from_str(&d))
                .transpose()?,
            answered_at: row.get("created_at")?,
        };
        let entry = answered.entry(template).or_insert((0, BTreeMap::new()));
        entry.0 = entry.0.max(recorded.template_version);
        entry.1.insert(recorded.key.clone(), recorded);
    }
    let mut forms = Vec::new();
    for newest in latest {
        let in_use = match answered.get(&newest.id.as_uuid()) {
            Some((version, _)) if *version != newest.version => {
                load_template(tx, newest.id, Some(*version)).await?
            }
            Some(_) => newest.clone(),
            None if newest.applies_to(&job.trade) || visit_forms.contains(&newest.id) => {
                newest.clone()
            }
            None => continue,
        };
        let answers: Vec<RecordedAnswer> = answered
            .remove(&newest.id.as_uuid())
            .map(|(_, by_key)| by_key.into_values().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|r: &RecordedAnswer| in_use.question(&r.key).is_some())
            .collect();
        let by_key: BTreeMap<QuestionKey, AnswerValue> = answers
            .iter()
            .map(|r| (r.key.clone(), r.value.clone()))
            .collect();
        let missing = form::missing(&in_use, &by_key)
            .into_iter()
            .map(|q| q.key.clone())
            .collect();
        forms.push(JobForm {
            required_before_completion: (newest.required_before_completion
                && newest.applies_to(&job.trade))
                || visit_forms.contains(&newest.id),
            template: in_use,
            answers,
            missing,
        });
    }
    Ok(forms)
}

/// `422 FORMS_INCOMPLETE`, listing every required question left on every required form, unless
/// the job's required forms are complete.
pub(crate) async fn ensure_complete(tx: &mut TenantTx, job: &Job) -> Result<(), StoreError> {
    let incomplete: Vec<serde_json::Value> = of_job(tx, job)
        .await?
        .into_iter()
        .filter(|f| f.required_before_completion && !f.missing.is_empty())
        .map(|f| {
            let missing: Vec<serde_json::Value> = f
                .missing
                .iter()
                .filter_map(|key| f.template.question(key))
                .map(|q| serde_json::json!({ "key": q.key, "label": q.label }))
                .collect();
            serde_json::json!({
                "templateId": f.template.id,
                "templateVersion": f.template.version,
                "name": f.template.name,
                "missing": missing,
            })
        })
        .collect();
    if incomplete.is_empty() {
        return Ok(());
    }
    let count: usize = incomplete
        .iter()
        .map(|f| f["missing"].as_array().map_or(0, Vec::len))
        .sum();
    Err(Failure::new(
        FailureKind::RuleViolation,
        "FORMS_INCOMPLETE",
        format!("{count} required form question(s) are unanswered"),
    )
    .with_details(serde_json::json!({ "forms": incomplete }))
    .into())
}

/// Whether a question takes several options (for rendering an answer).
pub fn is_multiple(question: &Question) -> bool {
    matches!(question.kind, QuestionKind::Choice { multiple: true, .. })
}

impl Services {
    /// `form/v1/templates`: the latest version of each template (of one trade's jobs).
    pub async fn form_templates(
        &self,
        caller: &Caller,
        trade: Option<TradeCode>,
    ) -> Result<Vec<FormTemplate>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move { latest_templates(tx, trade.as_ref()).await })
        })
        .await
    }

    /// One version of a template (`None`: the latest); for checking answers before the
    /// workflow, which a version's immutability makes safe.
    pub async fn form_template(
        &self,
        caller: &Caller,
        id: FormTemplateId,
        version: Option<i64>,
    ) -> Result<FormTemplate, StoreError> {
        self.read(caller, move |tx| Box::pin(load_template(tx, id, version)))
            .await
    }

    /// `form/v1/ofJob`: the forms on a visible job.
    pub async fn job_forms(&self, caller: &Caller, job: JobId) -> Result<Vec<JobForm>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let loaded = super::job::load(tx, job, false).await?;
                super::job::ensure_visible(tx, job).await?;
                of_job(tx, &loaded).await
            })
        })
        .await
    }
}

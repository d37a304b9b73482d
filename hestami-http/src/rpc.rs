//! The procedure table and the one route that serves it.
//!
//! Each procedure is declared once, as a [`Procedure`]: its name, whether it mutates (and so
//! which workflow it starts), its input and output types, and its error codes. The table drives
//! routing, the permission check, the OpenAPI document and the tests that check every `vN`
//! procedure starts a `*_vN` workflow, so none of them can drift from the others.

use axum::body::Bytes;
use axum::http::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, schema::Schema};
use uuid::Uuid;

use hestami_core::ids::UserId;
use hestami_core::org::Currency;
use hestami_store::app::{Caller, Command, Request, Services, decode_output};
use hestami_store::engine::fingerprint;

use crate::error::{ApiError, FieldErrorBody};

/// What a handler knows about the request it serves.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The services.
    pub services: Services,
    /// The authenticated user (`None` for the sign-in procedures, which run before there is one).
    pub user_id: Option<UserId>,
    /// The bearer token the request was authenticated with.
    pub token: Option<Bearer>,
    /// The organization and user, for organization-scoped procedures.
    pub caller: Option<Caller>,
    /// The caller's role in the organization, for organization-scoped procedures.
    pub role: Option<hestami_core::org::Role>,
    /// The client's address, as the connection gives it.
    pub peer: Option<std::net::IpAddr>,
    /// The request's trace id.
    pub trace_id: String,
    /// The server's rate limits, for a handler whose request does more than one thing
    /// (`sync/v1/push`); `None` outside a server.
    pub(crate) limiter: Option<Arc<crate::limits::Limiter>>,
}

/// A bearer token, kept for `auth/v1/logout`; its `Debug` hides it.
#[derive(Clone)]
pub struct Bearer(pub String);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(..)")
    }
}

impl Ctx {
    /// Takes `extra` more requests from the caller's rate limits (a batch counts its items).
    pub(crate) fn charge(&self, extra: u32) -> Result<(), ApiError> {
        match (&self.limiter, &self.token) {
            (Some(limiter), Some(token)) if extra > 0 => limiter.take(
                &token.0,
                self.caller.as_ref().map(|c| c.organization_id.as_uuid()),
                extra,
            ),
            _ => Ok(()),
        }
    }

    /// The authenticated user.
    pub fn user(&self) -> Result<UserId, ApiError> {
        self.user_id
            .ok_or_else(|| ApiError::internal(&"procedure needs a signed-in user"))
    }

    /// The caller of an organization-scoped procedure.
    pub fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller
            .as_ref()
            .ok_or_else(|| ApiError::internal(&"procedure needs an organization"))
    }
}

/// A handler's successful result: the JSON body.
pub type Body = Bytes;

type HandlerFuture = Pin<Box<dyn Future<Output = Result<Body, ApiError>> + Send>>;
type Handler = Arc<dyn Fn(Ctx, Bytes) -> HandlerFuture + Send + Sync>;
type Schemas = Vec<(String, RefOr<Schema>)>;

/// One procedure of the API.
#[derive(Clone)]
pub struct Procedure {
    /// `job`.
    pub namespace: &'static str,
    /// `v1`.
    pub version: &'static str,
    /// `create`.
    pub name: &'static str,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// The workflow a mutating procedure starts; `None` for reads.
    pub workflow: Option<&'static str>,
    /// Whether the procedure runs within an organization (`X-Organization-Id`).
    pub org_scoped: bool,
    /// Whether the procedure is called without a token (sign-in).
    pub public: bool,
    /// The procedure's own error codes (the common ones are added to every procedure).
    pub errors: &'static [&'static str],
    /// The input schema's name and every schema it needs.
    pub input: fn(&mut Schemas) -> String,
    /// The output schema's name and every schema it needs.
    pub output: fn(&mut Schemas) -> String,
    handler: Handler,
}

impl std::fmt::Debug for Procedure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path())
    }
}

fn schema_of<T: ToSchema>(schemas: &mut Schemas) -> String {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
    T::name().into_owned()
}

impl Procedure {
    /// `namespace/version/name`, the key of the permission table.
    pub fn path(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.version, self.name)
    }

    /// Runs the handler.
    pub async fn call(&self, ctx: Ctx, body: Bytes) -> Result<Body, ApiError> {
        (self.handler)(ctx, body).await
    }
}

/// The parts of a procedure's name.
#[derive(Clone, Copy, Debug)]
pub struct Name {
    /// Namespace.
    pub namespace: &'static str,
    /// Version.
    pub version: &'static str,
    /// Procedure.
    pub name: &'static str,
    /// One line for the document.
    pub summary: &'static str,
    /// The procedure's own error codes.
    pub errors: &'static [&'static str],
}

/// A read: parse the input, run `run`, serialize the output.
pub fn query<I, O, F, Fut>(name: Name, run: F) -> Procedure
where
    I: DeserializeOwned + ToSchema + Send + 'static,
    O: Serialize + ToSchema + 'static,
    F: Fn(Ctx, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, ApiError>> + Send + 'static,
{
    let run = Arc::new(run);
    procedure::<I, O>(name, None, true, move |ctx, body| {
        let run = run.clone();
        Box::pin(async move {
            let (input, _) = parse::<I>(&body)?;
            let output = run(ctx, input).await?;
            to_body(&output)
        })
    })
}

/// The input of a mutating procedure: it carries its idempotency key.
pub trait Mutating {
    /// The key.
    fn idempotency_key(&self) -> Uuid;
}

/// A mutation: parse and validate the input into a store command, run its workflow (or get the
/// recorded outcome of the same request), and render the recorded output.
pub fn mutation<I, C, D, O>(
    name: Name,
    convert: fn(I) -> Result<C, ApiError>,
    render: fn(D) -> O,
) -> Procedure
where
    I: DeserializeOwned + ToSchema + Mutating + Send + 'static,
    C: Command + Send + 'static,
    D: DeserializeOwned + 'static,
    O: Serialize + ToSchema + 'static,
{
    procedure::<I, O>(name, Some(C::WORKFLOW), true, move |ctx, body| {
        Box::pin(async move {
            let (input, mut value) = parse::<I>(&body)?;
            let key = input.idempotency_key();
            normalize_key(&mut value, key);
            let command = convert(input)?;
            submit(ctx, key, &value, command, render).await
        })
    })
}

/// A mutation whose input needs the organization's currency to be parsed (amounts are decimal
/// strings on the wire, `Money` in the command). Otherwise the same as [`mutation`].
pub fn mutation_in<I, C, D, O>(
    name: Name,
    convert: fn(I, Currency) -> Result<C, ApiError>,
    render: fn(D) -> O,
) -> Procedure
where
    I: DeserializeOwned + ToSchema + Mutating + Send + 'static,
    C: Command + Send + 'static,
    D: DeserializeOwned + 'static,
    O: Serialize + ToSchema + 'static,
{
    procedure::<I, O>(name, Some(C::WORKFLOW), true, move |ctx, body| {
        Box::pin(async move {
            let (input, mut value) = parse::<I>(&body)?;
            let key = input.idempotency_key();
            normalize_key(&mut value, key);
            let currency = ctx.services.org_get(ctx.caller()?).await?.currency;
            let command = convert(input, currency)?;
            submit(ctx, key, &value, command, render).await
        })
    })
}

/// A mutation whose input is checked against stored facts that never change once written (a
/// form template's version) on its way to the command: a refusal there is a `400` like any
/// other input error, and the key is not spent. Otherwise the same as [`mutation`].
pub fn mutation_async<I, C, D, O, F, Fut>(name: Name, convert: F, render: fn(D) -> O) -> Procedure
where
    I: DeserializeOwned + ToSchema + Mutating + Send + 'static,
    C: Command + Send + 'static,
    D: DeserializeOwned + 'static,
    O: Serialize + ToSchema + 'static,
    F: Fn(Ctx, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<C, ApiError>> + Send + 'static,
{
    let convert = Arc::new(convert);
    procedure::<I, O>(name, Some(C::WORKFLOW), true, move |ctx, body| {
        let convert = convert.clone();
        Box::pin(async move {
            let (input, mut value) = parse::<I>(&body)?;
            let key = input.idempotency_key();
            normalize_key(&mut value, key);
            let command = convert(ctx.clone(), input).await?;
            submit(ctx, key, &value, command, render).await
        })
    })
}

/// A mutation that hands the caller a secret the server keeps only as a hash (an integration
/// token, an invitation code), `prefix` and 32 random bytes in hex. The secret is drawn here and only its hash goes into the command, so neither the
/// store nor the workflow's recorded outcome holds it. `convert` gets the hash; `render` gets the
/// secret only when the recorded outcome carries this request's hash (`hash_of`), that is when
/// this request is the one that ran the workflow: a replay answers the same record without it.
pub fn mutation_with_secret<I, C, D, O>(
    name: Name,
    prefix: &'static str,
    convert: fn(I, String) -> Result<C, ApiError>,
    hash_of: fn(&D) -> Option<&str>,
    render: fn(D, Option<String>) -> O,
) -> Procedure
where
    I: DeserializeOwned + ToSchema + Mutating + Send + 'static,
    C: Command + Send + 'static,
    D: DeserializeOwned + 'static,
    O: Serialize + ToSchema + 'static,
{
    procedure::<I, O>(name, Some(C::WORKFLOW), true, move |ctx, body| {
        Box::pin(async move {
            let (input, mut value) = parse::<I>(&body)?;
            let key = input.idempotency_key();
            normalize_key(&mut value, key);
            let secret = hestami_store::directory::random_token()
                .map_err(ApiError::from)?
                .replacen("hst_", prefix, 1);
            let hash = hestami_store::directory::hash_token(&secret);
            let command = convert(input, hash.clone())?;
            submit(ctx, key, &value, command, move |d: D| {
                let shown = (hash_of(&d) == Some(hash.as_str())).then_some(secret);
                render(d, shown)
            })
            .await
        })
    })
}

/// Runs a command through its workflow and renders the recorded outcome.
async fn submit<C: Command, D: DeserializeOwned, O: Serialize>(
    ctx: Ctx,
    idempotency_key: Uuid,
    value: &serde_json::Value,
    command: C,
    render: impl FnOnce(D) -> O,
) -> Result<Body, ApiError> {
    let caller = *ctx.caller()?;
    let request = Request {
        idempotency_key,
        fingerprint: fingerprint(value),
        trace_id: Some(ctx.trace_id.clone()),
        command,
    };
    let completed = ctx.services.submit(&caller, request).await?;
    tracing::Span::current().record(
        "workflow.id",
        tracing::field::display(completed.workflow_id),
    );
    match completed.outcome {
        Ok(text) => to_body(&render(decode_output::<D>(&text)?)),
        // A recorded failure is rendered with the trace id recorded with it, so a replay is the
        // original response byte for byte.
        Err(failure) => Err(ApiError {
            recorded_trace_id: completed.trace_id,
            ..ApiError::from(failure)
        }),
    }
}

fn procedure<I: ToSchema, O: ToSchema>(
    name: Name,
    workflow: Option<&'static str>,
    org_scoped: bool,
    handler: impl Fn(Ctx, Bytes) -> HandlerFuture + Send + Sync + 'static,
) -> Procedure {
    Procedure {
        namespace: name.namespace,
        version: name.version,
        name: name.name,
        summary: name.summary,
        workflow,
        org_scoped,
        public: false,
        errors: name.errors,
        input: schema_of::<I>,
        output: schema_of::<O>,
        handler: Arc::new(handler),
    }
}

impl Procedure {
    /// The same procedure, callable without an organization (`auth/v1/whoami`).
    pub fn unscoped(mut self) -> Self {
        self.org_scoped = false;
        self
    }

    /// The same procedure, callable without a token and without an organization: the sign-in
    /// procedures, which are how a person gets a token.
    pub fn public(mut self) -> Self {
        self.org_scoped = false;
        self.public = true;
        self
    }
}

fn to_body<O: Serialize>(output: &O) -> Result<Body, ApiError> {
    serde_json::to_vec(output)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(&e))
}

/// Parses a body: malformed JSON, a wrong type, a missing or an unknown field each give a
/// `400` whose field error names the JSON path. Returns the typed input and the canonical
/// JSON value (for the request's fingerprint).
pub fn parse<I: DeserializeOwned>(body: &[u8]) -> Result<(I, serde_json::Value), ApiError> {
    let value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::field(
            "$",
            "body_required",
            "the request body must be a JSON object",
        ));
    } else {
        strict_json(body)?
    };
    if !value.is_object() {
        return Err(ApiError::field(
            "$",
            "invalid_type",
            "the request body must be a JSON object",
        ));
    }
    let input =
        serde_path_to_error::deserialize::<_, I>(ObjectsAreObjects(&value)).map_err(|e| {
            let path = e.path().to_string();
            let message = e.inner().to_string();
            ApiError::validation(vec![field_error(&path, &message)])
        })?;
    Ok((input, value))
}

/// Writes the idempotency key in its one canonical spelling (lower-case, hyphenated) into the
/// value the fingerprint is taken of: `{A1B2…}` and `a1b2…` name the same workflow, so they must
/// be the same request too.
fn normalize_key(value: &mut serde_json::Value, key: Uuid) {
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "idempotencyKey".into(),
            serde_json::Value::String(key.hyphenated().to_string()),
        );
    }
}

/// Parses a body into a JSON value, more strictly than `serde_json::from_slice`:
///
/// - a member name that appears twice in one object is refused (a field error at its path),
///   rather than the last one silently winning: a proxy or an audit log that reads the first
///   would see another request;
/// - a number with a fraction of zero (`1.0`, `2e1`) is read as the integer it equals, because
///   JSON Schema calls it an integer, so a client may send it wherever an integer is documented.
pub fn strict_json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    use serde::de::DeserializeSeed as _;
    let duplicate = std::cell::RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = StrictSeed {
        path: String::new(),
        duplicate: &duplicate,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match (parsed, duplicate.into_inner()) {
        (_, Some(marked)) => Err(match marked.strip_prefix("\0nul:") {
            Some(path) => ApiError::field(
                path,
                "invalid_characters",
                "a string must not contain a NUL character",
            ),
            None => ApiError::field(
                marked,
                "duplicate_member",
                "this member appears more than once in its object",
            ),
        }),
        (Ok(value), None) => Ok(value),
        (Err(e), None) => Err(ApiError::field(
            "$",
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )),
    }
}

struct StrictSeed<'a> {
    path: String,
    duplicate: &'a std::cell::RefCell<Option<String>>,
}

impl StrictSeed<'_> {
    fn child(&self, path: String) -> StrictSeed<'_> {
        StrictSeed {
            path,
            duplicate: self.duplicate,
        }
    }

    /// No string of any input holds a NUL: nothing here means one, and PostgreSQL cannot store it
    /// in text (it answered 500 for one in an e-mail address).
    fn no_nul<E: serde::de::Error>(&self, v: &str) -> Result<(), E> {
        if v.contains('\0') {
            self.duplicate.borrow_mut().get_or_insert_with(|| {
                let path = if self.path.is_empty() {
                    "$"
                } else {
                    &self.path
                };
                format!("\0nul:{path}")
            });
            return Err(E::custom("a NUL character"));
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = serde_json::Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for StrictSeed<'_> {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // Exactly representable integers only (|v| < 2^53): 1.0 is 1, 1e300 stays a float.
        const EXACT: f64 = 9_007_199_254_740_992.0;
        #[allow(clippy::cast_possible_truncation)]
        if v.fract() == 0.0 && v.abs() < EXACT {
            return Ok((v as i64).into());
        }
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        self.no_nul(v)?;
        Ok(v.into())
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        self.no_nul(&v)?;
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) =
            seq.next_element_seed(self.child(format!("{}[{}]", self.path, items.len())))?
        {
            items.push(item);
        }
        Ok(items.into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let path = if self.path.is_empty() {
                name.clone()
            } else {
                format!("{}.{name}", self.path)
            };
            let value = map.next_value_seed(self.child(path.clone()))?;
            if object.contains_key(&name) {
                self.duplicate.borrow_mut().get_or_insert(path);
                return Err(serde::de::Error::custom("duplicate member"));
            }
            object.insert(name, value);
        }
        Ok(object.into())
    }
}

/// Reads a JSON value into a DTO as `&serde_json::Value` does, except that an object is never
/// read from an array: serde's derived structs accept a sequence of their fields in order, so
/// `"location": [41.8, -87.6]` would pass for `{"lat": 41.8, "lon": -87.6}`, which the document
/// does not allow. (Inside an internally tagged enum serde buffers the value first and this
/// check does not reach; those inputs are flat objects whose fields are all named.)
struct ObjectsAreObjects<'a>(&'a serde_json::Value);

impl<'de> serde::Deserializer<'de> for ObjectsAreObjects<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            serde_json::Value::Object(map) => visitor.visit_map(StrictMap {
                entries: map.iter(),
                value: None,
            }),
            serde_json::Value::Array(items) => visitor.visit_seq(StrictSeq(items.iter())),
            other => serde::Deserializer::deserialize_any(other, visitor),
        }
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            serde_json::Value::Array(_) => Err(serde::de::Error::invalid_type(
                serde::de::Unexpected::Seq,
                &"an object",
            )),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            serde_json::Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_enum(self.0, name, variants, visitor)
    }

    // Numbers, strings and the rest read exactly as `&Value` reads them.
    fn deserialize_bool<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_bool(self.0, v)
    }
    fn deserialize_i8<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_i8(self.0, v)
    }
    fn deserialize_i16<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_i16(self.0, v)
    }
    fn deserialize_i32<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_i32(self.0, v)
    }
    fn deserialize_i64<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_i64(self.0, v)
    }
    fn deserialize_u8<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_u8(self.0, v)
    }
    fn deserialize_u16<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_u16(self.0, v)
    }
    fn deserialize_u32<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_u32(self.0, v)
    }
    fn deserialize_u64<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_u64(self.0, v)
    }
    fn deserialize_f32<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_f32(self.0, v)
    }
    fn deserialize_f64<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_f64(self.0, v)
    }
    fn deserialize_char<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_char(self.0, v)
    }
    fn deserialize_str<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_str(self.0, v)
    }
    fn deserialize_string<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_string(self.0, v)
    }
    fn deserialize_bytes<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_bytes(self.0, v)
    }
    fn deserialize_byte_buf<V: serde::de::Visitor<'de>>(
        self,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_byte_buf(self.0, v)
    }
    fn deserialize_unit<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_unit(self.0, v)
    }
    fn deserialize_unit_struct<V: serde::de::Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_unit_struct(self.0, name, v)
    }
    fn deserialize_identifier<V: serde::de::Visitor<'de>>(
        self,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        serde::Deserializer::deserialize_identifier(self.0, v)
    }
    fn deserialize_ignored_any<V: serde::de::Visitor<'de>>(
        self,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        v.visit_unit()
    }
    fn deserialize_seq<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.deserialize_any(v)
    }
    fn deserialize_tuple<V: serde::de::Visitor<'de>>(
        self,
        _len: usize,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_any(v)
    }
    fn deserialize_tuple_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, Self::Error> {
        self.deserialize_any(v)
    }
    fn deserialize_map<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, Self::Error> {
        self.deserialize_any(v)
    }
}

struct StrictMap<'a> {
    entries: serde_json::map::Iter<'a>,
    value: Option<&'a serde_json::Value>,
}

impl<'de> serde::de::MapAccess<'de> for StrictMap<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(serde::de::value::BorrowedStrDeserializer::new(key))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(ObjectsAreObjects(value)),
            None => Err(serde::de::Error::custom("a value without its key")),
        }
    }
}

struct StrictSeq<'a>(std::slice::Iter<'a, serde_json::Value>);

impl<'de> serde::de::SeqAccess<'de> for StrictSeq<'de> {
    type Error = serde_json::Error;

    fn next_element_seed<T: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0
            .next()
            .map(|value| seed.deserialize(ObjectsAreObjects(value)))
            .transpose()
    }
}

/// The known field closest to an unknown one, from serde's "expected one of `a`, `b`" list:
/// the same name in another case or with underscores (`customer_id` for `customerId`), or one
/// at most a few edits away.
fn closest_field(unknown: &str, message: &str) -> Option<String> {
    let expected = message.split_once("expected ")?.1;
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let fold = |s: &str| s.replace('_', "").to_lowercase();
    if let Some(same) = known.iter().find(|k| fold(k) == fold(unknown)) {
        return Some((*same).to_owned());
    }
    let limit = match unknown.chars().count() {
        0..=3 => 1,
        n => (n / 3).clamp(2, 3),
    };
    known
        .iter()
        .map(|k| (edit_distance(&fold(k), &fold(unknown)), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k.to_owned())
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

fn field_error(path: &str, message: &str) -> FieldErrorBody {
    let base = if path == "." {
        String::new()
    } else {
        path.to_owned()
    };
    let join = |name: &str| {
        if base.is_empty() {
            name.to_owned()
        } else {
            format!("{base}.{name}")
        }
    };
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    if let Some(name) = quoted("unknown field `") {
        // The path already ends at the unknown field itself.
        let field = if base.is_empty() {
            name.clone()
        } else {
            base.clone()
        };
        let message = match closest_field(&name, message) {
            Some(known) => format!("unknown field {name}; did you mean {known}?"),
            None => format!("unknown field {name}"),
        };
        return FieldErrorBody {
            field,
            code: "unknown_field".into(),
            message,
        };
    }
    if let Some(name) = quoted("missing field `") {
        return FieldErrorBody {
            field: join(&name),
            code: "required".into(),
            message: format!("{name} is required"),
        };
    }
    let code = if message.starts_with("invalid type") || message.starts_with("invalid value") {
        "invalid_type"
    } else if message.starts_with("unknown variant") {
        "invalid_value"
    } else {
        "invalid"
    };
    FieldErrorBody {
        field: if base.is_empty() { "$".into() } else { base },
        code: code.into(),
        message: message.to_owned(),
    }
}

/// Collects every field error of an input before giving up, so a client sees all of them.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldErrorBody>,
}

impl Validator {
    /// Keeps a parsed value, or records why `field` was refused.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, hestami_core::Invalid>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(invalid) => {
                self.errors.push(FieldErrorBody {
                    field: field.to_owned(),
                    code: invalid.code.to_owned(),
                    message: invalid.message,
                });
                None
            }
        }
    }

    /// Parses an optional value: absent is fine, present must parse.
    pub fn optional<T>(
        &mut self,
        field: &str,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, hestami_core::Invalid>,
    ) -> Option<Option<T>> {
        match raw {
            None => Some(None),
            Some(raw) => self.check(field, parse(raw)).map(Some),
        }
    }

    /// Records a problem directly.
    pub fn fail(&mut self, field: &str, code: &str, message: &str) {
        self.errors.push(FieldErrorBody {
            field: field.to_owned(),
            code: code.to_owned(),
            message: message.to_owned(),
        });
    }
}

/// Runs `build` with a [`Validator`]; succeeds only when it returns a value and recorded no
/// problem.
pub fn validate<T>(build: impl FnOnce(&mut Validator) -> Option<T>) -> Result<T, ApiError> {
    let mut v = Validator::default();
    match build(&mut v) {
        Some(value) if v.errors.is_empty() => Ok(value),
        _ if v.errors.is_empty() => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "VALIDATION_FAILED",
            "the request is not valid",
        )),
        _ => Err(ApiError::validation(v.errors)),
    }
}

/// Deserializes a field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_field_names_the_closest_known_one() {
        let message =
            "unknown field `nmae`, expected one of `idempotencyKey`, `name`, `email`, `phone`";
        assert_eq!(closest_field("nmae", message).as_deref(), Some("name"));
        let message = "unknown field `job_id`, expected `jobId`";
        assert_eq!(closest_field("job_id", message).as_deref(), Some("jobId"));
        let message = "unknown field `zzzzzz`, expected one of `name`, `email`";
        assert_eq!(closest_field("zzzzzz", message), None);
        let error = field_error(
            ".",
            "unknown field `emial`, expected one of `name`, `email`",
        );
        assert_eq!(error.field, "emial");
        assert_eq!(error.message, "unknown field emial; did you mean email?");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}

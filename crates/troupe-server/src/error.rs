//! One error shape for every endpoint: `{"error": "…", "hint": "…", "diagnostics": […]}`, with
//! the status that says what kind of problem it is. A hint is a field, not a line of the
//! message, so that the page, the CLI and a client each show it their way.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// A located problem in a crew file, as `troupe validate` prints it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DiagnosticBody {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The JSON path of the value (`tasks[1].agent`).
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<DiagnosticBody>,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// `message` may carry its hint as a `\n  hint: …` line (as library errors do): it is
    /// moved to the `hint` field.
    pub fn new(status: StatusCode, message: impl std::fmt::Display) -> Self {
        let text = message.to_string();
        let (error, hint) = match text.split_once("\n  hint: ") {
            Some((e, h)) => (e.to_string(), Some(h.to_string())),
            None => (text, None),
        };
        Self {
            status,
            body: ErrorBody {
                error,
                hint,
                diagnostics: Vec::new(),
            },
            retry_after: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.body.hint = Some(hint.into());
        self
    }

    pub fn bad_request(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// A crew that fails validation: 422 with every located diagnostic.
    pub fn invalid_crew(d: &troupe_crew::Diagnostics) -> Self {
        let n = d.0.len();
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the crew has {n} problem(s)"),
        );
        e.body.hint =
            Some("each diagnostic names the place in the crew file and how to fix it".into());
        e.body.diagnostics =
            d.0.iter()
                .map(|d| DiagnosticBody {
                    file: d.file.display().to_string(),
                    line: d.line,
                    column: d.column,
                    path: d.path.clone(),
                    message: d.message.clone(),
                    hint: d.hint.clone(),
                })
                .collect();
        e
    }
}

impl From<troupe_store::StoreError> for ApiError {
    fn from(e: troupe_store::StoreError) -> Self {
        use troupe_store::StoreError as S;
        let status = match &e {
            S::NoSuchRun(_) | S::Ambiguous { .. } => StatusCode::NOT_FOUND,
            S::Completed(_) | S::Exists(_) | S::NoPendingApproval { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e)
    }
}

impl From<troupe_runtime::launch::LaunchError> for ApiError {
    fn from(e: troupe_runtime::launch::LaunchError) -> Self {
        use troupe_runtime::launch::LaunchErrorKind as K;
        let status = match e.kind {
            K::NotFound => StatusCode::NOT_FOUND,
            K::Conflict => StatusCode::CONFLICT,
            K::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, e.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

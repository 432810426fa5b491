//! KMS error shapes: `{"__type": "...", "message": "..."}` with the HTTP status AWS uses.
//! Messages name keys and reasons, never key bytes, plaintext or blobs.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsError {
    pub code: &'static str,
    pub message: String,
}

impl KmsError {
    pub fn new(code: &'static str, message: impl Into<String>) -> KmsError {
        KmsError {
            code,
            message: message.into(),
        }
    }
    pub fn not_found(m: impl Into<String>) -> KmsError {
        Self::new("NotFoundException", m)
    }
    pub fn validation(m: impl Into<String>) -> KmsError {
        Self::new("ValidationException", m)
    }
    pub fn invalid_ciphertext(m: impl Into<String>) -> KmsError {
        Self::new("InvalidCiphertextException", m)
    }
    pub fn disabled(m: impl Into<String>) -> KmsError {
        Self::new("DisabledException", m)
    }

    /// AWS KMS answers every client error with 400 and internal failures with 500.
    pub fn status(&self) -> StatusCode {
        match self.code {
            "KMSInternalException" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for KmsError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"__type": self.code, "message": self.message});
        (
            self.status(),
            [
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amzn-errortype", self.code),
            ],
            body.to_string(),
        )
            .into_response()
    }
}

//! The store's errors in the user's terms: which are configuration mistakes (credentials, a
//! missing bucket or directory) rather than the world failing, and the two S3 refusals that
//! otherwise read as noise, said in words.

use crate::error::SluiceError;

/// Whether an error of the store is the configuration's (credentials, a missing bucket or
/// directory, a bad path) rather than a transient failure.
pub(super) fn is_configuration(e: &object_store::Error) -> bool {
    use object_store::Error::*;
    match e {
        NotFound { .. }
        | InvalidPath { .. }
        | PermissionDenied { .. }
        | Unauthenticated { .. }
        | NotSupported { .. }
        | NotImplemented { .. }
        | UnknownConfigurationKey { .. } => true,
        Generic { source, .. } => {
            // S3's refusals come as generic errors carrying the HTTP status and S3's code.
            let text = source.to_string();
            [
                "403",
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "AccessDenied",
                "NoSuchBucket",
                "Missing bucket name",
            ]
            .iter()
            .any(|s| text.contains(s))
        }
        _ => false,
    }
}

pub(super) fn store_error(location: &str, action: &str, e: object_store::Error) -> SluiceError {
    if let Some(plain) = plain_reason(location, &e) {
        return SluiceError::Store {
            location: location.to_owned(),
            action: action.to_owned(),
            user_error: true,
            source: plain.into(),
        };
    }
    SluiceError::Store {
        location: location.to_owned(),
        action: action.to_owned(),
        user_error: is_configuration(&e),
        source: Box::new(e),
    }
}

/// What an S3 refusal means, in words, for the two that otherwise read as noise: no
/// credentials (the SDK's last resort, the EC2 instance metadata address, does not answer)
/// and a missing bucket (S3's XML error document).
fn plain_reason(location: &str, e: &object_store::Error) -> Option<String> {
    let text = format!("{e:?} {e}");
    if text.contains("169.254.169.254") {
        return Some(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or run on an instance with a role); without them the instance metadata service was asked and did not answer".into(),
        );
    }
    if text.contains("NoSuchBucket") {
        let bucket = location
            .split_once("://")
            .map_or(location, |(_, r)| r)
            .split('/')
            .next()
            .unwrap_or(location);
        return Some(format!(
            "the bucket `{bucket}` does not exist (or this endpoint has no such bucket): create it, or check the name and AWS_ENDPOINT_URL"
        ));
    }
    None
}

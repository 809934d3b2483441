//! Redaction (Spark's `spark.redaction.regex`): secrets never reach a log line, an error
//! message, the web UI, its REST API or a metric label.
//!
//! Three rules, applied by [`redact`] to any text on its way out:
//!
//! 1. the password of a URL (`postgres://user:password@host/db`) is replaced, whatever the
//!    scheme;
//! 2. the value of a setting whose name looks secret (Spark's default pattern
//!    `secret|password|token|access.key`, plus `passwd`, `credential`, `sasl.jaas.config`) in
//!    `name=value` form, or `name: value` with a dotted or underscored name, is replaced (`sasl.password=…`, `--kafka-param
//!    ssl.key.password=…`);
//! 3. every literal secret this process knows is replaced wherever it appears: the values of
//!    environment variables with secret-looking names (`PGPASSWORD`, `AWS_SECRET_ACCESS_KEY`),
//!    read once, and what [`register_secret`] was given (the command line's passwords).
//!
//! URLs built into names and messages are redacted where they are formatted ([`url`]); the
//! command line's logger, its error printer and the web UI apply [`redact`] to whatever else
//! goes out.

use std::borrow::Cow;
use std::sync::{OnceLock, RwLock};

/// What a secret is replaced with (Spark's text).
pub const REDACTED: &str = "*********(redacted)";

/// Names that mark a value as secret (compared in lower case; `.`, `-` and `_` are equal).
const SECRET_NAMES: [&str; 7] = [
    "secret",
    "password",
    "passwd",
    "token",
    "access_key",
    "credential",
    "sasl_jaas_config",
];

/// Whether a setting called `name` holds a secret (Spark's `spark.redaction.regex` and a few
/// more).
///
/// ```
/// assert!(sluice::redact::is_secret_name("sasl.password"));
/// assert!(sluice::redact::is_secret_name("AWS_SECRET_ACCESS_KEY"));
/// assert!(!sluice::redact::is_secret_name("bootstrap.servers"));
/// ```
pub fn is_secret_name(name: &str) -> bool {
    let normal: String = name
        .chars()
        .map(|c| match c {
            '.' | '-' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    SECRET_NAMES.iter().any(|s| normal.contains(s))
}

fn known() -> &'static RwLock<Vec<String>> {
    static KNOWN: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut from_env: Vec<String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, v)| is_secret_name(k) && v.len() >= 4)
            .map(|(_, v)| v)
            .collect();
        sort_longest_first(&mut from_env);
        RwLock::new(from_env)
    })
}

fn sort_longest_first(v: &mut Vec<String>) {
    v.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    v.dedup();
}

/// Remembers `secret` so that [`redact`] replaces it wherever it appears (values shorter than
/// 4 characters are not remembered: they would hide ordinary text).
///
/// ```
/// sluice::redact::register_secret("hunter22");
/// assert_eq!(sluice::redact::redact("pw is hunter22"), "pw is *********(redacted)");
/// ```
pub fn register_secret(secret: &str) {
    if secret.len() < 4 || secret == REDACTED {
        return;
    }
    let mut known = known().write().unwrap_or_else(|p| p.into_inner());
    known.push(secret.to_owned());
    sort_longest_first(&mut known);
}

/// Remembers the secrets of a command line: URL passwords and the values of secret-looking
/// `name=value` arguments (e.g. `--kafka-param sasl.password=…`).
///
/// ```
/// sluice::redact::register_args(["--url", "mysql://root:s3cr3t!@db/x"]);
/// assert_eq!(sluice::redact::redact("s3cr3t!"), "*********(redacted)");
/// ```
pub fn register_args<I, S>(args: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    for arg in args {
        let arg = arg.as_ref();
        for (start, end) in url_passwords(arg) {
            register_secret(&arg[start..end]);
        }
        if let Some((name, value)) = arg.split_once('=')
            && is_secret_name(name)
        {
            register_secret(value);
        }
    }
}

/// `text` with every secret replaced (see the module docs).
///
/// ```
/// use sluice::redact::redact;
/// assert_eq!(redact("postgres://app:pw1@db:5432/x"), "postgres://app:*********(redacted)@db:5432/x");
/// assert_eq!(redact("sasl.password=abc ok"), "sasl.password=*********(redacted) ok");
/// assert_eq!(redact("nothing here"), "nothing here");
/// ```
pub fn redact(text: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(text);
    let spans = url_passwords(&out);
    if !spans.is_empty() {
        out = Cow::Owned(replace_spans(&out, &spans));
    }
    let spans = setting_values(&out);
    if !spans.is_empty() {
        out = Cow::Owned(replace_spans(&out, &spans));
    }
    let known = known().read().unwrap_or_else(|p| p.into_inner());
    for secret in known.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
        }
    }
    out
}

/// A URL as it may be shown: its password replaced.
///
/// ```
/// assert_eq!(sluice::redact::url("redis://:pw@127.0.0.1/"), "redis://:*********(redacted)@127.0.0.1/");
/// assert_eq!(sluice::redact::url("s3://bucket/x"), "s3://bucket/x");
/// ```
pub fn url(url: &str) -> String {
    let spans = url_passwords(url);
    if spans.is_empty() {
        url.to_owned()
    } else {
        replace_spans(url, &spans)
    }
}

fn replace_spans(text: &str, spans: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for &(start, end) in spans {
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// The byte spans of the passwords of the URLs in `text` (`scheme://user:PASSWORD@host`).
fn url_passwords(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let auth_start = from + i + 3;
        // The authority ends at the first `/`, `?`, `#` or whitespace; its userinfo at the
        // last `@` before that.
        let rest = &text[auth_start..];
        let auth_len = rest
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '`')
            .unwrap_or(rest.len());
        let authority = &rest[..auth_len];
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[..at].find(':')
            && colon + 1 < at
            && &authority[colon + 1..at] != REDACTED
        {
            spans.push((auth_start + colon + 1, auth_start + at));
        }
        from = auth_start + auth_len;
        if from >= text.len() {
            break;
        }
    }
    spans
}

/// The byte spans of the values of secret-looking settings in `text`: `name=value` and
/// `name: value`, the value running to whitespace, `,`, `;`, `&` or a quote.
fn setting_values(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let sep_len = match bytes[i] {
            b'=' => 1,
            b':' if bytes.get(i + 1) == Some(&b' ') => 2,
            _ => {
                i += 1;
                continue;
            }
        };
        // The name: the word just before the separator.
        let name_start = text[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .map_or(0, |p| p + 1);
        let name = &text[name_start..i];
        let value_start = i + sep_len;
        let value_len = text[value_start..]
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '&' | '"' | '\'' | '`'))
            .unwrap_or(text.len() - value_start);
        let value = &text[value_start..value_start + value_len];
        // `name: value` is also prose ("credentials: set …"): only a setting's dotted or
        // underscored name counts there.
        let setting_like = sep_len == 1 || name.contains(['.', '_']);
        if setting_like
            && !name.is_empty()
            && is_secret_name(name)
            && !value.is_empty()
            && value != REDACTED
        {
            spans.push((value_start, value_start + value_len));
        }
        i = value_start + value_len.max(1);
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_go_whatever_the_scheme() {
        for (raw, shown) in [
            (
                "error: cannot connect to mysql://root:wrong@127.0.0.1:3306/db: denied",
                "error: cannot connect to mysql://root:*********(redacted)@127.0.0.1:3306/db: denied",
            ),
            (
                "postgres://u:p%40ss@h/db?sslmode=require",
                "postgres://u:*********(redacted)@h/db?sslmode=require",
            ),
            ("redis://:only@h", "redis://:*********(redacted)@h"),
            ("kafka://user@h:9092", "kafka://user@h:9092"),
            ("http://h:8080/x@y", "http://h:8080/x@y"),
            (
                "two a://x:1@h b://y:2@k",
                "two a://x:*********(redacted)@h b://y:*********(redacted)@k",
            ),
            ("ends with ://", "ends with ://"),
        ] {
            assert_eq!(redact(raw), shown, "{raw}");
        }
    }

    #[test]
    fn secret_settings_go_and_others_stay() {
        assert_eq!(
            redact("--kafka-param ssl.key.password=k3y --kafka-param acks=all"),
            "--kafka-param ssl.key.password=*********(redacted) --kafka-param acks=all"
        );
        assert_eq!(
            redact("sasl.jaas.config: x y"),
            "sasl.jaas.config: *********(redacted) y"
        );
        assert_eq!(redact("a=b, c: d"), "a=b, c: d");
        assert_eq!(
            redact("no S3 credentials: set the keys"),
            "no S3 credentials: set the keys",
            "prose stays"
        );
        assert_eq!(redact(REDACTED), REDACTED, "idempotent");
        assert_eq!(redact(&redact("token=abc")), redact("token=abc"));
    }

    #[test]
    fn registered_secrets_go_wherever_they_appear() {
        register_args(["run", "--url", "postgres://a:Zq9-long-one@h/d"]);
        assert_eq!(
            redact("the server said Zq9-long-one is wrong"),
            "the server said *********(redacted) is wrong"
        );
        register_secret("abc"); // too short to register
        assert_eq!(redact("abc"), "abc");
    }
}

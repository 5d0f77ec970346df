//! The connection to one repository of a registry: auth (bearer tokens, HTTP basic),
//! one token refresh on 401, bounded retries on 429, and the registry's own error
//! messages.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, ACCEPT, RANGE, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

use super::speed::SpeedLimit;
use super::Credentials;
use crate::reference::Reference;
use crate::source::{ResolveOptions, SourceError};

/// Requests answered 429 are retried at most this many times in all…
const MAX_ATTEMPTS: u32 = 5;
/// …and never wait longer than this in total.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);
/// Token lifetime when the token server does not say (the distribution spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Refresh tokens this long before they expire.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(5);

/// A bearer token and when to stop using it.
#[derive(Clone)]
struct Token {
    value: String,
    expires_at: Instant,
}

#[derive(Default)]
struct AuthState {
    token: Option<Token>,
    /// The registry asked for HTTP basic auth: send the credentials on every request.
    basic: bool,
    /// Bumped on every new token, so concurrent 401s fetch only one.
    generation: u64,
}

/// A registry connection scoped to one repository.
pub(super) struct RegistryClient {
    http: reqwest::Client,
    /// `{scheme}://{host}/v2/{repository}`.
    pub(super) base: String,
    registry: String,
    repository: String,
    credentials: Option<Credentials>,
    /// The slowest body read tolerated.
    pub(super) speed: Option<SpeedLimit>,
    auth: Mutex<AuthState>,
    /// Held (shared) by every blob commit running on a blocking thread.
    pub(super) commits: Arc<RwLock<()>>,
}

impl RegistryClient {
    pub(super) fn new(reference: &Reference, opts: &ResolveOptions) -> Result<Self, SourceError> {
        // reqwest is built without a default crypto provider; ring is the light one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let insecure = reference.is_loopback()
            || opts
                .insecure_registries
                .iter()
                .any(|r| r == reference.registry() || r == reference.api_host());
        let scheme = if insecure { "http" } else { "https" };
        let base = format!(
            "{scheme}://{}/v2/{}",
            reference.api_host(),
            reference.repository()
        );
        let http = reqwest::Client::builder()
            .user_agent(concat!("banger/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| SourceError::Http {
                url: base.clone(),
                source,
            })?;
        let credentials = opts
            .credentials
            .as_ref()
            .and_then(|lookup| lookup(reference.registry()));
        Ok(RegistryClient {
            http,
            base,
            registry: reference.registry().to_string(),
            repository: reference.repository().to_string(),
            credentials,
            speed: opts.min_speed,
            auth: Mutex::new(AuthState::default()),
            commits: Arc::new(RwLock::new(())),
        })
    }

    /// GET with auth, one token refresh on 401, and bounded 429 retries. Non-success
    /// answers become errors carrying the registry's message.
    pub(super) async fn get(
        &self,
        url: &str,
        accept: Option<&str>,
    ) -> Result<Response, SourceError> {
        self.get_from(url, accept, 0).await
    }

    /// [`Self::get`] asking for the bytes from `offset` on (`Range`), when
    /// `offset` is not 0. The registry may ignore the range and answer 200
    /// with the whole body: the caller checks the status.
    pub(super) async fn get_from(
        &self,
        url: &str,
        accept: Option<&str>,
        offset: u64,
    ) -> Result<Response, SourceError> {
        let http_error = |source| SourceError::Http {
            url: url.to_string(),
            source,
        };
        let mut attempts = 0;
        let mut waited = Duration::ZERO;
        let mut reauthenticated = false;
        loop {
            attempts += 1;
            let (token, basic, generation) = {
                let state = self.auth.lock().await;
                let live = state
                    .token
                    .clone()
                    .filter(|t| t.expires_at > Instant::now());
                (live, state.basic, state.generation)
            };
            let mut request = self.http.get(url);
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if offset > 0 {
                request = request.header(RANGE, format!("bytes={offset}-"));
            }
            if let Some(token) = &token {
                request = request.bearer_auth(&token.value);
            } else if let (true, Some(c)) = (basic, &self.credentials) {
                request = request.basic_auth(&c.username, Some(&c.password));
            }
            let response = request.send().await.map_err(http_error)?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            match status {
                StatusCode::UNAUTHORIZED if !reauthenticated => {
                    let challenge = response
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    self.authenticate(&challenge, generation).await?;
                    reauthenticated = true;
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(SourceError::AuthRequired {
                        registry: self.registry.clone(),
                        detail: registry_message(
                            status,
                            &response.bytes().await.unwrap_or_default(),
                        ),
                    })
                }
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait = retry_after(response.headers())
                        .unwrap_or(Duration::from_secs(1 << attempts.min(4)));
                    if attempts >= MAX_ATTEMPTS || waited + wait > MAX_RATE_LIMIT_WAIT {
                        return Err(SourceError::TooManyRequests {
                            url: url.to_string(),
                            attempts,
                        });
                    }
                    waited += wait;
                    tokio::time::sleep(wait).await;
                }
                _ => {
                    let body = response.bytes().await.unwrap_or_default();
                    return Err(SourceError::Registry {
                        url: url.to_string(),
                        status: status.as_u16(),
                        message: registry_message(status, &body),
                    });
                }
            }
        }
    }

    /// Answers a 401 challenge: a basic challenge with credentials switches to basic
    /// auth; a bearer challenge fetches a pull token (presenting the credentials, if
    /// any, to the token server), unless another task already did since
    /// `seen_generation`.
    async fn authenticate(&self, challenge: &str, seen_generation: u64) -> Result<(), SourceError> {
        let mut state = self.auth.lock().await;
        if state.generation != seen_generation && (state.token.is_some() || state.basic) {
            return Ok(());
        }
        let auth_required = |detail: String| SourceError::AuthRequired {
            registry: self.registry.clone(),
            detail,
        };
        let Some((scheme, params)) = parse_challenge(challenge) else {
            return Err(auth_required(format!(
                "401 with an unusable challenge {challenge:?}"
            )));
        };
        if scheme.eq_ignore_ascii_case("basic") && self.credentials.is_some() {
            state.basic = true;
            state.generation += 1;
            return Ok(());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(auth_required(format!(
                "it asks for {scheme} credentials and none were given"
            )));
        }
        let realm = params.get("realm").ok_or_else(|| {
            auth_required(format!("bearer challenge without a realm: {challenge:?}"))
        })?;
        let mut url = Url::parse(realm)
            .map_err(|e| auth_required(format!("bad token realm {realm:?}: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                query.append_pair("service", service);
            }
            let default_scope = format!("repository:{}:pull", self.repository);
            query.append_pair("scope", params.get("scope").unwrap_or(&default_scope));
        }
        let url_text = url.to_string();
        let mut request = self.http.get(url);
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(&c.password));
        }
        let response = request.send().await.map_err(|source| SourceError::Http {
            url: url_text.clone(),
            source,
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|source| SourceError::Http {
            url: url_text.clone(),
            source,
        })?;
        if !status.is_success() {
            return Err(auth_required(format!(
                "the token server at {url_text} answered {status}: {}",
                registry_message(status, &body)
            )));
        }
        let reply: TokenReply = serde_json::from_slice(&body)
            .map_err(|e| auth_required(format!("unreadable token from {url_text}: {e}")))?;
        let value = reply
            .token
            .or(reply.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                auth_required(format!("the token server at {url_text} sent no token"))
            })?;
        let lifetime = reply
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let lifetime = lifetime - TOKEN_EXPIRY_MARGIN.min(lifetime / 2);
        state.token = Some(Token {
            value,
            expires_at: Instant::now() + lifetime,
        });
        state.generation += 1;
        Ok(())
    }
}

#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// `Retry-After` in seconds (the HTTP-date form falls back to our own backoff).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The registry's own explanation: the distribution error envelope if there is one,
/// else the start of the body, else the status text.
fn registry_message(status: StatusCode, body: &[u8]) -> String {
    if let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) {
        let parts: Vec<String> = envelope
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (true, _) => e.message.clone(),
                (false, true) => e.code.clone(),
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("; ");
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string()
    } else {
        text.chars().take(500).collect()
    }
}

/// Parses `Bearer realm="…",service=…` into the scheme and its parameters; values may
/// be quoted (with `\` escapes) or bare tokens.
fn parse_challenge(header: &str) -> Option<(String, HashMap<String, String>)> {
    let header = header.trim();
    let (scheme, mut rest) = match header.split_once(char::is_whitespace) {
        Some((scheme, rest)) => (scheme, rest),
        None if !header.is_empty() => (header, ""),
        None => return None,
    };
    let mut params = HashMap::new();
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if rest.is_empty() {
            break;
        }
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let value;
        if let Some(quoted) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next().map(|(_, c)| c)),
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            value = out;
            rest = &quoted[end?..];
        } else {
            let end = after.find(',').unwrap_or(after.len());
            value = after[..end].trim().to_string();
            rest = &after[end..];
        }
        params.insert(key, value);
    }
    Some((scheme.to_string(), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_40_challenges_quoted_and_unquoted() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(scheme, "Bearer");
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull,push");
        let (_, p) = parse_challenge(
            "bearer realm=http://127.0.0.1:1/t, Service=reg,scope=repository:x:pull",
        )
        .unwrap();
        assert_eq!(p["realm"], "http://127.0.0.1:1/t");
        assert_eq!(p["service"], "reg");
        assert_eq!(p["scope"], "repository:x:pull");
        let (_, p) = parse_challenge(r#"Bearer realm="a\"b", service = "s""#).unwrap();
        assert_eq!((p["realm"].as_str(), p["service"].as_str()), ("a\"b", "s"));
        assert!(parse_challenge("").is_none());
        assert!(parse_challenge(r#"Bearer realm="unterminated"#).is_none());
    }

    #[test]
    fn case_42_registry_messages() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            registry_message(StatusCode::NOT_FOUND, body),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(
            registry_message(StatusCode::BAD_GATEWAY, b" upstream down \n"),
            "upstream down"
        );
        assert_eq!(
            registry_message(StatusCode::BAD_GATEWAY, b""),
            "Bad Gateway"
        );
    }
}

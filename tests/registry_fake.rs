//! Registry behaviour a real docker-registry cannot show: bearer challenges, token
//! expiry, cross-host redirects, 429s, registry errors, corrupt and truncated blobs.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use banger::source::{resolve, ImageSource, ResolvedImage, SourceError};
use serde_json::json;
use support::fake::{mangling_registry, Content, FakeServer, Reply, REPO};
use support::oci::{build_layout, sha256, write_blob, Comp, ImageSpec, LayerSpec, Layout};
use support::{assert_mentions, cache_entries, message, options, read_layers};

fn small_image(dir: &Path) -> Layout {
    build_layout(
        dir,
        "v1",
        &[ImageSpec::new(
            "linux/amd64",
            vec![
                LayerSpec::new(Comp::Gzip, &[("etc/a", b"layer zero")]),
                LayerSpec::new(Comp::Zstd, &[("etc/b", &[5u8; 50_000])]),
            ],
        )],
    )
}

async fn pull(
    server: &FakeServer,
    reference: &str,
    cache: &Path,
) -> Result<ResolvedImage, SourceError> {
    let source: ImageSource = format!("{}/{REPO}:{reference}", server.addr)
        .parse()
        .unwrap();
    resolve(&source, &options(cache)).await
}

/// A registry that wants `Bearer <token>` where `accept` says the token is good, and
/// issues `tok-1`, `tok-2`, … from its own `/token` endpoint.
fn bearer_registry(
    content: Arc<Content>,
    challenge: impl Fn(&str) -> String + Send + Sync + 'static,
    accept: impl Fn(&str, usize) -> bool + Send + Sync + 'static,
) -> (FakeServer, Arc<AtomicUsize>) {
    let own_url = Arc::new(OnceLock::<String>::new());
    let issued = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let (url, counter) = (own_url.clone(), issued.clone());
    let server = FakeServer::start("127.0.0.1", move |request| {
        if request.path() == "/token" {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            return Reply::new(
                200,
                json!({"token": format!("tok-{n}"), "expires_in": 300}).to_string(),
            );
        }
        let authorized = request
            .headers
            .get("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|token| accept(token, served.fetch_add(1, Ordering::SeqCst)));
        if !authorized {
            let realm = format!("{}/token", url.get().unwrap());
            return Reply::new(
                401,
                json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
                    .to_string(),
            )
            .header("WWW-Authenticate", &challenge(&realm));
        }
        content.reply(request)
    });
    own_url.set(server.url()).unwrap();
    (server, issued)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_40_bearer_challenge_with_quoted_parameters() {
    let work = tempfile::tempdir().unwrap();
    let layout = small_image(&work.path().join("layout"));
    let (server, issued) = bearer_registry(
        Content::from_layout(&layout, "v1"),
        |realm| {
            format!(
                r#"Bearer realm="{realm}",service="fake.registry",scope="repository:{REPO}:pull""#
            )
        },
        |token, _| token == "tok-1",
    );
    let image = pull(&server, "v1", &work.path().join("c")).await.unwrap();
    assert_eq!(read_layers(&image).unwrap(), layout.images[0].layer_tars);
    assert_eq!(
        issued.load(Ordering::SeqCst),
        1,
        "one token serves every request"
    );
    let token_requests = server.requests("/token");
    assert!(
        token_requests[0].target.contains("service=fake.registry"),
        "{:?}",
        token_requests[0]
    );
    assert!(
        token_requests[0]
            .target
            .contains("scope=repository%3Atest%2Fimg%3Apull"),
        "{:?}",
        token_requests[0]
    );
    assert!(!token_requests[0].headers.contains_key("authorization"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_40_bearer_challenge_with_unquoted_parameters() {
    let work = tempfile::tempdir().unwrap();
    let layout = small_image(&work.path().join("layout"));
    let (server, issued) = bearer_registry(
        Content::from_layout(&layout, "v1"),
        |realm| format!("Bearer realm={realm}, service=unquoted"),
        |token, _| token == "tok-1",
    );
    let image = pull(&server, "v1", &work.path().join("c")).await.unwrap();
    assert_eq!(read_layers(&image).unwrap(), layout.images[0].layer_tars);
    assert_eq!(issued.load(Ordering::SeqCst), 1);
    let token_request = &server.requests("/token")[0];
    assert!(
        token_request.target.contains("service=unquoted"),
        "{token_request:?}"
    );
    // No scope in the challenge: the client asks for pull access to the repository.
    assert!(
        token_request
            .target
            .contains("scope=repository%3Atest%2Fimg%3Apull"),
        "{token_request:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_40_expired_token_is_refreshed() {
    let work = tempfile::tempdir().unwrap();
    let layout = small_image(&work.path().join("layout"));
    // tok-1 works for the first two authorized requests, then the server calls it expired.
    let (server, issued) = bearer_registry(
        Content::from_layout(&layout, "v1"),
        |realm| format!(r#"Bearer realm="{realm}",service="s""#),
        |token, n| (token == "tok-1" && n < 3) || token == "tok-2",
    );
    let image = pull(&server, "v1", &work.path().join("c")).await.unwrap();
    assert_eq!(read_layers(&image).unwrap(), layout.images[0].layer_tars);
    assert_eq!(
        issued.load(Ordering::SeqCst),
        2,
        "the expired token was replaced once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_41_cross_host_redirect_drops_authorization() {
    let work = tempfile::tempdir().unwrap();
    let layout = small_image(&work.path().join("layout"));
    let content = Content::from_layout(&layout, "v1");
    // Blob storage on another host (127.0.0.2), as a CDN would be.
    let storage_content = content.clone();
    let storage = FakeServer::start("127.0.0.2", move |request| {
        let digest = request.path().trim_start_matches("/storage/");
        match storage_content.blobs.get(digest) {
            Some(body) => Reply::new(200, body.clone()),
            None => Reply::new(404, "no such object"),
        }
    });
    let storage_url = storage.url();
    let redirecting = Arc::new(Content {
        blobs: content.blobs.clone(),
        tags: content.tags.clone(),
    });
    // The registry authorizes with a bearer token and redirects blob requests to storage.
    let own_url = Arc::new(OnceLock::<String>::new());
    let url = own_url.clone();
    let server = FakeServer::start("127.0.0.1", move |request| {
        if request.path() == "/token" {
            return Reply::new(200, json!({"token": "tok-1"}).to_string());
        }
        if request.headers.get("authorization").map(String::as_str) != Some("Bearer tok-1") {
            let realm = format!("{}/token", url.get().unwrap());
            return Reply::new(401, "")
                .header("WWW-Authenticate", &format!(r#"Bearer realm="{realm}""#));
        }
        match request.path().split_once("/blobs/") {
            Some((_, digest)) => {
                Reply::new(307, "").header("Location", &format!("{storage_url}/storage/{digest}"))
            }
            None => redirecting.reply(request),
        }
    });
    own_url.set(server.url()).unwrap();

    let image = pull(&server, "v1", &work.path().join("c")).await.unwrap();
    assert_eq!(read_layers(&image).unwrap(), layout.images[0].layer_tars);
    let registry_blob_requests = server.requests("/blobs/");
    assert_eq!(registry_blob_requests.len(), 3, "config + 2 layers");
    assert!(registry_blob_requests
        .iter()
        .all(|r| r.headers.contains_key("authorization")));
    let storage_requests = storage.requests("/storage/");
    assert_eq!(storage_requests.len(), 3);
    for request in storage_requests {
        assert!(
            !request.headers.contains_key("authorization"),
            "credentials leaked to another host: {request:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_42_429_with_retry_after_is_retried() {
    let work = tempfile::tempdir().unwrap();
    let layout = small_image(&work.path().join("layout"));
    let content = Content::from_layout(&layout, "v1");
    let target = layout.images[0].layer_digests[1].clone();
    let refusals = Arc::new(AtomicUsize::new(0));
    let counter = refusals.clone();
    let server = FakeServer::start("127.0.0.1", move |request| {
        if request.path().ends_with(&target) && counter.fetch_add(1, Ordering::SeqCst) < 2 {
            return Reply::new(
                429,
                json!({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]})
                    .to_string(),
            )
            .header("Retry-After", "1");
        }
        content.reply(request)
    });
    let started = Instant::now();
    let image = pull(&server, "v1", &work.path().join("c")).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "Retry-After was honoured"
    );
    assert_eq!(read_layers(&image).unwrap(), layout.images[0].layer_tars);
    assert_eq!(server.requests(&layout.images[0].layer_digests[1]).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_42_endless_429_gives_up_within_the_bound() {
    let work = tempfile::tempdir().unwrap();
    let server = FakeServer::start("127.0.0.1", |_| {
        Reply::new(429, "").header("Retry-After", "1")
    });
    let started = Instant::now();
    let err = pull(&server, "v1", &work.path().join("c"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::TooManyRequests { attempts: 5, .. }),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(server.requests("/manifests/").len(), 5);
    // A Retry-After beyond the total bound fails at once instead of sleeping.
    let server = FakeServer::start("127.0.0.1", |_| {
        Reply::new(429, "").header("Retry-After", "3600")
    });
    let started = Instant::now();
    assert!(pull(&server, "v1", &work.path().join("c")).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_42_errors_quote_the_registry_message() {
    let work = tempfile::tempdir().unwrap();
    let layout = small_image(&work.path().join("layout"));
    let content = Content::from_layout(&layout, "v1");
    let server = FakeServer::start("127.0.0.1", move |request| content.reply(request));
    let err = pull(&server, "nope", &work.path().join("c"))
        .await
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["404", "MANIFEST_UNKNOWN: manifest unknown"]);

    let server = FakeServer::start("127.0.0.1", |_| {
        Reply::new(503, "backend storage is on fire")
    });
    let err = pull(&server, "v1", &work.path().join("c"))
        .await
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["503", "backend storage is on fire"]);
}

fn assert_layer_not_cached(layout: &Layout, cache: &Path) {
    let entries = cache_entries(cache);
    let hex = &layout.images[0].layer_digests[1][7..];
    assert!(
        !entries.iter().any(|e| e == hex),
        "bad blob cached: {entries:?}"
    );
    assert!(
        !entries.iter().any(|e| e.starts_with(".tmp")),
        "temp file left: {entries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_43_corrupt_blob_never_enters_the_cache() {
    let work = tempfile::tempdir().unwrap();
    let layout = small_image(&work.path().join("layout"));
    let server = mangling_registry(&layout, |mut reply, _| {
        let last = reply.body.len() - 1;
        reply.body[last] ^= 0xff;
        reply
    });
    let cache = work.path().join("c");
    let err = pull(&server, "v1", &cache).await.unwrap_err();
    assert!(matches!(err, SourceError::Corrupt { .. }), "{err}");
    assert_mentions(&message(&err), &[&layout.images[0].layer_digests[1]]);
    assert_layer_not_cached(&layout, &cache);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_43_truncated_blob_never_enters_the_cache() {
    let work = tempfile::tempdir().unwrap();
    let layout = small_image(&work.path().join("layout"));
    // Full Content-Length announced, connection closed half way, every time.
    let server = mangling_registry(&layout, |mut reply, _| {
        reply.cut_at = Some(reply.body.len() / 2);
        reply
    });
    let cache = work.path().join("c");
    let err = pull(&server, "v1", &cache).await.unwrap_err();
    assert!(matches!(err, SourceError::Http { .. }), "{err}");
    assert_eq!(
        server.requests(&layout.images[0].layer_digests[1]).len(),
        3,
        "restarted, then gave up"
    );
    assert_layer_not_cached(&layout, &cache);

    // A body that is complete as HTTP but shorter than the descriptor says.
    let server = mangling_registry(&layout, |mut reply, _| {
        reply.body.truncate(reply.body.len() - 10);
        reply
    });
    let err = pull(&server, "v1", &cache).await.unwrap_err();
    assert!(matches!(err, SourceError::Corrupt { .. }), "{err}");
    assert_layer_not_cached(&layout, &cache);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_43_interrupted_download_restarts() {
    let work = tempfile::tempdir().unwrap();
    let layout = small_image(&work.path().join("layout"));
    let server = mangling_registry(&layout, |mut reply, n| {
        if n == 0 {
            reply.cut_at = Some(reply.body.len() / 3);
        }
        reply
    });
    let image = pull(&server, "v1", &work.path().join("c")).await.unwrap();
    assert_eq!(read_layers(&image).unwrap(), layout.images[0].layer_tars);
    assert_eq!(server.requests(&layout.images[0].layer_digests[1]).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_44_second_pull_does_not_fetch_cached_blobs() {
    let work = tempfile::tempdir().unwrap();
    let layout = small_image(&work.path().join("layout"));
    let content = Content::from_layout(&layout, "v1");
    let server = FakeServer::start("127.0.0.1", move |request| content.reply(request));
    let cache = work.path().join("c");
    pull(&server, "v1", &cache).await.unwrap();
    assert_eq!(server.requests("/blobs/").len(), 3);
    let image = pull(&server, "v1", &cache).await.unwrap();
    assert_eq!(
        server.requests("/blobs/").len(),
        3,
        "no blob was fetched again"
    );
    assert_eq!(
        server.requests("/manifests/v1").len(),
        2,
        "the tag is re-resolved"
    );
    assert_eq!(read_layers(&image).unwrap(), layout.images[0].layer_tars);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_39_schema1_manifest_is_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let server = FakeServer::start("127.0.0.1", |_| {
        Reply::new(
            200,
            r#"{"schemaVersion":1,"name":"test/img","tag":"v1","fsLayers":[],"history":[]}"#,
        )
        .header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        )
    });
    let err = pull(&server, "v1", &work.path().join("c"))
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Schema1 { .. }), "{err}");
    assert_mentions(&message(&err), &["schema 1"]);
}

/// Writes an index over `entries` (platform or None, digest, size) into the layout.
fn index_blob(layout: &Path, entries: &[(Option<&str>, &str, u64, &str)]) -> (String, u64) {
    let manifests: Vec<_> = entries
        .iter()
        .map(|(platform, digest, size, media_type)| {
            let mut entry = json!({"mediaType": media_type, "digest": digest, "size": size});
            if let Some(p) = platform {
                let parts: Vec<&str> = p.split('/').collect();
                entry["platform"] = json!({"os": parts[0], "architecture": parts[1]});
                if parts[0] == "unknown" {
                    entry["annotations"] =
                        json!({"vnd.docker.reference.type": "attestation-manifest"});
                }
            }
            entry
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    write_blob(layout, &serde_json::to_vec(&index).unwrap())
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_38_nested_index_with_attestations_resolves_amd64() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    let mut layout = small_image(&dir);
    let image = layout.images[0].clone();
    let (attestation, attestation_size) = write_blob(&dir, br#"{"schemaVersion":2}"#);
    let (inner, inner_size) = index_blob(
        &dir,
        &[
            (
                Some("unknown/unknown"),
                &attestation,
                attestation_size,
                OCI_MANIFEST,
            ),
            (
                Some("linux/amd64"),
                &image.manifest_digest,
                image.manifest_size,
                OCI_MANIFEST,
            ),
        ],
    );
    let (outer, _) = index_blob(&dir, &[(None, &inner, inner_size, OCI_INDEX)]);
    layout.top_digest = outer.clone();
    let content = Content::from_layout(&layout, "v1");
    let server = FakeServer::start("127.0.0.1", move |request| content.reply(request));
    let resolved = pull(&server, "v1", &work.path().join("c")).await.unwrap();
    assert_eq!(
        resolved.manifest_digest.as_ref().map(|d| d.to_string()),
        Some(outer)
    );
    assert_eq!(read_layers(&resolved).unwrap(), image.layer_tars);
    assert!(
        server.requests(&attestation).is_empty(),
        "attestation was never fetched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_38_index_without_amd64_names_what_exists() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("layout");
    let mut layout = small_image(&dir);
    let image = layout.images[0].clone();
    let (top, _) = index_blob(
        &dir,
        &[
            (
                Some("linux/arm64"),
                &image.manifest_digest,
                image.manifest_size,
                OCI_MANIFEST,
            ),
            (
                Some("linux/s390x"),
                &image.manifest_digest,
                image.manifest_size,
                OCI_MANIFEST,
            ),
            (Some("unknown/unknown"), &sha256(b"x"), 1, OCI_MANIFEST),
        ],
    );
    layout.top_digest = top;
    let content = Content::from_layout(&layout, "v1");
    let server = FakeServer::start("127.0.0.1", move |request| content.reply(request));
    let err = pull(&server, "v1", &work.path().join("c"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::NoMatchingPlatform { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert_mentions(&text, &["linux/amd64", "linux/arm64", "linux/s390x"]);
    assert!(!text.contains("unknown"), "{text}");
}

#[test]
fn case_44_concurrent_pulls_download_each_blob_once() {
    let work = tempfile::tempdir().unwrap();
    let layout = small_image(&work.path().join("layout"));
    let content = Content::from_layout(&layout, "v1");
    // Slow blobs make the two pulls overlap; the per-blob lock must serialise them.
    let server = Arc::new(FakeServer::start("127.0.0.1", move |request| {
        if request.path().contains("/blobs/") {
            std::thread::sleep(Duration::from_millis(300));
        }
        content.reply(request)
    }));
    let cache = work.path().join("c");
    let pulls: Vec<_> = (0..2)
        .map(|_| {
            let (server, cache) = (server.clone(), cache.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Runtime::new().unwrap();
                runtime
                    .block_on(pull(&server, "v1", &cache))
                    .map(|image| read_layers(&image))
            })
        })
        .collect();
    for pull in pulls {
        assert_eq!(
            pull.join().unwrap().unwrap().unwrap(),
            layout.images[0].layer_tars
        );
    }
    for digest in &layout.images[0].layer_digests {
        assert_eq!(server.requests(digest).len(), 1, "{digest} downloaded once");
    }
    assert_eq!(cache_entries(&cache).len(), 4);
}

/// `user:secret`, base64, as HTTP basic auth sends it.
const USER_SECRET_BASIC: &str = "Basic dXNlcjpzZWNyZXQ=";

async fn pull_with(
    server: &FakeServer,
    cache: &Path,
    credentials: Option<(&str, &str)>,
) -> Result<ResolvedImage, SourceError> {
    let source: ImageSource = format!("{}/{REPO}:v1", server.addr).parse().unwrap();
    let mut opts = options(cache);
    let host = server.addr.to_string();
    let credentials = credentials.map(|(u, p)| banger::source::registry::Credentials {
        username: u.into(),
        password: p.into(),
    });
    opts.credentials = Some(Arc::new(move |registry: &str| {
        // Credentials are looked up by the registry's own host only.
        assert_eq!(registry, host);
        credentials.clone()
    }));
    resolve(&source, &opts).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_registry_with_basic_auth() {
    let work = tempfile::tempdir().unwrap();
    let layout = small_image(&work.path().join("layout"));
    let content = Content::from_layout(&layout, "v1");
    let server = FakeServer::start("127.0.0.1", move |request| {
        if request.headers.get("authorization").map(String::as_str) != Some(USER_SECRET_BASIC) {
            return Reply::new(401, "").header("WWW-Authenticate", r#"Basic realm="fake""#);
        }
        content.reply(request)
    });
    let image = pull_with(&server, &work.path().join("c1"), Some(("user", "secret")))
        .await
        .unwrap();
    assert_eq!(read_layers(&image).unwrap(), layout.images[0].layer_tars);

    let anonymous = pull_with(&server, &work.path().join("c2"), None).await;
    let message = anonymous.unwrap_err().to_string();
    assert_mentions(&message, &["--username"]);
    let wrong = pull_with(&server, &work.path().join("c3"), Some(("user", "wrong"))).await;
    let message = wrong.unwrap_err().to_string();
    assert_mentions(&message, &["refused access"]);
    // The password never shows up in messages or debug output.
    assert!(!message.contains("wrong"), "{message}");
    let debug = format!(
        "{:?}",
        banger::source::registry::Credentials {
            username: "user".into(),
            password: "hunter2".into()
        }
    );
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_registry_with_a_token_server_that_wants_credentials() {
    let work = tempfile::tempdir().unwrap();
    let layout = small_image(&work.path().join("layout"));
    let content = Content::from_layout(&layout, "v1");
    let own_url = Arc::new(OnceLock::<String>::new());
    let url = own_url.clone();
    let server = FakeServer::start("127.0.0.1", move |request| {
        let auth = request.headers.get("authorization").map(String::as_str);
        if request.path() == "/token" {
            return if auth == Some(USER_SECRET_BASIC) {
                Reply::new(200, json!({"token": "private-token"}).to_string())
            } else {
                Reply::new(401, "bad credentials")
            };
        }
        if auth != Some("Bearer private-token") {
            let realm = format!("{}/token", url.get().unwrap());
            return Reply::new(401, "").header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="{realm}",service="fake""#),
            );
        }
        content.reply(request)
    });
    own_url.set(server.url()).unwrap();
    let image = pull_with(&server, &work.path().join("c1"), Some(("user", "secret")))
        .await
        .unwrap();
    assert_eq!(read_layers(&image).unwrap(), layout.images[0].layer_tars);
    assert_eq!(server.requests("/token").len(), 1);
    let anonymous = pull_with(&server, &work.path().join("c2"), None).await;
    assert!(
        matches!(anonymous, Err(SourceError::AuthRequired { .. })),
        "{anonymous:?}"
    );
}

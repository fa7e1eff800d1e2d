//! Image references as Kubernetes shows them: `spec.containers[].image` (what admission
//! sees) and `status.containerStatuses[].imageID` (what the kubelet actually ran).

use super::policy::normalize_digest;

/// What an `imageID` tells about the image a container runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageId {
    /// The repository, when the runtime reported one.
    pub repository: Option<String>,
    /// The digest, lower-case.
    pub digest: String,
    /// True when `digest` is a repository (manifest or index) digest — comparable with a
    /// registry's digests. False for Docker's bare `docker://sha256:…`, the image *config*
    /// ID, which no registry digest equals.
    pub repo_digest: bool,
}

/// Parses every historical `imageID` format:
/// - `docker-pullable://REPO@sha256:…` (dockershim, pulled by tag or digest);
/// - `docker://sha256:…` (dockershim, an image without a repo digest: a config ID);
/// - `REPO@sha256:…` (containerd, CRI-O);
/// - `sha256:…` (containerd for locally imported images: a config ID).
pub fn parse_image_id(id: &str) -> Option<ImageId> {
    let id = id.trim();
    let (rest, bare_is_repo) = if let Some(r) = id.strip_prefix("docker-pullable://") {
        (r, true)
    } else if let Some(r) = id.strip_prefix("docker://") {
        (r, false)
    } else {
        (id, false)
    };
    if let Some((repo, digest)) = rest.rsplit_once('@') {
        let digest = normalize_digest(digest).ok()?;
        return Some(ImageId {
            repository: Some(strip_tag(repo).to_string()).filter(|r| !r.is_empty()),
            digest,
            repo_digest: true,
        });
    }
    let digest = normalize_digest(rest).ok()?;
    Some(ImageId {
        repository: None,
        digest,
        repo_digest: bare_is_repo,
    })
}

/// The digest pinned in an image reference (`repo[:tag]@sha256:…`), if any.
pub fn image_digest(image: &str) -> Option<String> {
    let (_, d) = image.trim().rsplit_once('@')?;
    normalize_digest(d).ok()
}

/// The repository of an image reference, without tag or digest.
pub fn image_repository(image: &str) -> &str {
    let no_digest = image.trim().split('@').next().unwrap_or_default();
    strip_tag(no_digest)
}

/// Drops a `:tag` (a colon after the last `/`, so `host:5000/repo` keeps its port).
fn strip_tag(repo: &str) -> &str {
    let last_slash = repo.rfind('/').map_or(0, |i| i + 1);
    match repo[last_slash..].find(':') {
        Some(i) => &repo[..last_slash + i],
        None => repo,
    }
}

/// Docker Hub short names as the runtime expands them (`nginx` → `docker.io/library/nginx`),
/// so a configured `docker.io/library/nginx` matches what a pod spec wrote as `nginx`.
pub fn canonical_repository(repo: &str) -> String {
    let repo = repo.trim();
    let first = repo.split('/').next().unwrap_or_default();
    let has_host =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let repo = if has_host {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    repo.replacen("index.docker.io/", "docker.io/", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn every_image_id_format() {
        let d = format!("sha256:{H}");
        let cases = [
            (
                format!("docker-pullable://ghcr.io/acme/app@{d}"),
                Some("ghcr.io/acme/app"),
                true,
            ),
            (format!("docker-pullable://nginx@{d}"), Some("nginx"), true),
            (format!("docker://{d}"), None, false),
            (
                format!("ghcr.io/acme/app@{d}"),
                Some("ghcr.io/acme/app"),
                true,
            ),
            (
                format!(
                    "127.0.0.1:5000/app@{}",
                    d.to_uppercase().replace("SHA256", "sha256")
                ),
                Some("127.0.0.1:5000/app"),
                true,
            ),
            (d.clone(), None, false),
        ];
        for (id, repo, repo_digest) in cases {
            let p = parse_image_id(&id).unwrap_or_else(|| panic!("{id}"));
            assert_eq!(p.digest, d, "{id}");
            assert_eq!(p.repository.as_deref(), repo, "{id}");
            assert_eq!(p.repo_digest, repo_digest, "{id}");
        }
        assert_eq!(parse_image_id(""), None);
        assert_eq!(parse_image_id("docker://nginx:latest"), None);
        assert_eq!(parse_image_id("repo@sha256:short"), None);
    }

    #[test]
    fn references() {
        let d = format!("sha256:{H}");
        assert_eq!(image_digest(&format!("r.io/a:1.0@{d}")), Some(d.clone()));
        assert_eq!(image_digest("r.io/a:1.0"), None);
        assert_eq!(
            image_repository(&format!("r.io:5000/a/b:1.0@{d}")),
            "r.io:5000/a/b"
        );
        assert_eq!(image_repository("r.io:5000/a"), "r.io:5000/a");
        assert_eq!(canonical_repository("nginx"), "docker.io/library/nginx");
        assert_eq!(canonical_repository("acme/app"), "docker.io/acme/app");
        assert_eq!(
            canonical_repository("index.docker.io/acme/app"),
            "docker.io/acme/app"
        );
        assert_eq!(canonical_repository("localhost/app"), "localhost/app");
        assert_eq!(canonical_repository("ghcr.io/acme/app"), "ghcr.io/acme/app");
    }
}

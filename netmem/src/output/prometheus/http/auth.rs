//! Basic auth for `netmem serve`: users with bcrypt hashes, from the web
//! config's `basic_auth_users`.
//!
//! bcrypt is slow on purpose (tens of milliseconds at cost 10), so as the
//! exporter-toolkit does, a (user, password) pair that passed is
//! remembered and later scrapes with it cost a SHA-256. Checks run on
//! tokio's blocking pool one at a time, never on the HTTP thread, so a
//! client guessing passwords delays only other unproven guesses, and at
//! most [`MAX_PENDING`] wait: beyond that a request gets 503 at once.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Result};
use base64::Engine as _;
use hyper::header::HeaderValue;
use tokio::sync::Semaphore;

/// Pairs remembered at most (only pairs that passed are, so only someone
/// holding a password could fill it: bcrypt ignores bytes past the 72nd).
const MAX_CACHED: usize = 64;
/// Requests waiting for a bcrypt check at most.
pub const MAX_PENDING: usize = 16;

pub struct BasicAuth {
    /// User name to bcrypt hash.
    users: BTreeMap<String, String>,
    /// SHA-256 of "user:password" for every pair that passed: no password
    /// is kept in the clear.
    passed: Mutex<HashSet<[u8; 32]>>,
    checks: Arc<Semaphore>,
    pending: AtomicUsize,
}

/// What a request's credentials earn it.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// 401: none, malformed, unknown user or wrong password.
    Denied,
    /// 503: too many checks under way.
    Busy,
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> Result<BasicAuth> {
        if users.is_empty() {
            bail!("lists no user");
        }
        for (user, hash) in &users {
            if user.contains(':') {
                bail!("user name {user:?} holds ':', which basic auth cannot carry");
            }
            let cost = hash.parse::<bcrypt::HashParts>().map(|p| p.get_cost());
            if !cost.is_ok_and(|c| (4..=31).contains(&c)) {
                bail!(
                    "the password of {user:?} is not a bcrypt hash ($2y$10$ and 53 more characters): store a hash, made e.g. by `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                );
            }
        }
        Ok(BasicAuth {
            users,
            passed: Mutex::new(HashSet::new()),
            checks: Arc::new(Semaphore::new(1)),
            pending: AtomicUsize::new(0),
        })
    }

    /// Checks an `Authorization` header.
    pub async fn check(&self, header: Option<&HeaderValue>) -> Verdict {
        let Some(creds) = header.and_then(decode) else {
            return Verdict::Denied;
        };
        let key: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &creds)
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        if self.passed().contains(&key) {
            return Verdict::Allowed;
        }
        if self.pending.fetch_add(1, Ordering::Relaxed) >= MAX_PENDING {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return Verdict::Busy;
        }
        let _pending = Pending(&self.pending);
        let colon = creds.iter().position(|&b| b == b':');
        let (user, password) = match colon {
            Some(i) => (&creds[..i], creds[i + 1..].to_vec()),
            None => (&creds[..], Vec::new()),
        };
        let hash = std::str::from_utf8(user)
            .ok()
            .and_then(|u| self.users.get(u));
        let known = hash.is_some();
        // An unknown user costs a check too (against some user's hash,
        // its result ignored), so timing does not tell which users exist.
        let hash = hash
            .or_else(|| self.users.values().next())
            .expect("at least one user")
            .clone();
        let Ok(permit) = self.checks.clone().acquire_owned().await else {
            return Verdict::Denied;
        };
        // The permit goes with the check: a client that hangs up while it
        // runs does not let a second one start beside it.
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            bcrypt::verify(&password, &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !(ok && known) {
            return Verdict::Denied;
        }
        let mut passed = self.passed();
        if passed.len() >= MAX_CACHED {
            passed.clear();
        }
        passed.insert(key);
        Verdict::Allowed
    }

    fn passed(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        self.passed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Pending<'a>(&'a AtomicUsize);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// "Basic BASE64(user:password)" (the scheme in any case) to its bytes.
fn decode(v: &HeaderValue) -> Option<Vec<u8>> {
    let v = v.to_str().ok()?;
    let (scheme, creds) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(creds.trim())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> HeaderValue {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {b64}")).unwrap()
    }

    fn auth() -> BasicAuth {
        BasicAuth::new(BTreeMap::from([
            ("alice".to_string(), bcrypt::hash("s3cret:x", 4).unwrap()),
            ("bob".to_string(), bcrypt::hash("other", 4).unwrap()),
        ]))
        .unwrap()
    }

    #[tokio::test]
    async fn only_the_right_pair_passes_and_is_remembered() {
        let a = auth();
        assert_eq!(a.check(None).await, Verdict::Denied);
        assert_eq!(
            a.check(Some(&HeaderValue::from_static("Bearer abc"))).await,
            Verdict::Denied
        );
        assert_eq!(
            a.check(Some(&HeaderValue::from_static("Basic !!!"))).await,
            Verdict::Denied
        );
        assert_eq!(
            a.check(Some(&header("alice", "s3cret"))).await,
            Verdict::Denied
        );
        // bob's password for alice, and for a user that does not exist.
        assert_eq!(
            a.check(Some(&header("alice", "other"))).await,
            Verdict::Denied
        );
        assert_eq!(
            a.check(Some(&header("carol", "other"))).await,
            Verdict::Denied
        );
        assert!(a.passed().is_empty(), "a failed pair was remembered");
        // A password with a colon in it; the scheme in any case.
        let ok = header("alice", "s3cret:x");
        assert_eq!(a.check(Some(&ok)).await, Verdict::Allowed);
        assert_eq!(a.passed().len(), 1);
        let lower = HeaderValue::from_str(&ok.to_str().unwrap().replace("Basic", "basic")).unwrap();
        assert_eq!(a.check(Some(&lower)).await, Verdict::Allowed);
        assert_eq!(
            a.check(Some(&header("bob", "other"))).await,
            Verdict::Allowed
        );
        assert_eq!(a.passed().len(), 2);
    }

    #[tokio::test]
    async fn too_many_pending_checks_are_turned_away() {
        let a = auth();
        a.pending.store(MAX_PENDING, Ordering::Relaxed);
        assert_eq!(a.check(Some(&header("alice", "nope"))).await, Verdict::Busy);
        assert_eq!(a.pending.load(Ordering::Relaxed), MAX_PENDING);
    }

    #[test]
    fn user_names_with_a_colon_are_refused() {
        let e = BasicAuth::new(BTreeMap::from([(
            "a:b".to_string(),
            bcrypt::hash("x", 4).unwrap(),
        )]))
        .err()
        .unwrap();
        assert!(e.to_string().contains("':'"), "{e}");
    }
}

//! Sign-in against a clock the tests move, on every backend: access tokens expire, a refresh
//! token presented again after the grace signs the device out, invitations expire, and the
//! attempt window resets.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use hestami_core::text::Password;
use hestami_core::workforce::Technician;
use hestami_store::app::technician::{
    LinkCommand, NewTechnician, TechnicianCommand, TechnicianInvite,
};
use hestami_store::sessions::{ACCESS_TTL, INVITE_TTL, Limits, REFRESH_GRACE, SignIn};
use hestami_store::{Clock, FailureKind, StoreError, truncate_micros};

use common::*;

#[derive(Debug)]
struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

macro_rules! with_clock {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run(crate::common::Kind::Sqlite, super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run(crate::common::Kind::Postgres, super::$name).await;
                }
            )*
        }
    };
}

with_clock!(
    access_tokens_expire_and_a_late_reused_refresh_token_signs_the_device_out,
    invitations_expire_and_the_attempt_window_resets,
);

async fn run<F, Fut>(kind: Kind, test: F)
where
    F: FnOnce(Fixture, Arc<ManualClock>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let clock = Arc::new(ManualClock(Mutex::new(truncate_micros(Utc::now()))));
    if let Some(fx) = Fixture::with_clock(kind, clock.clone()).await {
        test(fx, clock).await;
    }
}

const PASSWORD: &str = "correct horse battery";

/// An organization with a technician invited as `email`; returns the org and the code.
async fn invited(fx: &Fixture, email_address: &str) -> (Org, TechnicianInvite) {
    let org = fx.org("Acme").await;
    let tech: Technician = ok(
        &fx.services,
        &org.caller,
        TechnicianCommand::Create(NewTechnician {
            name: name("Dana"),
            email: None,
            phone: None,
            trades: vec![trade("plumbing")],
        }),
    )
    .await;
    let invite: TechnicianInvite = ok(
        &fx.services,
        &org.caller,
        LinkCommand::Invite {
            technician_id: tech.id,
            email: email(email_address),
        },
    )
    .await;
    (org, invite)
}

fn sign_in(email_address: &str, password: &str, device_id: Uuid) -> SignIn {
    SignIn {
        email: email(email_address),
        password: Password::parse(password).unwrap(),
        organization_id: None,
        device_id,
        device_name: "phone".into(),
        address: Some("192.0.2.7".parse().unwrap()),
    }
}

fn code_of(e: StoreError) -> (FailureKind, String) {
    match e {
        StoreError::Failure(f) => (f.kind, f.code),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn access_tokens_expire_and_a_late_reused_refresh_token_signs_the_device_out(
    fx: Fixture,
    clock: Arc<ManualClock>,
) {
    let (org, invite) = invited(&fx, "dana@example.com").await;
    fx.store
        .accept_invite(&invite.invite.code, Password::parse(PASSWORD).unwrap())
        .await
        .unwrap();
    let device = Uuid::new_v4();
    let first = fx
        .store
        .login(sign_in("dana@example.com", PASSWORD, device))
        .await
        .unwrap();
    assert_eq!(first.organization_id, org.id());
    assert!(
        fx.store
            .authenticate(&first.access_token)
            .await
            .unwrap()
            .is_some()
    );
    // Past its 15 minutes the access token is refused, cached or not.
    clock.advance(ACCESS_TTL + Duration::seconds(1));
    assert!(
        fx.store
            .authenticate(&first.access_token)
            .await
            .unwrap()
            .is_none()
    );
    // The refresh token still works, once.
    let second = fx.store.refresh(&first.refresh_token).await.unwrap();
    assert!(
        fx.store
            .authenticate(&second.access_token)
            .await
            .unwrap()
            .is_some()
    );
    // Presented again after the grace, the spent token means a copy: the device is signed out,
    // and the pair it had become stops working too.
    clock.advance(REFRESH_GRACE + Duration::seconds(1));
    assert_eq!(
        code_of(fx.store.refresh(&first.refresh_token).await.unwrap_err()),
        (FailureKind::Unauthenticated, "REFRESH_TOKEN_REUSED".into())
    );
    assert_eq!(
        code_of(fx.store.refresh(&second.refresh_token).await.unwrap_err()),
        (FailureKind::Unauthenticated, "REFRESH_TOKEN_INVALID".into())
    );
    assert!(
        fx.store
            .authenticate(&second.access_token)
            .await
            .unwrap()
            .is_none()
    );
    // An unused refresh token expires after its 30 days.
    let third = fx
        .store
        .login(sign_in("dana@example.com", PASSWORD, device))
        .await
        .unwrap();
    clock.advance(Duration::days(30) + Duration::seconds(1));
    assert_eq!(
        code_of(fx.store.refresh(&third.refresh_token).await.unwrap_err()),
        (FailureKind::Unauthenticated, "REFRESH_TOKEN_INVALID".into())
    );
}

async fn invitations_expire_and_the_attempt_window_resets(fx: Fixture, clock: Arc<ManualClock>) {
    let (_, invite) = invited(&fx, "kim@example.com").await;
    clock.advance(INVITE_TTL + Duration::seconds(1));
    assert_eq!(
        code_of(
            fx.store
                .accept_invite(&invite.invite.code, Password::parse(PASSWORD).unwrap())
                .await
                .unwrap_err()
        ),
        (FailureKind::Unauthenticated, "INVITE_INVALID".into())
    );
    let (_, invite) = invited(&fx, "lee@example.com").await;
    fx.store
        .accept_invite(&invite.invite.code, Password::parse(PASSWORD).unwrap())
        .await
        .unwrap();
    let limits = Limits::default();
    for _ in 0..limits.per_account {
        let refused = fx
            .store
            .login_with(
                sign_in("lee@example.com", "wrong password", Uuid::new_v4()),
                limits,
            )
            .await
            .unwrap_err();
        assert_eq!(
            code_of(refused),
            (FailureKind::Unauthenticated, "INVALID_CREDENTIALS".into())
        );
    }
    let limited = fx
        .store
        .login_with(sign_in("lee@example.com", PASSWORD, Uuid::new_v4()), limits)
        .await
        .unwrap_err();
    let StoreError::Failure(f) = limited else {
        panic!("expected a refusal")
    };
    assert_eq!(
        (f.kind, f.code.as_str()),
        (FailureKind::RateLimited, "RATE_LIMITED")
    );
    let wait = f.details.unwrap()["retryAfterSeconds"].as_i64().unwrap();
    assert_eq!(wait, limits.window.num_seconds());
    // A second before the window ends, still refused; at its end, the right password works.
    clock.advance(Duration::seconds(wait - 1));
    assert!(
        fx.store
            .login_with(sign_in("lee@example.com", PASSWORD, Uuid::new_v4()), limits)
            .await
            .is_err()
    );
    clock.advance(Duration::seconds(1));
    fx.store
        .login_with(sign_in("lee@example.com", PASSWORD, Uuid::new_v4()), limits)
        .await
        .unwrap();
}

//! Local logon, bearer tokens and who may see what.

use crate::on_both_backends;
use crate::support::{ADMIN_PASSWORD, Env};
use roster_app::{AppError, Caller, NewUserInput, PrivilegesInput};
use roster_core::Privilege;
use roster_core::user::AuthMethod;
use std::collections::BTreeSet;

async fn add(env: &Env, name: &str, password: &str) {
    env.roster
        .create_user(
            &env.local_admin(),
            NewUserInput {
                name: name.into(),
                full_name: String::new(),
                emails: vec![],
                auth: AuthMethod::Local,
                password: Some(password.into()),
                privileges: None,
            },
        )
        .await
        .unwrap();
}

async fn local_logon_rules(env: Env) {
    add(&env, "lena", "right-password").await;
    let s = env.roster.logon("Lena", "right-password").await.unwrap();
    assert!(s.token.starts_with("rst_") && s.token.len() > 40);
    let caller = env.roster.authenticate_token(&s.token).await.unwrap();
    assert!(matches!(caller, Caller::User(ref u) if u.name.as_str() == "lena"));

    let wrong = env.roster.logon("lena", "wrong").await.unwrap_err();
    let unknown = env.roster.logon("nobody", "wrong").await.unwrap_err();
    assert!(matches!(wrong, AppError::LogonFailed));
    assert!(matches!(unknown, AppError::LogonFailed));
    assert_eq!(
        wrong.to_string(),
        unknown.to_string(),
        "same answer for both"
    );
    assert!(matches!(
        env.roster.logon("lena", "").await.unwrap_err(),
        AppError::EmptyPassword
    ));
    assert!(matches!(
        env.roster.logon("nobody", "").await.unwrap_err(),
        AppError::EmptyPassword
    ));

    // Without log_on: refused, even with the right password.
    env.roster
        .set_privileges(
            &env.local_admin(),
            "lena",
            PrivilegesInput {
                privileges: BTreeSet::new(),
                folders: vec![],
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        env.roster
            .logon("lena", "right-password")
            .await
            .unwrap_err(),
        AppError::LogonNotAllowed
    ));
    // ... and her existing session stops working too.
    assert!(matches!(
        env.roster.authenticate_token(&s.token).await.unwrap_err(),
        AppError::Unauthenticated
    ));
    env.check().await;
}
on_both_backends!(local_logon_rules);

async fn tokens_expire_by_the_clock(env: Env) {
    let s = env.roster.logon("admin", ADMIN_PASSWORD).await.unwrap();
    env.clock.advance_seconds(3599);
    env.roster.authenticate_token(&s.token).await.unwrap();
    env.clock.advance_seconds(2);
    assert!(matches!(
        env.roster.authenticate_token(&s.token).await.unwrap_err(),
        AppError::Unauthenticated
    ));
    // Logging off ends a session at once.
    let s = env.roster.logon("admin", ADMIN_PASSWORD).await.unwrap();
    env.roster.logout(&s.token).await.unwrap();
    assert!(env.roster.authenticate_token(&s.token).await.is_err());
    assert!(env.roster.authenticate_token("rst_made_up").await.is_err());
    env.check().await;
}
on_both_backends!(tokens_expire_by_the_clock);

async fn users_see_only_themselves(env: Env) {
    add(&env, "mia", "mia-password").await;
    add(&env, "ned", "ned-password").await;
    let s = env.roster.logon("mia", "mia-password").await.unwrap();
    let mia = env.roster.authenticate_token(&s.token).await.unwrap();
    assert_eq!(
        env.roster
            .get_user(&mia, "MIA")
            .await
            .unwrap()
            .name
            .as_str(),
        "mia"
    );
    assert!(matches!(
        env.roster.get_user(&mia, "ned").await.unwrap_err(),
        AppError::Forbidden(_)
    ));
    assert!(matches!(
        env.roster.list_users(&mia, 0, 10).await.unwrap_err(),
        AppError::Forbidden(_)
    ));
    assert!(matches!(
        env.roster.delete_user(&mia, "ned").await.unwrap_err(),
        AppError::Forbidden(_)
    ));
    assert!(matches!(
        env.roster.set_password(&mia, "ned", "x").await.unwrap_err(),
        AppError::Forbidden(_)
    ));
    assert!(matches!(
        env.roster.audit_log(&mia, 0, 10).await.unwrap_err(),
        AppError::Forbidden(_)
    ));
    assert!(matches!(
        env.roster.directory_settings(&mia).await.unwrap_err(),
        AppError::Forbidden(_)
    ));
    let folders = env.roster.list_folders(&mia).await.unwrap();
    assert_eq!(
        folders.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["mia"]
    );

    // Changing one's own password needs change_password and the current password.
    assert!(matches!(
        env.roster
            .change_own_password(&mia, "mia-password", "new")
            .await
            .unwrap_err(),
        AppError::Forbidden(_)
    ));
    env.roster
        .set_privileges(
            &env.local_admin(),
            "mia",
            PrivilegesInput {
                privileges: BTreeSet::from([Privilege::LogOn, Privilege::ChangePassword]),
                folders: vec![],
            },
        )
        .await
        .unwrap();
    let mia = env.roster.authenticate_token(&s.token).await.unwrap();
    assert!(matches!(
        env.roster
            .change_own_password(&mia, "wrong", "new-pass")
            .await
            .unwrap_err(),
        AppError::LogonFailed
    ));
    env.roster
        .change_own_password(&mia, "mia-password", "new-pass")
        .await
        .unwrap();
    env.roster.logon("mia", "new-pass").await.unwrap();
    assert!(env.roster.logon("mia", "mia-password").await.is_err());
    env.check().await;
}
on_both_backends!(users_see_only_themselves);

#[tokio::test]
async fn a_directory_user_cannot_log_on_without_a_directory() {
    let env = Env::sqlite().await;
    env.roster
        .create_user(
            &env.local_admin(),
            NewUserInput {
                name: "olga".into(),
                full_name: String::new(),
                emails: vec![],
                auth: AuthMethod::Directory,
                password: None,
                privileges: None,
            },
        )
        .await
        .unwrap();
    let e = env.roster.logon("olga", "anything").await.unwrap_err();
    assert!(matches!(e, AppError::DirectoryLogonUnavailable(_)), "{e}");
    assert!(e.to_string().contains("no directory is configured"), "{e}");
}

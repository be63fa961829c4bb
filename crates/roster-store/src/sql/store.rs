// The Store implementation, written once for both backends. `sqlite.rs` and `postgres.rs` each include
// this file after defining `Db`, `ThisStore` (with a `pool` field), `BACKEND`, `apply_connection`,
// `finish_apply_connection` and `before_close`, and
// importing `Result` and `StoreError`. Placeholders are `$1..$n` numbered in order of first appearance,
// which both SQLite and PostgreSQL read the same way.
//
// The SQL is split by concern into the files included below, and each file is a list of ordinary functions
// (the methods take `store: &ThisStore`); the `impl Store` at the end only hands each method to its
// function, because a trait's impl must be one block and the methods can't be spread over files.
//
// Included files rather than a macro that expands to the functions: included code stays ordinary code,
// so a compiler error points at its line, and clippy's lints (the crate denies unwrap, indexing…) check it
// like any other code, whereas clippy leaves much of what macros expand to alone. Rather than narrower traits
// per concern (`UserStore`, `RunStore`…) composed into `Store`: a method of a narrower trait can be called
// on a `SqliteStore` or `PgStore` only where that trait is imported, and callers that import only `Store`
// (`examples/apply_timing.rs`) would stop compiling.
//
// All the included files share this one module, so their imports are here: a name imported in two of
// them would be defined twice.

use crate::{
    Actor, AppliedPlan, AuditFilter, CancelOutcome, Credentials, DeletedUser, NewRun, NewUserRecord, Page, RunControl,
    ReadMode, RunOutcome, RunPhase, RunRecord, RunStatus, RunSummary, ScheduleState, Snapshot, Store, UserPatch,
};
use async_trait::async_trait;
use futures_util::TryStreamExt;
use roster_core::plan::{
    CurrentUser, PlannedChanges, ReportAction, ReportCounts, ReportLine,
    correct_report_for_folders_decided_at_apply,
};
use roster_core::privileges::DefaultPrivileges;
use roster_core::throttle::ThrottleState;
use roster_core::user::{AuditEntry, AuthMethod, DirectoryLink, Folder, FolderAccess, User};
use roster_core::{EmailAddress, FolderRight, Privilege, Timestamp, UserName};
use sqlx::{QueryBuilder, Row};
use std::collections::{BTreeSet, HashMap};

include!("shared.rs");
include!("schema.rs");
include!("users.rs");
include!("sessions.rs");
include!("settings_audit.rs");
include!("runs.rs");
include!("sync.rs");

#[async_trait]
impl Store for ThisStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn close(&self) {
        before_close(self).await;
        self.pool.close().await;
    }

    // users.rs

    async fn ensure_admin(&self, password_hash: &str, now: Timestamp) -> Result<bool> {
        ensure_admin(self, password_hash, now).await
    }

    async fn list_users(&self, offset: i64, limit: i64) -> Result<Page<User>> {
        list_users(self, offset, limit).await
    }

    async fn search_users(&self, search: &str, offset: i64, limit: i64) -> Result<Page<User>> {
        search_users(self, search, offset, limit).await
    }

    async fn get_user(&self, name: &UserName) -> Result<Option<User>> {
        get_user(self, name).await
    }

    async fn get_user_by_id(&self, id: i64) -> Result<Option<User>> {
        get_user_by_id(self, id).await
    }

    async fn credentials(&self, name: &UserName) -> Result<Option<Credentials>> {
        credentials(self, name).await
    }

    async fn create_user(
        &self,
        user: &NewUserRecord,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<User> {
        create_user(self, user, actor, now).await
    }

    async fn update_user(
        &self,
        id: i64,
        patch: &UserPatch,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<User> {
        update_user(self, id, patch, actor, now).await
    }

    async fn delete_user(&self, id: i64, actor: &Actor, now: Timestamp) -> Result<DeletedUser> {
        delete_user(self, id, actor, now).await
    }

    async fn set_privileges(
        &self,
        id: i64,
        privileges: &BTreeSet<Privilege>,
        folders: Option<&[(i64, BTreeSet<FolderRight>)]>,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<User> {
        set_privileges(self, id, privileges, folders, actor, now).await
    }

    async fn set_auth(
        &self,
        id: i64,
        auth: AuthMethod,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<User> {
        set_auth(self, id, auth, actor, now).await
    }

    async fn set_password_hash(
        &self,
        id: i64,
        hash: &str,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<()> {
        set_password_hash(self, id, hash, actor, now).await
    }

    async fn list_folders(&self) -> Result<Vec<Folder>> {
        list_folders(self).await
    }

    async fn get_folder(&self, id: i64) -> Result<Option<Folder>> {
        get_folder(self, id).await
    }

    async fn set_message_count(
        &self,
        id: i64,
        count: i64,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Folder> {
        set_message_count(self, id, count, actor, now).await
    }

    // settings_audit.rs

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        get_setting(self, key).await
    }

    async fn put_setting(
        &self,
        key: &str,
        value: &str,
        actor: &Actor,
        now: Timestamp,
        details: &str,
    ) -> Result<()> {
        put_setting(self, key, value, actor, now, details).await
    }

    async fn default_privileges(&self) -> Result<DefaultPrivileges> {
        default_privileges(self).await
    }

    async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        details: &str,
        now: Timestamp,
    ) -> Result<()> {
        audit(self, actor, action, target, details, now).await
    }

    async fn search_audit(
        &self,
        filter: &AuditFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Page<AuditEntry>> {
        search_audit(self, filter, offset, limit).await
    }

    // sessions.rs

    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        purge_expired_sessions(self, now).await
    }

    async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()> {
        create_session(self, token_hash, user_id, now, expires_at).await
    }

    async fn session_user(&self, token_hash: &str, now: Timestamp) -> Result<Option<User>> {
        session_user(self, token_hash, now).await
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        delete_session(self, token_hash).await
    }

    async fn logon_throttle(&self, name_key: &str) -> Result<Option<ThrottleState>> {
        logon_throttle(self, name_key).await
    }

    async fn set_logon_throttle(&self, name_key: &str, state: &ThrottleState) -> Result<()> {
        set_logon_throttle(self, name_key, state).await
    }

    async fn clear_logon_throttle(&self, name_key: &str) -> Result<bool> {
        clear_logon_throttle(self, name_key).await
    }

    // sync.rs

    // The synchronization's hot paths: each backend names its own (`backend_…` in sqlite.rs and postgres.rs;
    // PostgreSQL's are sync.rs's, SQLite's go through rusqlite).

    async fn snapshot(&self) -> Result<Snapshot> {
        backend_snapshot(self).await
    }

    async fn snapshot_touched(&self, touched: &roster_core::plan::Touched) -> Result<Snapshot> {
        backend_snapshot_touched(self, touched).await
    }

    async fn count_linked(&self, source: &str) -> Result<u64> {
        count_linked(self, source).await
    }

    async fn user_db_version(&self) -> Result<i64> {
        user_db_version(self).await
    }

    async fn apply_plan(
        &self,
        run_id: i64,
        expected_version: i64,
        changes: &PlannedChanges,
        defaults: &DefaultPrivileges,
        record: &mut RunRecord,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<AppliedPlan> {
        backend_apply_plan(
            self,
            run_id,
            expected_version,
            changes,
            defaults,
            record,
            actor,
            now,
        )
        .await
    }

    // runs.rs

    async fn begin_run(
        &self,
        run: &NewRun,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> Result<i64> {
        begin_run(self, run, now, stale_before).await
    }

    async fn heartbeat_run(
        &self,
        run_id: i64,
        entries_read: i64,
        phase: RunPhase,
        now: Timestamp,
    ) -> Result<RunControl> {
        heartbeat_run(self, run_id, entries_read, phase, now).await
    }

    async fn request_cancel(
        &self,
        run_id: i64,
        actor: &Actor,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> Result<CancelOutcome> {
        request_cancel(self, run_id, actor, now, stale_before).await
    }

    async fn finish_run(
        &self,
        run_id: i64,
        outcome: &RunOutcome<'_>,
        now: Timestamp,
    ) -> Result<()> {
        finish_run(self, run_id, outcome, now).await
    }

    async fn list_runs(&self, offset: i64, limit: i64) -> Result<Page<RunSummary>> {
        list_runs(self, offset, limit).await
    }

    async fn get_run(&self, id: i64) -> Result<Option<RunSummary>> {
        get_run(self, id).await
    }

    async fn schedule_state(&self) -> Result<Option<ScheduleState>> {
        schedule_state(self).await
    }

    async fn set_schedule_state(&self, state: Option<&ScheduleState>) -> Result<()> {
        set_schedule_state(self, state).await
    }

    async fn move_schedule(&self, expected_due: Timestamp, next_due: Timestamp, failures: i64) -> Result<bool> {
        move_schedule(self, expected_due, next_due, failures).await
    }

    async fn planned_deletions(&self, id: i64) -> Result<Option<Vec<i64>>> {
        planned_deletions(self, id).await
    }

    async fn run_lines(&self, id: i64, offset: i64, limit: i64) -> Result<Page<ReportLine>> {
        run_lines(self, id, offset, limit).await
    }

    // schema.rs

    async fn check_consistency(&self) -> Result<Vec<String>> {
        check_consistency(self).await
    }

    async fn check_invariants(&self) -> Result<Vec<String>> {
        check_invariants(self).await
    }

    // sqlite.rs or postgres.rs

    async fn backup(
        &self,
        dest: &std::path::Path,
        companions: &[crate::Companion],
        now: Timestamp,
    ) -> Result<crate::BackupSummary> {
        backup_database(self, dest, companions, now).await
    }
}

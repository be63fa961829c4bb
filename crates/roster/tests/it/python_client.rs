//! A client generated from the OpenAPI document (issue 27, "an API that generated clients can use"):
//! `openapi-python-client` from PyPI generates a Python client from the running `roster serve`'s
//! `/api/v1/openapi.json`, without skipping or failing to parse anything, and a Python script drives the
//! binary through it: logs on, sets LDIF directory settings, previews, syncs and lists users, asserting
//! the typed results as it goes.
//!
//! The generator's virtual environment (from PyPI: the generator, and what the generated client needs) is
//! cached outside the clone, keyed by the generator's version, in `$ROSTER_TEST_CACHE` (default
//! `$XDG_CACHE_HOME/roster-tests` or `~/.cache/roster-tests`); a missing or broken one is built again.
//! It is built beside its final place and renamed into it, so that concurrent runs never see half of one.

use crate::e2e::{ADMIN_PW, Server};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// The generator, pinned: a new version may generate different code (change the script with it).
const GENERATOR_VERSION: &str = "0.29.1";

/// What the generated client imports (httpx, attrs, python-dateutil) comes with the generator; asked for
/// by name anyway, since the client needs them whatever the generator does. setuptools builds the
/// generated client (`--meta setup`) without reaching PyPI again.
fn requirements() -> Vec<String> {
    vec![
        format!("openapi-python-client=={GENERATOR_VERSION}"),
        "httpx".to_owned(),
        "attrs".to_owned(),
        "python-dateutil".to_owned(),
        "setuptools>=70.1".to_owned(),
    ]
}

fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROSTER_TEST_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("roster-tests");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/roster-tests"),
        None => std::env::temp_dir().join("roster-tests-cache"),
    }
}

fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn check(command: &mut Command) -> String {
    let o = output(command);
    let all = text(&o);
    assert!(
        o.status.success(),
        "{command:?} exited with {}:\n{all}",
        o.status
    );
    all
}

/// The venv's interpreter. Run everything through `python -m`: a renamed venv's scripts still name
/// the directory they were installed in.
fn python(venv: &Path) -> PathBuf {
    venv.join("bin/python")
}

fn usable(venv: &Path) -> bool {
    python(venv).exists()
        && Command::new(python(venv))
            .args([
                "-c",
                &format!(
                    "import importlib.metadata as m, httpx, attrs, dateutil, setuptools; \
                     assert m.version('openapi-python-client') == '{GENERATOR_VERSION}'"
                ),
            ])
            .output()
            .is_ok_and(|o| o.status.success())
}

/// The cached virtual environment with the generator, built if it is missing or broken.
fn generator_venv() -> PathBuf {
    let root = cache_root();
    let venv = root.join(format!("openapi-python-client-{GENERATOR_VERSION}"));
    if usable(&venv) {
        return venv;
    }
    std::fs::create_dir_all(&root).unwrap();
    let building = tempfile::Builder::new()
        .prefix(".building-")
        .tempdir_in(&root)
        .unwrap();
    let tmp = building.path().join("venv");
    check(Command::new("python3").arg("-m").arg("venv").arg(&tmp));
    check(
        Command::new(python(&tmp))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(requirements()),
    );
    // A broken one in the way goes first; if another run put a good one there meanwhile, use that.
    if venv.exists() && !usable(&venv) {
        std::fs::remove_dir_all(&venv).unwrap();
    }
    if std::fs::rename(&tmp, &venv).is_err() {
        assert!(
            usable(&venv),
            "{} could not be put in place",
            venv.display()
        );
    }
    assert!(
        usable(&venv),
        "{} is not usable after building it",
        venv.display()
    );
    venv
}

/// The script the generated client is driven by. It asserts as it goes; any failure is a non-zero exit.
const SCRIPT: &str = r#"
import sys, time
from roster_client import AuthenticatedClient, Client
from roster_client.api.sessions import create_session
from roster_client.api.directory import put_directory, get_directory
from roster_client.api.runs import preview, sync, get_run, list_runs
from roster_client.api.users import list_users
from roster_client.models import (
    DirectorySettingsNoneView, ErrorBody, LogonRequest, LdifSettings, LdifSettingsType, LdifSettingsView,
    RunStatus, RunKind, User, UserPage, RunSummary, RunSummaryPage,
)

origin, password, ldif = sys.argv[1], sys.argv[2], sys.argv[3]

anonymous = Client(base_url=origin, raise_on_unexpected_status=True)
session = create_session.sync(client=anonymous, body=LogonRequest(name="admin", password=password))
assert session.user.name == "admin", session
client = AuthenticatedClient(base_url=origin, token=session.token, raise_on_unexpected_status=True)

# No directory yet: the union's "none" variant.
nothing = get_directory.sync(client=client)
assert isinstance(nothing, DirectorySettingsNoneView), nothing

def ldif_settings(filter_):
    return LdifSettings(
        type_=LdifSettingsType.LDIF,
        file=ldif,
        base_dn="ou=People,dc=example,dc=com",
        filter_=filter_,
        username_attribute="uid",
        full_name_attribute="displayName",
        email_attributes="mail",
    )

# A refusal is typed too: the error body names the field at fault.
refused = put_directory.sync_detailed(client=client, body=ldif_settings("(broken"))
assert refused.status_code == 400, refused
assert isinstance(refused.parsed, ErrorBody) and refused.parsed.error.field == "filter", refused.parsed

shown = put_directory.sync(client=client, body=ldif_settings("(&(objectClass=inetOrgPerson)(mail=*))"))
assert isinstance(shown, LdifSettingsView), shown
assert shown.file == ldif and shown.username_attribute == "uid", shown
again = get_directory.sync(client=client)
assert isinstance(again, LdifSettingsView), again
assert again.base_dn == "ou=People,dc=example,dc=com", again

def finished(started, kind):
    assert started.kind == kind, started
    deadline = time.monotonic() + 60
    while True:
        detail = get_run.sync(id=started.run_id, client=client)
        if detail.run.status != RunStatus.RUNNING:
            return detail
        assert time.monotonic() < deadline, detail
        time.sleep(0.1)

previewed = finished(preview.sync(client=client), RunKind.PREVIEW)
assert previewed.run.status == RunStatus.SUCCEEDED, previewed
assert previewed.run.counts.created == 12, previewed.run.counts
assert list_users.sync(client=client).total == 1, "a preview changes nothing"

synced = finished(sync.sync(client=client), RunKind.SYNC)
assert synced.run.status == RunStatus.SUCCEEDED, synced
assert synced.run.counts.created == 12, synced.run.counts

users = list_users.sync(client=client, limit=1000)
assert isinstance(users, UserPage), users
assert users.total == 13, users
assert all(isinstance(u, User) for u in users.items), users.items
names = {u.name for u in users.items}
assert {"admin", "aanderson", "bbrown"} <= names, names
alice = next(u for u in users.items if u.name == "aanderson")
assert alice.full_name == "Alice Anderson", alice

runs = list_runs.sync(client=client)
assert isinstance(runs, RunSummaryPage) and all(isinstance(r, RunSummary) for r in runs.items), runs
assert [r.kind for r in runs.items] == [RunKind.SYNC, RunKind.PREVIEW], runs.items
print("ok", len(users.items), "users")
"#;

#[test]
fn a_generated_python_client_logs_on_sets_the_directory_previews_syncs_and_lists_users() {
    let started = Instant::now();
    let venv = generator_venv();
    let venv_ready = started.elapsed();

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let work = tempfile::tempdir().unwrap();
    let document = work.path().join("openapi.json");
    let body = reqwest::blocking::get(format!("{}/openapi.json", server.base))
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .unwrap();
    std::fs::write(&document, body).unwrap();

    // Generate: any warning (an endpoint or schema it skipped or couldn't parse) fails the test.
    let config = work.path().join("config.yaml");
    std::fs::write(
        &config,
        "project_name_override: roster-client\npackage_name_override: roster_client\npost_hooks: []\n",
    )
    .unwrap();
    let project = work.path().join("roster-client");
    let generated = check(
        Command::new(python(&venv))
            .args(["-m", "openapi_python_client", "generate", "--meta", "setup"])
            .arg("--fail-on-warning")
            .arg("--path")
            .arg(&document)
            .arg("--config")
            .arg(&config)
            .arg("--output-path")
            .arg(&project),
    );
    let lower = generated.to_lowercase();
    for word in [
        "warning",
        "unable",
        "skip",
        "could not",
        "couldn't",
        "error",
    ] {
        assert!(
            !lower.contains(word),
            "the generator said {word:?}:\n{generated}"
        );
    }

    // Install the generated client (into a directory of this run, not the shared venv).
    let site = work.path().join("site");
    check(
        Command::new(python(&venv))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "--target",
            ])
            .arg(&site)
            .arg(&project),
    );

    let ldif = work.path().join("company.ldif");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/company.ldif"),
        &ldif,
    )
    .unwrap();
    let script = work.path().join("drive.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let o = output(
        Command::new(python(&venv))
            .arg(&script)
            .arg(&server.origin)
            .arg(ADMIN_PW)
            .arg(&ldif)
            .env("PYTHONPATH", &site)
            .current_dir(work.path()),
    );
    assert!(
        o.status.success(),
        "the script exited with {}:\n{}",
        o.status,
        text(&o)
    );
    assert!(text(&o).contains("ok 13 users"), "{}", text(&o));
    server.stop();
    eprintln!(
        "python client: venv ready in {venv_ready:?}, whole test {:?}",
        started.elapsed()
    );
}

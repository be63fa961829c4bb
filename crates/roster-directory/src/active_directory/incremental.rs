//! Active Directory's incremental read (issue 26): DirSync tells which objects changed, and each of them
//! is read again with the read's own scope.
//!
//! DirSync (`dirsync.rs`) can only start at a naming context's root and sends only the *changed*
//! attributes of a changed object, and its filter can't say what the read's scope says (the base DN,
//! membership of the selected groups through nested groups, the enabled / Exchange / visible filters).
//! So it is only asked *which* objects changed (from the domain's root, with the object-security flag,
//! for the attributes the read maps or filters on, plus `name`, `isDeleted`, `whenCreated` and the
//! groups' `member` as incremental values), and then:
//!
//! * every changed object is read again by objectGUID within the base DN and the filter, as a full read
//!   reads it: found, it is added or changed (entering the scope is an add); not found, it is gone from
//!   the scope (or never was in it: the app only looks at the ids of linked users);
//! * a deleted object (a tombstone, `isDeleted`) is gone;
//! * an object renamed or moved (its `name` changed, and it isn't new): every user below it is read
//!   again too, since a moved OU takes its users into or out of the base DN without changing them;
//! * with selected groups, a member added to or removed from any group: that user, or every user in
//!   scope that is a member through that group (nested), is read again; an added member is found
//!   (entered), a removed one is found only if still in scope through another group.
//!
//! What DirSync can't show is a deletion the service account can't see: tombstones live in
//! `CN=Deleted Objects`, which only SYSTEM and the administrators may read (verified with Samba 4.17: a
//! non-administrator's DirSync leaves tombstones out; granted List Contents and Read Property on that
//! container, it gets them). Without that right, and whenever a group was deleted while groups are
//! selected (its members' memberships are gone with it, and can't be read any more), the read also
//! reads the ids of every entry in scope (the objectGUIDs alone, paged): the app then takes every
//! linked user missing from them as gone, as in content synchronization's present phase.
//!
//! The cookie stored (`dirsync::StoredCookie`) names the domain controller (`dsServiceName`) and the
//! scope (base DN and filter as prepared: selected groups by DN, the schema's
//! `msExchHideFromAddressLists`). DirSync cookies are a domain controller's update sequence numbers, so
//! another domain controller, or another scope, means a full read ([`Changes::RefreshRequired`]), as
//! does a cookie the domain controller refuses. A connection that breaks is an error (the run fails,
//! the stored cookie stays).
//!
//! Samba 4.17, verified against the test kit's DC (and where it differs from MS-ADTS): it requires the
//! control to be critical (else operationsError); it refuses a base that isn't a naming context's root
//! (unwillingToPerform with the object-security flag); without the flag a non-administrator gets
//! insufficientAccessRights (it checks "Replicating Directory Changes"), with it the same account reads
//! changes; a cookie it can't decode is unavailableCriticalExtension ("Unable to unmarshall cookie"); it
//! never sets the "more data" flag and ignores MaxBytes (the whole answer comes in one round; the loop
//! over rounds is for Active Directory); a move (a new parent, same RDN) reports `name`, a linked
//! attribute's change reports the group with `member;range=1-1` (added) and `member;range=0-0`
//! (removed) values as plain DNs; a new object reports `whenCreated`; a tombstone reports `isDeleted`
//! and `name` but not its `objectClass`. Samba accepts a cookie of another domain controller and
//! answers from its update-to-date vector (possibly everything again), which is why the cookie names
//! the domain controller and another one means a full read.

use std::collections::{BTreeMap, BTreeSet};

use ldap3::Scope;
use ldap3::controls::RawControl;
use roster_core::filter::escape_value;

use crate::connector::{ChangeRead, Changes};
use crate::dirsync::{
    INCREMENTAL_VALUES, OBJECT_SECURITY, SHOW_DELETED_OID, StoredCookie, escape_bytes,
};
use crate::error::DirectoryError;
use crate::ids::object_guid_bytes;
use crate::ldap_engine::{DirSyncAnswer, LdapEngine, Values};
use crate::mapping::AttributeMap;

/// What an incremental read needs from a preparation.
#[derive(Debug, Clone)]
pub(super) struct Setup {
    /// The rootDSE lists DirSync among its controls.
    pub(super) dirsync_offered: bool,
    /// The domain's root (`defaultNamingContext`): DirSync starts there, wherever the base DN is.
    pub(super) domain_root: String,
    /// Which domain controller answered: its `dsServiceName` (else its host, as the settings or DNS
    /// named it).
    pub(super) dc: String,
    /// The domain controller's host, for messages.
    pub(super) dc_host: String,
    pub(super) base_dn: String,
    pub(super) filter: String,
    /// The attributes the filter looks at (besides the object classes).
    pub(super) filtered_on: Vec<&'static str>,
    /// Membership matters only when groups are selected.
    pub(super) groups_selected: bool,
    /// The domain controller's time (its rootDSE's `currentTime`), in seconds since 1970.
    pub(super) dc_time: Option<i64>,
}

impl Setup {
    /// What the cookie was taken for: the base DN and the filter, as prepared.
    fn scope(&self) -> String {
        format!("{}\n{}", self.base_dn, self.filter)
    }
}

/// Object security (no replication right needed) and incremental values (a group's added and removed
/// members, not all of them).
const FLAGS: u32 = OBJECT_SECURITY | INCREMENTAL_VALUES;
/// A filter no object matches (the nil GUID): the cookie of now without sending the domain.
const NO_OBJECT: &str =
    "(objectGUID=\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00)";
/// The well-known GUID of `CN=Deleted Objects` (MS-ADTS 6.1.1.4).
const DELETED_OBJECTS_WKGUID: &str = "18E2EA80684F11D2B9AA00C04F79F805";
/// Users, as the read's filter starts (without the settings' conditions).
const USERS: &str = "(&(objectCategory=person)(objectClass=user))";
/// Member values per search when members are expanded (an OR of two clauses each).
const MEMBERS_PER_SEARCH: usize = 50;
/// Ids per search when tombstones are checked for groups.
const IDS_PER_SEARCH: usize = 100;

/// How long Active Directory keeps a tombstone at least: 60 days, the tombstone lifetime of a forest
/// that never set one (newer forests set 180). A cookie older than that may have missed deletions
/// whose tombstones are gone (a DirSync cookie only moves on with a run: this is a long outage with
/// a long `full_read_every`). Measured with the domain controller's clock (the rootDSE's
/// `currentTime`), which gave the cookie too.
const TOMBSTONES_KEPT_AT_LEAST: i64 = 60 * 86_400;

/// A GeneralizedTime as the rootDSE's `currentTime` has it (`20260101120000.0Z`), in seconds since
/// 1970; `None` for anything else.
pub(super) fn generalized_time_seconds(text: &str) -> Option<i64> {
    let digits = text.get(..14)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !text.ends_with('Z') {
        return None;
    }
    let field = |at: usize, len: usize| digits.get(at..at + len)?.parse::<i64>().ok();
    let (year, month, day) = (field(0, 4)?, field(4, 2)?, field(6, 2)?);
    let (hour, minute, second) = (field(8, 2)?, field(10, 2)?, field(12, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second.min(60))
}

fn show_deleted() -> RawControl {
    RawControl {
        ctype: SHOW_DELETED_OID.to_owned(),
        crit: true,
        val: None,
    }
}

/// See the module comment. Without a cookie: no changes and the cookie of now.
pub(super) async fn read_changes(
    engine: &LdapEngine,
    setup: &Setup,
    cookie: Option<&[u8]>,
) -> Result<Changes, DirectoryError> {
    if !setup.dirsync_offered || setup.domain_root.is_empty() {
        return Ok(Changes::Unsupported(format!(
            "the domain controller {} doesn't offer DirSync",
            setup.dc_host
        )));
    }
    let Some(cookie) = cookie else {
        return cookie_of_now(engine, setup).await;
    };
    let Some(stored) = StoredCookie::decode(cookie) else {
        return Ok(Changes::RefreshRequired(
            "the stored cookie is not a DirSync cookie of this version of Roster".into(),
        ));
    };
    if !stored.dc.eq_ignore_ascii_case(&setup.dc) {
        return Ok(Changes::RefreshRequired(format!(
            "another domain controller answered ({}), and DirSync cookies belong to the one that gave them ({})",
            setup.dc, stored.dc
        )));
    }
    // Without the DC's time (the rootDSE had none) the age can't be told, and isn't checked.
    let age = setup
        .dc_time
        .filter(|_| stored.taken_at > 0)
        .map_or(0, |now| now.saturating_sub(stored.taken_at));
    if age > TOMBSTONES_KEPT_AT_LEAST {
        return Ok(Changes::RefreshRequired(format!(
            "the last read is {} days old, more than the {} days a domain controller keeps deleted objects at least (its tombstone lifetime), so deletions since may be gone",
            age / 86_400,
            TOMBSTONES_KEPT_AT_LEAST / 86_400
        )));
    }
    if stored.scope != setup.scope() {
        return Ok(Changes::RefreshRequired(
            "the base DN or the filter the settings resolve to changed since the last read (a selected group renamed or moved, or the schema extended)".into(),
        ));
    }
    let watched = watched_attributes(setup);
    let watched: Vec<&str> = watched.iter().map(String::as_str).collect();
    let (entries, server_cookie) = match engine
        .dirsync(
            &setup.domain_root,
            "(objectClass=*)",
            &watched,
            FLAGS,
            &stored.server,
        )
        .await?
    {
        DirSyncAnswer::Changes { entries, cookie } => (entries, cookie),
        DirSyncAnswer::Refused { rc, message } => {
            return Ok(Changes::RefreshRequired(format!(
                "the domain controller refused the cookie of the last read (result code {rc}: {message})"
            )));
        }
    };
    let changed = changed_objects(entries)?;
    let tombstones_seen = tombstones_visible(engine, setup).await?;

    let mut gone: BTreeSet<String> = BTreeSet::new();
    // Read again within the scope: id → objectGUID bytes.
    let mut again: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut members: BTreeSet<String> = BTreeSet::new();
    // Why the ids in scope must be read too (None: the delete phase is enough).
    let mut why_present: Option<&str> =
        (!tombstones_seen).then_some("the service account can't see deleted objects");
    for object in changed.values() {
        if object.deleted {
            gone.insert(object.id.clone());
            continue;
        }
        again.insert(object.id.clone(), object.guid.clone());
        if setup.groups_selected {
            members.extend(object.members.iter().cloned());
            if object.all_members {
                why_present = Some("a group's members came whole, not as what changed");
            }
        }
    }
    // Users below a renamed or moved object (an OU moved into or out of the base DN), found by its
    // objectGUID: it may have moved again since DirSync answered.
    for object in changed.values().filter(|o| o.moved) {
        tracing::debug!(dn = %object.dn, "renamed or moved: the users below it are read again");
        match engine
            .ids_below(&format!("<GUID={}>", object.id), USERS)
            .await
        {
            Ok(ids) => add_ids(&mut again, ids),
            // Deleted since: its users were deleted or moved before it, and DirSync names them then.
            Err(DirectoryError::NoSuchBase { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    if setup.groups_selected {
        let members: Vec<String> = members.into_iter().collect();
        for batch in members.chunks(MEMBERS_PER_SEARCH) {
            let clauses: String = batch
                .iter()
                .map(|dn| {
                    let dn = escape_value(dn);
                    format!(
                        "(distinguishedName={dn})(memberOf:{}:={dn})",
                        super::IN_CHAIN
                    )
                })
                .collect();
            let filter = format!("(&{USERS}(|{clauses}))");
            add_ids(&mut again, engine.ids_below(&setup.base_dn, &filter).await?);
        }
        if tombstones_seen && deleted_group_among(engine, setup, &gone).await? {
            why_present = Some("a group was deleted, and its members' memberships with it");
        }
    }
    let guids: Vec<Vec<u8>> = again.values().cloned().collect();
    let found = engine.read_guids(&guids).await?;
    let in_scope: BTreeSet<&str> = found.entries.iter().map(|e| e.id.as_str()).collect();
    gone.extend(
        again
            .keys()
            .filter(|id| !in_scope.contains(id.as_str()))
            .cloned(),
    );
    let present = match why_present {
        Some(_) => Some(engine.ids_below(&setup.base_dn, &setup.filter).await?),
        None => None,
    };
    let how = format!(
        "DirSync from the domain controller {}: {} object(s) of the domain changed, each read again within the base DN and filter; {}",
        setup.dc_host,
        changed.len(),
        match why_present {
            Some(why) => format!("deletions found by reading the ids in scope, since {why}"),
            None => "deleted objects seen as such".to_owned(),
        }
    );
    Ok(Changes::Read(ChangeRead {
        how,
        without_stable_id: found.without_stable_id,
        changed: found.entries,
        deleted: gone.into_iter().collect(),
        present,
        cookie: StoredCookie {
            dc: setup.dc.clone(),
            scope: setup.scope(),
            server: server_cookie,
            taken_at: setup.dc_time.unwrap_or(0),
        }
        .encode(),
    }))
}

/// A DirSync search that matches nothing: the domain controller's cookie of now.
async fn cookie_of_now(engine: &LdapEngine, setup: &Setup) -> Result<Changes, DirectoryError> {
    match engine
        .dirsync(&setup.domain_root, NO_OBJECT, &["objectGUID"], FLAGS, &[])
        .await?
    {
        DirSyncAnswer::Changes { cookie, .. } => Ok(Changes::Read(ChangeRead {
            how: "DirSync: the cookie of now".into(),
            cookie: StoredCookie {
                dc: setup.dc.clone(),
                scope: setup.scope(),
                server: cookie,
                taken_at: setup.dc_time.unwrap_or(0),
            }
            .encode(),
            ..ChangeRead::default()
        })),
        DirSyncAnswer::Refused { rc, message } => Ok(Changes::Unsupported(format!(
            "the domain controller {} refused DirSync (result code {rc}: {message})",
            setup.dc_host
        ))),
    }
}

/// What DirSync is asked for: what the read maps and filters on, and what tells a move, a new object,
/// a deletion and a membership change.
fn watched_attributes(setup: &Setup) -> Vec<String> {
    let mut out = AttributeMap::active_directory().requested_attributes();
    for extra in setup
        .filtered_on
        .iter()
        .copied()
        .chain(["name", "isDeleted", "whenCreated"])
        .chain(setup.groups_selected.then_some("member"))
    {
        if !out.iter().any(|a| a.eq_ignore_ascii_case(extra)) {
            out.push(extra.to_owned());
        }
    }
    out
}

/// One object DirSync named.
#[derive(Debug, Default)]
struct Changed {
    id: String,
    guid: Vec<u8>,
    dn: String,
    deleted: bool,
    /// Renamed or moved (`name` changed on an object that isn't new or deleted).
    moved: bool,
    /// Values added to or removed from its `member`.
    members: Vec<String>,
    /// `member` came with all its values (the incremental-values flag not honoured).
    all_members: bool,
}

/// The objects of DirSync's answer by id (an object named twice, in two rounds, is merged).
fn changed_objects(
    entries: Vec<(String, Values)>,
) -> Result<BTreeMap<String, Changed>, DirectoryError> {
    let mut out: BTreeMap<String, Changed> = BTreeMap::new();
    for (dn, values) in entries {
        let has = |name: &str| values.iter().any(|(a, _)| a.eq_ignore_ascii_case(name));
        let guid = values
            .iter()
            .find(|(a, _)| a.eq_ignore_ascii_case("objectGUID"))
            .and_then(|(_, v)| v.first())
            .filter(|g| g.len() == 16)
            .cloned()
            .ok_or_else(|| DirectoryError::Protocol {
                message: format!("DirSync named {dn} without its objectGUID"),
            })?;
        let (id, _) = AttributeMap::active_directory()
            .ids
            .entry_id(&dn, &|name: &str| {
                if name.eq_ignore_ascii_case("objectGUID") {
                    vec![guid.as_slice()]
                } else {
                    Vec::new()
                }
            });
        let deleted = values.iter().any(|(a, v)| {
            a.eq_ignore_ascii_case("isDeleted") && v.iter().any(|x| x.eq_ignore_ascii_case(b"TRUE"))
        });
        let created = has("whenCreated");
        let mut members = Vec::new();
        let mut all_members = false;
        for (name, vals) in &values {
            let lower = name.to_ascii_lowercase();
            let incremental = lower == "member;range=1-1" || lower == "member;range=0-0";
            if lower == "member" {
                all_members = true;
            } else if !incremental {
                continue;
            }
            for v in vals {
                members.push(String::from_utf8(v.clone()).map_err(|_| {
                    DirectoryError::Protocol {
                        message: format!("DirSync sent a member of {dn} that is not UTF-8"),
                    }
                })?);
            }
        }
        let entry = out.entry(id.clone()).or_default();
        entry.id = id;
        entry.guid = guid;
        entry.dn = dn;
        entry.deleted |= deleted;
        entry.moved |= has("name") && !created && !deleted;
        entry.members.append(&mut members);
        entry.all_members |= all_members;
    }
    Ok(out)
}

fn add_ids(again: &mut BTreeMap<String, Vec<u8>>, ids: Vec<String>) {
    for id in ids {
        if let Some(guid) = object_guid_bytes(&id) {
            again.insert(id, guid);
        }
    }
}

/// Whether the service account may read `CN=Deleted Objects` (its `isDeleted`, with Show Deleted): then
/// DirSync sends it the tombstones too. Only SYSTEM and the administrators may by default.
async fn tombstones_visible(engine: &LdapEngine, setup: &Setup) -> Result<bool, DirectoryError> {
    let base = format!("<WKGUID={DELETED_OBJECTS_WKGUID},{}>", setup.domain_root);
    let found = engine
        .search_small_with(
            &base,
            Scope::Base,
            "(objectClass=*)",
            &["isDeleted"],
            1,
            vec![show_deleted()],
        )
        .await?;
    Ok(found.iter().any(|(_, values)| {
        values
            .iter()
            .any(|(a, _)| a.eq_ignore_ascii_case("isDeleted"))
    }))
}

/// Whether any of these deleted objects was a group (its tombstone keeps its objectClass).
async fn deleted_group_among(
    engine: &LdapEngine,
    setup: &Setup,
    gone: &BTreeSet<String>,
) -> Result<bool, DirectoryError> {
    let base = format!("<WKGUID={DELETED_OBJECTS_WKGUID},{}>", setup.domain_root);
    let guids: Vec<Vec<u8>> = gone.iter().filter_map(|id| object_guid_bytes(id)).collect();
    for batch in guids.chunks(IDS_PER_SEARCH) {
        let ids: String = batch
            .iter()
            .map(|g| format!("(objectGUID={})", escape_bytes(g)))
            .collect();
        let found = engine
            .search_small_with(
                &base,
                Scope::OneLevel,
                &format!("(&(objectClass=group)(|{ids}))"),
                &["1.1"],
                1,
                vec![show_deleted()],
            )
            .await?;
        if !found.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(groups: bool) -> Setup {
        Setup {
            dirsync_offered: true,
            domain_root: "DC=x".into(),
            dc: "CN=NTDS Settings,CN=DC1".into(),
            dc_host: "dc1".into(),
            base_dn: "OU=a,DC=x".into(),
            filter: "(objectClass=user)".into(),
            filtered_on: vec!["userAccountControl"],
            groups_selected: groups,
            dc_time: None,
        }
    }

    #[test]
    fn dirsync_watches_what_the_read_maps_and_filters_on() {
        let w = watched_attributes(&setup(false));
        for a in [
            "sAMAccountName",
            "displayName",
            "cn",
            "mail",
            "proxyAddresses",
            "objectGUID",
            "userAccountControl",
            "name",
            "isDeleted",
            "whenCreated",
        ] {
            assert!(w.iter().any(|x| x == a), "{a}: {w:?}");
        }
        assert!(!w.iter().any(|x| x == "member"));
        assert!(
            watched_attributes(&setup(true))
                .iter()
                .any(|x| x == "member")
        );
    }

    #[test]
    fn the_domain_controllers_time_is_read() {
        assert_eq!(generalized_time_seconds("19700101000000.0Z"), Some(0));
        assert_eq!(
            generalized_time_seconds("20000229235959.0Z"),
            Some(951_868_799)
        );
        // Samba's form, seen in the test kit's rootDSE.
        assert_eq!(
            generalized_time_seconds("20261203005144.0Z"),
            Some(1_796_259_104)
        );
        for bad in [
            "",
            "2026",
            "20261303005144.0Z",
            "2026120300514x.0Z",
            "20261203005144.0",
        ] {
            assert_eq!(generalized_time_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn changed_objects_say_what_happened_to_them() {
        let guid = |b: u8| vec![b; 16];
        let entries: Vec<(String, Values)> = vec![
            (
                "CN=new,DC=x".into(),
                vec![
                    ("objectGUID".into(), vec![guid(1)]),
                    ("name".into(), vec![b"new".to_vec()]),
                    ("whenCreated".into(), vec![b"2026".to_vec()]),
                ],
            ),
            (
                "CN=moved,DC=x".into(),
                vec![
                    ("objectGUID".into(), vec![guid(2)]),
                    ("name".into(), vec![b"moved".to_vec()]),
                ],
            ),
            (
                "CN=gone\\0ADEL:x,CN=Deleted Objects,DC=x".into(),
                vec![
                    ("objectGUID".into(), vec![guid(3)]),
                    ("isDeleted".into(), vec![b"TRUE".to_vec()]),
                    ("name".into(), vec![b"gone".to_vec()]),
                ],
            ),
            (
                "CN=g,DC=x".into(),
                vec![
                    ("objectGUID".into(), vec![guid(4)]),
                    ("member;range=1-1".into(), vec![b"CN=in,DC=x".to_vec()]),
                    ("member;range=0-0".into(), vec![b"CN=out,DC=x".to_vec()]),
                ],
            ),
            (
                "CN=g,DC=x".into(),
                vec![
                    ("objectGUID".into(), vec![guid(4)]),
                    ("member".into(), vec![b"CN=all,DC=x".to_vec()]),
                ],
            ),
        ];
        let changed = changed_objects(entries).unwrap();
        let by_dn = |dn: &str| changed.values().find(|c| c.dn == dn).unwrap();
        let new = by_dn("CN=new,DC=x");
        assert!(!new.moved && !new.deleted);
        assert!(by_dn("CN=moved,DC=x").moved);
        let gone = by_dn("CN=gone\\0ADEL:x,CN=Deleted Objects,DC=x");
        assert!(gone.deleted && !gone.moved);
        let g = by_dn("CN=g,DC=x");
        assert_eq!(g.members, ["CN=in,DC=x", "CN=out,DC=x", "CN=all,DC=x"]);
        assert!(g.all_members);
        assert_eq!(changed.len(), 4, "the group named twice is one object");

        let without_guid: Vec<(String, Values)> =
            vec![("CN=x".into(), vec![("name".into(), vec![b"x".to_vec()])])];
        assert_eq!(
            changed_objects(without_guid).unwrap_err().code(),
            "DI015-protocol"
        );
    }
}

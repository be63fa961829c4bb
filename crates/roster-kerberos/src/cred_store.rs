//! Credentials from a keytab without touching the process environment: MIT's `gss_acquire_cred_from`
//! with a credential store (`client_keytab` and `ccache` for an initiator, `keytab` for an acceptor).
//! libgssapi wraps `gss_acquire_cred` only, whose keytab comes from `KRB5_CLIENT_KTNAME`/`KRB5_KTNAME`:
//! process-wide variables that a server changing its settings at run time can't set safely (setenv
//! races every other thread's getenv), and a system-wide default ticket cache we must not use. So this
//! is the one place with `unsafe`: the FFI call, then ownership handed to libgssapi's `Cred`.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::ptr;

use libgssapi::credential::Cred;
use libgssapi::error::{Error, MajorFlags};
use libgssapi_sys::{
    OM_uint32, gss_OID_desc, gss_acquire_cred_from, gss_buffer_desc, gss_cred_id_t,
    gss_import_name, gss_key_value_element_desc, gss_key_value_set_desc, gss_name_t,
    gss_release_name,
};

/// `GSS_KRB5_NT_PRINCIPAL_NAME`, 1.2.840.113554.1.2.2.1: a name like `user@REALM` or `ldap/host@REALM`.
const KRB5_PRINCIPAL_NAME_OID: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x01";

/// `GSS_C_INITIATE` and `GSS_C_ACCEPT` (gssapi.h).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Usage {
    Initiate = 1,
    Accept = 2,
}

/// Acquires credentials for `principal` (or any principal the store's keytab has, if `None`) from the
/// given credential store, for all mechanisms the library has (Kerberos, and SPNEGO around it).
pub(crate) fn acquire_from(
    principal: Option<&str>,
    usage: Usage,
    store: &[(&str, &str)],
) -> Result<Cred, Error> {
    let keys: Vec<(CString, CString)> = store
        .iter()
        .map(|(k, v)| {
            Ok((
                CString::new(*k).map_err(|_| bad_name())?,
                CString::new(*v).map_err(|_| bad_name())?,
            ))
        })
        .collect::<Result<_, Error>>()?;
    let mut elements: Vec<gss_key_value_element_desc> = keys
        .iter()
        .map(|(k, v)| gss_key_value_element_desc {
            key: k.as_ptr(),
            value: v.as_ptr(),
        })
        .collect();
    let set = gss_key_value_set_desc {
        count: elements.len() as OM_uint32,
        elements: elements.as_mut_ptr(),
    };
    let name = match principal {
        Some(p) => Some(ImportedName::new(p)?),
        None => None,
    };
    let mut minor: OM_uint32 = 0;
    let mut cred: gss_cred_id_t = ptr::null_mut();
    // SAFETY: every pointer passed lives until the call returns (`keys` backs `elements`, which backs
    // `set`; `name` is released by its Drop afterwards); the output handle is ours to own.
    let major = unsafe {
        gss_acquire_cred_from(
            &mut minor,
            name.as_ref().map_or(ptr::null_mut(), |n| n.0),
            0xffff_ffff, // GSS_C_INDEFINITE
            ptr::null_mut(),
            usage as i32,
            &set,
            &mut cred,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    drop(name);
    if major != 0 {
        return Err(Error {
            major: MajorFlags::from_bits_retain(major),
            minor,
        });
    }
    // SAFETY: `cred` was just returned by the library and nothing else holds it.
    Ok(unsafe { Cred::from_c(cred) })
}

fn bad_name() -> Error {
    Error {
        major: MajorFlags::GSS_S_BAD_NAME,
        minor: 0,
    }
}

/// A name imported as a Kerberos principal, released on drop.
struct ImportedName(gss_name_t);

impl ImportedName {
    fn new(principal: &str) -> Result<ImportedName, Error> {
        let mut oid = gss_OID_desc {
            length: KRB5_PRINCIPAL_NAME_OID.len() as OM_uint32,
            elements: KRB5_PRINCIPAL_NAME_OID.as_ptr() as *mut std::ffi::c_void,
        };
        let mut buffer = gss_buffer_desc {
            length: principal.len(),
            value: principal.as_ptr() as *mut std::ffi::c_void,
        };
        let mut minor: OM_uint32 = 0;
        let mut name: gss_name_t = ptr::null_mut();
        // SAFETY: the library copies the buffer and reads the OID during the call only.
        let major = unsafe { gss_import_name(&mut minor, &mut buffer, &mut oid, &mut name) };
        if major != 0 {
            return Err(Error {
                major: MajorFlags::from_bits_retain(major),
                minor,
            });
        }
        Ok(ImportedName(name))
    }
}

impl Drop for ImportedName {
    fn drop(&mut self) {
        let mut minor: OM_uint32 = 0;
        // SAFETY: the name came from gss_import_name and is released once.
        unsafe {
            gss_release_name(&mut minor, &mut self.0);
        }
    }
}

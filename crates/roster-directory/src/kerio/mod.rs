//! Kerio Connect (issue 23): the users of chosen domains and groups read through the Administration API
//! (JSON-RPC 2.0 at `/admin/api/jsonrpc/`, protocols.md part 2), passwords checked by an IMAP login
//! (`crate::imap`). So far only the API client (`api.rs`); the read, the logon and the picker come next.

// The connector that uses the client comes next; until then only its tests do.
#![cfg_attr(not(test), allow(dead_code))]

mod api;

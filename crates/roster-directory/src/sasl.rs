//! The Active Directory service account's Kerberos bind: SASL GSSAPI (RFC 4752) with the confidentiality
//! layer, done by us on the raw TCP connection before ldap3 sees it, then a relay that encrypts what ldap3
//! writes and decrypts what the server sends, one SASL buffer (4-byte length + GSSAPI wrap token) at a time.
//! ldap3 talks to the relay over a Unix socket pair (`StdStream::Unix`), so it is the same ldap3 as for
//! every other connection.
//!
//! Why not ldap3's `gssapi` feature (see ARCHITECTURE.md, "Kerberos"): it has no way to name a keytab or a
//! private ticket cache (only the process environment), it panics when the server's security-layer reply
//! is not 4 bytes, its check of the offered layers can never fail (`buf[0] | needed == 0`), and it brings
//! an older libgssapi and `ring`.
//!
//! Why plain LDAP: Samba and Active Directory refuse SASL sign/seal inside TLS and require it outside
//! (`ldap server require strong auth`), so the payload is encrypted by Kerberos (the seed's "parts of the
//! connection are unencrypted but the real payload is encrypted").

use std::sync::{Arc, Mutex};
use std::time::Duration;

use roster_kerberos::{ClientContext, KerberosError, ServiceCredentials};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ber::{decode_integer, push_tlv, read_tlv_of};
use crate::error::DirectoryError;

/// RFC 4752's security layers: bit 1 none, 2 integrity, 4 confidentiality.
const LAYER_CONFIDENTIALITY: u8 = 4;
/// The largest SASL buffer we accept from the server (we say so in the layer reply): 16 MiB - 1, the
/// most 3 bytes can say, and far above what servers send (Samba's LDAP server cuts at 64 KiB).
const RECEIVE_MAX: usize = 0x00ff_ffff;
/// How much plaintext goes into one buffer we send (well under any server's limit after wrapping).
const SEND_CHUNK: usize = 64 * 1024;
/// A bind response during the exchange is small; anything bigger is not one.
const BIND_MESSAGE_MAX: usize = 1024 * 1024;
const SASL_BIND_IN_PROGRESS: u32 = 14;

const SUBJECT: &str = "SASL bind response";

/// Binds `tcp` as the service account with Kerberos and returns the end of a socket pair that carries
/// the (now encrypted) connection in clear for ldap3. `service` is `ldap/<dnsHostName>@<REALM>`.
pub(crate) async fn bind(
    tcp: TcpStream,
    credentials: ServiceCredentials,
    service: String,
    timeout: Duration,
    target: &str,
) -> Result<std::os::unix::net::UnixStream, DirectoryError> {
    let mut tcp = tcp;
    let (ctx, server_max) =
        tokio::time::timeout(timeout, exchange(&mut tcp, credentials, service, target))
            .await
            .map_err(|_| DirectoryError::Timeout {
                target: target.to_owned(),
                operation: "binding the service account with Kerberos",
                seconds: timeout.as_secs() as u32,
            })??;
    let (ours, ldap3_end) =
        std::os::unix::net::UnixStream::pair().map_err(|e| internal(e.to_string()))?;
    ours.set_nonblocking(true)
        .map_err(|e| internal(e.to_string()))?;
    let ours = tokio::net::UnixStream::from_std(ours).map_err(|e| internal(e.to_string()))?;
    let chunk = match server_max {
        // 0: the server set no limit.
        0 => SEND_CHUNK,
        max => SEND_CHUNK.min(max.saturating_sub(128).max(1024)),
    };
    tokio::spawn(relay(tcp, ours, ctx, chunk));
    Ok(ldap3_end)
}

fn internal(detail: String) -> DirectoryError {
    DirectoryError::Internal {
        message: format!("setting up the Kerberos-encrypted connection: {detail}"),
    }
}

fn kerberos(target: &str, e: KerberosError) -> DirectoryError {
    DirectoryError::Kerberos {
        target: target.to_owned(),
        hint: e.hint(),
        detail: e.to_string(),
    }
}

/// The SASL exchange: context tokens until Kerberos is done, then the security-layer negotiation.
/// Returns the context and the largest buffer the server accepts.
async fn exchange(
    tcp: &mut TcpStream,
    credentials: ServiceCredentials,
    service: String,
    target: &str,
) -> Result<(ClientContext, usize), DirectoryError> {
    let principal = credentials.principal().to_owned();
    // Getting the ticket blocks (keytab, KDC round trips).
    let (mut ctx, first) = tokio::task::spawn_blocking(move || credentials.start(&service))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(|e| kerberos(target, e))?;
    let mut id = 1;
    let mut response = round_trip(tcp, id, Some(&first), target).await?;
    while !ctx.is_complete() {
        if response.rc != SASL_BIND_IN_PROGRESS {
            return Err(refused(&principal, &response));
        }
        let token = response.credentials.take().unwrap_or_default();
        let next = ctx.step(&token).map_err(|e| kerberos(target, e))?;
        // Once Kerberos is done (mutual authentication checked), the client answers with no token and
        // the server's next reply carries its security-layer offer.
        id += 1;
        response = round_trip(tcp, id, next.as_deref(), target).await?;
    }
    if !ctx.protects_confidentiality() {
        return Err(DirectoryError::Kerberos {
            target: target.to_owned(),
            detail: "the Kerberos context has no confidentiality (encryption)".into(),
            hint: "the connection would carry the directory's data unencrypted; check that the domain controller and this machine share an encryption type (AES)",
        });
    }
    // The server's offer: wrapped [layers, max buffer size (3 bytes)].
    if response.rc != SASL_BIND_IN_PROGRESS {
        if response.rc == 0 {
            return Err(DirectoryError::Kerberos {
                target: target.to_owned(),
                detail: "the server ended the bind without offering a security layer".into(),
                hint: "the connection would be unencrypted; Roster only binds with Kerberos when the server encrypts (Active Directory and Samba do on plain LDAP)",
            });
        }
        return Err(refused(&principal, &response));
    }
    let offer = ctx
        .unwrap(&response.credentials.take().unwrap_or_default())
        .map_err(|e| kerberos(target, e))?;
    let [layers, a, b, c] = offer[..] else {
        return Err(DirectoryError::Protocol {
            message: format!(
                "the server's SASL security-layer offer is {} bytes, not 4",
                offer.len()
            ),
        });
    };
    if layers & LAYER_CONFIDENTIALITY == 0 {
        return Err(DirectoryError::Kerberos {
            target: target.to_owned(),
            detail: format!(
                "the server offers SASL security layers {layers:#04x}, without confidentiality"
            ),
            hint: "Roster binds with Kerberos only over an encrypted (sealed) connection; the domain controller must allow sealing on plain LDAP (it does unless it was changed)",
        });
    }
    let server_max = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
    let max = RECEIVE_MAX.to_be_bytes();
    let choice = [LAYER_CONFIDENTIALITY, max[5], max[6], max[7]];
    let reply = ctx.wrap(&choice).map_err(|e| kerberos(target, e))?;
    id += 1;
    let response = round_trip(tcp, id, Some(&reply), target).await?;
    if response.rc != 0 {
        return Err(refused(&principal, &response));
    }
    Ok((ctx, server_max))
}

fn refused(principal: &str, response: &BindResponse) -> DirectoryError {
    DirectoryError::ServiceBind {
        bind_dn: principal.to_owned(),
        account_key: "principal",
        rc: response.rc,
        message: response.message.clone(),
    }
}

/// A BindResponse's parts that matter here.
#[derive(Debug)]
pub(crate) struct BindResponse {
    rc: u32,
    message: String,
    credentials: Option<Vec<u8>>,
}

/// Sends a SASL GSSAPI BindRequest with message id `id` and reads its response.
async fn round_trip(
    tcp: &mut TcpStream,
    id: i32,
    credentials: Option<&[u8]>,
    target: &str,
) -> Result<BindResponse, DirectoryError> {
    let request = encode_bind_request(id, credentials);
    tcp.write_all(&request)
        .await
        .map_err(|e| disconnected(target, e))?;
    let message = read_message(tcp, BIND_MESSAGE_MAX)
        .await
        .map_err(|e| disconnected(target, e))?;
    decode_bind_response(&message, id)
}

fn disconnected(target: &str, e: std::io::Error) -> DirectoryError {
    DirectoryError::Disconnected {
        target: target.to_owned(),
        operation: "binding the service account with Kerberos",
        entries: 0,
        detail: e.to_string(),
        hint: "Kerberos binds use plain LDAP (port 389, encrypted by Kerberos): check that the port is LDAP's and not LDAPS's, and the server's logs",
    }
}

/// `LDAPMessage { messageID, BindRequest { version 3, name "", sasl { "GSSAPI", credentials } } }`.
fn encode_bind_request(id: i32, credentials: Option<&[u8]>) -> Vec<u8> {
    let mut sasl = Vec::new();
    push_tlv(&mut sasl, 0x04, b"GSSAPI");
    if let Some(c) = credentials {
        push_tlv(&mut sasl, 0x04, c);
    }
    let mut bind = Vec::new();
    push_tlv(&mut bind, 0x02, &[3]);
    push_tlv(&mut bind, 0x04, b"");
    push_tlv(&mut bind, 0xa3, &sasl);
    let mut message = Vec::new();
    push_tlv(
        &mut message,
        0x02,
        &crate::ber::encode_unsigned(id.unsigned_abs()),
    );
    push_tlv(&mut message, 0x60, &bind);
    let mut out = Vec::new();
    push_tlv(&mut out, 0x30, &message);
    out
}

/// Parses `LDAPMessage { messageID, BindResponse { resultCode, matchedDN, diagnosticMessage,
/// referral [3] OPTIONAL, serverSaslCreds [7] OPTIONAL } , controls [0] OPTIONAL }`.
pub(crate) fn decode_bind_response(
    message: &[u8],
    id: i32,
) -> Result<BindResponse, DirectoryError> {
    let (body, _) = read_tlv_of(message, 0x30, SUBJECT)?;
    let (msg_id, rest) = read_tlv_of(body, 0x02, SUBJECT)?;
    let msg_id = decode_integer(msg_id)?;
    if rest.first() == Some(&0x78) {
        // An unsolicited notification (message id 0): the server is ending the connection.
        let (op, _) = read_tlv_of(rest, 0x78, SUBJECT)?;
        let (rc, op) = read_tlv_of(op, 0x0a, SUBJECT)?;
        let (_, op) = read_tlv_of(op, 0x04, SUBJECT)?;
        let (text, _) = read_tlv_of(op, 0x04, SUBJECT)?;
        return Ok(BindResponse {
            rc: decode_integer(rc)?.clamp(0, i64::from(u32::MAX)) as u32,
            message: String::from_utf8_lossy(text).into_owned(),
            credentials: None,
        });
    }
    if msg_id != i64::from(id) {
        return Err(DirectoryError::Protocol {
            message: format!("the server answered message {msg_id} to the bind request {id}"),
        });
    }
    let (op, _controls) = read_tlv_of(rest, 0x61, SUBJECT)?;
    let (rc, op) = read_tlv_of(op, 0x0a, SUBJECT)?;
    let (_matched, op) = read_tlv_of(op, 0x04, SUBJECT)?;
    let (text, mut op) = read_tlv_of(op, 0x04, SUBJECT)?;
    if op.first() == Some(&0xa3) {
        op = read_tlv_of(op, 0xa3, SUBJECT)?.1;
    }
    let credentials = if op.first() == Some(&0x87) {
        Some(read_tlv_of(op, 0x87, SUBJECT)?.0.to_vec())
    } else {
        None
    };
    Ok(BindResponse {
        rc: decode_integer(rc)?.clamp(0, i64::from(u32::MAX)) as u32,
        message: String::from_utf8_lossy(text).into_owned(),
        credentials,
    })
}

/// Reads one BER element (tag, definite length, content) of at most `limit` bytes.
pub(crate) async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
    limit: usize,
) -> std::io::Result<Vec<u8>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await?;
    let mut out = head.to_vec();
    let [_, first] = head;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return Err(bad("not an LDAP message (bad length)"));
        }
        let mut bytes = vec![0u8; count];
        r.read_exact(&mut bytes).await?;
        out.extend_from_slice(&bytes);
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    if len > limit {
        return Err(bad("an LDAP message larger than a bind response can be"));
    }
    let start = out.len();
    out.resize(start + len, 0);
    r.read_exact(out.get_mut(start..).unwrap_or_default())
        .await?;
    Ok(out)
}

/// Moves bytes between ldap3 (`local`, clear) and the server (`tcp`, SASL buffers) until either side
/// closes or a buffer fails its check; then both are closed, and ldap3 reports the connection's end to
/// whatever operation was waiting.
async fn relay(tcp: TcpStream, local: tokio::net::UnixStream, ctx: ClientContext, chunk: usize) {
    let ctx = Arc::new(Mutex::new(ctx));
    let (mut from_server, mut to_server) = tcp.into_split();
    let (mut from_ldap3, mut to_ldap3) = local.into_split();
    let up = {
        let ctx = ctx.clone();
        async move {
            let mut buf = vec![0u8; chunk];
            loop {
                let n = from_ldap3.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<_, RelayError>(());
                }
                let wrapped = lock(&ctx).wrap(buf.get(..n).unwrap_or_default())?;
                write_buffer(&mut to_server, &wrapped).await?;
            }
        }
    };
    let down = async move {
        loop {
            let mut len = [0u8; 4];
            match from_server.read_exact(&mut len).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(RelayError::Io(e)),
            }
            let len = u32::from_be_bytes(len) as usize;
            if len > RECEIVE_MAX {
                return Err(RelayError::TooLarge(len));
            }
            let mut token = vec![0u8; len];
            from_server.read_exact(&mut token).await?;
            let plain = lock(&ctx).unwrap(&token)?;
            to_ldap3.write_all(&plain).await?;
        }
    };
    let ended = tokio::select! {
        r = up => r,
        r = down => r,
    };
    if let Err(error) = ended {
        tracing::warn!(%error, "the Kerberos-encrypted LDAP connection was closed");
    }
}

async fn write_buffer<W: AsyncWrite + Unpin>(w: &mut W, token: &[u8]) -> Result<(), RelayError> {
    let len = u32::try_from(token.len()).map_err(|_| RelayError::TooLarge(token.len()))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(token).await?;
    Ok(())
}

fn lock(ctx: &Mutex<ClientContext>) -> std::sync::MutexGuard<'_, ClientContext> {
    // A panic elsewhere while holding it can't leave the context half-changed in a way we could fix.
    ctx.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Kerberos(#[from] KerberosError),
    #[error("the server sent a SASL buffer of {0} bytes, more than the {RECEIVE_MAX} agreed")]
    TooLarge(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_requests_are_encoded_as_ldap_messages() {
        // As OpenLDAP's client sends the first GSSAPI step (token shortened).
        let out = encode_bind_request(1, Some(&[0xaa, 0xbb]));
        assert_eq!(
            out,
            vec![
                0x30, 0x18, 0x02, 0x01, 0x01, 0x60, 0x13, 0x02, 0x01, 0x03, 0x04, 0x00, 0xa3, 0x0c,
                0x04, 0x06, b'G', b'S', b'S', b'A', b'P', b'I', 0x04, 0x02, 0xaa, 0xbb
            ]
        );
    }

    #[test]
    fn bind_responses_are_decoded_and_malformed_ones_are_errors() {
        // { id 2, BindResponse { 14, "", "", serverSaslCreds 0x01 0x02 } }
        let good = [
            0x30, 0x10, 0x02, 0x01, 0x02, 0x61, 0x0b, 0x0a, 0x01, 0x0e, 0x04, 0x00, 0x04, 0x00,
            0x87, 0x02, 0x01, 0x02,
        ];
        let r = decode_bind_response(&good, 2).unwrap();
        assert_eq!(r.rc, 14);
        assert_eq!(r.credentials, Some(vec![1, 2]));
        assert!(
            decode_bind_response(&good, 3).is_err(),
            "another message id"
        );
        for cut in 0..good.len() {
            let _ = decode_bind_response(&good[..cut], 2);
        }
        for i in 0..good.len() {
            let mut bad = good;
            bad[i] ^= 0xff;
            let _ = decode_bind_response(&bad, 2);
        }
    }

    #[tokio::test]
    async fn oversized_messages_are_refused_before_reading_them() {
        let mut input: &[u8] = &[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff];
        let e = read_message(&mut input, 1024).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        let mut input: &[u8] = &[0x30, 0x03, 1, 2, 3];
        assert_eq!(read_message(&mut input, 1024).await.unwrap().len(), 5);
    }
}

//! Property tests of the decoders that read what a server sends (issue 27, "Fuzzing"; see roster-core's
//! `fuzz.rs` for why proptest rather than cargo fuzz): the paged-results control, the content
//! synchronization messages, the SASL bind response and its framing, LDAP entries and references as
//! ldap3 hands them over, and IceWarp's XML. Arbitrary bytes and mutations of valid messages must give
//! an error or a value, never a panic, and never an allocation beyond the limit a caller set.

use proptest::prelude::*;

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    crate::ber::push_tlv(&mut out, tag, content);
    out
}

fn mutate(base: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut out = base.to_vec();
    for &(at, byte) in edits {
        let at = at % (out.len() + 1);
        match byte % 3 {
            0 => out.insert(at, byte),
            1 if at < out.len() => {
                out.remove(at);
            }
            _ => {
                if let Some(b) = out.get_mut(at) {
                    *b = byte;
                }
            }
        }
    }
    out
}

fn valid_messages() -> Vec<Vec<u8>> {
    let uuid = [7u8; 16];
    vec![
        crate::ber::encode_paged_request(500, b"cookie"),
        tlv(
            0x30,
            &[tlv(0x0a, &[1]), tlv(0x04, &uuid), tlv(0x04, b"rid=1")].concat(),
        ),
        tlv(0x30, &[tlv(0x04, b"c"), tlv(0x01, &[0xff])].concat()),
        tlv(
            0xa3,
            &[
                tlv(0x04, b"c"),
                tlv(0x31, &[tlv(0x04, &uuid), tlv(0x04, &uuid)].concat()),
            ]
            .concat(),
        ),
        tlv(
            0x30,
            &[
                tlv(0x02, &[2]),
                tlv(
                    0x61,
                    &[
                        tlv(0x0a, &[14]),
                        tlv(0x04, b""),
                        tlv(0x04, b""),
                        tlv(0x87, b"tok"),
                    ]
                    .concat(),
                ),
            ]
            .concat(),
        ),
        // A SearchResultEntry: uid=a with two attributes.
        tlv(
            0x64,
            &[
                tlv(0x04, b"uid=a,dc=x"),
                tlv(
                    0x30,
                    &[
                        tlv(
                            0x30,
                            &[tlv(0x04, b"uid"), tlv(0x31, &tlv(0x04, b"a"))].concat(),
                        ),
                        tlv(
                            0x30,
                            &[
                                tlv(0x04, b"mail"),
                                tlv(0x31, &[tlv(0x04, b"a@x"), tlv(0x04, b"b@x")].concat()),
                            ]
                            .concat(),
                        ),
                    ]
                    .concat(),
                ),
            ]
            .concat(),
        ),
    ]
}

fn decode_everything(bytes: &[u8]) {
    let _ = crate::ber::decode_paged_response(bytes);
    let _ = crate::content_sync::decode_state(bytes);
    let _ = crate::content_sync::decode_done(bytes);
    let _ = crate::content_sync::decode_info(bytes);
    let _ = crate::sasl::decode_bind_response(bytes, 2);
    if let Ok((_, tag)) = ldap3::asn1::parse_tag(bytes) {
        let _ = crate::ldap_engine::parse_reference(tag.clone());
        let _ = crate::ldap_engine::parse_entry(tag);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut input = bytes;
    let _ = runtime.block_on(crate::sasl::read_message(&mut input, 4096));
}

const ICEWARP_REPLY: &str = "<?xml version=\"1.0\"?><iq type=\"result\" sid=\"abc\"><query xmlns=\"admin:iq:rpc\"><result><classname>tpropertylist</classname><item><apiproperty><propname>u_name</propname></apiproperty><propertyval><classname>tpropertystring</classname><val>Jo &amp; &#233;</val></propertyval></item></result></query></iq>";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(
        which in 0usize..6,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..10),
    ) {
        let messages = valid_messages();
        let base = messages.get(which % messages.len()).cloned().unwrap_or_default();
        decode_everything(&mutate(&base, &edits));
    }

    #[test]
    fn kerio_replies_never_panic(text in "\\PC{0,300}") {
        let _ = crate::kerio::api::parse_reply(&text);
    }

    #[test]
    fn mutated_kerio_replies_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..12)) {
        for reply in [
            r#"{"jsonrpc":"2.0","id":1,"result":{"list":[{"id":"k1","loginName":"ann","fullName":"Ann","emailAddresses":["a"]}],"totalItems":1}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"Session %1 expired in %2.","data":{"messageParameters":{"positionalParameters":["x",2]}}}}"#,
        ] {
            let text = String::from_utf8_lossy(&mutate(reply.as_bytes(), &edits)).into_owned();
            if let Ok(crate::kerio::api::Reply::Error { message, .. }) = crate::kerio::api::parse_reply(&text) {
                prop_assert!(message.len() <= 2100);
            }
        }
    }

    #[test]
    fn icewarp_xml_never_panics(text in "\\PC{0,300}") {
        let _ = crate::icewarp::xml::parse(&text);
    }

    #[test]
    fn mutated_icewarp_replies_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..12)) {
        let bytes = mutate(ICEWARP_REPLY.as_bytes(), &edits);
        let text = String::from_utf8_lossy(&bytes);
        let _ = crate::icewarp::xml::parse(&text);
    }
}

#[test]
fn a_length_prefix_claiming_gigabytes_is_refused_before_allocating() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut input: &[u8] = &[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x00];
    assert!(
        runtime
            .block_on(crate::sasl::read_message(&mut input, 4096))
            .is_err()
    );
}

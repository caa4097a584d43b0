//! `CursorCodec::decode` takes the `cursor` query parameter straight from the client: any
//! string must yield `Ok` or a 400-style `FieldError`, never a panic (base64, the MAC split,
//! UTF-8, the newline splits and the UUID parse all see attacker-chosen input).
//!
//! A second check per input: a cursor the codec itself issued for an arbitrary key text
//! (which may contain newlines or any character) decodes back to the same position, and is
//! refused for another collection or another sort.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orderly_http::pagination::{CursorCodec, CursorPosition, CursorScope};

const SCOPE: CursorScope<'static> = CursorScope { collection: "products", sort: "-created_at" };

fuzz_target!(|data: &[u8]| {
    let codec = CursorCodec::new(b"fuzzing-cursor-key");

    // 1. Arbitrary text as the raw query value.
    let raw = String::from_utf8_lossy(data);
    let _ = codec.decode(SCOPE, &raw);

    // 2. Round trip through encode for an arbitrary sort key.
    let position = CursorPosition { key: raw.clone().into_owned(), id: uuid_from(data) };
    let token = codec.encode(SCOPE, &position);
    assert_eq!(codec.decode(SCOPE, &token).ok(), Some(position), "a cursor we issued must decode");
    assert!(codec.decode(CursorScope { collection: "orders", ..SCOPE }, &token).is_err());
    assert!(codec.decode(CursorScope { sort: "created_at", ..SCOPE }, &token).is_err());

    // 3. Flipping one byte of a genuine token must not panic (and almost always fails the MAC).
    if let Some(&first) = data.first() {
        let mut bytes = token.into_bytes();
        let index = usize::from(first) % bytes.len();
        bytes[index] ^= 0x01;
        let _ = codec.decode(SCOPE, &String::from_utf8_lossy(&bytes));
    }
});

fn uuid_from(data: &[u8]) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    for (slot, byte) in bytes.iter_mut().zip(data.iter().rev()) {
        *slot = *byte;
    }
    uuid::Uuid::from_bytes(bytes)
}

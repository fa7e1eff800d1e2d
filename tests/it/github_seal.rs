//! Sealed-box interop: what Recall seals for a GitHub Actions secret opens with an
//! independent libsodium (PyNaCl, which bundles libsodium), and the other way round.
//! GitHub decrypts with libsodium's `crypto_box_seal_open`; agreeing with it is the point.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::SecretString;

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new(std::env::var("RECALL_PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs (scripts/test installs PyNaCl)");
    assert!(
        out.status.success(),
        "python failed (is PyNaCl installed? scripts/test installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

const KEYPAIR: &str = r#"
import base64
from nacl.public import PrivateKey
k = PrivateKey.generate()
print(base64.b64encode(bytes(k.public_key)).decode())
print(base64.b64encode(bytes(k)).decode())
"#;

const OPEN: &str = r#"
import base64, sys
from nacl.public import PrivateKey, SealedBox
k = PrivateKey(base64.b64decode(sys.argv[1]))
sys.stdout.write(SealedBox(k).decrypt(base64.b64decode(sys.argv[2])).decode())
"#;

const SEAL: &str = r#"
import base64, sys
from nacl.public import PublicKey, SealedBox
pk = PublicKey(base64.b64decode(sys.argv[1]))
print(base64.b64encode(SealedBox(pk).encrypt(sys.argv[2].encode())).decode())
"#;

#[test]
fn recall_seals_what_pynacl_opens() {
    let keys = python(KEYPAIR, &[]);
    let mut lines = keys.lines();
    let (pk, sk) = (lines.next().unwrap(), lines.next().unwrap());
    for secret in [
        "npm_0123456789abcdefghijABCDEFGHIJ0123",
        "x",
        "ünïcødé and spaces and 'quotes' \"too\"",
        &"long".repeat(5000),
    ] {
        let sealed =
            recall::net::github::seal(pk, &SecretString::from(secret.to_string())).expect("seal");
        // A sealed box is the 32-byte ephemeral key, the 16-byte tag and the ciphertext.
        assert_eq!(B64.decode(&sealed).unwrap().len(), 48 + secret.len());
        assert_eq!(python(OPEN, &[sk, &sealed]), secret);
        // Sealing is randomised (fresh ephemeral key each time).
        let again = recall::net::github::seal(pk, &SecretString::from(secret.to_string())).unwrap();
        assert_ne!(sealed, again);
    }
    // A different key pair does not open it.
    let other = python(KEYPAIR, &[]);
    let other_sk = other.lines().nth(1).unwrap();
    let sealed = recall::net::github::seal(pk, &SecretString::from("s3cret".to_string())).unwrap();
    let out = Command::new("python3")
        .args(["-c", OPEN, other_sk, &sealed])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a wrong key opened the box");
}

#[test]
fn pynacl_seals_what_crypto_box_opens() {
    let sk = crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng);
    let pk = B64.encode(sk.public_key().as_bytes());
    let sealed = python(SEAL, &[&pk, "from libsodium"]);
    let opened = sk.unseal(&B64.decode(sealed.trim()).unwrap()).unwrap();
    assert_eq!(opened, b"from libsodium");
}

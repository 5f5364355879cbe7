"""Keys: generation, PEM in both RSA flavours, FEP-521a multikeys, garbage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from federation.keys import (
    KeyAlgorithm,
    KeyFormatError,
    PublicKey,
    base58btc_decode,
    base58btc_encode,
    ed25519_private_key_from_multibase,
    ed25519_private_key_to_multibase,
    generate_ed25519_key,
    generate_rsa_key,
    load_private_key_pem,
    private_key_to_pem,
    public_key_of,
)

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "activitypub"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")

# W3C vc-di-eddsa (§ test vectors) and FEP-8b32 use this Ed25519 key pair.
W3C_SECRET_MULTIBASE = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"
W3C_PUBLIC_MULTIBASE = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"

# RFC 9421 Appendix B.1.4, test-key-ed25519.
RFC9421_ED25519_PRIVATE = """\
-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
RFC9421_ED25519_PUBLIC = """\
-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
"""

# draft-cavage-http-signatures-12 Appendix C "Test" key, PKCS#1 private key.
CAVAGE_TEST_PRIVATE = """\
-----BEGIN RSA PRIVATE KEY-----
MIICXgIBAAKBgQDCFENGw33yGihy92pDjZQhl0C36rPJj+CvfSC8+q28hxA161QF
NUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6Z4UMR7EOcpfdUE9Hf3m/hs+F
UR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJwoYi+1hqp1fIekaxsyQIDAQAB
AoGBAJR8ZkCUvx5kzv+utdl7T5MnordT1TvoXXJGXK7ZZ+UuvMNUCdN2QPc4sBiA
QWvLw1cSKt5DsKZ8UETpYPy8pPYnnDEz2dDYiaew9+xEpubyeW2oH4Zx71wqBtOK
kqwrXa/pzdpiucRRjk6vE6YY7EBBs/g7uanVpGibOVAEsqH1AkEA7DkjVH28WDUg
f1nqvfn2Kj6CT7nIcE3jGJsZZ7zlZmBmHFDONMLUrXR/Zm3pR5m0tCmBqa5RK95u
412jt1dPIwJBANJT3v8pnkth48bQo/fKel6uEYyboRtA5/uHuHkZ6FQF7OUkGogc
mSJluOdc5t6hI1VsLn0QZEjQZMEOWr+wKSMCQQCC4kXJEsHAve77oP6HtG/IiEn7
kpyUXRNvFsDE0czpJJBvL/aRFUJxuRK91jhjC68sA7NsKMGg5OXb5I5Jj36xAkEA
gIT7aFOYBFwGgQAQkWNKLvySgKbAZRTeLBacpHMuQdl1DfdntvAyqpAZ0lY0RKmW
G6aFKaqQfOXKCyWoUiVknQJAXrlgySFci/2ueKlIE1QqIiLSZ8V8OlpFLRnb1pzI
7U1yQXnTAEFYM560yJlzUpOb1V4cScGd365tiSMvxLOvTA==
-----END RSA PRIVATE KEY-----
"""
CAVAGE_TEST_PUBLIC = """\
-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDCFENGw33yGihy92pDjZQhl0C3
6rPJj+CvfSC8+q28hxA161QFNUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6
Z4UMR7EOcpfdUE9Hf3m/hs+FUR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJw
oYi+1hqp1fIekaxsyQIDAQAB
-----END PUBLIC KEY-----
"""

# Produced by Fedify 2.3.6 (@fedify/vocab-runtime exportMultibaseKey) from fresh
# keys, to check that our FEP-521a encoding is byte-identical to Fedify's.
FEDIFY_RSA_SPKI_B64 = (
    "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAxL9sUIwG88Z2lYYCbLszSckqysB0B7fTPWJ5ze8h+AcEULvF"
    "yzjrMN5jiXiad1PbmX79JZtlwYPdGPeTIxmRDstbAM/2EXguicj+rA9jvUGLESV8JwZszUPpkGxVdn/dKcoF7ZZYPDEY"
    "GsrXy83n1zM38eOXBxQ1CkmHMvuXmE67nM7UbN0IlQMBWchOvW5t4yhImsCF5R2tpsOtBjtNuEwElO028HYjLx4oLv0u"
    "oZXCa/PibdZaNw1e5791K5tzQJQJQv+nmsyNjztkd1cZfl9/wwP2UWEPeg7Ho4Wubg2gruzbM/MWBRLC2umhBW3kf2yy"
    "2HrIF0hxVaxcgZ6we5EUs2MACg5u/bVRwWcU0HLg1gyBAEzVJO0+A1gziXqAELvSy4Om5+c7zbAVtgjg0EBdv7c23RzD"
    "5mrLMGUL4/PqTUfjOFEJQPZIIKwpKIw1jGXVBAESc3Fh71cfhbgpSWxamX6rLll8JXMVi3bdUPS8kf6kP1NfCIkjnBoG"
    "GlI4cdciwt9ttEm2Owd2JgOd4opiSGpRHfdM991KKQJuKJuprFWLDgADfuccIydt91rOuqVwCqF/M4+g7m8Z2UnAdIQh"
    "z1S6dPSy2YtRYXivR7O7WdcobjDY2JLAtmfwZUmz/r9LAUWZfVw5AhO7+zUsi6Yntog7yHYGb8bhILibxVkCAwEAAQ=="
)

FEDIFY_RSA_MULTIBASE = (
    "zgghBUVkqmWS8e1iw3gEnFd8TSrWyZoczJuDDoRC14RAhXKEmSqzdozwmk2Y569wtWoRGVQGSuVJqkDDPJB1DLgJUr3d"
    "QE1vBES4xuYtT4U28suncETuQdMoNC2ZywdHxYgdi5b9dWW5wd2CUdizzGcGash1oCbgKd6TDrPRSWhyzmN4FHWpF4XG"
    "9wkXgqfxrmgDqoFnXHbEi3AmBmoDbsosguzzu7aUYHheE1yNWTNau4iZrtczPE22HZiP3y7NbtKfhQafBwM2EzKKSzUT"
    "Hd3fdvcLu6sbBKuSavRVbtwSutFmXvEgtW4hNKLB2bM4BpdVV35RRBxbf3nbotVKXbMaJmxpcwdvNWd6fMw7JA81YT1M"
    "p4ijKKkPxFEFLn4kBqKxgBEEcx1tuTFQvBXqAbHWZUPpLRvPGoF7kFjKbKbRj6f2miv25qAXjs1HpS2xgAefkpgi57M1"
    "uE6LUM2kndXRE3pZLVrxDTyGmkvyCoNKhh8S3vzCaJSh2JHGPsNdD4cmSviaLpiAiHnvkkS6JwWeqLRdQAUFcaFeu5GQ"
    "bYDpvMpozhv4HKWYQzki3sKmM2kq5jNzrGXVSTEsJ9aHwiDmmkPFN765S2WWU8yTugB75L85tsFeaUw1TRWUJtYNeQMH"
    "fTMb78fHNc3u66ESPmcrnaE4VoNSqyTKwivWovgx8wB2fyYYY1DCQF22KhqnAspkhZHLSmxA1Bkark"
)

FEDIFY_ED_SPKI_B64 = "MCowBQYDK2VwAyEAcFSUQ/q9MxVd7jvPsFxd6tfyloDnZT/cYIojBy7XqWk="

FEDIFY_ED_MULTIBASE = "z6Mkn1kWXT9NSqgCV2yTuqWfViUV17VKqmrHUzdngbYBVPui"


def _spki_pem(b64: str) -> str:
    return f"-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    """One RSA-2048 key for the module (generation is the slow part)."""
    return generate_rsa_key()


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    """One Ed25519 key for the module."""
    return generate_ed25519_key()


def test_generated_keys_know_their_algorithm(rsa_key, ed_key):
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    assert rsa_key.key_size == 2048
    assert public_key_of(rsa_key).algorithm is KeyAlgorithm.RSA
    assert public_key_of(ed_key).algorithm is KeyAlgorithm.ED25519


@pytest.mark.parametrize("which", ["rsa", "ed25519"])
def test_private_key_pem_is_pkcs8_and_round_trips(which, rsa_key, ed_key):
    key = rsa_key if which == "rsa" else ed_key
    pem = private_key_to_pem(key)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n")
    loaded = load_private_key_pem(pem)
    assert public_key_of(loaded) == public_key_of(key)


@pytest.mark.parametrize("which", ["rsa", "ed25519"])
def test_public_key_pem_is_spki_and_round_trips(which, rsa_key, ed_key):
    public = public_key_of(rsa_key if which == "rsa" else ed_key)
    pem = public.to_pem()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert PublicKey.from_pem(pem) == public
    assert PublicKey.from_pem(pem.encode()) == public


def test_public_keys_compare_by_value(rsa_key):
    a = public_key_of(rsa_key)
    b = PublicKey.from_pem(a.to_pem())
    assert a == b and hash(a) == hash(b)
    assert a != public_key_of(generate_ed25519_key())


@needs_corpus
def test_misskey_pkcs1_public_key_loads():
    actor = json.loads((CORPUS / "actors" / "misskey-person-pkcs1-key.json").read_text())
    pem = actor["publicKey"]["publicKeyPem"]
    assert pem.startswith("-----BEGIN RSA PUBLIC KEY-----")
    key = PublicKey.from_pem(pem)
    assert key.algorithm is KeyAlgorithm.RSA
    assert key.key.key_size == 4096
    # Same key once re-exported as SPKI, which is what we publish ourselves.
    assert PublicKey.from_pem(key.to_pem()) == key


def test_pkcs1_private_key_loads_and_matches_its_public_key():
    private = load_private_key_pem(CAVAGE_TEST_PRIVATE)
    assert public_key_of(private) == PublicKey.from_pem(CAVAGE_TEST_PUBLIC)


def test_rfc9421_ed25519_test_key_pair_is_consistent():
    private = load_private_key_pem(RFC9421_ED25519_PRIVATE)
    assert public_key_of(private) == PublicKey.from_pem(RFC9421_ED25519_PUBLIC)


def test_pem_with_crlf_and_surrounding_noise_loads():
    noisy = "  \r\n" + RFC9421_ED25519_PUBLIC.replace("\n", "\r\n") + "trailing words"
    assert PublicKey.from_pem(noisy) == PublicKey.from_pem(RFC9421_ED25519_PUBLIC)


def test_w3c_multikey_vector_round_trips():
    secret = ed25519_private_key_from_multibase(W3C_SECRET_MULTIBASE)
    public = PublicKey.from_multibase(W3C_PUBLIC_MULTIBASE)
    assert public.algorithm is KeyAlgorithm.ED25519
    assert public_key_of(secret) == public
    assert public.to_multibase() == W3C_PUBLIC_MULTIBASE
    assert ed25519_private_key_to_multibase(secret) == W3C_SECRET_MULTIBASE


def test_ed25519_multikey_has_the_ed01_multicodec(ed_key):
    public = public_key_of(ed_key)
    value = public.to_multibase()
    assert value.startswith("z6Mk")  # what every Ed25519 multikey looks like
    raw = base58btc_decode(value[1:])
    assert raw[:2] == b"\xed\x01" and len(raw) == 34
    assert PublicKey.from_multibase(value) == public


def test_rsa_multikey_is_rsa_pub_multicodec_over_pkcs1_der(rsa_key):
    public = public_key_of(rsa_key)
    value = public.to_multibase()
    raw = base58btc_decode(value[1:])
    pkcs1 = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1
    )
    assert raw == b"\x85\x24" + pkcs1  # varint(0x1205) + RSAPublicKey
    assert PublicKey.from_multibase(value) == public


@pytest.mark.parametrize("kind", ["RSA", "ED"])
def test_multikeys_match_fedify(kind):
    spki = FEDIFY_RSA_SPKI_B64 if kind == "RSA" else FEDIFY_ED_SPKI_B64
    multibase = FEDIFY_RSA_MULTIBASE if kind == "RSA" else FEDIFY_ED_MULTIBASE
    key = PublicKey.from_pem(_spki_pem(spki))
    assert key.to_multibase() == multibase
    assert PublicKey.from_multibase(multibase) == key


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x00\x00\x01", b"hello world", bytes(range(256))],
)
def test_base58btc_round_trips_including_leading_zeros(data):
    assert base58btc_decode(base58btc_encode(data)) == data


def test_base58btc_known_value():
    # From the base58 draft (draft-msporny-base58): "Hello World!".
    assert base58btc_encode(b"Hello World!") == "2NEpo7TZRRrLZSi2U"


def _ec_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@pytest.mark.parametrize(
    "pem",
    [
        "",
        "not a key",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        RFC9421_ED25519_PUBLIC[:60],
        "-----BEGIN PUBLIC KEY-----\n" + "A" * 30000 + "\n-----END PUBLIC KEY-----\n",
        CAVAGE_TEST_PRIVATE,  # a private key is not a public key
        "\x00\xff\udcff garbage",
    ],
)
def test_garbage_public_pem_raises_key_format_error(pem):
    with pytest.raises(KeyFormatError):
        PublicKey.from_pem(pem)


def test_unsupported_key_types_are_refused():
    with pytest.raises(KeyFormatError, match="unsupported"):
        PublicKey.from_pem(_ec_pem())
    ec_private = ec.generate_private_key(ec.SECP256R1())
    pem = ec_private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyFormatError, match="unsupported"):
        load_private_key_pem(pem)


def test_tiny_rsa_keys_are_refused():
    # cryptography will not generate one, but a peer can publish one.
    small = rsa.RSAPublicNumbers(65537, (1 << 511) + 1).public_key()
    with pytest.raises(KeyFormatError, match="bits"):
        PublicKey(small)
    pem = small.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyFormatError, match="bits"):
        PublicKey.from_pem(pem)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",  # no multibase prefix
        "f" + "00" * 34,  # base16 multibase: not what FEP-521a uses
        "z0OIl",  # characters outside base58
        "z" + base58btc_encode(b"\xed\x01" + b"\x01" * 31),  # Ed25519 too short
        "z" + base58btc_encode(b"\x12\x34" + b"\x01" * 32),  # unknown multicodec
        "z" + base58btc_encode(b"\x85\x24" + b"not der"),  # RSA header, no RSA key
        "z" + "2" * 5000,  # absurdly long
        None,
        42,
    ],
)
def test_garbage_multikeys_raise_key_format_error(value):
    with pytest.raises(KeyFormatError):
        PublicKey.from_multibase(value)


def test_garbage_private_keys_raise_key_format_error():
    with pytest.raises(KeyFormatError):
        load_private_key_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
    with pytest.raises(KeyFormatError):
        ed25519_private_key_from_multibase(W3C_PUBLIC_MULTIBASE)  # public, not secret


def test_key_format_error_is_a_value_error():
    # Callers that already catch ValueError keep working.
    assert issubclass(KeyFormatError, ValueError)

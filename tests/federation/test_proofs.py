"""Object signatures: FEP-8b32 integrity proofs (eddsa-jcs-2022) and Mastodon's
RsaSignature2017 LD signatures, against published vectors and real captures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from federation.keys import (
    PublicKey,
    ed25519_private_key_from_multibase,
    generate_ed25519_key,
    generate_rsa_key,
    public_key_of,
)
from federation.ldsignatures import (
    LdReason,
    LdVerdict,
    create_signature,
    signature_creator,
    verify_signature,
)
from federation.ldsignatures import sign_document as ld_sign_document
from federation.proofs import (
    ProofReason,
    ProofVerdict,
    create_proof,
    proof_verification_method,
    sign_document,
    verify_proof,
)

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "activitypub"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")

# W3C vc-di-eddsa test vectors ("Representation: eddsa-jcs-2022") and FEP-8b32.
W3C_SECRET = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"
W3C_PUBLIC = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
W3C_CREDENTIAL = {
    "@context": [
        "https://www.w3.org/ns/credentials/v2",
        "https://www.w3.org/ns/credentials/examples/v2",
    ],
    "id": "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33",
    "type": ["VerifiableCredential", "AlumniCredential"],
    "name": "Alumni Credential",
    "description": "A minimum viable example of an Alumni Credential.",
    "issuer": "https://vc.example/issuers/5678",
    "validFrom": "2023-01-01T00:00:00Z",
    "credentialSubject": {"id": "did:example:abcdefgh", "alumniOf": "The School of Examples"},
}
W3C_METHOD = f"did:key:{W3C_PUBLIC}#{W3C_PUBLIC}"
W3C_PROOF_VALUE = (
    "z2HnFSSPPBzR36zdDgK8PbEHeXbR56YF24jwMpt3R1eHXQzJDMWS93FCzpvJpwTWd3GAVFuUfjoJdcnTMuVor51aX"
)

# FEP-8b32's own test vector (current text: the proof carries @context).
FEP_DOCUMENT = {
    "@context": [
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/data-integrity/v2",
    ],
    "id": "https://server.example/activities/1",
    "type": "Create",
    "actor": "https://server.example/users/alice",
    "object": {
        "id": "https://server.example/objects/1",
        "type": "Note",
        "attributedTo": "https://server.example/users/alice",
        "content": "Hello world",
        "location": {"type": "Place", "longitude": -71.184902, "latitude": 25.273962},
    },
}
FEP_METHOD = "https://server.example/users/alice#ed25519-key"
FEP_PROOF_VALUE = (
    "z42ffGu6AUKPCFcFPiabmUvnGLPJzC7e4DGWC52NUasSSH37UMa9c58tdgVszUcZfytxa4fQ5TYHaJENCxUDe9SdL"
)

# An earlier FEP-8b32 revision: no @context in the proof (as Mitra still sends).
FEP_LEGACY_SIGNED = {
    "@context": [
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/data-integrity/v1",
    ],
    "type": "Create",
    "actor": "https://server.example/users/alice",
    "object": {"type": "Note", "content": "Hello world"},
    "proof": {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "verificationMethod": FEP_METHOD,
        "proofPurpose": "assertionMethod",
        "proofValue": (
            "z3sXaxjKs4M3BRicwWA9peyNPJvJqxtGsDmpt1jjoHCjgeUf71TRFz56osPSfDErszyLp5Ks1EhYSgpDaN"
            "M977Rg2"
        ),
        "created": "2023-02-24T23:36:38Z",
    },
}

# A Follow signed by mastodon.cloud in 2018 (RsaSignature2017) and its actor's
# key, as kept by the mei23/ldsig project's tests: a real Mastodon signature.
MASTODON_FOLLOW = {
    "@context": [
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/v1",
        {
            "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
            "sensitive": "as:sensitive",
            "movedTo": {"@id": "as:movedTo", "@type": "@id"},
            "Hashtag": "as:Hashtag",
            "ostatus": "http://ostatus.org#",
            "atomUri": "ostatus:atomUri",
            "inReplyToAtomUri": "ostatus:inReplyToAtomUri",
            "conversation": "ostatus:conversation",
            "toot": "http://joinmastodon.org/ns#",
            "Emoji": "toot:Emoji",
            "focalPoint": {"@container": "@list", "@id": "toot:focalPoint"},
            "featured": {"@id": "toot:featured", "@type": "@id"},
            "schema": "http://schema.org#",
            "PropertyValue": "schema:PropertyValue",
            "value": "schema:value",
        },
    ],
    "id": "https://mastodon.cloud/6b269e34-4a33-43a4-a764-eda6c5a21863",
    "type": "Follow",
    "actor": "https://mastodon.cloud/users/transmute",
    "object": "https://transmute.ngrok.io/u/alice",
    "signature": {
        "type": "RsaSignature2017",
        "creator": "https://mastodon.cloud/users/transmute#main-key",
        "created": "2018-12-22T18:23:12Z",
        "signatureValue": (
            "dO9UeEBI5Lab4hlAkv8jpSCBPP49/LGx+7wonkhYOeC1hzRLBSMCtUPrNEseugtsu4m7cv7ZOSKiyN/d+b9e"
            "EyK/iFKkAi2oEunQOoLsX4hsm451VakuH4eFMOJh2G77+yUwuebb74zKfKFeE/KR+yh7pxkr2LuFzNYTfSTp"
            "QaMmVE1LUy5XOMIsCWIE3LL4qZAdP5cLqCdPRgqCHsSafqL0EOHunNTzE/bTrM38ptuMEL2zGQTFif3NCtNz"
            "W1SvKvZSel03KQ6uNUZbdDD8i9IYbzJrmjzYz5owY/ospVB6f3KoS0TRgYFU25EIp/a8PWHz7uNSzJkBUnT5"
            "14gRvA=="
        ),
    },
}
MASTODON_KEY_PEM = """\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA0AC6WSd/sVBc95NOwHA5
uIgllOKIpHw2LT5zKKSGR2ykOKh3I6oMIqaPyqUSiiLpGGfYMmN6s/XcoreHyb3N
x4He6QW9lb+BKQUPOewiHVA9qKwqHJTlTkXN2j3/Xy3rUducmWUGkk1sH01AxvJ5
iTl7c6kInNSQIba/ov5IYg9shHI62eC4E6InsYSMqSQk7dz33pkb9Fr2Xz6Mw74W
lUHa/e8ad7GR6oLJ0d8acdc1lK4fsN8wx5AmjVUZhyK3JB/sgJ1apk3Uy3EtYm2M
G4ui/E2Yj3M/SV7bHEI0RE0euTa3ihvt28sT8jmjIYOd56X3hl8Y3bxw+o1hVv3T
XwIDAQAB
-----END PUBLIC KEY-----
"""

# Signed by Fedify 2.3.6: FEDIFY_PROOF_DOC with signObject (Ed25519, as the peer
# sends it: Fedify writes the Public collection as the full IRI on the wire),
# FEDIFY_LD_DOC with signJsonLd (RSA-4096).
FEDIFY_ED25519_PEM = """\
-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAUW4RCq/LI3QkdsdPSp0xxPH1La1yYCDlzgdK/CQ4EIg=
-----END PUBLIC KEY-----
"""

FEDIFY_PROOF_DOC = {
    "@context": [
        "https://w3id.org/identity/v1",
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/data-integrity/v1",
        "https://gotosocial.org/ns",
        {
            "toot": "http://joinmastodon.org/ns#",
            "misskey": "https://misskey-hub.net/ns#",
            "fedibird": "http://fedibird.com/ns#",
            "sensitive": "as:sensitive",
            "votersCount": {
                "@id": "toot:votersCount",
                "@type": "http://www.w3.org/2001/XMLSchema#nonNegativeInteger",
            },
            "Emoji": "toot:Emoji",
            "Hashtag": "as:Hashtag",
            "ChatMessage": "http://litepub.social/ns#ChatMessage",
            "quote": {
                "@id": "https://w3id.org/fep/044f#quote",
                "@type": "@id",
            },
            "quoteUrl": "as:quoteUrl",
            "_misskey_quote": "misskey:_misskey_quote",
            "quoteUri": "fedibird:quoteUri",
            "QuoteAuthorization": "https://w3id.org/fep/044f#QuoteAuthorization",
            "QuoteRequest": "https://w3id.org/fep/044f#QuoteRequest",
            "quoteAuthorization": {
                "@id": "https://w3id.org/fep/044f#quoteAuthorization",
                "@type": "@id",
            },
            "emojiReactions": {
                "@id": "fedibird:emojiReactions",
                "@type": "@id",
            },
        },
    ],
    "id": "https://fedify.test/users/alice/statuses/1/activity",
    "type": "Create",
    "proof": {
        "type": "DataIntegrityProof",
        "created": "2025-05-01T12:00:00Z",
        "cryptosuite": "eddsa-jcs-2022",
        "proofPurpose": "assertionMethod",
        "proofValue": (
            "z5pi4MqNwr7QNF5rYWPDvgaFfHjvcULdY9q6bEtBpvorUPCVgajXXoyYnRXRChoS8LPCqgffTWGqMy7UmPXp"
            "NdPrB"
        ),
        "verificationMethod": "https://fedify.test/users/alice#multikey-2",
        "@context": [
            "https://w3id.org/identity/v1",
            "https://www.w3.org/ns/activitystreams",
            "https://w3id.org/security/data-integrity/v1",
            "https://gotosocial.org/ns",
            {
                "toot": "http://joinmastodon.org/ns#",
                "misskey": "https://misskey-hub.net/ns#",
                "fedibird": "http://fedibird.com/ns#",
                "sensitive": "as:sensitive",
                "votersCount": {
                    "@id": "toot:votersCount",
                    "@type": "http://www.w3.org/2001/XMLSchema#nonNegativeInteger",
                },
                "Emoji": "toot:Emoji",
                "Hashtag": "as:Hashtag",
                "ChatMessage": "http://litepub.social/ns#ChatMessage",
                "quote": {
                    "@id": "https://w3id.org/fep/044f#quote",
                    "@type": "@id",
                },
                "quoteUrl": "as:quoteUrl",
                "_misskey_quote": "misskey:_misskey_quote",
                "quoteUri": "fedibird:quoteUri",
                "QuoteAuthorization": "https://w3id.org/fep/044f#QuoteAuthorization",
                "QuoteRequest": "https://w3id.org/fep/044f#QuoteRequest",
                "quoteAuthorization": {
                    "@id": "https://w3id.org/fep/044f#quoteAuthorization",
                    "@type": "@id",
                },
                "emojiReactions": {
                    "@id": "fedibird:emojiReactions",
                    "@type": "@id",
                },
            },
        ],
    },
    "actor": "https://fedify.test/users/alice",
    "object": {
        "id": "https://fedify.test/users/alice/statuses/1",
        "type": "Note",
        "attributedTo": "https://fedify.test/users/alice",
        "content": "Hello, <b>world</b> ✨",
        "to": "https://www.w3.org/ns/activitystreams#Public",
    },
    "to": "https://www.w3.org/ns/activitystreams#Public",
}

FEDIFY_LD_RSA_PEM = """\
-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAnGgfRrzzT9fPWx7yTzar
jyj9SAyIyzWHwZNuPx6f6Mi35ozNYCPlOlR18I+BevoGbqzlTsIfhobMsBn8aNd1
xGfRLhGMHCO1x3SiYVPM2B+ZSikTiIabets2dnT6oFpFd7Vsoo6VfT+ekGIeqwrB
l/p+xWEcYw9ar0fL2xzY41FcxGJvbzxqGFQ+xqviNweXpneii/CkIXQ5M5bwCPJp
Y4iGV55AyPTlkQpopJtMPp90CjjRlPBUrQGF9p1SWABndHbYCU72b1obBiKclJQf
qHdI8Ew9aqxCdqRJ8XDuMFsk4MPOzbt41D465rweBrJsrfWCvnUrudq4gT+D1DOU
/Ot1/Y+tvhGUq/W7vKzyFXIrrq7NIIQrDi21x6jbEkFUhyGh94pvnLiIb2gLvtu1
ih1cSVTLzrVLEf2Ez6RS+4uw8kfVdLUIr1a6yUlTrdiJE/xi6UzFB6J179qK3077
6UzirB5lCqvLaR7M0mZZ0jtWR5Qlp9PABGNR3jPy9/FJP+DFIfm7bWgmYFCcz66C
zqv1P91ACR5IEyLGkqKrwWTvc3/piqADARqy0aGe7CZlZhRfMm0pyIxPPzA0PWi7
cAriv9QcOs4k9u/SZId0TWxjMa6szy1oDO14rZe0z5ywWtib/hbQNUoMGo7eLjqJ
Sedzhlj0YIzFW25wKpgE7L0CAwEAAQ==
-----END PUBLIC KEY-----
"""

FEDIFY_LD_DOC = {
    "@context": [
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/v1",
    ],
    "id": "https://fedify.test/users/alice#follows/1",
    "type": "Follow",
    "actor": "https://fedify.test/users/alice",
    "object": "https://xnode.test/users/bob",
    "content": "Café ✨ <b>x</b>",
    "signature": {
        "@context": "https://w3id.org/identity/v1",
        "creator": "https://fedify.test/users/alice#main-key",
        "created": "2026-11-25T03:44:41.096Z",
        "type": "RsaSignature2017",
        "signatureValue": (
            "H4trkIKJfq83CyPDi16LUkQ5KhSSHnLrytYSfN2+hapsE8XAAaBSCw8zJ8MqnB4dMaTtfhUyfje1bljCaYXZ"
            "k2O4ueCqHhldyALRVWlpsA4ZZcnTrd2sgWHcdqEo/GMyFr2LWd5m0shCIqg89VlHUhXxDWPY2sXDaT8QVZpP"
            "A/fuYfAJfaPvW6Xf0/rfN58ezGswsHma+F1Y3r/tqOPyD2sMBB+u1jDskNwj3gBL5kw/+7wZKp13c2eaWqXs"
            "99w1euE+aDGUpBdcgq3qX5yX3TzBZLDUXvL5onAk4DhW6c6Zl2KxAkYaRqJ2vrhxltIdOQCRsuO1sDufMgJY"
            "1tjdvOWFODIP4uNl7JwP0he5JZomxnUIEfteo2KZquJAsvyHoaV1MoiRx57b7QZe0mMWQDL5vL9kmJpWdFES"
            "uyvq3SLvJY9+mDc7yfVsnbxrjbJ9J6w2laczg9P6Ty/m4wDII0YEzp5vewZwYr4hNZX7esooV0RgfBTYN6Vm"
            "S3E8hCkKFePOYKojD5UuATeqI//kMorKOraJMS1aX5qJIC2i+HcuydhFdf9YMsvQ2UkIinn6ZKXBtc093rQV"
            "S7gb3k5U9au/pHknCfl5Ir5Y3el1t+hgjlP0QBhJFjNd8Wz6YPlP1oKGMiF7s8s1vnafDjg9xgV+Hv6lxpJQ"
            "4SmwPjXIqqc="
        ),
    },
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def no_crash_path(caplog):
    """Hostile input must be handled by a check, not by the last-resort catch-all."""
    yield
    crashes = [r for r in caplog.get_records("call") if "crashed" in r.getMessage()]
    assert not crashes, crashes


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    """An Ed25519 actor key for the module."""
    return generate_ed25519_key()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    """An RSA actor key for the module (keygen is the slow part)."""
    return generate_rsa_key()


@pytest.fixture(scope="module")
def loader():
    """The bundled offline JSON-LD loader (federation.jsonld), or a stand-in.

    The stand-in serves pyld's own bundled ActivityStreams and security/v1
    contexts plus the identity/v1 terms RsaSignature2017 options use.
    """
    try:
        from federation.jsonld import document_loader
    except ImportError:
        frozen = pytest.importorskip("pyld.documentloader.frozen")
        identity = {
            "@context": {
                "id": "@id",
                "type": "@type",
                "dc": "http://purl.org/dc/terms/",
                "sec": "https://w3id.org/security#",
                "xsd": "http://www.w3.org/2001/XMLSchema#",
                "created": {"@id": "dc:created", "@type": "xsd:dateTime"},
                "creator": {"@id": "dc:creator", "@type": "@id"},
                "nonce": "sec:nonce",
            }
        }
        documents = dict(frozen.BUNDLED_CONTEXTS)
        documents["https://w3id.org/identity/v1"] = identity
        return frozen.FrozenDocumentLoader(documents)
    return document_loader


def note(actor: str = "https://xnode.test/users/alice") -> dict[str, Any]:
    """A Create(Note) as xnode would send it."""
    return {
        "@context": [
            "https://www.w3.org/ns/activitystreams",
            "https://w3id.org/security/data-integrity/v1",
        ],
        "id": f"{actor}/statuses/1/activity",
        "type": "Create",
        "actor": actor,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "object": {
            "id": f"{actor}/statuses/1",
            "type": "Note",
            "attributedTo": actor,
            "content": '<p>Grüße 👋 &amp; "quotes"</p>',
            "published": "2025-05-01T12:00:00Z",
        },
    }


# --------------------------------------------------------------------------- eddsa-jcs-2022


def test_w3c_vc_di_eddsa_vector_is_reproduced_exactly():
    secret = ed25519_private_key_from_multibase(W3C_SECRET)
    proof = create_proof(W3C_CREDENTIAL, secret, W3C_METHOD, created="2023-02-24T23:36:38Z")
    assert proof["proofValue"] == W3C_PROOF_VALUE
    assert proof["@context"] == W3C_CREDENTIAL["@context"]
    signed = {**W3C_CREDENTIAL, "proof": proof}
    assert verify_proof(signed, PublicKey.from_multibase(W3C_PUBLIC)).ok


def test_fep_8b32_vector_is_reproduced_exactly():
    secret = ed25519_private_key_from_multibase(W3C_SECRET)
    signed = sign_document(FEP_DOCUMENT, secret, FEP_METHOD, created="2023-02-24T23:36:38Z")
    assert signed["proof"] == {
        "@context": FEP_DOCUMENT["@context"],
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "verificationMethod": FEP_METHOD,
        "proofPurpose": "assertionMethod",
        "created": "2023-02-24T23:36:38Z",
        "proofValue": FEP_PROOF_VALUE,
    }
    assert verify_proof(signed, PublicKey.from_multibase(W3C_PUBLIC)) == ProofVerdict(
        True, ProofReason.OK, FEP_METHOD
    )


def test_legacy_fep_8b32_proof_without_context_verifies():
    key = PublicKey.from_multibase(W3C_PUBLIC)
    assert verify_proof(FEP_LEGACY_SIGNED, key).ok
    tampered = copy.deepcopy(FEP_LEGACY_SIGNED)
    tampered["object"]["content"] = "Hello world!"
    assert verify_proof(tampered, key).reason is ProofReason.BAD_SIGNATURE


def test_fedify_proof_verifies():
    key = PublicKey.from_pem(FEDIFY_ED25519_PEM)
    assert (
        proof_verification_method(FEDIFY_PROOF_DOC) == "https://fedify.test/users/alice#multikey-2"
    )
    assert verify_proof(FEDIFY_PROOF_DOC, key).ok
    # Fedify hashes with the document's @context even when a proof omits it.
    stripped = copy.deepcopy(FEDIFY_PROOF_DOC)
    del stripped["proof"]["@context"]
    assert verify_proof(stripped, key).ok


def test_fedify_proof_fails_once_the_note_is_edited():
    tampered = copy.deepcopy(FEDIFY_PROOF_DOC)
    tampered["object"]["content"] = "Hello, world"
    verdict = verify_proof(tampered, PublicKey.from_pem(FEDIFY_ED25519_PEM))
    assert verdict.reason is ProofReason.BAD_SIGNATURE


@pytest.mark.parametrize("embed_context", [True, False])
def test_round_trip(embed_context, ed_key):
    method = "https://xnode.test/users/alice#ed25519-key"
    signed = sign_document(note(), ed_key, method, embed_context=embed_context)
    assert ("@context" in signed["proof"]) is embed_context
    assert signed["proof"]["proofValue"].startswith("z")
    assert signed["proof"]["created"].endswith("Z")
    assert verify_proof(signed, public_key_of(ed_key)) == ProofVerdict(True, ProofReason.OK, method)
    # Key order and whitespace on the wire do not matter: JCS canonicalises.
    reparsed = json.loads(json.dumps(signed, indent=3, sort_keys=True))
    assert verify_proof(reparsed, public_key_of(ed_key)).ok


def test_signing_replaces_an_existing_proof(ed_key):
    first = sign_document(note(), ed_key, "https://xnode.test/k1")
    second = sign_document(first, ed_key, "https://xnode.test/k2")
    assert second["proof"]["verificationMethod"] == "https://xnode.test/k2"
    assert verify_proof(second, public_key_of(ed_key)).ok


TAMPERS = {
    "content": lambda d: d["object"].__setitem__("content", "<p>changed</p>"),
    "addressing": lambda d: d.__setitem__("to", ["https://evil.test/users/eve"]),
    "added-field": lambda d: d.__setitem__("cc", []),
    "created": lambda d: d["proof"].__setitem__("created", "2030-01-01T00:00:00Z"),
    "method": lambda d: d["proof"].__setitem__("verificationMethod", "https://evil.test/#k"),
    "context": lambda d: (
        d.__setitem__("@context", "https://www.w3.org/ns/activitystreams"),
        d["proof"].pop("@context"),
    ),
}


@pytest.mark.parametrize("case", list(TAMPERS))
def test_tampering_is_detected(case, ed_key):
    signed = sign_document(note(), ed_key, "https://xnode.test/users/alice#ed25519-key")
    TAMPERS[case](signed)
    assert verify_proof(signed, public_key_of(ed_key)).reason is ProofReason.BAD_SIGNATURE


def test_proof_context_must_prefix_the_documents(ed_key):
    signed = sign_document(note(), ed_key, "https://xnode.test/users/alice#ed25519-key")
    signed["@context"] = ["https://www.w3.org/ns/activitystreams"]
    assert verify_proof(signed, public_key_of(ed_key)).reason is ProofReason.CONTEXT_MISMATCH


def test_another_key_fails(ed_key):
    signed = sign_document(note(), ed_key, "https://xnode.test/users/alice#ed25519-key")
    verdict = verify_proof(signed, public_key_of(generate_ed25519_key()))
    assert verdict.reason is ProofReason.BAD_SIGNATURE


def test_wrong_key_type_and_missing_key(ed_key, rsa_key):
    signed = sign_document(note(), ed_key, "https://xnode.test/users/alice#ed25519-key")
    assert verify_proof(signed, public_key_of(rsa_key)).reason is ProofReason.KEY_MISMATCH
    assert verify_proof(signed, None).reason is ProofReason.KEY_UNAVAILABLE
    with pytest.raises(TypeError):
        create_proof(note(), rsa_key, "https://xnode.test/#main-key")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"cryptosuite": "eddsa-rdfc-2022"}, ProofReason.UNSUPPORTED),
        ({"type": "Ed25519Signature2020"}, ProofReason.UNSUPPORTED),
        ({"proofPurpose": "authentication"}, ProofReason.WRONG_PURPOSE),
        ({"verificationMethod": None}, ProofReason.MALFORMED),
        ({"proofValue": "uAAAA"}, ProofReason.MALFORMED),
        ({"proofValue": "z0OIl"}, ProofReason.MALFORMED),
        ({"proofValue": "z2222"}, ProofReason.MALFORMED),
        ({"proofValue": 12}, ProofReason.MALFORMED),
        ({"created": "yesterday"}, ProofReason.MALFORMED),
    ],
)
def test_malformed_proofs(change, reason, ed_key):
    signed = sign_document(note(), ed_key, "https://xnode.test/users/alice#ed25519-key")
    signed["proof"].update(change)
    assert verify_proof(signed, public_key_of(ed_key)).reason is reason


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"proof": None},
        {"proof": 5},
        {"proof": []},
        {"proof": ["x", 1]},
        {"proof": {"type": "DataIntegrityProof"}},
        [],
        "a string",
        None,
    ],
)
def test_garbage_documents_never_raise(document, ed_key):
    verdict = verify_proof(document, public_key_of(ed_key))
    assert not verdict.ok
    proof_verification_method(document)


def test_numbers_jcs_cannot_sign_are_rejected(ed_key):
    signed = sign_document(note(), ed_key, "https://xnode.test/users/alice#ed25519-key")
    signed["object"]["replies"] = 2**60  # beyond I-JSON's safe integers
    assert verify_proof(signed, public_key_of(ed_key)).reason is ProofReason.NOT_CANONICALISABLE
    with pytest.raises(ValueError):
        create_proof(signed, ed_key, "https://xnode.test/#k")


def test_proof_sets_use_the_eddsa_jcs_member(ed_key):
    signed = sign_document(note(), ed_key, "https://xnode.test/users/alice#ed25519-key")
    signed["proof"] = [{"type": "DataIntegrityProof", "cryptosuite": "other"}, signed["proof"]]
    assert verify_proof(signed, public_key_of(ed_key)).ok


@pytest.mark.parametrize(
    "name", ["notes/mitra-create-note-fep8b32-proof.json", "social/mitra-accept-fep8b32-proof.json"]
)
@needs_corpus
def test_mitra_corpus_proofs_parse(name, ed_key):
    document = json.loads((CORPUS / name).read_text())
    method = proof_verification_method(document)
    assert method is not None and method.endswith("#ed25519-key")
    # Mitra's key is not in the corpus: a foreign key must be a clean failure.
    verdict = verify_proof(document, public_key_of(ed_key))
    assert verdict == ProofVerdict(False, ProofReason.BAD_SIGNATURE, method, verdict.detail)


# --------------------------------------------------------------------------- RsaSignature2017


def test_real_mastodon_ld_signature_verifies(loader):
    key = PublicKey.from_pem(MASTODON_KEY_PEM)
    assert signature_creator(MASTODON_FOLLOW) == "https://mastodon.cloud/users/transmute#main-key"
    verdict = verify_signature(MASTODON_FOLLOW, key, document_loader=loader)
    assert verdict == LdVerdict(
        True, LdReason.OK, "https://mastodon.cloud/users/transmute#main-key"
    )


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d.__setitem__("object", "https://transmute.ngrok.io/u/bob"),
        lambda d: d["signature"].__setitem__("created", "2018-12-22T18:23:13Z"),
        lambda d: d["signature"].__setitem__("creator", "https://evil.test/#main-key"),
    ],
    ids=["object", "created", "creator"],
)
def test_tampered_mastodon_ld_signature_fails(tamper, loader):
    document = copy.deepcopy(MASTODON_FOLLOW)
    tamper(document)
    verdict = verify_signature(
        document, PublicKey.from_pem(MASTODON_KEY_PEM), document_loader=loader
    )
    assert verdict.reason is LdReason.BAD_SIGNATURE


def test_semantically_equal_reshaping_keeps_a_mastodon_signature_valid(loader):
    # URDNA2015 signs the RDF graph, not the JSON text: a compact IRI for a
    # term, reordered keys or a one-element array do not change it.
    document = copy.deepcopy(MASTODON_FOLLOW)
    document["type"] = ["Follow"]
    document = dict(reversed(list(document.items())))
    verdict = verify_signature(
        document, PublicKey.from_pem(MASTODON_KEY_PEM), document_loader=loader
    )
    assert verdict.ok


def test_fedify_ld_signature_verifies(loader):
    key = PublicKey.from_pem(FEDIFY_LD_RSA_PEM)
    assert verify_signature(FEDIFY_LD_DOC, key, document_loader=loader).ok
    tampered = copy.deepcopy(FEDIFY_LD_DOC)
    tampered["content"] = "Cafe"
    assert verify_signature(tampered, key, document_loader=loader).reason is LdReason.BAD_SIGNATURE


def test_ld_round_trip(rsa_key, loader):
    document = {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": "https://xnode.test/users/alice#delete",
        "type": "Delete",
        "actor": "https://xnode.test/users/alice",
        "object": "https://xnode.test/users/alice",
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
    }
    signed = ld_sign_document(
        document,
        rsa_key,
        "https://xnode.test/users/alice#main-key",
        created="2025-05-01T12:00:00Z",
        document_loader=loader,
    )
    assert signed["signature"]["type"] == "RsaSignature2017"
    assert signed["signature"]["created"] == "2025-05-01T12:00:00Z"
    assert verify_signature(signed, public_key_of(rsa_key), document_loader=loader).ok
    signed["to"] = []
    verdict = verify_signature(signed, public_key_of(rsa_key), document_loader=loader)
    assert verdict.reason is LdReason.BAD_SIGNATURE


def test_ld_signature_options_cover_a_nonce(rsa_key, loader):
    document = copy.deepcopy(MASTODON_FOLLOW)
    signature = create_signature(document, rsa_key, "https://xnode.test/#k", document_loader=loader)
    # Hubzilla/Zap put a nonce in the options; it is signed like creator/created.
    signature["nonce"] = "abc"
    document["signature"] = signature
    verdict = verify_signature(document, public_key_of(rsa_key), document_loader=loader)
    assert verdict.reason is LdReason.BAD_SIGNATURE


def test_ld_wrong_key_type_and_missing_key(ed_key, loader):
    assert (
        verify_signature(MASTODON_FOLLOW, public_key_of(ed_key), document_loader=loader).reason
        is LdReason.KEY_MISMATCH
    )
    assert verify_signature(MASTODON_FOLLOW, None, document_loader=loader).reason is (
        LdReason.KEY_UNAVAILABLE
    )
    with pytest.raises(TypeError):
        create_signature(MASTODON_FOLLOW, ed_key, "https://xnode.test/#k", document_loader=loader)


def test_unknown_context_is_not_fetched(rsa_key, loader):
    document = copy.deepcopy(MASTODON_FOLLOW)
    document["@context"] = ["https://unknown.example/context.jsonld"]
    verdict = verify_signature(document, public_key_of(rsa_key), document_loader=loader)
    assert verdict.reason is LdReason.CONTEXT_UNAVAILABLE
    with pytest.raises(ValueError):
        create_signature(document, rsa_key, "https://xnode.test/#k", document_loader=loader)


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"signature": "x"},
        {"signature": {"type": "RsaSignature2018"}},
        {"signature": {"type": "RsaSignature2017", "creator": "x"}},
        {"signature": {"type": "RsaSignature2017", "creator": "x", "signatureValue": "!!"}},
        {
            "@context": {"@context": {}},
            "signature": {"type": "RsaSignature2017", "creator": "x", "signatureValue": "AAAA"},
        },
        [],
        None,
    ],
)
def test_garbage_ld_documents_never_raise(document, rsa_key, loader):
    verdict = verify_signature(document, public_key_of(rsa_key), document_loader=loader)
    assert not verdict.ok
    assert signature_creator(document) in (None, "x")


@needs_corpus
def test_corpus_mastodon_note_edited_after_signing_fails(rsa_key, loader):
    # PeerTube keeps this one because its body was altered after signing; its
    # creator's key is not in the corpus, so any key must fail too.
    document = json.loads((CORPUS / "notes" / "mastodon-create-note-ldsig-2018.json").read_text())
    assert signature_creator(document) is not None
    verdict = verify_signature(document, public_key_of(rsa_key), document_loader=loader)
    assert not verdict.ok
    assert verdict.reason in {LdReason.BAD_SIGNATURE, LdReason.CONTEXT_UNAVAILABLE}

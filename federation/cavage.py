"""draft-cavage-http-signatures-12: the ``Signature`` header Mastodon signs with.

Parsing the parameter list, the signing string, verification (with the
query-less ``(request-target)`` retry) and signing with Mastodon's header lists.
Called through :mod:`federation.signatures`, which documents the policy.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import email.utils
import re
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric import ed25519

from federation.digests import _check_legacy_digest, legacy_digest
from federation.keys import PrivateKey, PublicKey
from federation.signature_algorithms import _algorithms_for, _sign_raw, _verify_raw
from federation.signature_types import (
    _MAX_HEADER_CHARS,
    Reason,
    Scheme,
    Verdict,
    _add_signed_headers,
    _check_time,
    _covered_fields,
    _Failure,
    _Request,
)


def _b64decode(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Failure(Reason.MALFORMED, "signature is not base64") from None


_DIGITS = re.compile(r"[0-9]{1,12}")  # ASCII only: str.isdigit() accepts "²"
_CAVAGE_PARAM = re.compile(
    r'\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*(?:,|$)'
)


def _parse_cavage(value: str) -> dict[str, str]:
    if len(value) > _MAX_HEADER_CHARS:
        raise _Failure(Reason.MALFORMED, "Signature header too long")
    value = value.strip()
    if value[:10].lower() == "signature ":  # the Authorization: Signature … form
        value = value[10:]
    params: dict[str, str] = {}
    pos = 0
    while pos < len(value):
        match = _CAVAGE_PARAM.match(value, pos)
        if match is None or match.end() == pos:
            raise _Failure(Reason.MALFORMED, "Signature header is not a parameter list")
        name = match.group(1).lower()
        if name in params:
            raise _Failure(Reason.MALFORMED, f"Signature parameter {name!r} repeated")
        quoted = match.group(2)
        params[name] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group(3)
        pos = match.end()
    return params


def _cavage_header(req: _Request) -> str | None:
    value = req.field("signature")
    if value is None:
        auth = req.field("authorization")
        if auth and auth[:10].lower() == "signature ":
            return auth
    return value


def _cavage_string(req: _Request, names: Sequence[str], params: dict[str, str], target: str) -> str:
    lines = []
    for name in names:
        if name == "(request-target)":
            value = f"{req.method.lower()} {target}"
        elif name in ("(created)", "(expires)"):
            value = params.get(name[1:-1], "")
            if not _DIGITS.fullmatch(value):
                raise _Failure(Reason.MALFORMED, f"{name} covered but the parameter is missing")
        else:
            field_value = req.field(name)
            if field_value is None and name == "host":
                field_value = req.authority  # Fedify does the same when Host is absent
            if field_value is None:
                raise _Failure(Reason.MISSING_HEADER, f"covered header {name!r} is absent")
            value = field_value
        lines.append(f"{name}: {value}")
    return "\n".join(lines)


def _verify_cavage(
    req: _Request,
    key: PublicKey | None,
    now: float,
    window_s: float,
    require_body_digest: bool,
    allow_queryless_target: bool,
) -> Verdict:
    key_id: str | None = None
    algorithm: str | None = None
    try:
        params = _parse_cavage(_cavage_header(req) or "")
        key_id = params.get("keyid") or None
        algorithm = params.get("algorithm")
        if not key_id or "signature" not in params:
            raise _Failure(Reason.MALFORMED, "keyId and signature are required")
        names = params.get("headers", "date").lower().split()
        for required in ("(request-target)", "host"):
            if required not in names:
                raise _Failure(Reason.MISSING_COMPONENT, f"{required} must be signed")
        if "date" not in names and "(created)" not in names:
            raise _Failure(Reason.MISSING_COMPONENT, "date or (created) must be signed")
        body = req.body or b""
        if body and require_body_digest and "digest" not in names:
            raise _Failure(Reason.MISSING_COMPONENT, "digest must be signed when there is a body")
        if "date" in names:
            date_value = req.field("date")
            if date_value is None:
                raise _Failure(Reason.MISSING_HEADER, "covered header 'date' is absent")
            _check_time(_parse_http_date(date_value), now, window_s, "Date")
        if _DIGITS.fullmatch(params.get("created", "")):
            _check_time(float(params["created"]), now, window_s, "created")
        if _DIGITS.fullmatch(params.get("expires", "")) and float(params["expires"]) < now:
            raise _Failure(Reason.EXPIRED, "signature expired")
        digest_value = req.field("digest")
        if "digest" in names and digest_value is None:
            raise _Failure(Reason.DIGEST_MISSING, "digest is signed but the header is absent")
        if digest_value is not None:
            _check_legacy_digest(digest_value, body)
        if key is None:
            raise _Failure(Reason.KEY_UNAVAILABLE, "no public key for this keyId")
        candidates = _algorithms_for(algorithm, key, Scheme.CAVAGE)
        signature = _b64decode(params["signature"])
        targets = [req.path_and_query]
        if req.url.query and allow_queryless_target:
            targets.append(req.path)  # Fedify / old Mastodon sign the path only
        for target in targets:
            message = _cavage_string(req, names, params, target).encode("utf-8")
            for alg in candidates:
                if _verify_raw(key, alg, signature, message):
                    return Verdict(True, Reason.OK, key_id, Scheme.CAVAGE, alg.value)
        raise _Failure(Reason.BAD_SIGNATURE, "signature does not verify")
    except _Failure as failure:
        return Verdict(False, failure.reason, key_id, Scheme.CAVAGE, algorithm, failure.detail)


def _parse_http_date(value: str) -> float:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        raise _Failure(Reason.DATE_INVALID, "Date header is not an HTTP date") from None
    if parsed.tzinfo is None:  # "-0000" means UTC with unknown local zone
        return parsed.replace(tzinfo=datetime.UTC).timestamp()
    return parsed.timestamp()


def _sign_cavage(req: _Request, key_id: str, private_key: PrivateKey, now: float) -> dict[str, str]:
    added, has_body = _add_signed_headers(req, now, "Digest", legacy_digest)
    # Mastodon's exact lists: POST adds digest and content-type, GET may add accept.
    names = ["(request-target)", "host", "date", *_covered_fields(req, has_body, "digest")]
    message = _cavage_string(req, names, {}, req.path_and_query).encode("utf-8")
    algorithm = "ed25519" if isinstance(private_key, ed25519.Ed25519PrivateKey) else "rsa-sha256"
    signature = base64.b64encode(_sign_raw(private_key, message)).decode("ascii")
    added["Signature"] = (
        f'keyId="{_quote(key_id)}",algorithm="{algorithm}",'
        f'headers="{" ".join(names)}",signature="{signature}"'
    )
    return added


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')

"""Schemathesis hooks for Orderly's contract fuzzing (loaded through SCHEMATHESIS_HOOKS).

One extra check. `schemathesis.toml` lets `positive_data_acceptance` accept 400, 402, 412 and 422
because the contract gives those statuses to some *schema-valid* requests (an unissued cursor,
a stale ETag, ...). This check takes that allowance back for every other reason: a refusal of
schema-valid data passes only when its problem `code` and field errors are one of the
state-dependent refusals the contract documents, and the request really carries the input the
problem names.
"""

import json
import re

import schemathesis

# (problem code, field error code, where the fault is: "parameter:NAME" or a JSON-pointer prefix)
STATE_DEPENDENT = {
    400: [
        ("invalid_parameter", "invalid_cursor", "parameter:cursor"),
        # Only the provider can sign a provider event (docs/api.md#payments): any other signature is refused.
        ("invalid_signature", None, "header:Stripe-Signature"),
    ],
    # A payment method the provider does not know or declines (docs/api.md#payments): its state, not the schema's.
    402: [
        ("payment_declined", "invalid_payment_method", "/payment_method"),
        ("payment_declined", "card_declined", "/payment_method"),
    ],
    412: [("precondition_failed", None, "header:If-Match")],
    422: [
        ("idempotency_key_reused", None, "header:Idempotency-Key"),
        ("validation_failed", "unavailable_product", "/items/"),
        ("validation_failed", "incorrect", "/current_password"),
        # A delta that would take on_hand above the cap (1,000,000,000 units): valid or not
        # depending on the stock it meets.
        ("validation_failed", "out_of_range", "/delta"),
        # Depends on who calls: users changing their own password must send the current one,
        # an admin resetting someone else's need not (docs/api.md#users-and-tokens), so the schema cannot require it.
        ("validation_failed", "required", "/current_password"),
        # Not state, but a rule JSON Schema cannot state: `uniqueItems` compares whole lines, and
        # "no product twice" (docs/api.md#orders) is about one field of them.
        ("validation_failed", "duplicate", "/items/"),
        # A webhook endpoint's URL (docs/api.md#webhooks): which destinations are allowed is the deployment's
        # configuration (`https` only unless ORDERLY_WEBHOOK_ALLOW_HTTP; loopback, private,
        # link-local, multicast, unspecified and reserved addresses, and `localhost`, refused
        # unless ORDERLY_WEBHOOK_ALLOWED_NETWORKS names them), and the URL is read by the WHATWG
        # parser deliveries use, which `format: uri` (RFC 3986) does not state: a URI without a
        # host, or with credentials or a fragment, is refused. The 2048-byte bound is in bytes,
        # `maxLength` counts characters. Each at `/url`, on registration and on change.
        ("validation_failed", "forbidden_destination", "/url"),
        ("validation_failed", "invalid_value", "/url"),
        ("validation_failed", "invalid_format", "/url"),
        ("validation_failed", "too_long", "/url"),
    ],
}


def _has_header(case, name):
    return any(key.lower() == name.lower() for key in (case.headers or {}))


def _explained(case, problem, reason):
    code, error_code, where = reason
    if problem.get("code") != code:
        return False
    if where.startswith("header:"):
        return _has_header(case, where[len("header:"):])
    errors = problem.get("errors") or []
    if not errors:
        return False
    for error in errors:
        if error.get("code") != error_code:
            return False
        if where.startswith("parameter:"):
            name = where[len("parameter:"):]
            if error.get("parameter") != name or name not in (case.query or {}):
                return False
        elif not str(error.get("pointer", "")).startswith(where):
            return False
    return True


def _not_actually_valid(case, problem):
    """Whether every fault the problem names is a header whose value breaks its documented
    `pattern`: then the request was not schema-valid after all (Schemathesis's coverage phase
    seeds some optional headers with a placeholder such as `0` without checking the pattern),
    and refusing it is right."""
    errors = problem.get("errors") or []
    if problem.get("code") != "invalid_parameter" or not errors:
        return False
    documented = {parameter.name.lower(): parameter.definition for parameter in case.operation.headers}
    sent = {name.lower(): value for name, value in (case.headers or {}).items()}
    for error in errors:
        name = str(error.get("parameter", "")).lower()
        pattern = documented.get(name, {}).get("schema", {}).get("pattern")
        if name not in sent or pattern is None or re.search(pattern, str(sent[name])):
            return False
    return True


@schemathesis.check
def refusals_of_valid_data_have_a_documented_reason(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    reasons = STATE_DEPENDENT.get(response.status_code)
    if reasons is None:
        return None
    try:
        problem = json.loads(response.content)
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    if _not_actually_valid(case, problem):
        return None
    if not any(_explained(case, problem, reason) for reason in reasons):
        raise AssertionError(
            f"schema-valid request refused with {response.status_code} for a reason the contract does not "
            f"give to valid data: {response.content[:500]!r}"
        )
    return None

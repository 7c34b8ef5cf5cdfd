"""A property of the whole JSON API: no request, however malformed, answers 5xx.

Hypothesis draws an operation from the OpenAPI document (every path and method
the application publishes), path values, the operation's query arguments and a
JSON body (built from the field names the document knows, and any others, with
any values: huge numbers, lone surrogates, deep nesting), with a token or
without, and sends it.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PATH_PARAMETER = re.compile(r"\{([^}]+)\}")
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)


def _resolve(document: dict[str, Any], schema: Any) -> Any:
    while isinstance(schema, dict) and "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def body_schema(document: dict[str, Any], operation: dict[str, Any]) -> dict | None:
    """The operation's JSON request body schema, if it declares an object."""
    content = operation.get("requestBody", {}).get("content", {})
    schema = _resolve(document, content.get("application/json", {}).get("schema"))
    return schema if isinstance(schema, dict) and "properties" in schema else None


def operations(document: dict[str, Any]) -> list[tuple[str, str, list[str], Any]]:
    """(method, path template, query argument names, body schema) of every
    operation."""
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters" or not isinstance(operation, dict):
                continue
            query = [
                p["name"]
                for p in [*item.get("parameters", []), *operation.get("parameters", [])]
                if p.get("in") == "query"
            ]
            schema = body_schema(document, operation)
            found.append((method.upper(), path, query, schema))
    return sorted(found, key=lambda found: found[:2])


def field_names(node: Any, names: set[str]) -> set[str]:
    """Every property name the document's schemas name."""
    if isinstance(node, dict):
        names.update(node.get("properties", {}) if isinstance(node, dict) else ())
        for value in node.values():
            field_names(value, names)
    elif isinstance(node, list):
        for value in node:
            field_names(value, names)
    return names


def scalars() -> st.SearchStrategy:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),
        st.sampled_from([0, 1, -1, 2**31 - 1, 2**31, 2**63, 2**70]),
        st.floats(allow_nan=False, allow_infinity=False),
        ANY_TEXT,
        st.sampled_from(["", "2026-12-01", "https://a.example.org", "a@b.org"]),
    )


def typed_value(schema: Any) -> st.SearchStrategy:
    """A value of the declared type, at or past its bounds, or any value."""
    options = [scalars()]
    for branch in (
        [schema, *schema.get("anyOf", [])] if isinstance(schema, dict) else []
    ):
        kind = branch.get("type")
        if kind == "string":
            options.append(ANY_TEXT)
            if branch.get("format") == "date":
                options.append(st.dates().map(str))
            if "maxLength" in branch:
                options.append(st.just("x" * (branch["maxLength"] + 1)))
        elif kind in ("integer", "number"):
            options.append(st.sampled_from([1, 2**31, 2**63, 2**70, -(2**70), 1e308]))
        if "enum" in branch:
            options.append(st.sampled_from(branch["enum"]))
    return st.one_of(options)


def shaped_bodies(schema: dict) -> st.SearchStrategy:
    """Objects with the schema's fields, each of its type or hostile."""
    fields = {name: typed_value(rule) for name, rule in schema["properties"].items()}
    return st.fixed_dictionaries(
        {name: fields[name] for name in schema.get("required", [])},
        optional={
            name: value
            for name, value in fields.items()
            if name not in schema.get("required", [])
        },
    ).map(json.dumps)


def bodies(names: list[str]) -> st.SearchStrategy:
    keys = st.one_of(st.sampled_from(names), ANY_TEXT)
    values = st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)
        ),
        max_leaves=12,
    )
    return st.one_of(
        st.dictionaries(keys, values, max_size=8).map(json.dumps),
        values.map(json.dumps),
        st.integers(min_value=1, max_value=3000).map(
            lambda depth: '{"a": ' + "[" * depth + "]" * depth + "}"
        ),
        st.binary(max_size=64).map(lambda raw: raw.decode("latin-1")),
    )


def path_values() -> st.SearchStrategy:
    return st.one_of(
        st.sampled_from(["1", "0", "2147483648", "99999999999999999999", "-1"]),
        st.uuids().map(str),
        ANY_TEXT.filter(lambda text: text not in ("", ".", "..")),
    )


def test_no_request_to_the_api_answers_5xx(client, auth_headers):
    document = client.get("/api/openapi.json").get_json()
    every = operations(document)
    names = sorted(field_names(document, set()))
    assert len(every) > 60  # every part's operations are published

    @settings(
        max_examples=600,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=True,
    )
    @given(
        operation=st.sampled_from(every),
        value=path_values(),
        query=st.dictionaries(st.sampled_from(["page", "per_page", "x"]), ANY_TEXT),
        arguments=st.lists(ANY_TEXT, max_size=3),
        any_body=bodies(names),
        shaped=st.booleans(),
        data=st.data(),
        signed=st.booleans(),
    )
    def request_answers_below_500(
        operation, value, query, arguments, any_body, shaped, data, signed
    ):
        method, template, declared, schema = operation
        body = any_body
        if shaped and schema is not None:
            body = data.draw(shaped_bodies(schema))
        path = PATH_PARAMETER.sub(lambda _: quote(value, safe=""), template)
        args = dict(query)
        for name, argument in zip(declared, arguments, strict=False):
            args[name] = argument
        reply = client.open(
            path,
            method=method,
            query_string={
                k: v.encode("utf-8", "surrogatepass") for k, v in args.items()
            },
            data=body.encode("utf-8", "surrogatepass"),
            headers={
                **(auth_headers if signed else {}),
                "Content-Type": "application/json",
            },
        )
        assert reply.status_code < 500, (method, path, args, body[:300], reply.data)

    request_answers_below_500()

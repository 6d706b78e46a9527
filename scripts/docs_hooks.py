"""MkDocs hooks: the pages generated from the code, so the site cannot drift from it.

- ``reference/settings.md``: the ``KEYFOB_*`` table from the settings' own descriptions;
- ``reference/http.md``: every route of the OpenAPI document ``keyfob serve`` publishes;
- ``assets/plots/*.png``: the benchmark plots that ``bench/run`` writes to ``bench/plots``
  (pages link them as ``../bench/plots/…``, which works on GitHub; the site rewrites it).

Wired in ``mkdocs.yml`` (``hooks:``); ``scripts/docs`` serves or builds the site.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[1]
PLOTS = ROOT / "bench" / "plots"
EXAMPLE_ISSUER = "https://auth.example.com"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, "reference/settings.md", content=settings_page()))
    files.append(File.generated(config, "reference/http.md", content=http_page()))
    for plot in sorted(PLOTS.glob("*.png")):
        files.append(File.generated(config, f"assets/plots/{plot.name}", abs_src_path=str(plot)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    prefix = "../" * page.file.src_uri.count("/")
    return markdown.replace("](../bench/plots/", f"]({prefix}assets/plots/")


def settings_page() -> str:
    from keyfob.settings.markdown import settings_table

    return (
        "# Settings\n\n"
        "Every setting is a `KEYFOB_*` environment variable (or an entry of the settings\n"
        "file); `keyfob serve --help` lists the same, with the flag that overrides each.\n"
        "Durations take seconds or a unit: `900`, `15m`, `7d`. This table is generated\n"
        "from the descriptions the settings carry in the code.\n\n" + settings_table()
    )


def http_page() -> str:
    from keyfob.server.openapi import openapi_document
    from keyfob.settings import Settings

    document = openapi_document(Settings(issuer=EXAMPLE_ISSUER))
    return render_openapi(document)


def render_openapi(document: dict[str, Any]) -> str:
    """Markdown for every operation of an OpenAPI 3.1 document, then its schemas."""
    components = document.get("components", {})
    lines = [
        "# HTTP API",
        "",
        document["info"].get("description", ""),
        "",
        "Generated from the OpenAPI document that every server publishes at "
        "`GET /openapi.json`; the examples use the issuer `" + EXAMPLE_ISSUER + "`.",
        "",
    ]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            lines += _operation(method.upper(), path, operation, components)
    schemas = components.get("schemas", {})
    if schemas:
        lines += ["## Schemas", ""]
        for name, schema in schemas.items():
            lines += [f"### {name}", "", *_properties(schema, components), ""]
    return "\n".join(lines) + "\n"


def _operation(method: str, path: str, op: dict[str, Any], components: dict[str, Any]) -> list[str]:
    lines = [f"## `{method} {path}`", ""]
    if op.get("summary"):
        lines += [f"**{op['summary']}.**", ""]
    if op.get("description"):
        lines += [op["description"], ""]
    security = [name for option in op.get("security", []) for name in option]
    if security:
        lines += ["Credentials: " + ", ".join(f"`{name}`" for name in dict.fromkeys(security)), ""]
    body = op.get("requestBody")
    if body:
        for media_type, content in body.get("content", {}).items():
            schema = content.get("schema", {})
            name = _ref_name(schema)
            link = f", [{name}](#{name.lower()})" if name else ""
            lines += [f"Request body (`{media_type}`{link}):", ""]
            lines += [*_properties(schema, components), ""]
    lines += ["| status | answer |", "|---|---|"]
    for status, response in op.get("responses", {}).items():
        resolved = _resolve(response, components)
        described = resolved.get("description", "").replace("\n", " ").replace("|", "\\|")
        headers = ", ".join(f"`{h}`" for h in resolved.get("headers", {}))
        if headers:
            described += f" (headers: {headers})"
        lines.append(f"| {status} | {described} |")
    return [*lines, ""]


def _properties(schema: dict[str, Any], components: dict[str, Any]) -> list[str]:
    schema = _resolve(schema, components)
    properties = schema.get("properties", {})
    if not properties:
        return [f"`{json.dumps(schema, sort_keys=True)}`"]
    required = set(schema.get("required", []))
    lines = ["| field | type | required | meaning |", "|---|---|---|---|"]
    for name, prop in properties.items():
        prop_type = _type(prop)
        meaning = str(prop.get("description", "")).replace("|", "\\|")
        needed = "yes" if name in required else ""
        lines.append(f"| `{name}` | {prop_type} | {needed} | {meaning} |")
    return lines


def _type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = _ref_name(prop)
        return f"[{name}](#{name.lower()})"
    if "enum" in prop:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    kind = prop.get("type", "any")
    if isinstance(kind, list):
        kind = " \\| ".join(kind)
    if kind == "array" and "items" in prop:
        return f"array of {_type(prop['items'])}"
    return str(kind)


def _ref_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref.startswith("#/components/schemas/") else ""


def _resolve(node: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        _, _, section, name = node["$ref"].split("/", 3)
        node = components[section][name]
    return node

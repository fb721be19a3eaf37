"""Drop duplicate <script> tags from every page of the book.

Sphinx 7.x registers an inline script added with ``app.add_js_file(None, body=...)`` twice: once
under the name ``None`` when the extension adds it, and once under ``''`` when the HTML builder
collects registered assets before writing. sphinx-thebe (loaded by Jupyter Book) adds its settings
that way, so every page declared ``const THEBE_JS_URL`` twice and the browser logged
"Identifier 'THEBE_JS_URL' has already been declared". Sphinx fixed this upstream in its 8.x line
(pull request 13402), which Jupyter Book 1.x cannot use (it requires Sphinx 7). Until then this
extension keeps the first copy of each script on each page.
"""

from __future__ import annotations


def _key(script) -> tuple:
    filename = getattr(script, "filename", None) or ""
    attributes = getattr(script, "attributes", {}) or {}
    return (str(filename), tuple(sorted((str(k), str(v)) for k, v in attributes.items())))


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}

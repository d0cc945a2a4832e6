"""The admin console's files (shared/console): what is served, that it needs nothing from outside the app, and that
the page keeps to its Content-Security-Policy (no inline script or style, no other origin)."""

from __future__ import annotations

import re

import pytest

from shared import openapi
from shared.console import FILE_NAME, HEADERS, INDEX, STATIC, asset
from shared.errors import ConfigurationError, NotFound
from shared.settings import Settings

FILES = sorted(p.name for p in STATIC.iterdir())
IMPORT = re.compile(r"""^import [^;]+ from '\./([^']+)';$""", re.M)


def test_the_file_pattern_is_the_documented_one():
    assert f"^{FILE_NAME.pattern}$" == openapi.CONSOLE_FILE_PATTERN


def test_every_static_file_can_be_served_and_nothing_else():
    assert {"index.html", "app.js", "api.js", "console.css"} <= set(FILES)
    for name in FILES:
        assert FILE_NAME.fullmatch(name), f"{name} would never be served"
        assert asset(name, "api").body
    for name in ("", "../settings.py", "__init__.py", "app.JS", "app.js.map", "x" * 41 + ".js", "app.js\n"):
        if name:
            with pytest.raises(NotFound):
                asset(name, "api")


def test_the_page_names_its_files_under_the_route_prefix():
    page = asset(None, "api")
    assert page.content_type == "text/html" and asset(INDEX, "api").body == page.body
    text = page.body.decode()
    assert "%BASE%" not in text
    assert '<script type="module" src="/api/console/app.js"></script>' in text
    assert '<link rel="stylesheet" href="/api/console/console.css">' in text
    assert b'src="/v2/console/app.js"' in asset(None, "/v2/").body


def test_every_module_import_is_a_served_file():
    for name in FILES:
        if name.endswith(".js"):
            for imported in IMPORT.findall((STATIC / name).read_text()):
                assert imported in FILES, f"{name} imports {imported}, which is not in shared/console/static"


def test_no_inline_script_or_style_and_no_other_origin():
    for name in FILES:
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://(?!localhost)", text.replace("http://127.0.0.1", "")), name
        assert not re.search(r"[\w/]\.py\b", text), f"{name} names a source file (the fuzz test's leak check)"
        if name.endswith(".html"):
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), "inline script"
            assert "<style" not in text and not re.search(r"<[^>]*\s(style|on\w+)=", text), "inline style or handler"
        if name.endswith(".js"):
            assert "innerHTML" not in text and "eval(" not in text and "localStorage" not in text, name
    policy = HEADERS["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "form-action 'none'" in policy


def test_the_console_is_off_unless_enabled():
    assert Settings.from_env({}).console_enabled is False
    assert Settings.from_env({"CONSOLE_ENABLED": "true"}).console_enabled is True
    with pytest.raises(ConfigurationError):
        Settings.from_env({"CONSOLE_ENABLED": "yes please"})

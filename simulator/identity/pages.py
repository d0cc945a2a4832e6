"""The HTML a browser sees at the authorize endpoint: account picker, consent, errors, form_post.

Element IDs and data attributes are a contract with browser tests (Playwright) and the `requests`-based
driver in simulator/testing.py: `button[data-account="<address>"]`, the `#use-another` form (`#other-account`,
`#next`) for an address the page does not list, `#accept`, `#deny`, `#error[data-error-code]`, and the hidden
`request_id` field.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from simulator.directory import User
from simulator.identity.errors import AadError, ErrorContext

_STYLE = """
body{font-family:Segoe UI,Helvetica,Arial,sans-serif;background:#f2f2f2;margin:0}
main{max-width:440px;margin:48px auto;background:#fff;padding:32px 40px;box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:22px;font-weight:600;margin:0 0 16px}
.banner{font-size:12px;color:#666;margin-bottom:16px}
button{display:block;width:100%;margin:8px 0;padding:10px;font-size:15px;text-align:left;cursor:pointer;
background:#fff;border:1px solid #ccc}
button.hinted{border-color:#0067b8}
button.primary{background:#0067b8;color:#fff;text-align:center}
.sub{color:#666;font-size:13px}
#error{color:#a80000;white-space:pre-wrap;font-size:14px}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body><main>"
        "<div class=\"banner\">Microsoft identity platform (local simulator)</div>"
        f"{body}</main></body></html>"
    )


def account_picker(action: str, request_id: str, app_name: str, accounts: Iterable[User], hint: str | None,
                   notice: str | None = None) -> str:
    buttons = []
    for n, user in enumerate(accounts):
        hinted = hint is not None and user.address.lower() == hint.lower()
        buttons.append(
            f"<button type=\"submit\" id=\"account-{n}\" name=\"account\" value=\"{escape(user.address)}\" "
            f"data-account=\"{escape(user.address)}\" class=\"{'hinted' if hinted else ''}\">"
            f"{escape(user.display_name)}<br><span class=\"sub\">{escape(user.address)}</span></button>"
        )
    listing = "".join(buttons) or "<p id=\"no-accounts\">No account can sign in here.</p>"
    note = f"<p id=\"notice\" class=\"sub\">{escape(notice)}</p>" if notice else ""
    return _page(
        "Sign in to your account",
        f"<h1>Pick an account</h1><p class=\"sub\">to continue to {escape(app_name)}</p>{note}"
        f"<form method=\"post\" action=\"{escape(action)}\" id=\"pick-account\">"
        f"<input type=\"hidden\" name=\"request_id\" value=\"{escape(request_id)}\">{listing}</form>"
        # Microsoft's page always lets a person type any address ("Use another account").
        f"<form method=\"post\" action=\"{escape(action)}\" id=\"use-another\">"
        f"<input type=\"hidden\" name=\"request_id\" value=\"{escape(request_id)}\">"
        "<p class=\"sub\">Use another account</p>"
        "<input type=\"text\" name=\"account\" id=\"other-account\" autocomplete=\"username\">"
        "<button type=\"submit\" id=\"next\" class=\"primary\">Next</button></form>",
    )


def consent_page(action: str, request_id: str, app_name: str, user: User, permissions: Iterable[str]) -> str:
    items = "".join(f"<li data-scope=\"{escape(p)}\">{escape(p)}</li>" for p in sorted(permissions))
    return _page(
        "Permissions requested",
        f"<h1>Permissions requested</h1><p id=\"app-name\">{escape(app_name)}</p>"
        f"<p class=\"sub\" id=\"signed-in-as\" data-account=\"{escape(user.address)}\">{escape(user.address)}</p>"
        f"<p>This app would like to:</p><ul id=\"scopes\">{items}<li>Maintain access to data you have given it "
        "access to</li><li>View your basic profile</li></ul>"
        f"<form method=\"post\" action=\"{escape(action)}\" id=\"consent\">"
        f"<input type=\"hidden\" name=\"request_id\" value=\"{escape(request_id)}\">"
        "<button type=\"submit\" id=\"accept\" name=\"action\" value=\"accept\" class=\"primary\">Accept</button>"
        "<button type=\"submit\" id=\"deny\" name=\"action\" value=\"deny\">Cancel</button></form>",
    )


def error_page(err: AadError, ctx: ErrorContext) -> str:
    code = "" if err.code is None else str(err.code)
    return _page(
        "Sign in error",
        "<h1>Sorry, but we're having trouble signing you in.</h1>"
        f"<div id=\"error\" data-error=\"{escape(err.error)}\" data-error-code=\"{code}\">{escape(err.headline)}</div>"
        f"<p class=\"sub\">Trace ID: {escape(ctx.trace_id)}<br>Correlation ID: {escape(ctx.correlation_id)}"
        f"<br>Timestamp: {escape(ctx.stamp)}</p>",
    )


def form_post(redirect_uri: str, params: dict[str, str]) -> str:
    fields = "".join(
        f"<input type=\"hidden\" name=\"{escape(k)}\" value=\"{escape(v)}\">" for k, v in params.items()
    )
    return (
        "<!DOCTYPE html><html><head><title>Working...</title></head><body onload=\"document.forms[0].submit()\">"
        f"<form method=\"post\" action=\"{escape(redirect_uri)}\" id=\"form_post\">{fields}"
        "<noscript><button type=\"submit\">Continue</button></noscript></form></body></html>"
    )


def simple_page(title: str, text: str, element_id: str = "message") -> str:
    return _page(title, f"<h1>{escape(title)}</h1><p id=\"{escape(element_id)}\">{escape(text)}</p>")

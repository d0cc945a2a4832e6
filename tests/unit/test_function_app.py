import subprocess
import sys


def test_importing_the_app_does_no_io_and_loads_no_heavy_sdk():
    """Cold start: the worker imports function_app.py first; the heavy SDKs must load only when first used."""
    heavy = ["azure.data.tables", "azure.storage.queue", "azure.keyvault.secrets", "azure.identity", "msal",
             "requests"]
    code = (
        "import sys, socket\n"
        "def refuse(*a, **k): raise AssertionError('network I/O at import')\n"
        "socket.socket.connect = refuse\n"
        "import function_app\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
        "print(len(function_app.app.get_functions()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert int(out[1]) >= 1


def test_health_is_anonymous_and_everything_else_needs_a_key():
    import azure.functions as func

    import function_app

    function_app.app.functions_bindings = None
    functions = function_app.app.get_functions()
    for function in functions:
        trigger = function.get_trigger()
        if trigger.get_binding_name() != "httpTrigger":
            continue
        anonymous = ("health", "openapi.json", "oauth/start", "oauth/callback", "oauth/result",
                     "notifications/changes", "notifications/lifecycle",  # Microsoft Graph calls these two
                     "console/{file?}")
        expected = func.AuthLevel.ANONYMOUS if trigger.route in anonymous else None
        if expected is not None:
            assert trigger.auth_level == expected, trigger.route
        else:
            assert trigger.auth_level in (func.AuthLevel.FUNCTION, func.AuthLevel.ADMIN), trigger.route
